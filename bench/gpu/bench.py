#!/usr/bin/env python3
"""GPU benchmark, one run: gguf-embed (portable build + CUDA module) over a batching sweep,
llama.cpp's own embedding mode on the same GPU (gguf-embed --llama-embedding-mode, the path
llama-server takes), and transformers bf16 (sdpa) at several batch sizes. F16 and Q8_0.

    bench/gpu/bench.py --bin .gpu/dist/gguf-embed --models /tmp/real --corpus /tmp/corpus.jsonl --out $OUT
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path


def tokens_of(corpus: Path) -> tuple[int, int]:
    rows = [json.loads(l) for l in corpus.read_text(encoding="utf-8").splitlines() if l.strip()]
    return len(rows), sum(r["tokens"] for r in rows)


def ours(binary: str, model: Path, corpus: Path, extra: list[str]) -> dict:
    out = subprocess.run(
        [binary, "bench", "-m", str(model), "--device", "gpu", "--corpus", str(corpus),
         "--passes", "2", "--latency-runs", "20", "-f", "json", *extra],
        capture_output=True, check=True, text=True,
    )
    return json.loads(out.stdout)


def transformers_bf16(hf: Path, corpus: Path, batch: int) -> float:
    import torch
    from transformers import AutoModel, AutoTokenizer

    texts = [json.loads(l)["text"] for l in corpus.read_text(encoding="utf-8").splitlines() if l.strip()]
    tok = AutoTokenizer.from_pretrained(hf, padding_side="left")
    model = AutoModel.from_pretrained(hf, torch_dtype=torch.bfloat16, attn_implementation="sdpa").cuda().eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    eot = 151643

    @torch.inference_mode()
    def run() -> None:
        for start in range(0, len(order), batch):
            ids = tok([texts[i] for i in order[start:start + batch]], add_special_tokens=False)["input_ids"]
            ids = [x + [eot] for x in ids]
            width = max(map(len, ids))
            inp = torch.tensor([[eot] * (width - len(x)) + x for x in ids], device="cuda")
            mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], device="cuda")
            h = model(input_ids=inp, attention_mask=mask).last_hidden_state[:, -1]
            torch.nn.functional.normalize(h.float(), dim=-1).cpu()

    run()  # warm-up
    torch.cuda.synchronize()
    t = time.perf_counter()
    run()
    torch.cuda.synchronize()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--models", type=Path, required=True)
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    texts, tokens = tokens_of(args.corpus)
    rows = []
    for quant in ("f16", "q8_0"):
        model = args.models / f"qwen3-embedding-0.6b-random-{quant}.gguf"
        for bt, seqs in [(1024, 64), (2048, 64), (4096, 128), (8192, 256)]:
            r = ours(args.bin, model, args.corpus, ["--batch-tokens", str(bt), "--batch-sequences", str(seqs)])
            rows.append({"engine": f"gguf-embed {quant.upper()} {bt}/{seqs}", "tokens_per_second": r["tokens_per_second"],
                         "p50_ms": r["latency_p50_ms"]})
            print(rows[-1], flush=True)
        for bt, seqs in [(2048, 64), (8192, 64)]:
            try:
                r = ours(args.bin, model, args.corpus, ["--batch-tokens", str(bt), "--batch-sequences", str(seqs),
                                                        "--llama-embedding-mode"])
                rows.append({"engine": f"llama.cpp embedding mode {quant.upper()} {bt}/{seqs}",
                             "tokens_per_second": r["tokens_per_second"], "p50_ms": r["latency_p50_ms"]})
            except subprocess.CalledProcessError as e:
                rows.append({"engine": f"llama.cpp embedding mode {quant.upper()} {bt}/{seqs}",
                             "error": e.stderr[-500:]})
            print(rows[-1], flush=True)
    for batch in (32, 64, 128, 256):
        seconds = transformers_bf16(args.models / "hf", args.corpus, batch)
        rows.append({"engine": f"transformers bf16 sdpa batch {batch}", "tokens_per_second": tokens / seconds})
        print(rows[-1], flush=True)
    (args.out / "results.json").write_text(json.dumps({"texts": texts, "tokens": tokens, "rows": rows}, indent=1))
    print(f"\n{texts} texts, {tokens} tokens\n\n| engine | tokens/s |\n| --- | --- |")
    for r in rows:
        print(f"| {r['engine']} | {r.get('tokens_per_second', float('nan')):.0f} |")


if __name__ == "__main__":
    main()
