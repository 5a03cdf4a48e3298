#!/usr/bin/env python3
"""Cosine of gguf-embed's vectors to transformers' for the reference texts, per model file.

Usage (the real 0.6B shape, random weights rounded to bfloat16 like the released checkpoint):

    python3 models/make_fixtures.py --shape real --bf16-weights --types f16,q8_0 --out /tmp/acc
    python3 bench/accuracy.py /tmp/acc/reference.json /tmp/acc/qwen3-embedding-0.6b-random-f16.gguf
    python3 bench/accuracy.py /tmp/acc/reference.json /tmp/acc/qwen3-embedding-0.6b-random-f16.gguf \\
        --extra="--bf16 never"

Every non-empty reference text is embedded as it was formatted for transformers (its `prompt`,
no further instruction) and compared with the reference vector for the weights that file
holds (`embedding_<type>` when present, else `embedding`).

bench/run.py uses `corpus_reference` and `cosines` from here for the accuracy of every engine
it times: the vectors each engine produced in its timed run over the benchmark corpus, against
transformers float32 on the same (bfloat16-rounded) weights, one text at a time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


EOT_ID = 151643  # <|endoftext|>, appended to every input and pooled


def corpus_reference(hf_dir: Path, corpus: Path, cache_dir: Path, threads: int) -> np.ndarray:
    """transformers float32 vectors of the corpus texts (documents: no instruction), one text at
    a time, <|endoftext|> appended, last token, L2; cached by corpus and weights."""
    weights = sorted(hf_dir.glob("*.safetensors"))
    key = hashlib.sha256(corpus.read_bytes())
    for w in weights:
        key.update(f"{w.name} {w.stat().st_size} {w.stat().st_mtime_ns}".encode())
    cache = cache_dir / f"reference-{key.hexdigest()[:16]}.npy"
    if cache.exists():
        return np.load(cache)

    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModel

    torch.set_num_threads(threads)
    tok = Tokenizer.from_file(str(hf_dir / "tokenizer.json"))
    tok.encode_special_tokens = True  # user text that spells <|endoftext|> stays text
    model = AutoModel.from_pretrained(hf_dir, dtype=torch.float32, attn_implementation="eager").eval()
    texts = [json.loads(l)["text"] for l in corpus.read_text(encoding="utf-8").splitlines() if l.strip()]
    out = []
    with torch.inference_mode():
        for i, text in enumerate(texts):
            ids = tok.encode(text, add_special_tokens=False).ids + [EOT_ID]
            hidden = model(input_ids=torch.tensor([ids])).last_hidden_state[0, -1].double()
            out.append(torch.nn.functional.normalize(hidden, dim=0).numpy())
            print(f"\rreference vectors: {i + 1}/{len(texts)}", end="", file=sys.stderr)
    print(file=sys.stderr)
    ref = np.array(out)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, ref)
    return ref


def cosines(vectors: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Cosine of each row of `vectors` with the same row of `reference`."""
    v = np.asarray(vectors, dtype=np.float64)
    if v.shape != reference.shape:
        raise SystemExit(f"vectors {v.shape} do not match the reference {reference.shape}")
    return (v * reference).sum(1) / np.linalg.norm(v, axis=1) / np.linalg.norm(reference, axis=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("reference", type=Path)
    ap.add_argument("models", type=Path, nargs="+")
    ap.add_argument("--binary", type=Path, default=ROOT / "target" / "release" / "gguf-embed")
    ap.add_argument("--extra", default="", help="more gguf-embed options")
    args = ap.parse_args()

    cases = [c for c in json.loads(args.reference.read_text())["cases"] if c["prompt"].strip()]
    lines = "".join(json.dumps({"text": c["prompt"]}) + "\n" for c in cases)
    for model in args.models:
        ftype = model.stem.rsplit("-", 1)[-1]
        key = f"embedding_{ftype}" if f"embedding_{ftype}" in cases[0] else "embedding"
        cmd = [str(args.binary), "-m", str(model), *args.extra.split(),
               "--input-format", "jsonl", "-f", "jsonl"]
        out = subprocess.run(cmd, input=lines.encode(), capture_output=True, check=True)
        cosines = []
        for case, line in zip(cases, out.stdout.decode().splitlines()):
            v = np.array(json.loads(line)["embedding"])
            r = np.array(case[key])
            cosines.append(float(v @ r / np.linalg.norm(v) / np.linalg.norm(r)))
        c = np.array(cosines)
        print(f"{model.name} {args.extra}: {len(c)} texts against {key}: "
              f"min {c.min():.7f}, mean {c.mean():.7f}")


if __name__ == "__main__":
    main()
