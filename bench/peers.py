#!/usr/bin/env python3
"""One peer engine, measured in its own process; prints one JSON object on stdout.

    python3 bench/peers.py llama-cpp    --model M.gguf --corpus C.jsonl --n-batch 1024 [--flash-attn]
    python3 bench/peers.py transformers --model HF_DIR --corpus C.jsonl --dtype float32|bfloat16
    python3 bench/peers.py onnx         --model M.onnx --tokenizer T.json --corpus C.jsonl --batch-size 1
    python3 bench/peers.py llama-cpp    --model M.gguf --first-vector   (load, embed "hello", exit)

Reported: load seconds, embed seconds for the whole corpus (one call, the engine's own
batching), latency p50/p95 of single short texts, and the process's peak RSS; with --vectors,
the corpus vectors are saved (NumPy, float32, corpus order) for bench/accuracy.py. bench/run.py
runs these next to gguf-embed and computes the ratios.

The latency texts are the ones `gguf-embed bench` times, picked by the same rule (the shortest
fifth of the corpus by UTF-8 length, stable order, cycled) and formatted by the same query
prompt, so every engine is timed on the same requests.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time


def load_corpus(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f if line.strip()]


def short_texts(texts: list[str]) -> list[str]:
    """The latency texts: src/cli/bench.rs sorts by byte length (stable) and keeps ceil(n/5)."""
    ordered = sorted(texts, key=lambda t: len(t.encode("utf-8")))
    return ordered[: max(1, (len(ordered) + 4) // 5)]


QUERY = "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:"


def percentiles(times: list[float]) -> tuple[float, float]:
    times = sorted(times)
    pick = lambda q: times[round((len(times) - 1) * q)]  # noqa: E731
    return pick(0.5) * 1e3, pick(0.95) * 1e3


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def llama_cpp_engine(args):
    import llama_cpp
    from llama_cpp import Llama

    t = time.perf_counter()
    llm = Llama(
        model_path=args.model,
        embedding=True,
        pooling_type=llama_cpp.LLAMA_POOLING_TYPE_LAST,
        n_ctx=args.n_batch,
        n_batch=args.n_batch,
        n_ubatch=args.n_batch,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        flash_attn=args.flash_attn,
        verbose=False,
    )
    load = time.perf_counter() - t

    def embed(texts):
        # The benchmark GGUF sets tokenizer.ggml.add_eos_token, so llama.cpp appends
        # <|endoftext|> itself (llama-cpp-python tokenizes with add_special=True).
        return llm.embed(texts, normalize=True)

    return load, embed


def transformers_engine(args):
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    t = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(args.model, padding_side="left")
    model = AutoModel.from_pretrained(args.model, dtype=dtype, attn_implementation="sdpa").eval()
    load = time.perf_counter() - t
    eot = 151643

    @torch.inference_mode()
    def embed(texts):
        # Sentence-transformers style: sort by length, pad left, batch, last token, L2.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = [None] * len(texts)
        for start in range(0, len(order), args.batch_size):
            idx = order[start : start + args.batch_size]
            enc = tok([texts[i] for i in idx], add_special_tokens=False)["input_ids"]
            enc = [ids + [eot] for ids in enc]
            width = max(map(len, enc))
            ids = torch.tensor([[eot] * (width - len(e)) + e for e in enc])
            mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in enc])
            hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state[:, -1]
            hidden = torch.nn.functional.normalize(hidden.float(), dim=-1)
            for j, i in enumerate(idx):
                out[i] = hidden[j].tolist()
        return out

    return load, embed


def onnx_engine(args):
    from onnx_peer import engine

    return engine(args.model, args.tokenizer, args.threads, args.batch_size)


ENGINES = {"llama-cpp": llama_cpp_engine, "transformers": transformers_engine, "onnx": onnx_engine}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("engine", choices=sorted(ENGINES))
    ap.add_argument("--model", required=True)
    ap.add_argument("--corpus")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-batch", type=int, default=1024)
    ap.add_argument("--flash-attn", action="store_true")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--tokenizer", help="tokenizer.json (onnx)")
    ap.add_argument("--vectors", help="save the corpus vectors here (.npy)")
    ap.add_argument("--latency-runs", type=int, default=30)
    ap.add_argument("--first-vector", action="store_true")
    args = ap.parse_args()

    load, embed = ENGINES[args.engine](args)
    if args.first_vector:
        vec = embed(["hello"])[0]
        print(json.dumps({"dims": len(vec)}))
        return

    texts = load_corpus(args.corpus)
    t = time.perf_counter()
    vectors = embed(texts)
    embed_s = time.perf_counter() - t
    assert len(vectors) == len(texts)
    if args.vectors:
        import numpy as np

        np.save(args.vectors, np.asarray(vectors, dtype=np.float32))

    times = []
    short = short_texts(texts)
    for i in range(args.latency_runs):
        t = time.perf_counter()
        embed([QUERY + short[i % len(short)]])
        times.append(time.perf_counter() - t)
    p50, p95 = percentiles(times)
    print(json.dumps({
        "load_seconds": load,
        "embed_seconds": embed_s,
        "latency_p50_ms": p50,
        "latency_p95_ms": p95,
        "peak_rss_mb": peak_rss_mb(),
    }))


if __name__ == "__main__":
    main()
