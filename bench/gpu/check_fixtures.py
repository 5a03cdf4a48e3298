#!/usr/bin/env python3
"""Checks the fixture vectors on the GPU: the reference texts through `gguf-embed --device gpu`
against transformers' vectors in models/reference.json (F32 >= 0.9999, Q8_0 >= 0.999 against
the dequantized weights). Usage: bench/gpu/check_fixtures.py path/to/gguf-embed [device]"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    binary = sys.argv[1]
    device = sys.argv[2] if len(sys.argv) > 2 else "gpu"
    cases = json.loads((ROOT / "models/reference.json").read_text())["cases"]
    failures = 0
    for ftype, field, minimum in [("f32", "embedding", 0.9999), ("q8_0", "embedding_q8_0", 0.999)]:
        model = ROOT / f"models/tiny-qwen3-embedding-{ftype}.gguf"
        worst = 1.0
        for case in cases:
            args = [binary, "-m", str(model), "--device", device, "-f", "json"]
            if case["task"]:
                args += ["--instruction", case["task"]]
            out = subprocess.run(args + ["--", case["text"]], capture_output=True, check=True)
            got = np.array(json.loads(out.stdout)[0])
            want = np.array(case[field])
            cos = float(got @ want / (np.linalg.norm(got) * np.linalg.norm(want)))
            worst = min(worst, cos)
            if cos < minimum:
                failures += 1
                print(f"FAIL {ftype} {case['name']}: cosine {cos:.6f} < {minimum}")
        print(f"{ftype} on {device}: worst cosine {worst:.7f} over {len(cases)} texts (minimum {minimum})")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
