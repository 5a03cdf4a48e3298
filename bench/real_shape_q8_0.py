#!/usr/bin/env python3
"""A Q8_0 GGUF of Qwen3-Embedding-0.6B's exact shape with random weights, for speed and memory
measurements where torch is not installed (models/make_fixtures.py needs it; this needs only the
`gguf` package and numpy).

The tokenizer and every other key come from the committed tiny fixture (the real Qwen3
vocabulary); the hyperparameters are the 0.6B model's; each Q8_0 block gets a random scale and
random 8-bit values. The arithmetic of a forward pass does not depend on the values, so the
speed is the real model's.

    python3 -m venv /tmp/gv && /tmp/gv/bin/pip install gguf
    /tmp/gv/bin/python bench/real_shape_q8_0.py /tmp/real-q8_0.gguf
"""
import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter

SHAPE = {
    "qwen3.embedding_length": 1024,
    "qwen3.feed_forward_length": 3072,
    "qwen3.block_count": 28,
    "qwen3.attention.head_count": 16,
    "qwen3.attention.head_count_kv": 8,
    "qwen3.attention.key_length": 128,
    "qwen3.attention.value_length": 128,
}
HIDDEN, FFN, LAYERS, HEADS, KV_HEADS, HEAD = 1024, 3072, 28, 16, 8, 128
VOCAB = 151669


def q8_0(rng, rows, cols):
    """Random Q8_0 data for a rows x cols matrix: per 32 values an f16 scale and 32 int8."""
    blocks = rows * cols // 32
    scales = (rng.random(blocks, dtype=np.float32) * 4e-4 + 1e-4).astype(np.float16)
    values = rng.integers(-127, 128, size=(blocks, 32), dtype=np.int8)
    out = np.empty((blocks, 34), dtype=np.uint8)
    out[:, :2] = scales.view(np.uint8).reshape(blocks, 2)
    out[:, 2:] = values.view(np.uint8)
    return out.reshape(rows, cols // 32 * 34)


def main():
    out = Path(sys.argv[1])
    tiny = Path(__file__).resolve().parent.parent / "models" / "tiny-qwen3-embedding-q8_0.gguf"
    reader = GGUFReader(tiny)
    writer = GGUFWriter(out, "qwen3")
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        if key in SHAPE:
            writer.add_uint32(key, SHAPE[key])
        elif key == "general.name":
            writer.add_string(key, "Qwen3-Embedding-0.6B shape, random Q8_0 weights (benchmark)")
        elif field.types[0] == GGUFValueType.ARRAY:
            writer.add_array(key, field.contents())
        else:
            writer.add_key_value(key, field.contents(), field.types[0])
    rng = np.random.default_rng(20251201)

    def matrix(name, rows, cols):
        # The byte shape (rows, blocks x 34); the writer derives the element shape.
        writer.add_tensor(name, q8_0(rng, rows, cols), raw_dtype=GGMLQuantizationType.Q8_0)

    def norm(name, n):
        writer.add_tensor(name, np.ones(n, dtype=np.float32))

    matrix("token_embd.weight", VOCAB, HIDDEN)
    for i in range(LAYERS):
        b = f"blk.{i}."
        matrix(b + "attn_q.weight", HEADS * HEAD, HIDDEN)
        matrix(b + "attn_k.weight", KV_HEADS * HEAD, HIDDEN)
        matrix(b + "attn_v.weight", KV_HEADS * HEAD, HIDDEN)
        matrix(b + "attn_output.weight", HIDDEN, HEADS * HEAD)
        norm(b + "attn_q_norm.weight", HEAD)
        norm(b + "attn_k_norm.weight", HEAD)
        matrix(b + "ffn_gate.weight", FFN, HIDDEN)
        matrix(b + "ffn_up.weight", FFN, HIDDEN)
        matrix(b + "ffn_down.weight", HIDDEN, FFN)
        norm(b + "attn_norm.weight", HIDDEN)
        norm(b + "ffn_norm.weight", HIDDEN)
    norm("output_norm.weight", HIDDEN)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"{out}: {out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
