#!/usr/bin/env python3
"""The Python package (gguf_embed) against llama-cpp-python and sentence-transformers, each
used from Python the way its users call it: load the model, embed the corpus in one call.

    python bench/python_peers.py --models bench/models            # every row; Markdown tables
    python bench/python_peers.py --models bench/models --rows gguf-embed-q8_0,llama-cpp-q8_0
    python bench/python_peers.py --models bench/models --limit 4  # smoke test, 4 texts

Needs one interpreter with the gguf_embed wheel, llama-cpp-python and sentence-transformers
(docs/BENCHMARKS.md says how it was set up), and the real-shape models of bench/models
(python3 models/make_fixtures.py --shape real --bf16-weights --hf --no-reference --out
bench/models): the Q8_0 and F16 GGUF files and hf/, the same weights for transformers.

Each row runs in a fresh process of this interpreter (this script with --child), so that its
peak RSS (the kernel's maximum resident set of that process, interpreter and imports included)
is its own. Timed inside that process: load, and embedding the whole corpus in one call with
the engine's own batching. Tokens are the corpus's reference count (<|endoftext|> included),
credited to every engine alike. Every engine gets the same number of threads (--threads).

Accuracy: each row's corpus vectors against transformers float32 on the same weights, one text
at a time, <|endoftext|> appended, last token, L2 (bench/accuracy.py's corpus_reference,
cached next to the models).

How each peer is configured, so that every engine computes the model's real embedding:
- llama-cpp-python: pooling LAST (forced), normalize=True; <|endoftext|> is appended by
  llama.cpp because the GGUF sets tokenizer.ggml.add_eos_token (the script checks the file);
  n_ctx = n_batch = n_ubatch = 1024 (its best in docs/BENCHMARKS.md), flash attention off (its
  default) and on.
- sentence-transformers: bench/models/hf has the weights, config and tokenizer.json but no
  sentence-transformers configuration, so the script writes the one the official
  Qwen/Qwen3-Embedding-0.6B repository ships (modules Transformer -> Pooling(lasttoken) ->
  Normalize, pad token <|endoftext|>, and the tokenizer post-processor that appends
  <|endoftext|>) into a temporary folder beside links to the weights, and loads it with the
  model card's tokenizer_kwargs={"padding_side": "left"}; batch size 32 (its default). The
  child checks that the tokenizer gives the reference's token ids for every corpus text.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from peers import load_corpus, peak_rss_mb  # noqa: E402

EOT_ID = 151643  # <|endoftext|>

# name -> (engine, model file kind, options)
ROWS = {
    "gguf-embed-q8_0": ("gguf-embed", "q8_0", {}),
    "llama-cpp-q8_0": ("llama-cpp", "q8_0", {"flash_attn": False}),
    "llama-cpp-q8_0-fa": ("llama-cpp", "q8_0", {"flash_attn": True}),
    "gguf-embed-f16": ("gguf-embed", "f16", {}),
    "llama-cpp-f16": ("llama-cpp", "f16", {"flash_attn": False}),
    "llama-cpp-f16-fa": ("llama-cpp", "f16", {"flash_attn": True}),
    "st-float32": ("sentence-transformers", "hf", {"dtype": "float32"}),
    "st-bfloat16": ("sentence-transformers", "hf", {"dtype": "bfloat16"}),
}

LABELS = {
    "gguf-embed-q8_0": "**gguf_embed Q8_0**",
    "llama-cpp-q8_0": "llama-cpp-python Q8_0",
    "llama-cpp-q8_0-fa": "llama-cpp-python Q8_0, flash attention on",
    "gguf-embed-f16": "**gguf_embed F16**",
    "llama-cpp-f16": "llama-cpp-python F16",
    "llama-cpp-f16-fa": "llama-cpp-python F16, flash attention on",
    "st-float32": "sentence-transformers float32",
    "st-bfloat16": "sentence-transformers bfloat16",
}

# (ours, peer): the ratios printed under the table; like-for-like pairs first.
PAIRS = [
    ("gguf-embed-q8_0", "llama-cpp-q8_0-fa"),
    ("gguf-embed-q8_0", "llama-cpp-q8_0"),
    ("gguf-embed-f16", "llama-cpp-f16-fa"),
    ("gguf-embed-f16", "llama-cpp-f16"),
    ("gguf-embed-f16", "st-float32"),
    ("gguf-embed-q8_0", "st-float32"),
    ("gguf-embed-q8_0", "st-bfloat16"),
]


def model_file(models: Path, kind: str) -> Path:
    if kind == "hf":
        return models / "hf"
    return models / f"qwen3-embedding-0.6b-random-{kind}.gguf"


# ---------------------------------------------------------------- the engines (child side)


def gguf_embed_engine(path: str, threads: int, opts: dict):
    from gguf_embed import Embedder

    t = time.perf_counter()
    embedder = Embedder(path, device="cpu", threads=threads)
    load = time.perf_counter() - t
    return load, embedder.encode, None


def llama_cpp_engine(path: str, threads: int, opts: dict):
    import llama_cpp
    from llama_cpp import Llama

    n_batch = 1024
    t = time.perf_counter()
    llm = Llama(
        model_path=path,
        embedding=True,
        pooling_type=llama_cpp.LLAMA_POOLING_TYPE_LAST,
        n_ctx=n_batch,
        n_batch=n_batch,
        n_ubatch=n_batch,
        n_threads=threads,
        n_threads_batch=threads,
        flash_attn=opts["flash_attn"],
        verbose=False,
    )
    load = time.perf_counter() - t
    # llama-cpp-python tokenizes with add_special=True: llama.cpp then appends EOS when the
    # file says so. Check that it does, for this file.
    ids = llm.tokenize(b"hello")
    if ids[-1] != EOT_ID:
        raise SystemExit(f"{path}: llama.cpp does not append <|endoftext|> ({ids})")
    return load, lambda texts: llm.embed(texts, normalize=True), None


def sentence_transformers_folder(hf: Path, folder: Path) -> None:
    """The official Qwen3-Embedding-0.6B repository's sentence-transformers layout, around the
    weights of `hf` (linked, not copied)."""
    from tokenizers import Tokenizer, processors

    for name in ("config.json", "model.safetensors"):
        (folder / name).symlink_to(hf / name)
    tok = Tokenizer.from_file(str(hf / "tokenizer.json"))
    tok.post_processor = processors.Sequence([
        tok.post_processor,
        processors.TemplateProcessing(
            single="$A:0 <|endoftext|>:0",
            pair="$A:0 <|endoftext|>:0 $B:1 <|endoftext|>:1",
            special_tokens=[("<|endoftext|>", EOT_ID)],
        ),
    ])
    tok.save(str(folder / "tokenizer.json"))
    write = lambda name, obj: (folder / name).write_text(json.dumps(obj, indent=2))  # noqa: E731
    write("tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "pad_token": "<|endoftext|>",
        "eos_token": "<|im_end|>",
        "model_max_length": 131072,
    })
    write("modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    write("sentence_bert_config.json", {"max_seq_length": 32768, "do_lower_case": False})
    write("config_sentence_transformers.json", {
        "prompts": {
            "query": "Instruct: Given a web search query, retrieve relevant passages that "
                     "answer the query\nQuery:",
            "document": "",
        },
        "default_prompt_name": None,
        "similarity_fn_name": "cosine",
    })
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": 1024,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": False,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": True,
        "include_prompt": True,
    }, indent=2))
    (folder / "2_Normalize").mkdir()


def sentence_transformers_engine(path: str, threads: int, opts: dict):
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    folder = Path(tempfile.mkdtemp(prefix="st-qwen3-"))
    sentence_transformers_folder(Path(path), folder)
    t = time.perf_counter()
    model = SentenceTransformer(
        str(folder),
        device="cpu",
        tokenizer_kwargs={"padding_side": "left"},
        model_kwargs={"dtype": getattr(torch, opts["dtype"])},
    )
    load = time.perf_counter() - t
    pooling = [m for m in model if type(m).__name__ == "Pooling"]
    assert pooling and "lasttoken" in str(pooling[0].pooling_mode), pooling

    from tokenizers import Tokenizer

    reference = Tokenizer.from_file(str(Path(path) / "tokenizer.json"))
    reference.encode_special_tokens = True

    def check(texts):
        for text in texts:
            want = reference.encode(text, add_special_tokens=False).ids + [EOT_ID]
            got = model.tokenizer(text)["input_ids"]
            if got != want:
                raise SystemExit(f"sentence-transformers tokenizes {text[:40]!r} differently")

    return load, lambda texts: model.encode(texts, batch_size=32, convert_to_numpy=True), check


ENGINES = {
    "gguf-embed": gguf_embed_engine,
    "llama-cpp": llama_cpp_engine,
    "sentence-transformers": sentence_transformers_engine,
}


def child(args) -> None:
    import numpy as np

    engine, kind, opts = ROWS[args.child]
    path = str(model_file(Path(args.models), kind))
    # engine: (load seconds, embed(texts), check(texts) or None, run before the timing)
    load, embed, check = ENGINES[engine](path, args.threads, opts)
    texts = load_corpus(args.corpus)[: args.limit]
    if check:
        check(texts)
    t = time.perf_counter()
    vectors = embed(texts)
    seconds = time.perf_counter() - t
    vectors = np.asarray(vectors, dtype=np.float32)
    assert vectors.shape == (len(texts), 1024), vectors.shape
    np.save(args.vectors, vectors)
    print(json.dumps({"load_seconds": load, "embed_seconds": seconds, "peak_rss_mb": peak_rss_mb()}))


# ---------------------------------------------------------------- the parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, default=ROOT / "bench/models")
    ap.add_argument("--rows", default=",".join(ROWS), help=f"some of {','.join(ROWS)}")
    ap.add_argument("--corpus", type=Path, default=ROOT / "bench/corpus.jsonl")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, help="only the first N texts (smoke test)")
    ap.add_argument("--out", type=Path, help="also write the rows as JSON here")
    ap.add_argument("--child", choices=list(ROWS), help=argparse.SUPPRESS)
    ap.add_argument("--vectors", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return

    import numpy as np

    import accuracy

    rows = [json.loads(line) for line in args.corpus.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = rows[: args.limit]
    tokens = sum(r["tokens"] for r in rows)
    reference = accuracy.corpus_reference(args.models / "hf", args.corpus, args.models, args.threads)
    reference = reference[: len(rows)]
    try:
        sched = os.sched_getscheduler(0)
        policy = {os.SCHED_FIFO: "SCHED_FIFO", os.SCHED_RR: "SCHED_RR"}.get(sched, "normal")
    except OSError:
        policy = "?"
    print(f"corpus: {len(rows)} texts, {tokens} tokens; {args.threads} threads; scheduling {policy}; "
          f"load average at start {os.getloadavg()[0]:.1f}", flush=True)

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.rows.split(","):
            if name not in ROWS:
                raise SystemExit(f"unknown row {name}; rows: {', '.join(ROWS)}")
            vectors = Path(tmp) / f"{name}.npy"
            cmd = [sys.executable, __file__, "--child", name, "--models", str(args.models),
                   "--corpus", str(args.corpus), "--threads", str(args.threads),
                   "--vectors", str(vectors)]
            if args.limit:
                cmd += ["--limit", str(args.limit)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"{name} failed:\n{proc.stdout}\n{proc.stderr}")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            c = accuracy.cosines(np.load(vectors), reference)
            r.update(tokens_per_second=tokens / r["embed_seconds"], mean_cosine=float(c.mean()),
                     worst_cosine=float(c.min()))
            results[name] = r
            print(f"  {name}: {r['tokens_per_second']:.1f} tok/s, {r['peak_rss_mb']:.0f} MB, "
                  f"mean cosine {r['mean_cosine']:.6f} (load average {os.getloadavg()[0]:.1f})",
                  file=sys.stderr, flush=True)

    print()
    print("| engine (from Python, 2 threads) | load s | embed s | tokens/s | peak RSS MB | mean cosine | worst cosine |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in results.items():
        print(f"| {LABELS[name]} | {r['load_seconds']:.2f} | {r['embed_seconds']:.1f} | "
              f"{r['tokens_per_second']:.1f} | {r['peak_rss_mb']:.0f} | {r['mean_cosine']:.6f} | "
              f"{r['worst_cosine']:.6f} |")
    pairs = [(a, b) for a, b in PAIRS if a in results and b in results]
    if pairs:
        print()
        print("| gguf_embed / peer | tokens/s | peak RSS |")
        print("| --- | --- | --- |")
        for a, b in pairs:
            ra, rb = results[a], results[b]
            print(f"| {LABELS[a].strip('*')} / {LABELS[b]} | "
                  f"{ra['tokens_per_second'] / rb['tokens_per_second']:.2f}x | "
                  f"{ra['peak_rss_mb'] / rb['peak_rss_mb']:.2f}x |")
    if args.out:
        args.out.write_text(json.dumps({"tokens": tokens, "texts": len(rows), "threads": args.threads,
                                        "rows": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
