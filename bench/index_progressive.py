#!/usr/bin/env python3
"""How soon a cold repository is searchable: a cold `gguf-embed index` of real crate sources
(from the local cargo registry, as bench/index_throughput.sh uses), watched from outside.

    python3 bench/index_progressive.py MODEL.gguf [--bin target/release/gguf-embed]
        [--crates "tokio-1.54.1 syn-2.0.119"] [--queries 5] [--stop-at 100]

Prints, in seconds from the start of the `index` process: the first answer of a search from
another process (a lexical search polled in a loop: the first one with a hit), full lexical
coverage (every file written: the indexer's own `lexical_seconds`), and 50%, 90% and 100% (or
--stop-at) semantic coverage; then, for identifiers defined in files late in the queue
(searched with a hybrid search, as an agent would, once lexical coverage is full), how long
after each search started its defining file was embedded. Coverage is read from the index
with Python's sqlite3 (a read transaction per poll, every 0.1 s), so the polling loads no
model.

Uses only the standard library. Needs the real-shape model for meaningful figures
(bench/real_shape_q8_0.py makes one).
"""
import argparse
import glob
import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time


def registry():
    dirs = sorted(glob.glob(os.path.expanduser("~/.cargo/registry/src/*/")))
    if not dirs:
        sys.exit("no cargo registry sources in ~/.cargo/registry/src")
    return dirs[0]


def counts(db):
    """(files, chunks to embed, chunks embedded) in one read."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        row = conn.execute(
            "SELECT count(*), coalesce(sum(CASE WHEN lexical_only = 0 THEN chunks END), 0), "
            "coalesce(sum(CASE WHEN lexical_only = 0 THEN chunks - pending END), 0) FROM files"
        ).fetchone()
        conn.close()
        return row
    except sqlite3.Error:
        return None


def file_embedded(db, path):
    """Whether every chunk of `path` has its vector."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        row = conn.execute("SELECT pending FROM files WHERE path = ?", (path,)).fetchone()
        conn.close()
        return row is not None and row[0] == 0
    except sqlite3.Error:
        return False


def identifiers(repo, db, n, seed=7):
    """`n` function names each defined in exactly one file, from files in the back half of the
    embedding queue as it stands (read from the index: the queue's own order)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    queue = [p for (p,) in conn.execute(
        "SELECT path FROM files WHERE pending > 0 AND lexical_only = 0 "
        "ORDER BY wanted DESC, rank DESC, path")]
    conn.close()
    back = set(queue[len(queue) // 2:])
    defined = {}
    for rel in sorted(os.path.relpath(p, repo) for p in
                      glob.glob(os.path.join(repo, "**", "*.rs"), recursive=True)):
        with open(os.path.join(repo, rel), errors="replace") as f:
            for name in re.findall(r"\bfn\s+([a-z][a-z0-9_]{7,})\s*[<(]", f.read()):
                defined.setdefault(name, set()).add(rel)
    unique = sorted((name, next(iter(fs))) for name, fs in defined.items()
                    if len(fs) == 1 and fs & back)
    random.Random(seed).shuffle(unique)
    return unique[:n]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--bin", default="target/release/gguf-embed")
    ap.add_argument("--crates", default="tokio-1.54.1 syn-2.0.119")
    ap.add_argument("--queries", type=int, default=5)
    ap.add_argument("--stop-at", type=float, default=100.0,
                    help="stop once this percentage of the chunks is embedded")
    args = ap.parse_args()
    binary = os.path.abspath(args.bin)
    work = tempfile.mkdtemp()
    repo = os.path.join(work, "repo")
    os.mkdir(repo)
    for c in args.crates.split():
        shutil.copytree(os.path.join(registry(), c), os.path.join(repo, c))
    rs = glob.glob(os.path.join(repo, "**", "*.rs"), recursive=True)
    lines = sum(sum(1 for _ in open(p, errors="replace")) for p in rs)
    print(f"corpus: {args.crates}: {len(rs)} .rs files, {lines} lines")
    # The model's CPU-layout copy is written by a first run, not by the measured one.
    subprocess.run([binary, "-m", args.model, "warm up"], check=True, stdout=subprocess.DEVNULL)
    db = os.path.join(repo, ".gguf-embed", "index.sqlite")
    env = dict(os.environ, HF_HUB_OFFLINE="1")

    t0 = time.monotonic()
    indexer = subprocess.Popen(
        [binary, "index", "--repo", repo, "-m", args.model, "-f", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
    )
    marks = {}

    def search(query, mode):
        out = subprocess.run(
            [binary, "search", query, "--repo", repo, "--mode", mode, "-m", args.model,
             "-f", "json", "-k", "5"],
            capture_output=True, env=env,
        )
        if out.returncode != 0:
            return None
        return json.loads(out.stdout)

    # The first answer: a lexical search for a word every Rust file has, in a loop.
    while "first_answer" not in marks:
        found = search("fn", "lexical")
        if found and found["results"]:
            marks["first_answer"] = time.monotonic() - t0
            marks["first_answer_files"] = counts(db)[0]
        elif indexer.poll() is not None:
            sys.exit("the indexer ended before any answer")
        else:
            time.sleep(0.1)

    # Coverage marks, polled on a thread.
    done = threading.Event()
    progress = []

    def poll():
        while not done.is_set():
            c = counts(db)
            if c is not None and c[1] > 0:
                progress.append((time.monotonic() - t0, c))
                share = 100.0 * c[2] / c[1]
                for p in (50, 90, 100):
                    if share >= p and f"semantic_{p}" not in marks:
                        marks[f"semantic_{p}"] = time.monotonic() - t0
                if share >= args.stop_at:
                    done.set()
            time.sleep(0.1)

    poller = threading.Thread(target=poll)
    poller.start()

    # Identifier queries once every file is written (the first vector marks that: no chunk is
    # embedded before every file is written).
    while not progress or progress[-1][1][2] == 0:
        if indexer.poll() is not None:
            break
        time.sleep(0.1)
    waits = []
    for name, path in identifiers(repo, db, args.queries):
        if done.is_set() or file_embedded(db, path):
            continue
        asked = time.monotonic()
        found = search(name, "hybrid")
        answered = time.monotonic() - asked
        top = found["results"][0]["path"] if found and found["results"] else None
        while not file_embedded(db, path) and indexer.poll() is None:
            time.sleep(0.1)
        waits.append((name, path, top == path, answered, time.monotonic() - asked))

    while not done.is_set() and indexer.poll() is None:
        time.sleep(0.5)
    done.set()
    poller.join()
    if indexer.poll() is None:
        indexer.terminate()
        indexer.wait()
        report = None
    else:
        report = json.loads(indexer.stdout.read())
    files, total, embedded = counts(db)
    print(f"index: {files} files, {total} chunks to embed")
    print(f"first answer (a lexical search from another process): {marks['first_answer']:.1f} s "
          f"({marks['first_answer_files']} files written then)")
    if report:
        print(f"full lexical coverage: {report['lexical_seconds']:.1f} s after the indexer started")
    first_vector = next((t for t, c in progress if c[2] > 0), None)
    if first_vector is not None:
        print(f"first vector written: {first_vector:.1f} s")
    for p in (50, 90, 100):
        if f"semantic_{p}" in marks:
            print(f"{p}% semantic coverage: {marks[f'semantic_{p}']:.1f} s")
    if report:
        print(f"indexer: {report['tokens']} tokens embedded in {report['seconds']:.1f} s "
              f"({report['tokens'] / max(report['seconds'] - report['lexical_seconds'], 1e-9):.0f} "
              "tokens/s after the lexical pass)")
    else:
        print(f"stopped at {100.0 * embedded / max(total, 1):.1f}% ({embedded} of {total} chunks)")
    for name, path, first, answered, embedded_after in waits:
        print(f"query {name!r} ({path}): answered in {answered:.1f} s "
              f"({'defining file first' if first else 'defining file not first'}), "
              f"file embedded {embedded_after:.1f} s after the query was asked")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
