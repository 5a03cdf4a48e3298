#!/usr/bin/env python3
"""Benchmark gguf-embed against its peers on the same corpus, in one run, on this machine.

Setup (once):
    bench/setup.sh                            # bench/.venv: every peer, pinned (15-25 minutes)
    bench/.venv/bin/python models/make_fixtures.py --shape real --bf16-weights --hf --no-reference \
        --out bench/models
    cargo build --release

Run:
    bench/.venv/bin/python bench/run.py       # everything (see docs/BENCHMARKS.md for how long)
    bench/.venv/bin/python bench/run.py --engines gguf-embed,onnx --quant q8_0

The first run also exports the ONNX models (bench/onnx_peer.py, into bench/models/onnx: 12
minutes to export, 10 to quantise on 2 busy cores, 10 GB of memory) and computes the reference
vectors (transformers float32, one text at a time; 12 minutes; cached in bench/models).

The model is Qwen3-Embedding-0.6B's exact shape with random weights rounded to bfloat16, as the
released checkpoint's are (speed does not depend on the values; whether an F16 file can run on
BF16 kernels does). Each engine runs in its own process; peak RSS comes from the kernel (wait4).
gguf-embed is timed as a whole process (start, load, embed, write the vectors); the peers as
load + embed inside their process (their interpreter start-up is not counted). Time to first
vector is the wall time of a fresh process that loads the model and embeds one word (the model
file in the page cache), for every engine. Tokens are counted once with the reference tokenizer
(<|endoftext|> included) and credited to every engine alike.

Latency (p50/p95) is timed on the same requests for every engine: the shortest fifth of the
corpus by UTF-8 length, formatted as web-search queries, one at a time in the same order
(`gguf-embed bench` picks them from the whole corpus; bench/peers.py uses the same rule).

Accuracy: the vectors each engine wrote in its timed corpus run, against transformers float32 on
the same weights, one text at a time (bench/accuracy.py): mean and worst cosine.
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

import numpy as np

import accuracy
import peers

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


def gguf_embed(args, quant: str, texts: int, tokens: int, extra: list[str] = ()) -> dict:
    binary = str(args.binary)
    model = str(args.models / f"qwen3-embedding-0.6b-random-{quant}.gguf")
    common = ["-m", model, "--threads", str(args.threads), *extra]
    # Untimed: reads the model into the page cache and, for F16 on a CPU with AVX512-BF16,
    # writes the one-time BF16 copy (timed separately in docs/BENCHMARKS.md).
    run_measured([binary, *common, "hello"])
    wall, rss, raw = run_measured([binary, *common, "--input", str(args.corpus), "-f", "f32", "--quiet"],
                                  stdout=subprocess.PIPE)
    # The whole corpus, so that `bench` picks its latency texts as the peers do (it also
    # embeds the corpus once more; that pass is not used).
    _, _, out = run_measured(
        [binary, "bench", *common, "--corpus", str(args.corpus), "-f", "json",
         "--latency-runs", str(args.latency_runs)],
        stdout=subprocess.PIPE,
    )
    inproc = json.loads(out)
    if inproc["latency_text_tokens"] != args.latency_tokens:
        raise SystemExit(f"gguf-embed bench timed latency texts of {inproc['latency_text_tokens']} tokens "
                         f"on average, the peers {args.latency_tokens}: not the same texts")
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
        **accuracy_of(args, np.frombuffer(raw, dtype="<f4").reshape(texts, -1)),
    }


def latency_tokens(args) -> int:
    """Mean tokens of the latency requests (as `gguf-embed bench` counts them), to check that it
    timed the same texts as the peers."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(args.models / "hf" / "tokenizer.json"))
    tok.encode_special_tokens = True
    short = peers.short_texts(peers.load_corpus(str(args.corpus)))
    counts = [len(tok.encode(peers.QUERY + short[i % len(short)], add_special_tokens=False).ids) + 1
              for i in range(args.latency_runs)]
    return sum(counts) // len(counts)


def accuracy_of(args, vectors: np.ndarray) -> dict:
    c = accuracy.cosines(vectors, args.reference)
    return {"cosine_mean": float(c.mean()), "cosine_worst": float(c.min())}


def peer(args, engine: str, label: str, extra: list[str], model: str, texts: int, tokens: int,
         first_vector: bool = True) -> dict:
    script = [sys.executable, str(ROOT / "bench" / "peers.py"), engine, "--model", model,
              "--threads", str(args.threads), *extra]
    vectors = Path(tempfile.mkdtemp()) / "vectors.npy"
    _, rss, out = run_measured([*script, "--corpus", str(args.corpus), "--vectors", str(vectors),
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
        **accuracy_of(args, np.load(vectors)),
    }


def table(rows: list[dict]) -> str:
    head = ("| engine | tokens/s | texts/s | p50 ms | p95 ms | first vector s | peak RSS MB "
            "| mean cosine | worst cosine |")
    out = [head, "|" + " --- |" * 9]
    for r in rows:
        ttfv = "-" if r["first_vector_seconds"] is None else f"{r['first_vector_seconds']:.2f}"
        out.append(
            f"| {r['engine']} | {r['tokens_per_second']:.1f} | {r['texts_per_second']:.2f} | "
            f"{r['latency_p50_ms']:.0f} | {r['latency_p95_ms']:.0f} | {ttfv} | {r['peak_rss_mb']:.0f} | "
            f"{r['cosine_mean']:.6f} | {r['cosine_worst']:.6f} |"
        )
    return "\n".join(out)


def best(rows: list[dict], prefix: str) -> dict | None:
    """The fastest row whose engine name starts with `prefix` (e.g. each batch size of a peer)."""
    candidates = [r for r in rows if r["engine"].startswith(prefix)]
    return max(candidates, key=lambda r: r["tokens_per_second"]) if candidates else None


def compare(a: dict, b: dict) -> str:
    line = f"{a['engine']} vs {b['engine']}: throughput x{a['tokens_per_second'] / b['tokens_per_second']:.2f}"
    if a["first_vector_seconds"] and b["first_vector_seconds"]:
        line += f", time to first vector x{b['first_vector_seconds'] / a['first_vector_seconds']:.2f} faster"
    line += f", peak RSS x{a['peak_rss_mb'] / b['peak_rss_mb']:.2f}"
    line += (f", distance to the reference (1 - mean cosine) {1 - a['cosine_mean']:.1e} vs "
             f"{1 - b['cosine_mean']:.1e}")
    return line


def ratios(rows: list[dict]) -> list[str]:
    by = {r["engine"]: r for r in rows}
    lines = []
    for ours, quant, onnx in [
        ("gguf-embed Q8_0", "Q8_0", "onnxruntime int8"),
        ("gguf-embed F16", "F16", "onnxruntime float32"),
        ("gguf-embed F16 --bf16 never", "F16", "onnxruntime float32"),
    ]:
        if ours not in by:
            continue
        peers = [r for r in rows if r["engine"].startswith(f"llama-cpp-python {quant} ")]
        peers += [b for b in [best(rows, onnx)] if b]
        if quant == "Q8_0":
            peers += [r for r in rows if r["engine"].startswith("transformers")]
        lines += [compare(by[ours], p) for p in peers]
    return lines


def headline(rows: list[dict]) -> list[str]:
    """The README's ratios: against llama-cpp-python as it ships (flash attention off) and like
    for like (flash attention on, as gguf-embed runs), each at its best n_batch."""
    ours = next((r for r in rows if r["engine"] == "gguf-embed Q8_0"), None)
    default = best([r for r in rows if "+flash-attn" not in r["engine"]], "llama-cpp-python Q8_0 ")
    flash = best([r for r in rows if "+flash-attn" in r["engine"]], "llama-cpp-python Q8_0 ")
    if not (ours and default and flash):
        return []
    x = lambda p: ours["tokens_per_second"] / p["tokens_per_second"]  # noqa: E731
    return [f"gguf-embed Q8_0 embeds x{x(flash):.2f} as fast as llama-cpp-python Q8_0 like for like "
            f"(flash attention on: {flash['engine']}) and x{x(default):.2f} its default settings "
            f"({default['engine']})"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, default=ROOT / "bench" / "models")
    ap.add_argument("--corpus", type=Path, default=ROOT / "bench" / "corpus.jsonl")
    ap.add_argument("--binary", type=Path, default=ROOT / "target" / "release" / "gguf-embed")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--engines", default="gguf-embed,llama-cpp,onnx,transformers")
    ap.add_argument("--quant", default="q8_0,f16")
    ap.add_argument("--onnx-batches", default="1,4,16",
                    help="ONNX Runtime batch sizes (1: texts one at a time, unpadded)")
    ap.add_argument("--latency-runs", type=int, default=20)
    ap.add_argument("--cold-runs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()

    texts, tokens = corpus_stats(args.corpus)
    engines = args.engines.split(",")
    quants = args.quant.split(",")
    hf = args.models / "hf"
    print(f"corpus: {texts} texts, {tokens} tokens; {args.threads} threads; {platform.processor() or platform.machine()}",
          file=sys.stderr)
    args.reference = accuracy.corpus_reference(hf, args.corpus, args.models, args.threads)
    args.latency_tokens = latency_tokens(args)
    rows = []

    def add(row: dict) -> None:
        rows.append(row)
        print(table(rows[-1:]), file=sys.stderr)

    for quant in quants:
        model = str(args.models / f"qwen3-embedding-0.6b-random-{quant}.gguf")
        label = quant.upper()
        if "gguf-embed" in engines:
            # F16: the default (BF16 kernels from the lossless copy where the CPU has them)
            # and F16 kernels.
            for extra in ([[]] if quant != "f16" else [[], ["--bf16", "never"]]):
                add(gguf_embed(args, quant, texts, tokens, extra))
        if "llama-cpp" in engines:
            batches = [1024, 2048] if quant == "q8_0" else [1024]
            for n_batch in batches:
                for fa in (False, True):
                    name = f"llama-cpp-python {label} n_batch {n_batch}{' +flash-attn' if fa else ''}"
                    extra = ["--n-batch", str(n_batch)] + (["--flash-attn"] if fa else [])
                    add(peer(args, "llama-cpp", name, extra, model, texts, tokens))
    if "onnx" in engines:
        import onnx_peer

        onnx_models = onnx_peer.ensure_models(hf, args.models / "onnx")
        for dtype in ("int8", "float32"):
            for i, batch in enumerate(int(b) for b in args.onnx_batches.split(",")):
                name = f"onnxruntime {dtype} " + ("one at a time" if batch == 1 else f"batch {batch}")
                extra = ["--tokenizer", str(hf / "tokenizer.json"), "--batch-size", str(batch)]
                # Time to first vector (one word) does not depend on the batch size.
                add(peer(args, "onnx", name, extra, str(onnx_models[dtype]), texts, tokens,
                         first_vector=i == 0))
    if "transformers" in engines:
        for dtype in ("float32", "bfloat16"):
            add(peer(args, "transformers", f"transformers {dtype}", ["--dtype", dtype],
                     str(hf), texts, tokens, first_vector=False))

    print(table(rows))
    print()
    for line in headline(rows) + ratios(rows):
        print(f"- {line}")
    if args.out:
        args.out.write_text(json.dumps({"corpus_texts": texts, "corpus_tokens": tokens,
                                        "threads": args.threads,
                                        "latency_text_tokens": args.latency_tokens, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
