#!/usr/bin/env bash
# Start-up of a one-shot `gguf-embed TEXT` (process start to the first vector printed), with
# the Q8_0 or F16 weights repacked at load (`--prepack never`) and mapped from the prepacked copy
# (`--prepack auto`, the CLI's default), interleaved, N runs each; prints every run and the
# medians. The copy is written before the first timed run.
#
#   bench/startup.sh MODEL.gguf [RUNS] [BINARY]
#
# Run it under `chrt -f 10` on a shared machine (the figures in docs/BENCHMARKS.md were).
set -euo pipefail
model=${1:?usage: bench/startup.sh MODEL.gguf [RUNS] [BINARY]}
runs=${2:-7}
bin=${3:-target/release/gguf-embed}
"$bin" -m "$model" --threads 2 "write the copy" >/dev/null 2>&1
for _ in $(seq 1 "$runs"); do
    for mode in auto never; do
        /usr/bin/time -f "$mode %e %U %S %M" "$bin" --prepack "$mode" -m "$model" \
            --threads 2 "hello world" 2>&1 >/dev/null | tail -1
    done
done | sort -k1,1 -k2,2n | awk '
    { print "  " $1 ": " $2 " s wall, " $3 " s user, " $4 " s sys, peak RSS " int($5 / 1024) " MB"; v[$1, ++n[$1]] = $2 }
    END {
        for (m in n) {
            k = n[m]
            printf "--prepack %-5s median %.2f s (min %.2f, max %.2f, %d runs)\n", m, v[m, int((k + 1) / 2)], v[m, 1], v[m, k], k
        }
    }'
