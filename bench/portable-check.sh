#!/usr/bin/env bash
# Builds the `portable` binary (ggml CPU kernels for every x86-64 level, picked at run time),
# shows the variant it picks here, runs the reference tests with it, and compares its speed
# with the default host-SIMD build. Usage: bench/portable-check.sh [MODEL.gguf]
# (MODEL defaults to the real-shape benchmark model in bench/models).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-bench/models/qwen3-embedding-0.6b-random-q8_0.gguf}
export CARGO_TARGET_DIR=target/portable
RUSTFLAGS="-C target-cpu=x86-64" cargo build --release --features portable
RUSTFLAGS="-C target-cpu=x86-64" cargo test --release --features portable --test reference
target/portable/release/gguf-embed devices
unset CARGO_TARGET_DIR
cargo build --release
for bin in target/portable/release/gguf-embed target/release/gguf-embed; do
    echo "== $bin"
    "$bin" bench -m "$model" --latency-runs 5
done
