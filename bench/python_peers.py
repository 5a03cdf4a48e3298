#!/usr/bin/env python3
"""The Python package (gguf_embed) against llama-cpp-python and sentence-transformers, each
used from Python the way its users do: load the model, embed the corpus in one call.

    python bench/python_peers.py                     # all three; prints a Markdown table
    python bench/python_peers.py --engines gguf-embed,llama-cpp

Needs one interpreter with the gguf_embed wheel, llama-cpp-python and sentence-transformers
(docs/BENCHMARKS.md says how it was set up), and the real-shape models of bench/models
(python3 models/make_fixtures.py --shape real --bf16-weights --hf --no-reference --out
bench/models). Each engine runs in a fresh process of this interpreter (the same script with
--child), so that its peak RSS (the kernel's maximum resident set of that process) is its own;
timed: load, and embedding the whole corpus inside the process. Tokens are the corpus's
reference count (<|endoftext|> included), credited to every engine alike.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from peers import llama_cpp_engine, load_corpus, peak_rss_mb  # noqa: E402


def gguf_embed_engine(args):
    from gguf_embed import Embedder

    t = time.perf_counter()
    embedder = Embedder(args.gguf, device="cpu", threads=args.threads)
    load = time.perf_counter() - t
    return load, embedder.encode


def sentence_transformers_engine(args):
    import torch
    from sentence_transformers import SentenceTransformer, models

    torch.set_num_threads(args.threads)
    t = time.perf_counter()
    # Qwen3-Embedding's sentence-transformers configuration: last-token pooling, L2 norm,
    # left padding; the tokenizer of bench/models/hf appends <|endoftext|> like the official.
    body = models.Transformer(args.hf, tokenizer_args={"padding_side": "left"})
    pooling = models.Pooling(body.get_word_embedding_dimension(), pooling_mode="lasttoken")
    model = SentenceTransformer(modules=[body, pooling, models.Normalize()], device="cpu")
    load = time.perf_counter() - t
    return load, lambda texts: model.encode(texts, batch_size=args.batch_size)


ENGINES = {
    "gguf-embed": gguf_embed_engine,
    "llama-cpp": llama_cpp_engine,
    "sentence-transformers": sentence_transformers_engine,
}


def child(args) -> None:
    if args.child == "llama-cpp":
        args.model = args.gguf
    load, embed = ENGINES[args.child](args)
    texts = load_corpus(args.corpus)
    t = time.perf_counter()
    vectors = embed(texts)
    seconds = time.perf_counter() - t
    assert len(vectors) == len(texts)
    print(json.dumps({"load_seconds": load, "embed_seconds": seconds, "peak_rss_mb": peak_rss_mb()}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engines", default="gguf-embed,llama-cpp,sentence-transformers")
    ap.add_argument("--gguf", default=str(ROOT / "bench/models/qwen3-embedding-0.6b-random-q8_0.gguf"))
    ap.add_argument("--hf", default=str(ROOT / "bench/models/hf"))
    ap.add_argument("--corpus", default=str(ROOT / "bench/corpus.jsonl"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-batch", type=int, default=1024, help="llama-cpp-python's batch")
    ap.add_argument("--flash-attn", action="store_true", help="llama-cpp-python's flash attention")
    ap.add_argument("--batch-size", type=int, default=16, help="sentence-transformers' batch")
    ap.add_argument("--child", choices=list(ENGINES), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return

    rows = [json.loads(line) for line in Path(args.corpus).read_text(encoding="utf-8").splitlines() if line.strip()]
    tokens = sum(r["tokens"] for r in rows)
    print(f"corpus: {len(rows)} texts, {tokens} tokens; {args.threads} threads", file=sys.stderr)
    print("| engine (in Python) | load s | embed s | tokens/s | peak RSS MB |")
    print("| --- | --- | --- | --- | --- |")
    for engine in args.engines.split(","):
        cmd = [sys.executable, __file__, "--child", engine, "--gguf", args.gguf, "--hf", args.hf,
               "--corpus", args.corpus, "--threads", str(args.threads), "--n-batch",
               str(args.n_batch), "--batch-size", str(args.batch_size)]
        if args.flash_attn:
            cmd.append("--flash-attn")
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"| {engine} | {r['load_seconds']:.2f} | {r['embed_seconds']:.1f} | "
              f"{tokens / r['embed_seconds']:.1f} | {r['peak_rss_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
