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
for tokens in 256 512 1024 2048; do run --threads "$threads" --batch-tokens "$tokens"; done
run --threads "$threads" --batch-tokens 512 --flash-attn off
run --threads "$threads" --batch-tokens 512 --batch-sequences 8
run --threads "$threads" --batch-tokens 512 --batch-sequences 16
run --threads "$threads" --batch-tokens 512 --no-sort
run --threads "$threads" --batch-tokens 512 --llama-embedding-mode
run --threads 1 --batch-tokens 512
