#!/usr/bin/env bash
# Batch-invariant flash attention (vendor patch 7): texts packed into shared decodes again on
# the CPU, against a build that decodes one text per decode to keep vectors batch-invariant.
#
#   bench/fa-invariance.sh speed OLD_BINARY NEW_BINARY MODEL.gguf [ROUNDS]
#       `gguf-embed bench --threads 2 -f json` with each binary in turn (old, new, old, new,
#       ... ROUNDS times: the machine's load varies), on the built-in corpus (48 texts, 8107
#       tokens) and on the 30 shortest of its texts x 4 (2664 tokens), under `chrt -f 10` when
#       allowed. Prints every run, then the median and best of each (tok/s, query p50, peak RSS).
#   bench/fa-invariance.sh vectors OLD_BINARY NEW_BINARY MODEL.gguf
#       The 48 texts' vectors (`-f f32`): the new build packed (default) against itself with one
#       text per decode (`--batch-sequences 1`), compared with `cmp`; and against the old build
#       (worst cosine, differing components).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:?usage: bench/fa-invariance.sh speed|vectors OLD NEW MODEL [ROUNDS]}
old=${2:?old binary}
new=${3:?new binary}
model=${4:?model}
rounds=${5:-2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 - "$work/short.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open("bench/corpus.jsonl")]
short = sorted(rows, key=lambda r: r["tokens"])[:30]
with open(sys.argv[1], "w") as f:
    for _ in range(4):
        for r in short:
            f.write(json.dumps({"text": r["text"]}) + "\n")
PY

rt=()
if chrt -f 10 true 2>/dev/null; then rt=(chrt -f 10); fi

if [ "$mode" = speed ]; then
    for round in $(seq "$rounds"); do
        for corpus in builtin short; do
            args=()
            [ "$corpus" = short ] && args=(--corpus "$work/short.jsonl")
            for which in old new; do
                bin=$old
                [ "$which" = new ] && bin=$new
                "${rt[@]}" "$bin" bench -m "$model" --threads 2 "${args[@]}" -f json |
                    python3 -c 'import json, sys; r = json.load(sys.stdin); print("\t".join([sys.argv[1], sys.argv[2], str(r["tokens"]), "%.1f" % r["tokens_per_second"], "%.1f" % r["latency_p50_ms"], "%.0f" % r["peak_rss_mb"]]))' "$corpus" "$which" |
                    tee -a "$work/runs.tsv"
            done
        done
    done
    python3 - "$work/runs.tsv" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    corpus, which, tokens, tps, p50, rss = line.split("\t")
    runs.setdefault((corpus, which), []).append((float(tps), float(p50), float(rss), int(tokens)))
print("corpus   build  tokens  tok/s median (best)   query p50 ms median   peak RSS MB max")
for corpus in ("builtin", "short"):
    med = {}
    for which in ("old", "new"):
        r = runs[(corpus, which)]
        med[which] = statistics.median(x[0] for x in r)
        print(f"{corpus:8} {which:5} {r[0][3]:7} {med[which]:8.1f} ({max(x[0] for x in r):.1f})"
              f"   {statistics.median(x[1] for x in r):10.1f}   {max(x[2] for x in r):10.0f}")
    print(f"{corpus:8} new/old {med['new'] / med['old']:.3f}x")
PY
elif [ "$mode" = vectors ]; then
    input=bench/corpus.jsonl
    "$new" -m "$model" --threads 2 --input "$input" -f f32 -o "$work/new-packed.f32"
    "$new" -m "$model" --threads 2 --input "$input" -f f32 --batch-sequences 1 -o "$work/new-alone.f32"
    "$old" -m "$model" --threads 2 --input "$input" -f f32 -o "$work/old.f32"
    if cmp "$work/new-packed.f32" "$work/new-alone.f32"; then
        echo "new build: packed (default) and one text per decode are identical ($(stat -c %s "$work/new-packed.f32") bytes)"
    else
        echo "new build: packed and one text per decode DIFFER"
    fi
    python3 - "$work/old.f32" "$work/new-packed.f32" <<'PY'
import struct, sys, math
def rows(path):
    data = open(path, "rb").read()
    v = struct.unpack("<%df" % (len(data) // 4), data)
    return [v[i:i + 1024] for i in range(0, len(v), 1024)]
old, new = rows(sys.argv[1]), rows(sys.argv[2])
cos = [sum(a * b for a, b in zip(x, y)) / math.sqrt(sum(a * a for a in x) * sum(b * b for b in y)) for x, y in zip(old, new)]
same = sum(1 for x, y in zip(old, new) if x == y)
diff = sum(1 for x, y in zip(old, new) for a, b in zip(x, y) if a != b)
print(f"new against old: {len(old)} vectors, {same} identical, {diff} of {len(old) * 1024} components differ, worst cosine {min(cos):.9f}")
PY
else
    echo "unknown mode $mode" >&2
    exit 2
fi
