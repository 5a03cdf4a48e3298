#!/usr/bin/env bash
# What an app that links gguf_embed as a library compiles: `default-features = false` (no CLI,
# no server, no index) against the default features.
#
#   bench/library-only.sh          # dependency counts (cargo tree; no build)
#   bench/library-only.sh --build  # also a clean build of the library alone, timed, in its own
#                                  # target folder (it rebuilds llama.cpp: minutes)
set -euo pipefail
cd "$(dirname "$0")/.."

count() {
    # Every package compiled for the build (normal and build dependencies, proc-macros
    # included), the crate itself excluded.
    cargo tree "$@" -e normal,build --prefix none --format '{p}' \
        | sed 's/ (\*)//; s/ (proc-macro)//' | sort -u | grep -vc '^gguf-embed '
}
echo "dependencies, library only (--no-default-features): $(count --no-default-features)"
echo "dependencies, default features (cli, server, index): $(count)"

if [ "${1:-}" = "--build" ]; then
    target=$(mktemp -d)
    trap 'rm -rf "$target"' EXIT
    start=$(date +%s)
    CARGO_TARGET_DIR="$target" cargo build --release --lib --no-default-features --timings \
        >/dev/null 2>&1
    end=$(date +%s)
    echo "clean release build of the library alone: $((end - start)) s on $(nproc) cores"
    # cargo's timing report: how much of that was llama.cpp's own build (llama-cpp-sys-2's
    # build script compiles it with cmake).
    python3 - "$target"/cargo-timings/cargo-timing.html <<'PY'
import json, re, sys
html = open(sys.argv[1]).read()
units = json.loads(re.search(r"const UNIT_DATA = (\[.*?\]);", html, re.S).group(1))
llama = sum(u["duration"] for u in units if u["name"].startswith("llama-cpp-sys-2") and u.get("target", "").strip().startswith("build script"))
rest = [u for u in units if not u["name"].startswith("llama-cpp-sys-2")]
print(f"  of which llama.cpp (llama-cpp-sys-2's build script): {llama:.0f} s")
print(f"  units compiled: {len(units)}")
PY
fi
