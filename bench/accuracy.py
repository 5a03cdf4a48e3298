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
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


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
