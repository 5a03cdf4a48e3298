#!/usr/bin/env python3
"""ONNX Runtime as a benchmark peer: the bench model exported with torch, float32 and int8.

    python3 bench/onnx_peer.py --hf bench/models/hf --out bench/models/onnx

writes `model-fp32.onnx` (+ `model-fp32.onnx.data`, the weights) and `model-int8.onnx` into
--out, unless they are there already. The graph is the transformers model's forward from
token ids and attention mask to the last hidden state, with dynamic batch and sequence axes.
The int8 model is onnxruntime's dynamic quantisation with per-channel int8 weights (activations
quantised per call), as fastembed's Qwen3 ONNX exports do. `bench/peers.py onnx` runs them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

EOT_ID = 151643  # <|endoftext|>: appended to every input, and the pooled (last) token


def export_fp32(hf_dir: Path, path: Path) -> None:
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(hf_dir, dtype=torch.float32, attn_implementation="sdpa").eval()

    class LastHidden(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    # Example shapes other than 1, so that neither axis is specialised to a constant.
    ids = torch.full((2, 16), EOT_ID, dtype=torch.long)
    mask = torch.ones((2, 16), dtype=torch.long)
    batch, seq = torch.export.Dim("batch", min=1, max=1024), torch.export.Dim("seq", min=2, max=32768)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        LastHidden(model).eval(),
        (ids, mask),
        str(path),
        input_names=["input_ids", "attention_mask"],
        output_names=["last_hidden_state"],
        dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}},
        dynamo=True,
        external_data=True,
    )


def quantize_int8(fp32: Path, int8: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True)


def ensure_models(hf_dir: Path, out: Path) -> dict[str, Path]:
    """Exports and quantises once; returns {"float32": path, "int8": path}."""
    fp32, int8 = out / "model-fp32.onnx", out / "model-int8.onnx"
    if not fp32.exists():
        t = time.perf_counter()
        export_fp32(hf_dir, fp32)
        print(f"exported {fp32} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    if not int8.exists():
        t = time.perf_counter()
        quantize_int8(fp32, int8)
        print(f"quantised {int8} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    return {"float32": fp32, "int8": int8}


def engine(model: str, tokenizer: str, threads: int, batch_size: int):
    """Loads the session; returns (load seconds, embed(texts) -> list of vectors)."""
    import numpy as np
    import onnxruntime as ort
    from tokenizers import Tokenizer

    t = time.perf_counter()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    tok = Tokenizer.from_file(tokenizer)
    tok.encode_special_tokens = True  # user text that spells <|endoftext|> stays text
    load = time.perf_counter() - t

    def embed(texts: list[str]) -> list[np.ndarray]:
        # One text at a time (batch_size 1) or padded batches of similar lengths (sorted, as
        # gguf-embed and sentence-transformers do), padded on the left so that every row's last
        # position is its <|endoftext|>: last-token pooling, then L2 normalisation.
        ids = [tok.encode(t, add_special_tokens=False).ids + [EOT_ID] for t in texts]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out: list = [None] * len(ids)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            width = max(len(ids[i]) for i in rows)
            input_ids = np.full((len(rows), width), EOT_ID, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                input_ids[r, width - len(ids[i]) :] = ids[i]
                mask[r, width - len(ids[i]) :] = 1
            (hidden,) = session.run(None, {"input_ids": input_ids, "attention_mask": mask})
            last = hidden[:, -1, :].astype(np.float64)
            last /= np.linalg.norm(last, axis=1, keepdims=True)
            for r, i in enumerate(rows):
                out[i] = last[r].astype(np.float32)
        return out

    return load, embed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hf", type=Path, required=True, help="the transformers model folder")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    for name, path in ensure_models(args.hf, args.out).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
