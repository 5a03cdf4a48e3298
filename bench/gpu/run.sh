#!/usr/bin/env bash
# The H100 check for the `portable` build with CUDA, in two steps that each fit one `device`
# call (10 minutes). Everything is prepared on the build machine by bench/gpu/prepare.sh,
# which fills the git-ignored folder .gpu/ that the call carries:
#   .gpu/dist/       the portable gguf-embed, its shared libraries and CPU backend modules
#   .gpu/llama.cpp/  exactly the llama.cpp source llama-cpp-sys-2 vendors (for the CUDA module)
#   .gpu/tokenizer.json, .gpu/whl/ (the `gguf` wheel the fixture script needs)
#
#   bench/gpu/run.sh build   # ~5 min on 16 cores: libggml-cuda.so for sm_90 from that source
#   bench/gpu/run.sh bench   # ~8 min: devices, fixture vectors on the GPU, then the benchmark
#
# The device machine has CUDA, cmake, g++ and Python with torch and transformers, no Rust and
# no network. Results land in $OUT (results.json, results.md, logs).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp/gpu-out}
mkdir -p "$out"
gpu=.gpu
dist=$gpu/dist

build() {
    cmake -S "$gpu/llama.cpp" -B /tmp/cuda-build -DCMAKE_BUILD_TYPE=Release \
        -DGGML_BACKEND_DL=ON -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DBUILD_SHARED_LIBS=ON \
        -DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
        -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF >"$out/cmake.log" 2>&1
    cmake --build /tmp/cuda-build --target ggml-cuda -j "$(nproc)" >"$out/build.log" 2>&1
    module=$(find /tmp/cuda-build -name 'libggml-cuda.so' | head -1)
    cp "$module" "$out/"
    ls -la "$out"
}

bench() {
    # The CUDA module built by the previous call comes back in $OUT; the caller copies it
    # into .gpu/dist before this call (bench/gpu/README.md).
    export LD_LIBRARY_PATH="$PWD/$dist:${LD_LIBRARY_PATH:-}"
    export GGUF_EMBED_BACKENDS_DIR="$PWD/$dist"
    python3 -m pip install -q --no-index --no-deps --target /tmp/site "$gpu"/whl/*.whl
    export PYTHONPATH=/tmp/site
    bin=$dist/gguf-embed
    "$bin" devices | tee "$out/devices.txt"
    python3 bench/gpu/check_fixtures.py "$bin" | tee "$out/fixtures.txt"
    python3 models/make_fixtures.py --shape real --hf --no-reference --out /tmp/real \
        --tokenizer "$gpu/tokenizer.json" >"$out/model.log" 2>&1
    python3 bench/corpus.py --texts 2048 --tokenizer "$gpu/tokenizer.json" --out /tmp/corpus.jsonl
    python3 bench/gpu/bench.py --bin "$bin" --models /tmp/real --corpus /tmp/corpus.jsonl \
        --out "$out" | tee "$out/results.md"
}

case "${1:-}" in
    build) build ;;
    bench) bench ;;
    *) echo "usage: bench/gpu/run.sh build|bench" >&2; exit 2 ;;
esac
