#!/usr/bin/env bash
# What batch-invariant vectors cost (the default: a text's vector does not depend on what it is
# batched with): throughput and peak memory of `gguf-embed bench` with it, without it
# (--batch-variant: flash attention's tiled kernel, F16 V cache) and with flash attention off.
#
#   bench/batch-invariance.sh MODEL.gguf [THREADS]
#
# MODEL: e.g. the real-shape Q8_0 model from bench/real_shape_q8_0.py.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: bench/batch-invariance.sh MODEL.gguf [THREADS]}
threads=${2:-$(nproc)}
cargo build --release --quiet
for flags in "" "--batch-variant" "--flash-attn off"; do
    # shellcheck disable=SC2086
    target/release/gguf-embed bench -m "$model" --threads "$threads" --passes 2 \
        --latency-runs 10 -f json $flags |
        python3 -c 'import json, sys; r = json.load(sys.stdin); print(f"{sys.argv[1] or "default (batch-invariant)":28} {r["tokens_per_second"]:7.1f} tok/s  p50 {r["latency_p50_ms"]:6.1f} ms  peak RSS {r["peak_rss_mb"]:.0f} MB")' "$flags"
done
