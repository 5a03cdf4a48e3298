#!/usr/bin/env bash
# The two commands a newcomer types, on a fresh Debian/Ubuntu machine with Rust:
#
#   ./run.sh --query "how do I read a file in rust"   # the main job: `cargo run --release -- ARGS`
#   ./run.sh test                                      # the tests:    `cargo test --release ARGS`
#
# Both first install what the build and the tests need and is missing: llama.cpp is compiled
# from source (cmake, a C++ compiler) and bindgen needs libclang; the server tests create a
# Python virtual environment (python3-venv) for the clients they drive; the Node package's
# tests need Node.js and npm (Debian's, unless a node and an npm are on PATH already). apt runs
# through sudo when you are not root. .ci/run calls `./run.sh test` too.
set -euo pipefail
cd "$(dirname "$0")"

packages=(cmake clang libclang-dev g++ python3 python3-venv)
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)

install_missing() {
    command -v dpkg-query >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 || {
        echo "run.sh: not a Debian/Ubuntu system; make sure ${packages[*]} (or their equivalents) are installed" >&2
        return 0
    }
    local missing=()
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=()
    [ "$(id -u)" -ne 0 ] && sudo=(sudo)
    echo "run.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_missing
if [ "${1:-}" = "test" ]; then
    shift
    # The CLI keeps copies of models (the CPU layout of Q8_0 weights) in its cache folder: the
    # tests' copies go under target/, not into the user's ~/.cache.
    export GGUF_EMBED_CACHE="${GGUF_EMBED_CACHE:-$PWD/target/test-cache}"
    exec cargo test --release "$@"
fi
exec cargo run --release -- "$@"
