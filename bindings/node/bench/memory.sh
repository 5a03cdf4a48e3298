#!/usr/bin/env bash
# Peak memory of a Node.js process that loads the 0.6B Q8_0 model and embeds, against the
# gguf-embed CLI doing the same: the real-shape random-weight model (bench/real_shape_q8_0.py;
# the arithmetic and the memory do not depend on the values), the benchmark corpus
# (bench/corpus.jsonl: 48 texts of 5 to 1000 tokens), 2 threads, each run in a fresh process,
# peak RSS as the kernel reports it (/usr/bin/time's maximum resident set). The CLI runs with
# its defaults (which map a prepacked copy of the weights) and with --prepack never, which is
# what the library and so the Node package do.
#
#     bindings/node/bench/memory.sh [RUNS]     # from the repository root; RUNS defaults to 1
#
# Needs the release CLI (cargo build --release) and the Node package (npm run build in
# bindings/node). Makes the model if it is missing (a virtual environment with `gguf`).
set -euo pipefail
cd "$(dirname "$0")/../../.."
runs=${1:-1}
model=bench/models/qwen3-embedding-0.6b-random-q8_0.gguf
if [ ! -f "$model" ]; then
    venv=target/gguf-venv
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet gguf==0.19.0 numpy
    mkdir -p bench/models
    "$venv/bin/python" bench/real_shape_q8_0.py "$model"
fi
cli=target/release/gguf-embed
corpus=bench/corpus.jsonl
peak() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
node_embed=(node bindings/node/bench/embed.mjs "$model" "$corpus")
echo "model $model, corpus $corpus; peak RSS in MB of each run, the runs interleaved"
declare -A mb
configs=("cli" "cli --prepack never" "node" "node alone")
for _ in $(seq "$runs"); do
    for which in "${configs[@]}"; do
        case $which in
        "cli") kib=$(peak "$cli" -m "$model" --threads 2 --quiet -f jsonl --input "$corpus") ;;
        "cli --prepack never") kib=$(peak "$cli" -m "$model" --threads 2 --quiet --prepack never -f jsonl --input "$corpus") ;;
        "node") kib=$(peak "${node_embed[@]}") ;;
        "node alone") kib=$(peak node -e "setTimeout(() => {}, 10)") ;;
        esac
        mb[$which]="${mb[$which]:-} $((kib / 1024))"
    done
done
for which in "${configs[@]}"; do
    printf '%-22s%s\n' "$which" "${mb[$which]}"
done
