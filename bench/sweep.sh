#!/usr/bin/env bash
# Batching-policy sweep for the CPU: one `gguf-embed bench` per setting on the benchmark
# corpus, printing tokens/s, single-query latency and peak RSS.
# Usage: bench/sweep.sh MODEL.gguf [THREADS]
set -euo pipefail
model=${1:?usage: bench/sweep.sh MODEL.gguf [THREADS]}
threads=${2:-$(nproc)}
bin=${GGUF_EMBED:-target/release/gguf-embed}
summary='import json, sys
r = json.load(sys.stdin)
print("%-44s %7.1f tok/s  p50 %6.1f ms  RSS %5.0f MB" % (
    " ".join(sys.argv[1:]), r["tokens_per_second"], r["latency_p50_ms"], r["peak_rss_mb"]))'
run() {
    "$bin" bench -m "$model" --latency-runs 5 -f json "$@" | python3 -c "$summary" "$@"
}
for pair in "256 64" "512 64" "512 32" "512 16" "512 8" "1024 64" "2048 64"; do
    set -- $pair
    run --threads "$threads" --batch-tokens "$1" --batch-sequences "$2"
done
run --threads "$threads" --batch-tokens 512 --batch-sequences 64 --flash-attn off
run --threads "$threads" --batch-tokens 512 --batch-sequences 64 --no-sort
run --threads "$threads" --batch-tokens 512 --batch-sequences 64 --llama-embedding-mode
run --threads 1 --batch-tokens 512 --batch-sequences 64
# One KV cache stream per sequence instead of the unified cache.
for pair in "512 32" "1024 64" "2048 64"; do
    set -- $pair
    run --threads "$threads" --batch-tokens "$1" --batch-sequences "$2" --kv-per-sequence
done
