#!/usr/bin/env bash
# The benchmark's Python environment: one virtual environment (bench/.venv, git-ignored) with
# every peer engine bench/run.py measures and what the model generator needs.
#
#     bench/setup.sh            # 31 minutes on 2 busy cores (llama-cpp-python compiles)
#     bench/.venv/bin/python bench/run.py ...
#
# torch and transformers come from PyPI (torch pulls its CUDA libraries, several GB, and runs on
# the CPU here). llama-cpp-python is compiled from source with GGML_NATIVE=ON, so that it gets
# this CPU's SIMD as gguf-embed does (.cargo/config.toml builds with target-cpu=native).
# Versions are pinned so that a rerun measures the same engines; raise them deliberately.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-bench/.venv}
PY=${PYTHON:-python3}

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip "$@"; }
pip install --upgrade pip
pip install \
    torch==2.15.0 transformers==5.24.0 tokenizers==0.23.3 gguf==0.19.0 numpy==2.4.6 \
    onnx==1.23.2 onnxscript==0.7.2 onnxruntime==1.32.0
CMAKE_ARGS="-DGGML_NATIVE=ON" pip install --no-binary llama-cpp-python llama-cpp-python==0.3.36
"$VENV/bin/python" - <<'EOF'
import importlib.metadata as m
for p in ("torch", "transformers", "tokenizers", "gguf", "numpy", "onnx", "onnxscript",
          "onnxruntime", "llama_cpp_python"):
    print(p, m.version(p))
EOF
