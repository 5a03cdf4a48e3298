#!/usr/bin/env bash
# Index throughput, peak memory and chunk reuse on more than 200,000 lines of real code:
# the tokio and syn sources from the local cargo registry (any crates will do: set CRATES).
#
#   bench/index_throughput.sh MODEL.gguf [path/to/gguf-embed]
#
# Prints: the corpus size; the first (cold) index run's files, chunks, tokens, seconds and
# peak RSS; then, after a one-line edit in a large file, what the second run embedded and
# reused; then the same after renaming a folder.
set -euo pipefail
model=${1:?usage: bench/index_throughput.sh MODEL.gguf [gguf-embed]}
bin=${2:-target/release/gguf-embed}
registry=$(ls -d "$HOME"/.cargo/registry/src/*/ | head -1)
crates=${CRATES:-"tokio-1.54.1 syn-2.0.119"}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/repo"
for c in $crates; do cp -r "$registry/$c" "$work/repo/"; done
echo "corpus: $crates: $(find "$work/repo" -name '*.rs' | wc -l) .rs files, $(find "$work/repo" -name '*.rs' -print0 | xargs -0 cat | wc -l) lines"

report() {
python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
rate = r["tokens"] / max(r["seconds"], 1e-9)
print("  files %d (%d embedded, %d unchanged, %d removed), chunks embedded %d, reused %d, "
      "tokens %d, %.1f s, %.0f tokens/s" % (r["files"], r["embedded_files"], r["unchanged_files"],
      r["removed_files"], r["chunks"], r["reused_chunks"], r["tokens"], r["seconds"], rate))
PY
}
run() {
  /usr/bin/time -f "  peak RSS %M KiB, wall %e s" "$bin" index --repo "$work/repo" -m "$model" -f json >"$work/out.json"
  report "$work/out.json"
}

echo "first run (cold):"
run
file=$(find "$work/repo" -name builder.rs -path '*runtime*' | head -1)
edit() {
python3 - "$file" "$1" <<'PY'
import sys
p, how = sys.argv[1], sys.argv[2]
lines = open(p).read().split("\n")
mid = len(lines) // 2
if how == "change":
    # The middle line's first word-character run gets a suffix: the line changes, its
    # token count may too.
    i = next(i for i in range(mid, len(lines)) if "(" in lines[i])
    lines[i] = lines[i].replace("(", "_x(", 1)
else:
    lines.insert(mid, "    // an added comment line")
open(p, "w").write("\n".join(lines))
PY
}
echo "one line changed in ${file#$work/repo/} ($(wc -l <"$file") lines):"
edit change
run
echo "one line added in the middle of the same file:"
edit add
run
echo "a folder renamed (every file moved):"
mv "$work/repo/syn-2.0.119" "$work/repo/syn-renamed" 2>/dev/null || mv "$work/repo/$(ls "$work/repo" | tail -1)" "$work/repo/renamed"
run
"$bin" index --stats --repo "$work/repo"
