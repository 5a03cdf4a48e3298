#!/usr/bin/env python3
"""Benchmark gguf-embed against its peers on the same corpus, in one run, on this machine.

Setup (once):
    pip install torch transformers tokenizers gguf numpy
    CMAKE_ARGS="-DGGML_NATIVE=ON" pip install llama-cpp-python==0.3.36
    python3 models/make_fixtures.py --shape real --bf16-weights --hf --no-reference --out bench/models
    cargo build --release

Run:
    python3 bench/run.py                      # everything (about 15 minutes on 2 cores)
    python3 bench/run.py --engines gguf-embed,llama-cpp --quant q8_0

The model is Qwen3-Embedding-0.6B's exact shape with random weights rounded to bfloat16, as the
released checkpoint's are (speed does not depend on the values; whether an F16 file can run on
BF16 kernels does). Each engine runs in its own process; peak RSS comes from the kernel (wait4).
gguf-embed is timed as a whole process (start, load, embed, write the vectors); the peers as
load + embed inside their process (their interpreter start-up is not counted). Time to first
vector is the wall time of a fresh process that loads the model and embeds one word (the model
file in the page cache), for every engine. Tokens are counted once with the reference tokenizer
(<|endoftext|> included) and credited to every engine alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_measured(cmd: list[str], stdout=subprocess.DEVNULL) -> tuple[float, float, bytes]:
    """Runs a command; returns (wall seconds, peak RSS in MB, stdout)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE)
    out = proc.stdout.read() if stdout == subprocess.PIPE else b""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"command failed: {' '.join(cmd)}\n{err}")
    return wall, usage.ru_maxrss / 1024, out


def median_wall(cmd: list[str], runs: int) -> float:
    return statistics.median(run_measured(cmd)[0] for _ in range(runs))


def corpus_stats(path: Path) -> tuple[int, int]:
    lines = [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]
    return len(lines), sum(l["tokens"] for l in lines)


def short_corpus(path: Path) -> Path:
    """The shortest fifth of the corpus, for in-process latency runs."""
    lines = [l for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]
    lines.sort(key=lambda l: json.loads(l)["tokens"])
    tmp = Path(tempfile.mkdtemp()) / "short.jsonl"
    tmp.write_text("\n".join(lines[: max(1, len(lines) // 5)]) + "\n", encoding="utf-8")
    return tmp


def gguf_embed(args, quant: str, texts: int, tokens: int, extra: list[str] = ()) -> dict:
    binary = str(args.binary)
    model = str(args.models / f"qwen3-embedding-0.6b-random-{quant}.gguf")
    common = ["-m", model, "--threads", str(args.threads), *extra]
    # Untimed: reads the model into the page cache and, for F16 on a CPU with AVX512-BF16,
    # writes the one-time BF16 copy (timed separately in docs/BENCHMARKS.md).
    run_measured([binary, *common, "hello"])
    wall, rss, _ = run_measured([binary, *common, "--input", str(args.corpus), "-f", "f32", "--quiet"])
    _, _, out = run_measured(
        [binary, "bench", *common, "--corpus", str(short_corpus(args.corpus)), "-f", "json",
         "--latency-runs", str(args.latency_runs)],
        stdout=subprocess.PIPE,
    )
    inproc = json.loads(out)
    ttfv = median_wall([binary, *common, "hello"], args.cold_runs)
    return {
        "engine": " ".join([f"gguf-embed {quant.upper()}", *extra]),
        "seconds": wall,
        "tokens_per_second": tokens / wall,
        "texts_per_second": texts / wall,
        "latency_p50_ms": inproc["latency_p50_ms"],
        "latency_p95_ms": inproc["latency_p95_ms"],
        "first_vector_seconds": ttfv,
        "peak_rss_mb": rss,
    }


def peer(args, engine: str, label: str, extra: list[str], model: str, texts: int, tokens: int,
         first_vector: bool = True) -> dict:
    script = [sys.executable, str(ROOT / "bench" / "peers.py"), engine, "--model", model,
              "--threads", str(args.threads), *extra]
    _, rss, out = run_measured([*script, "--corpus", str(args.corpus),
                                "--latency-runs", str(args.latency_runs)], stdout=subprocess.PIPE)
    r = json.loads(out)
    seconds = r["load_seconds"] + r["embed_seconds"]
    ttfv = median_wall([*script, "--first-vector"], args.cold_runs) if first_vector else None
    return {
        "engine": label,
        "seconds": seconds,
        "tokens_per_second": tokens / seconds,
        "texts_per_second": texts / seconds,
        "latency_p50_ms": r["latency_p50_ms"],
        "latency_p95_ms": r["latency_p95_ms"],
        "first_vector_seconds": ttfv,
        "peak_rss_mb": rss,
    }


def table(rows: list[dict]) -> str:
    head = "| engine | tokens/s | texts/s | p50 ms | p95 ms | first vector s | peak RSS MB |"
    out = [head, "|" + " --- |" * 7]
    for r in rows:
        ttfv = "-" if r["first_vector_seconds"] is None else f"{r['first_vector_seconds']:.2f}"
        out.append(
            f"| {r['engine']} | {r['tokens_per_second']:.1f} | {r['texts_per_second']:.2f} | "
            f"{r['latency_p50_ms']:.0f} | {r['latency_p95_ms']:.0f} | {ttfv} | {r['peak_rss_mb']:.0f} |"
        )
    return "\n".join(out)


def ratios(rows: list[dict]) -> list[str]:
    by = {r["engine"]: r for r in rows}
    lines = []
    for ours, peers in [
        ("gguf-embed Q8_0", [e for e in by if "Q8_0" in e and not e.startswith("gguf")]
         + [e for e in by if e.startswith("transformers")]),
        ("gguf-embed F16", [e for e in by if "F16" in e and not e.startswith("gguf")]),
        ("gguf-embed F16 --bf16 never", [e for e in by if "F16" in e and not e.startswith("gguf")]),
    ]:
        if ours not in by:
            continue
        for p in peers:
            a, b = by[ours], by[p]
            line = f"{ours} vs {p}: throughput x{a['tokens_per_second'] / b['tokens_per_second']:.2f}"
            if a["first_vector_seconds"] and b["first_vector_seconds"]:
                line += f", time to first vector x{b['first_vector_seconds'] / a['first_vector_seconds']:.2f} faster"
            line += f", peak RSS x{a['peak_rss_mb'] / b['peak_rss_mb']:.2f}"
            lines.append(line)
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, default=ROOT / "bench" / "models")
    ap.add_argument("--corpus", type=Path, default=ROOT / "bench" / "corpus.jsonl")
    ap.add_argument("--binary", type=Path, default=ROOT / "target" / "release" / "gguf-embed")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--engines", default="gguf-embed,llama-cpp,transformers")
    ap.add_argument("--quant", default="q8_0,f16")
    ap.add_argument("--latency-runs", type=int, default=20)
    ap.add_argument("--cold-runs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()

    texts, tokens = corpus_stats(args.corpus)
    engines = args.engines.split(",")
    quants = args.quant.split(",")
    print(f"corpus: {texts} texts, {tokens} tokens; {args.threads} threads; {platform.processor() or platform.machine()}",
          file=sys.stderr)
    rows = []
    for quant in quants:
        model = str(args.models / f"qwen3-embedding-0.6b-random-{quant}.gguf")
        label = quant.upper()
        if "gguf-embed" in engines:
            # F16: the default (BF16 kernels from the lossless copy where the CPU has them)
            # and F16 kernels.
            for extra in ([[]] if quant != "f16" else [[], ["--bf16", "never"]]):
                rows.append(gguf_embed(args, quant, texts, tokens, extra))
                print(table(rows[-1:]), file=sys.stderr)
        if "llama-cpp" in engines:
            batches = [1024, 2048] if quant == "q8_0" else [1024]
            for n_batch in batches:
                for fa in (False, True):
                    name = f"llama-cpp-python {label} n_batch {n_batch}{' +flash-attn' if fa else ''}"
                    extra = ["--n-batch", str(n_batch)] + (["--flash-attn"] if fa else [])
                    rows.append(peer(args, "llama-cpp", name, extra, model, texts, tokens))
                    print(table(rows[-1:]), file=sys.stderr)
    if "transformers" in engines:
        for dtype in ("float32", "bfloat16"):
            rows.append(peer(args, "transformers", f"transformers {dtype}", ["--dtype", dtype],
                             str(args.models / "hf"), texts, tokens, first_vector=False))
            print(table(rows[-1:]), file=sys.stderr)

    print(table(rows))
    print()
    for line in ratios(rows):
        print(f"- {line}")
    if args.out:
        args.out.write_text(json.dumps({"corpus_texts": texts, "corpus_tokens": tokens,
                                        "threads": args.threads, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
