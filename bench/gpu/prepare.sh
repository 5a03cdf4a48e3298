#!/usr/bin/env bash
# Prepares .gpu/ (git-ignored) for bench/gpu/run.sh on the device machine: the portable build
# of gguf-embed with its libraries and CPU backend modules, the vendored llama.cpp source, the
# real Qwen3 tokenizer and the `gguf` wheel. Run on the build machine from the repository root.
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
rm -rf .gpu && mkdir -p .gpu/dist .gpu/whl
# A portable build: no target-cpu=native, ggml's CPU variants as modules.
RUSTFLAGS="" CARGO_TARGET_DIR=target/portable cargo build --release --features portable
cp target/portable/release/gguf-embed .gpu/dist/
find target/portable/release -maxdepth 1 -name '*.so*' -exec cp {} .gpu/dist/ \;
backends=$(ls -d target/portable/release/build/llama-cpp-sys-2-*/out/backends | head -1)
cp "$backends"/*.so .gpu/dist/
src=$(ls -d ~/.cargo/registry/src/*/llama-cpp-sys-2-"$(grep -A1 'name = "llama-cpp-sys-2"' Cargo.lock | sed -n 's/version = "\(.*\)"/\1/p')"/llama.cpp)
# Only what the CUDA module's build needs (the tree with models and tests would not fit).
mkdir -p .gpu/llama.cpp
cp -r "$src"/CMakeLists.txt "$src"/cmake "$src"/ggml "$src"/include "$src"/src "$src"/common "$src"/vendor .gpu/llama.cpp/ 2>/dev/null || true
python3 -c "import sys; sys.path.insert(0, 'models'); import make_fixtures, shutil; shutil.copy(make_fixtures.fetch_tokenizer(None), '.gpu/tokenizer.json')"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 -d .gpu/whl gguf
du -sh .gpu/* | sort -h
echo "ready: now run bench/gpu/run.sh build, then bench, through the device tool (see bench/gpu/README.md)"
