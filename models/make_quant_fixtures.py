#!/usr/bin/env python3
"""Make test models of the 4B/8B file types (Q4_K_M, Q5_K_M, Q6_K, Q5_0) with Qwen3's vocabulary.

The 4B and 8B Qwen3-Embedding repositories offer Q4_K_M, Q5_0, Q5_K_M and Q6_K files (besides
Q8_0 and F16), whose matrices ggml multiplies through other kernels than Q8_0's or F16's (on
x86: K-quants through a tiled kernel from 8 rows and vec_dot below, Q4_K possibly repacked for
a GEMM/GEMV pair; Q5_0 through tinyBLAS from 2 rows and vec_dot for one). The tests that check
a text's vector does not depend on its batch-mates need models of those types. The real weights
cannot be downloaded here, and K-quant rows are 256 values long (the committed tiny fixture's
rows are 64), so this writes a small model of its own shape, with seeded random weights,
quantised the way llama.cpp's `llama-quantize` lays out those file types:

    Q4_K_M  Q4_K matrices; attn_v and ffn_down Q6_K in the layers llama.cpp gives more bits
            (use_more_bits: here the last of the two layers); token_embd Q6_K (tied output)
    Q5_K_M  the same with Q5_K
    Q6_K    every matrix Q6_K
    Q5_0    Q5_0 matrices; token_embd Q6_K

The tokenizer and the other metadata come from the committed F32 fixture
(models/tiny-qwen3-embedding-f32.gguf), so texts tokenise as with the real model. The `gguf`
package reads K-quants but cannot write them (its quantize raises NotImplementedError), so the
quantisers are here (a plain min/max search per sub-block, not llama.cpp's optimised one: the
tests need valid files of those types, not the best approximation); every tensor is checked
by dequantising it with the `gguf` package. Q5_0 is the package's own quantiser.

Usage (from the repository root; the tests run it themselves into target/):

    pip install gguf numpy
    python3 models/make_quant_fixtures.py --out DIR [--types q4_k_m,q5_k_m,q6_k,q5_0]
        [--shape real]

Writes DIR/quant-qwen3-embedding-{q4_k_m,q5_k_m,q6_k,q5_0}.gguf (about 38 MB each, most of it
the 151669 x 256 vocabulary matrix). `--shape real` writes Qwen3-Embedding-0.6B's shape
instead (hidden 1024, 28 layers; about 0.4-0.5 GB each, a few GB of memory while writing), for
measuring speed (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

SHAPES = {
    "tiny": dict(hidden=256, layers=2, heads=4, kv_heads=2, head_dim=64, ffn=512),
    "real": dict(hidden=1024, layers=28, heads=16, kv_heads=8, head_dim=128, ffn=3072),
}
SHAPE = dict(SHAPES["tiny"])  # the shape being written (main() may switch it)
QK_K = 256
SOURCE = Path(__file__).resolve().parent / "tiny-qwen3-embedding-f32.gguf"
# Keys the new shape or file type replaces; everything else is copied from the F32 fixture.
REPLACED = {
    "general.architecture", "general.name", "general.file_type", "qwen3.embedding_length",
    "qwen3.feed_forward_length", "qwen3.block_count", "qwen3.attention.head_count",
    "qwen3.attention.head_count_kv", "qwen3.attention.key_length", "qwen3.attention.value_length",
}


def f16(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float16).astype(np.float32)


def safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b == 0, 0.0, a / np.where(b == 0, 1.0, b))


def scales_mins_k(x: np.ndarray, levels: int):
    """Q4_K/Q5_K: 8 sub-blocks of 32 per 256-value block, each with a 6-bit scale and 6-bit
    min under the block's F16 `d` and `dmin`: x ~ d*sc*q - dmin*m, q in 0..levels."""
    sub = x.reshape(x.shape[0], 8, 32)
    lo = np.minimum(sub.min(axis=-1), 0.0)
    hi = sub.max(axis=-1)
    scale = (hi - lo) / levels
    mins = -lo
    d = f16(scale.max(axis=-1) / 63)
    dmin = f16(mins.max(axis=-1) / 63)
    sc = np.clip(np.rint(safe_div(scale, d[:, None])), 0, 63).astype(np.uint8)
    m = np.clip(np.rint(safe_div(mins, dmin[:, None])), 0, 63).astype(np.uint8)
    step = d[:, None] * sc
    offset = dmin[:, None] * m
    q = np.clip(np.rint(safe_div(sub + offset[..., None], step[..., None])), 0, levels)
    return d, dmin, sc, m, q.astype(np.uint8).reshape(x.shape[0], QK_K)


def pack_scales_k(sc: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The 12 bytes of 6-bit scales and mins (ggml's get_scale_min_k4, inverted)."""
    out = np.zeros((sc.shape[0], 12), dtype=np.uint8)
    out[:, 0:4] = (sc[:, 0:4] & 63) | ((sc[:, 4:8] >> 4) << 6)
    out[:, 4:8] = (m[:, 0:4] & 63) | ((m[:, 4:8] >> 4) << 6)
    out[:, 8:12] = (sc[:, 4:8] & 15) | ((m[:, 4:8] & 15) << 4)
    return out


def nibbles_k(q: np.ndarray) -> np.ndarray:
    """128 bytes: for each pair of 32-value sub-blocks, the first in the low nibbles and the
    second in the high ones."""
    pairs = (q & 15).reshape(q.shape[0], 4, 2, 32)
    return (pairs[:, :, 0, :] | (pairs[:, :, 1, :] << 4)).reshape(q.shape[0], 128)


def quantize_q4_k(x: np.ndarray) -> np.ndarray:
    d, dmin, sc, m, q = scales_mins_k(x, 15)
    return np.concatenate([
        d.astype(np.float16).view(np.uint8).reshape(-1, 2),
        dmin.astype(np.float16).view(np.uint8).reshape(-1, 2),
        pack_scales_k(sc, m), nibbles_k(q)], axis=1)


def quantize_q5_k(x: np.ndarray) -> np.ndarray:
    d, dmin, sc, m, q = scales_mins_k(x, 31)
    # qh: bit j of byte l is the fifth bit of value l of sub-block j.
    high = ((q >> 4) & 1).reshape(q.shape[0], 8, 32)
    qh = np.zeros((q.shape[0], 32), dtype=np.uint8)
    for j in range(8):
        qh |= high[:, j, :] << j
    return np.concatenate([
        d.astype(np.float16).view(np.uint8).reshape(-1, 2),
        dmin.astype(np.float16).view(np.uint8).reshape(-1, 2),
        pack_scales_k(sc, m), qh, nibbles_k(q)], axis=1)


def quantize_q6_k(x: np.ndarray) -> np.ndarray:
    """16 sub-blocks of 16 values with int8 scales under an F16 `d`: x ~ d*sc*(q - 32)."""
    n = x.shape[0]
    sub = x.reshape(n, 16, 16)
    amax = np.abs(sub).max(axis=-1)
    scale = amax / 31
    d = f16(scale.max(axis=-1) / 127)
    sc = np.clip(np.rint(safe_div(scale, d[:, None])), -128, 127).astype(np.int8)
    step = d[:, None] * sc
    q = np.clip(np.rint(safe_div(sub, step[..., None])), -32, 31).astype(np.int16) + 32
    q = q.astype(np.uint8).reshape(n, QK_K)
    # Per half of 128 values: ql holds low nibbles (values r and r+64 share byte r % 64),
    # qh the two high bits (values r, r+32, r+64, r+96 share byte r % 32).
    halves = q.reshape(n, 2, 2, 64)
    ql = ((halves[:, :, 0, :] & 15) | ((halves[:, :, 1, :] & 15) << 4)).reshape(n, 128)
    quarters = ((q >> 4) & 3).reshape(n, 2, 4, 32)
    qh = np.zeros((n, 2, 32), dtype=np.uint8)
    for s in range(4):
        qh |= quarters[:, :, s, :] << (2 * s)
    return np.concatenate([
        ql, qh.reshape(n, 64), sc.view(np.uint8),
        d.astype(np.float16).view(np.uint8).reshape(-1, 2)], axis=1)


QUANTIZERS = {"Q4_K": quantize_q4_k, "Q5_K": quantize_q5_k, "Q6_K": quantize_q6_k}


def quantize(gguf, data: np.ndarray, qtype: str) -> np.ndarray:
    """`data` (rows x cols, cols a multiple of 256) as `qtype` blocks, checked by dequantising
    them with the gguf package: every value within its sub-block's step of the original."""
    rows, cols = data.shape
    gtype = getattr(gguf.GGMLQuantizationType, qtype)
    if qtype not in QUANTIZERS:
        return gguf.quants.quantize(data, gtype)
    blocks = QUANTIZERS[qtype](data.reshape(-1, QK_K).astype(np.float32))
    raw = blocks.reshape(rows, -1)
    back = gguf.quants.dequantize(raw, gtype).reshape(rows, cols)
    err = np.abs(back - data).reshape(-1, QK_K).max(axis=-1)
    span = np.abs(data).reshape(-1, QK_K).max(axis=-1)
    # 6-bit scales on top of 4-bit values: the step is at most about span/15 (Q4_K), and
    # rounding the scale can add as much again; a wrong layout gives errors of the span's size.
    assert np.all(err <= span * {"Q4_K": 0.2, "Q5_K": 0.1, "Q6_K": 0.06}[qtype] + 1e-6), \
        f"{qtype}: dequantised error {err.max()} against span {span.max()}"
    return raw


def use_more_bits(layer: int, layers: int) -> bool:
    """llama.cpp's llama-quant.cpp: the layers whose attn_v and ffn_down get Q6_K in _M files."""
    return layer < layers // 8 or layer >= 7 * layers // 8 or (layer - layers // 8) % 3 == 2


def tensor_type(file_type: str, name: str, layer: int | None) -> str:
    base = {"q4_k_m": "Q4_K", "q5_k_m": "Q5_K", "q6_k": "Q6_K", "q5_0": "Q5_0"}[file_type]
    if name == "token_embd.weight":
        return "Q6_K"  # the tied output's type in llama-quantize
    if file_type.endswith("_m") and name.split(".")[-2] in ("attn_v", "ffn_down") and use_more_bits(layer, SHAPE["layers"]):
        return "Q6_K"
    return base


def tensors(rng: np.random.Generator, vocab: int):
    """(name, array) in llama.cpp's layout (rows = output features), seeded random values."""
    h, f = SHAPE["hidden"], SHAPE["ffn"]
    q_dim = SHAPE["heads"] * SHAPE["head_dim"]
    kv_dim = SHAPE["kv_heads"] * SHAPE["head_dim"]
    std = 1.5 / np.sqrt(h)

    def matrix(rows, cols):
        return (rng.standard_normal((rows, cols)) * std).astype(np.float32)

    def gain(n):
        return (1.0 + 0.2 * rng.standard_normal(n)).astype(np.float32)

    yield "token_embd.weight", None, (rng.standard_normal((vocab, h)) * 0.5).astype(np.float32)
    for i in range(SHAPE["layers"]):
        p = f"blk.{i}."
        yield p + "attn_norm.weight", i, gain(h)
        yield p + "attn_q.weight", i, matrix(q_dim, h)
        yield p + "attn_k.weight", i, matrix(kv_dim, h)
        yield p + "attn_v.weight", i, matrix(kv_dim, h)
        yield p + "attn_output.weight", i, matrix(h, q_dim)
        yield p + "attn_q_norm.weight", i, gain(SHAPE["head_dim"])
        yield p + "attn_k_norm.weight", i, gain(SHAPE["head_dim"])
        yield p + "ffn_norm.weight", i, gain(h)
        yield p + "ffn_gate.weight", i, matrix(f, h)
        yield p + "ffn_up.weight", i, matrix(f, h)
        yield p + "ffn_down.weight", i, matrix(h, f)
    yield "output_norm.weight", None, gain(h)


def write(gguf, out: Path, file_type: str, source, seed: int) -> dict[str, str]:
    writer = gguf.GGUFWriter(str(out), "qwen3")
    writer.add_name(f"quant-qwen3-embedding {file_type} (random weights, test fixture)")
    writer.add_file_type({"q4_k_m": gguf.LlamaFileType.MOSTLY_Q4_K_M,
                          "q5_k_m": gguf.LlamaFileType.MOSTLY_Q5_K_M,
                          "q6_k": gguf.LlamaFileType.MOSTLY_Q6_K,
                          "q5_0": gguf.LlamaFileType.MOSTLY_Q5_0}[file_type])
    writer.add_embedding_length(SHAPE["hidden"])
    writer.add_feed_forward_length(SHAPE["ffn"])
    writer.add_block_count(SHAPE["layers"])
    writer.add_head_count(SHAPE["heads"])
    writer.add_head_count_kv(SHAPE["kv_heads"])
    writer.add_key_length(SHAPE["head_dim"])
    writer.add_value_length(SHAPE["head_dim"])
    for field in source.fields.values():
        if field.name.startswith("GGUF.") or field.name in REPLACED:
            continue
        main = field.types[0]
        sub = field.types[-1] if main == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), main, sub)

    vocab = next(t for t in source.tensors if t.name == "token_embd.weight").shape[-1]
    types = {}
    for name, layer, data in tensors(np.random.default_rng(seed), int(vocab)):
        if data.ndim == 1:
            writer.add_tensor(name, data)
            continue
        qtype = tensor_type(file_type, name, layer)
        # The shape is inferred from the rows of bytes and the type.
        writer.add_tensor(name, quantize(gguf, data, qtype),
                          raw_dtype=getattr(gguf.GGMLQuantizationType, qtype))
        types[name] = qtype
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return types


def main() -> None:
    import gguf

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--types", default="q4_k_m,q5_k_m,q6_k,q5_0")
    ap.add_argument("--seed", type=int, default=20261204)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    args = ap.parse_args()
    SHAPE.clear()
    SHAPE.update(SHAPES[args.shape])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    source = gguf.GGUFReader(str(SOURCE))
    for file_type in args.types.split(","):
        prefix = "quant" if args.shape == "tiny" else "quant-0.6b-shape"
        path = out / f"{prefix}-qwen3-embedding-{file_type}.gguf"
        partial = path.with_suffix(".gguf.partial")
        types = write(gguf, partial, file_type, source, args.seed)
        partial.replace(path)  # whole files only: a test never sees a half-written one
        counts = {t: sum(1 for v in types.values() if v == t) for t in sorted(set(types.values()))}
        print(f"wrote {path} ({path.stat().st_size:,} bytes; matrices {counts})", file=sys.stderr)


if __name__ == "__main__":
    main()
