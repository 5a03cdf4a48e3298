#!/usr/bin/env python3
"""gguf_embed.Reranker against llama.cpp's own reranking (RANK pooling through llama-cpp-python's
low-level API, as llama-server runs it) on the same GGUF file: pairs per second and peak RSS,
side by side in one run; then the first score of a cached model from the CLI, and an embedder
and a reranker in one server.

    python bench/rerank_peers.py --models bench/models                 # every row; Markdown
    python bench/rerank_peers.py --models bench/models --docs 8        # smoke test
    python bench/rerank_peers.py --models bench/models --rows gguf-embed,llama-cpp-rank

Needs one interpreter with the gguf_embed wheel and llama-cpp-python (bench/setup.sh), the
gguf-embed CLI (target/release/gguf-embed, or --cli), and real-shape random-weight models in
--models (the arithmetic does not depend on the values):
    python3 models/make_reranker_fixtures.py --shape real --out bench/models --no-reference
        -> qwen3-reranker-0.6b-random-q8_0.gguf (llama.cpp's converter layout: the head
           llama.cpp's RANK pooling needs)
    python3 models/make_fixtures.py --shape real --types q8_0 --no-reference --out bench/models
        -> qwen3-embedding-0.6b-random-q8_0.gguf (for the server row)

The workload: every query of QUERIES against the first --docs texts of bench/corpus.jsonl (a
reranker rescoring a first stage's candidates), each engine scoring one query's documents in
one call with its own batching. Each row runs in a fresh process (this script with --child), so
its peak RSS (the kernel's maximum resident set of that process) is its own.

How llama.cpp is run, so that it computes Qwen3-Reranker's score: the file's pooling RANK
(cls.output.weight, softmax: slot 0 is P(yes)), embeddings on, one context of
n_ctx = n_batch = n_ubatch = 2048 tokens (every pair fits one micro-batch, as RANK pooling
needs) and up to 32 sequences per decode packed in order (first fit, as ours), unified KV
cache, the same threads; flash attention off (its default) and on. The prompt is the file's
`rerank` template filled as llama-server fills it (Qwen's prompt), tokenized by llama.cpp with
special tokens parsed; the script checks that its token counts equal ours.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

QUERIES = [
    "how do I read a file into a string in rust",
    "what is the capital of France",
]
SYSTEM = ('Judge whether the Document meets the requirements based on the Query and the '
          'Instruct provided. Note that the answer can only be "yes" or "no".')
INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
PREFIX = f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n"
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"

ROWS = {
    "gguf-embed": ("gguf-embed", {}),
    "llama-cpp-rank": ("llama-cpp", {"flash_attn": False}),
    "llama-cpp-rank-fa": ("llama-cpp", {"flash_attn": True}),
}
LABELS = {
    "gguf-embed": "**gguf_embed.Reranker Q8_0**",
    "llama-cpp-rank": "llama.cpp RANK pooling (llama-cpp-python) Q8_0",
    "llama-cpp-rank-fa": "llama.cpp RANK pooling (llama-cpp-python) Q8_0, flash attention on",
}

RERANKER = "qwen3-reranker-0.6b-random-q8_0.gguf"
EMBEDDER = "qwen3-embedding-0.6b-random-q8_0.gguf"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def documents(limit: int) -> list[str]:
    with open(ROOT / "bench/corpus.jsonl", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f if line.strip()]
    return texts[:limit]


# ---------------------------------------------------------------- the engines (child side)


def gguf_embed_engine(path: str, threads: int, opts: dict):
    from gguf_embed import Reranker

    t = time.perf_counter()
    reranker = Reranker(path, device="cpu", threads=threads)
    load = time.perf_counter() - t

    def score(query, docs):
        return [float(s) for s in reranker.score(query, docs)]

    def tokens(query, docs):
        return [len(reranker.tokenize(query, d)) for d in docs]

    return load, score, tokens


def llama_cpp_engine(path: str, threads: int, opts: dict):
    import ctypes

    import llama_cpp as ll

    n_ctx, n_seq = 2048, 32
    ll.llama_backend_init()
    t = time.perf_counter()
    mparams = ll.llama_model_default_params()
    model = ll.llama_model_load_from_file(path.encode(), mparams)
    if not model:
        raise SystemExit(f"llama.cpp could not load {path}")
    cparams = ll.llama_context_default_params()
    cparams.n_ctx = cparams.n_batch = cparams.n_ubatch = n_ctx
    cparams.n_seq_max = n_seq
    cparams.n_threads = cparams.n_threads_batch = threads
    cparams.embeddings = True
    cparams.pooling_type = ll.LLAMA_POOLING_TYPE_RANK
    if hasattr(cparams, "kv_unified"):
        cparams.kv_unified = True
    if hasattr(cparams, "flash_attn_type"):
        cparams.flash_attn_type = (ll.LLAMA_FLASH_ATTN_TYPE_ENABLED if opts["flash_attn"]
                                   else ll.LLAMA_FLASH_ATTN_TYPE_DISABLED)
    else:
        cparams.flash_attn = opts["flash_attn"]
    ctx = ll.llama_init_from_model(model, cparams)
    if not ctx:
        raise SystemExit("llama.cpp could not create the context")
    vocab = ll.llama_model_get_vocab(model)
    batch = ll.llama_batch_init(n_ctx, 0, n_seq)
    load = time.perf_counter() - t

    def tokenize(text: str) -> list[int]:
        data = text.encode()
        buf = (ll.llama_token * (len(data) + 16))()
        n = ll.llama_tokenize(vocab, data, len(data), buf, len(buf), False, True)
        if n < 0:
            raise SystemExit("tokenize: buffer too small")
        return list(buf[:n])

    def prompts(query, docs):
        return [tokenize(PREFIX + f"<Instruct>: {INSTRUCTION}\n<Query>: {query}\n<Document>: {d}"
                         + SUFFIX) for d in docs]

    def decode(seqs: list[list[int]]) -> list[float]:
        i = 0
        for s, ids in enumerate(seqs):
            for pos, tok in enumerate(ids):
                batch.token[i] = tok
                batch.pos[i] = pos
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = s
                batch.logits[i] = 1
                i += 1
        batch.n_tokens = i
        ll.llama_memory_clear(ll.llama_get_memory(ctx), True)
        if ll.llama_decode(ctx, batch) != 0:
            raise SystemExit("llama_decode failed")
        out = []
        for s in range(len(seqs)):
            p = ll.llama_get_embeddings_seq(ctx, s)
            out.append(float(ctypes.cast(p, ctypes.POINTER(ctypes.c_float))[0]))
        return out

    def score(query, docs):
        seqs = prompts(query, docs)
        scores = [0.0] * len(seqs)
        pending = list(range(len(seqs)))
        while pending:
            # First fit in order, as gguf-embed packs (src/batch.rs).
            picked, room = [], n_ctx
            for j in pending:
                if len(picked) < n_seq and len(seqs[j]) <= room:
                    picked.append(j)
                    room -= len(seqs[j])
            if not picked:
                raise SystemExit(f"a pair of {len(seqs[pending[0]])} tokens exceeds {n_ctx}")
            for j, value in zip(picked, decode([seqs[j] for j in picked])):
                scores[j] = value
            pending = [j for j in pending if j not in picked]
        return scores

    return load, score, lambda query, docs: [len(s) for s in prompts(query, docs)]


ENGINES = {"gguf-embed": gguf_embed_engine, "llama-cpp": llama_cpp_engine}


def child(args) -> None:
    engine, opts = ROWS[args.child]
    load, score, tokens = ENGINES[engine](str(args.models / RERANKER), args.threads, opts)
    docs = documents(args.docs)
    counts = [tokens(q, docs) for q in QUERIES]
    t = time.perf_counter()
    scores = [score(q, docs) for q in QUERIES]
    seconds = time.perf_counter() - t
    print(json.dumps({"load_seconds": load, "rerank_seconds": seconds, "scores": scores,
                      "tokens": counts, "peak_rss_mb": peak_rss_mb()}))


# ---------------------------------------------------------------- single runs (parent side)


def first_score(cli: Path, models: Path, threads: int) -> float:
    """Seconds from starting `gguf-embed rerank` to its exit, one query and one document, the
    model cached (the second of two runs: the first writes the CPU-layout copy)."""
    cmd = [str(cli), "rerank", "-m", str(models / RERANKER), "--threads", str(threads), "--quiet",
           "--query", QUERIES[1], "--", "Paris is the capital of France."]
    times = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return min(times[1:])


def server_both(cli: Path, models: Path, threads: int) -> dict:
    """Peak RSS of one server with the embedder and the reranker after a request to each,
    against the two files' sizes."""
    import urllib.request

    proc = subprocess.Popen(
        [str(cli), "serve", "-m", str(models / EMBEDDER), "--reranker", str(models / RERANKER),
         "--port", "0", "--threads", str(threads)],
        stderr=subprocess.PIPE, text=True)
    try:
        base = None
        for line in proc.stderr:
            if "on http://" in line:
                base = "http://" + line.split("on http://")[1].split()[0]
                break
        if base is None:
            raise SystemExit("the server did not start")

        def post(path, body):
            req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req) as r:
                return json.load(r)

        docs = documents(16)
        post("/v1/embeddings", {"input": docs})
        post("/v1/rerank", {"query": QUERIES[0], "documents": docs})
        status = Path(f"/proc/{proc.pid}/status").read_text()
        hwm = next(int(line.split()[1]) for line in status.splitlines()
                   if line.startswith("VmHWM:"))
    finally:
        proc.terminate()
        proc.wait()
    files = (models / EMBEDDER).stat().st_size + (models / RERANKER).stat().st_size
    return {"peak_rss_mb": hwm / 1024, "files_mb": files / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, default=ROOT / "bench/models")
    ap.add_argument("--rows", default=",".join(ROWS), help=f"some of {','.join(ROWS)}")
    ap.add_argument("--docs", type=int, default=48, help="documents per query (corpus order)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cli", type=Path, default=ROOT / "target/release/gguf-embed")
    ap.add_argument("--no-cli", action="store_true", help="skip the CLI and server rows")
    ap.add_argument("--out", type=Path, help="also write the results as JSON here")
    ap.add_argument("--child", choices=list(ROWS), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return

    docs = documents(args.docs)
    print(f"{len(QUERIES)} queries x {len(docs)} documents; {args.threads} threads; load average "
          f"at start {os.getloadavg()[0]:.1f}", flush=True)
    results = {}
    for name in args.rows.split(","):
        if name not in ROWS:
            raise SystemExit(f"unknown row {name}; rows: {', '.join(ROWS)}")
        cmd = [sys.executable, __file__, "--child", name, "--models", str(args.models),
               "--docs", str(args.docs), "--threads", str(args.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{name} failed:\n{proc.stdout}\n{proc.stderr}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        r["pairs"] = sum(len(s) for s in r["scores"])
        r["prompt_tokens"] = sum(sum(t) for t in r["tokens"])
        r["pairs_per_second"] = r["pairs"] / r["rerank_seconds"]
        r["tokens_per_second"] = r["prompt_tokens"] / r["rerank_seconds"]
        results[name] = r
        print(f"  {name}: {r['pairs_per_second']:.2f} pairs/s, {r['peak_rss_mb']:.0f} MB "
              f"(load average {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)

    ours = results.get("gguf-embed")
    for name, r in results.items():
        if ours is not None and name != "gguf-embed":
            if r["tokens"] != ours["tokens"]:
                raise SystemExit(f"{name} tokenizes the pairs differently from gguf-embed")
            r["max_score_difference"] = max(
                abs(a - b) for qa, qb in zip(r["scores"], ours["scores"]) for a, b in zip(qa, qb))

    print()
    print(f"| engine (from Python, {args.threads} threads) | load s | rerank s | pairs/s | "
          "prompt tokens/s | peak RSS MB | max score diff to ours |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in results.items():
        diff = r.get("max_score_difference")
        print(f"| {LABELS[name]} | {r['load_seconds']:.2f} | {r['rerank_seconds']:.1f} | "
              f"{r['pairs_per_second']:.2f} | {r['tokens_per_second']:.1f} | "
              f"{r['peak_rss_mb']:.0f} | {'-' if diff is None else f'{diff:.1e}'} |")
    if ours is not None:
        for name, r in results.items():
            if name != "gguf-embed":
                print(f"\ngguf_embed / {LABELS[name]}: "
                      f"{ours['pairs_per_second'] / r['pairs_per_second']:.2f}x pairs/s, "
                      f"{ours['peak_rss_mb'] / r['peak_rss_mb']:.2f}x peak RSS")
    extra = {}
    if not args.no_cli:
        extra["first_score_seconds"] = first_score(args.cli, args.models, args.threads)
        print(f"\nfirst score from the CLI, model cached: {extra['first_score_seconds']:.2f} s")
        if (args.models / EMBEDDER).exists():
            extra["server_both"] = server_both(args.cli, args.models, args.threads)
            s = extra["server_both"]
            print(f"embedder + reranker in one server: peak RSS {s['peak_rss_mb']:.0f} MB, the two "
                  f"files {s['files_mb']:.0f} MB (+{s['peak_rss_mb'] - s['files_mb']:.0f} MB)")
    if args.out:
        for r in results.values():
            del r["scores"], r["tokens"]
        args.out.write_text(json.dumps({"queries": len(QUERIES), "documents": len(docs),
                                        "threads": args.threads, "rows": results, **extra},
                                       indent=2) + "\n")


if __name__ == "__main__":
    main()
