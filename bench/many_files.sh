#!/usr/bin/env bash
# A repository of many small files (issue 12: "a repository of 100,000 files"): FILES small
# Rust files in 100 folders, indexed from scratch, then updated with nothing changed, then
# after touching one file. Prints each run's report line, wall time and peak RSS.
#
#   bench/many_files.sh MODEL.gguf [FILES] [path/to/gguf-embed]
#
# MODEL: the tiny fixture (models/tiny-qwen3-embedding-q8_0.gguf) measures everything but the
# embedder.
set -euo pipefail
model=${1:?usage: bench/many_files.sh MODEL.gguf [FILES] [gguf-embed]}
files=${2:-100000}
bin=${3:-target/release/gguf-embed}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$work/repo" "$files" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "src", "m%02d" % (i % 100))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%06d.rs" % i), "w") as f:
        f.write("/// Returns item %d.\npub fn item_%d(x: u64) -> u64 {\n    x + %d\n}\n" % (i, i, i))
PY
echo "repository: $files files, $(du -sh "$work/repo" | cut -f1)"
run() {
    /usr/bin/time -f "  wall %e s, peak RSS %M KiB" "$bin" index --repo "$work/repo" -m "$model" -f json >"$work/out.json"
    python3 - "$work/out.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("  files %d (%d embedded, %d unchanged), chunks embedded %d, reused %d, tokens %d" % (
    r["files"], r["embedded_files"], r["unchanged_files"], r["chunks"], r["reused_chunks"], r["tokens"]))
PY
}
echo "first index:"
run
echo "update, nothing changed:"
run
echo "update, one file changed:"
echo "// changed" >>"$work/repo/src/m07/f000007.rs"
run
