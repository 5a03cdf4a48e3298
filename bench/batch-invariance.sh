#!/usr/bin/env bash
# What batch-invariant vectors cost (the default: a text's vector does not depend on what it is
# batched with): throughput of `gguf-embed bench` with it, without it (--batch-variant: flash
# attention's tiled kernel, F16 V cache) and with flash attention off. The three run in turn,
# ROUNDS times, on the first 16 texts of the benchmark corpus; the best round of each is
# printed (on a busy machine the best is the least disturbed).
#
#   bench/batch-invariance.sh MODEL.gguf [THREADS] [ROUNDS]
#
# MODEL: e.g. the real-shape Q8_0 model from bench/real_shape_q8_0.py.
#
# Since vendor patch 7 (batch-invariant flash attention) x86 builds pack texts by default and
# --batch-variant changes nothing there; bench/fa-invariance.sh compares against a build from
# before the patch instead.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: bench/batch-invariance.sh MODEL.gguf [THREADS] [ROUNDS]}
threads=${2:-$(nproc)}
rounds=${3:-3}
cargo build --release --quiet
corpus=$(mktemp)
results=$(mktemp)
trap 'rm -f "$corpus" "$results"' EXIT
head -n 16 bench/corpus.jsonl >"$corpus"
for round in $(seq "$rounds"); do
    for flags in "" "--batch-variant" "--flash-attn off"; do
        # shellcheck disable=SC2086
        target/release/gguf-embed bench -m "$model" --threads "$threads" --corpus "$corpus" \
            --latency-runs 1 -f json $flags |
            python3 -c 'import json, sys; r = json.load(sys.stdin); print("%s\t%d\t%.1f\t%.0f" % (sys.argv[1] or "default", r["tokens"], r["tokens_per_second"], r["peak_rss_mb"]))' "$flags" >>"$results"
        echo "round $round ${flags:-default}: $(tail -n 1 "$results" | cut -f3) tok/s" >&2
    done
done
python3 - "$results" <<'PY'
import sys
best = {}
for line in open(sys.argv[1]):
    name, tokens, tps, rss = line.rstrip("\n").split("\t")
    if name not in best or float(tps) > best[name][1]:
        best[name] = (int(tokens), float(tps), int(rss))
base = best["default"][1]
for name, (tokens, tps, rss) in best.items():
    label = {"default": "batch-invariant (default)", "--batch-variant": "--batch-variant",
             "--flash-attn off": "--flash-attn off (invariant)"}[name]
    print(f"{label:30} {tps:7.1f} tok/s ({tps / base:.3f}x)  peak RSS {rss} MB  ({tokens} tokens)")
PY
