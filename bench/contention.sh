#!/usr/bin/env bash
# Throughput and query latency of `gguf-embed bench` while other processes keep every core
# busy (a build beside an indexer, a coding agent's search during `cargo build`): HOGS busy
# loops at the same priority, then each BINARY in turn, ROUNDS times, on the first 16 texts
# of the benchmark corpus. No real-time priority here: the point is the fair-share case.
#
#   bench/contention.sh MODEL.gguf HOGS ROUNDS BINARY [BINARY...]
#
# Prints one line per run and, per binary, the median tokens/s and query p50.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: bench/contention.sh MODEL.gguf HOGS ROUNDS BINARY [BINARY...]}
hogs=${2:?}
rounds=${3:?}
shift 3
corpus=$(mktemp)
results=$(mktemp)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -f "$corpus" "$results"
}
trap cleanup EXIT
head -n 16 bench/corpus.jsonl >"$corpus"
for _ in $(seq "$hogs"); do
    sh -c 'while :; do :; done' &
    pids+=($!)
done
for round in $(seq "$rounds"); do
    for bin in "$@"; do
        "$bin" bench -m "$model" --threads "$(nproc)" --corpus "$corpus" --latency-runs 5 -f json |
            python3 -c 'import json, sys; r = json.load(sys.stdin); print("%s\t%.1f\t%.0f" % (sys.argv[1], r["tokens_per_second"], r["latency_p50_ms"]))' "$bin" |
            tee -a "$results" >&2
    done
done
python3 - "$results" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    bin, tps, p50 = line.split("\t")
    runs.setdefault(bin, []).append((float(tps), float(p50)))
for bin, r in runs.items():
    print("%s: median %.1f tokens/s, query p50 %.0f ms (%d runs)" % (
        bin, statistics.median(t for t, _ in r), statistics.median(p for _, p in r), len(r)))
PY
