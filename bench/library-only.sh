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
    # included), the crate itself excluded. `-p gguf-embed`: the workspace's default members
    # include the bindings, whose dependencies (pyo3, numpy) an app that links the library
    # does not compile.
    cargo tree -p gguf-embed "$@" -e normal,build --prefix none --format '{p}' \
        | sed 's/ (\*)//; s/ (proc-macro)//' | sort -u | grep -vc '^gguf-embed '
}
echo "dependencies, library only (--no-default-features): $(count --no-default-features)"
echo "dependencies, default features (cli, server, index): $(count)"

if [ "${1:-}" = "--build" ]; then
    target=$(mktemp -d)
    trap 'rm -rf "$target"' EXIT
    load=$(cut -d' ' -f1 /proc/loadavg)
    start=$(date +%s)
    CARGO_TARGET_DIR="$target" cargo build --release -p gguf-embed --lib --no-default-features \
        --timings >/dev/null 2>&1
    end=$(date +%s)
    echo "clean release build of the library alone: $((end - start)) s on $(nproc) cores" \
        "(load average $load at the start, $(cut -d' ' -f1 /proc/loadavg) at the end)"
    # cargo's timing report: how much of that was llama.cpp's own build (llama-cpp-sys-2's
    # build script compiles it with cmake).
    python3 - "$target"/cargo-timings/cargo-timing.html <<'PY'
import json, re, sys
html = open(sys.argv[1]).read()
units = json.loads(re.search(r"const UNIT_DATA = (\[.*?\]);", html, re.S).group(1))
# Running the build script is the unit of mode "run-custom-build" ("build script (run)").
llama = sum(u["duration"] for u in units if u["name"] == "llama-cpp-sys-2"
            and (u.get("mode") == "run-custom-build" or "(run)" in u.get("target", "")))
print(f"  of which llama.cpp (llama-cpp-sys-2's build script): {llama:.0f} s")
print(f"  units compiled: {len(units)}")
PY
fi
