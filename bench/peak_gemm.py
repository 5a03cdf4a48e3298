#!/usr/bin/env python3
"""The machine's matrix-multiply ceiling: PyTorch (oneDNN/MKL) GEMM throughput in float32 and
bfloat16 on the shapes of Qwen3-Embedding-0.6B's projections, with the benchmark's thread count.

    python3 bench/peak_gemm.py [THREADS]

docs/BENCHMARKS.md compares the F16 and BF16 kernels' effective GFLOP/s with these.
"""

import sys
import time

import torch

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
# (tokens, inputs, outputs): the FFN's up and down projections, attention q/o and a square one.
SHAPES = [(512, 1024, 3072), (512, 3072, 1024), (512, 1024, 2048), (1024, 1024, 1024)]
for dtype in (torch.float32, torch.bfloat16):
    for m, k, n in SHAPES:
        a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
        for _ in range(3):
            a @ b
        runs, start = 0, time.perf_counter()
        while time.perf_counter() - start < 2:
            a @ b
            runs += 1
        seconds = time.perf_counter() - start
        print(f"{str(dtype):15} {m}x{k} @ {k}x{n}: {2 * m * k * n * runs / seconds / 1e9:6.1f} GFLOP/s")
