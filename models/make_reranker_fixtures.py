#!/usr/bin/env python3
"""Make Qwen3-Reranker test models and reference scores without the real weights.

Like models/make_fixtures.py for the embedder: a Qwen3 causal LM (Qwen3ForCausalLM, tied
embeddings as in Qwen3-Reranker-0.6B) with the REAL Qwen3 vocabulary and seeded random weights,
written as GGUF files, and Hugging Face `transformers` / `tokenizers` compute the reference token
ids and scores by Qwen's rule (QwenLM/Qwen3-Reranker): prefix ids + ids of
"<Instruct>: {instruction}\\n<Query>: {query}\\n<Document>: {document}" + suffix ids, the
LM head's logits of "yes" and "no" at the last token, score = softmax([no, yes])[1].

Two adjustments make the random model a useful fixture:
- The rows of "yes" and "no" in the (tied) embedding matrix are set so that their difference
  points along the direction in which the cases' final hidden states vary most, scaled so that
  the scores spread over (0, 1) instead of all sitting near one value.
- Every matrix is rounded to the values a Q8_0 file can hold (quantized, then dequantized), so
  the committed Q8_0 files hold these weights exactly and the tests can write the F32 file from
  them: only the GGUF files under 20 MB each are committed.

Usage (from the repository root):

    pip install torch transformers tokenizers gguf numpy
    python3 models/make_reranker_fixtures.py              # the committed fixtures (tiny shape)
    python3 models/make_reranker_fixtures.py --shape real --out bench/models --no-reference
                                                         # real 0.6B shape, for the benchmark

Outputs in --out (models/ by default):
    {prefix}-q8_0.gguf            llama.cpp's converter layout: cls.output.weight = the
                                  ["yes", "no"] rows, pooling RANK, classifier.output_labels
                                  and the `rerank` chat template (tied: token_embd stays)
    {prefix}-headless-q8_0.gguf   the same weights without head or reranker metadata, as plain
                                  causal-LM conversions of the reranker are (tiny shape only)
    reranker-reference.json       pairs, token ids, log-odds and scores
and, in tests/fixtures: dequant.gguf (random blocks of every quantization type gguf-embed
reads, with llama.cpp's Python dequantization of each, gguf.quants.dequantize, beside them) and
heads/*.gguf (tiny files for the reader of the "yes" and "no" rows).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_fixtures as mf  # noqa: E402

SYSTEM = ('Judge whether the Document meets the requirements based on the Query and the '
          'Instruct provided. Note that the answer can only be "yes" or "no".')
PREFIX = f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n"
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
DEFAULT_TASK = mf.TASK_WEB_SEARCH
RERANK_TEMPLATE = (
    "<|im_start|>system\n" + SYSTEM + "<|im_end|>\n"
    "<|im_start|>user\n<Instruct>: Given a web search query, retrieve relevant passages that "
    "answer the query\n<Query>: {query}\n<Document>: {document}<|im_end|>\n"
    "<|im_start|>assistant\n<think>\n\n</think>\n\n"
)


def pair_text(instruction: str, query: str, document: str) -> str:
    return f"<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}"


Q_FRANCE = "What is the capital of France?"
Q_CODE = "read a file into a string in rust"
LONG_DOC = " ".join(
    f"Section {i}: rerankers read the query and the document together and answer yes or no; "
    f"a careful engine keeps the query whole and cuts the document when the pair is too long "
    f"({i * 17} tokens, 日本語, русский)." for i in range(12)
)

# (name, query, document, instruction or None for the default)
CASES = [
    ("paris", Q_FRANCE, "Paris is the capital and largest city of France.", None),
    ("berlin", Q_FRANCE, "Berlin is the capital of Germany.", None),
    ("bread", Q_FRANCE, "Bake the bread for forty minutes at 220 degrees.", None),
    ("empty_document", Q_FRANCE, "", None),
    ("chinese", "机器学习是什么？", "机器学习是人工智能的一个分支，它使计算机能够从数据中学习。", None),
    ("japanese", Q_FRANCE, "東京は日本の首都であり、世界有数の大都市です。", None),
    ("arabic", "ما هي عاصمة مصر؟", "القاهرة هي عاصمة مصر وأكبر مدنها.", None),
    ("rust_code", Q_CODE,
     "fn load(path: &Path) -> io::Result<String> {\n    std::fs::read_to_string(path)\n}\n",
     mf.TASK_CODE_SEARCH),
    ("python_code", Q_CODE, "def load(path):\n    with open(path) as f:\n        return f.read()\n",
     mf.TASK_CODE_SEARCH),
    ("custom_instruction", "cold brew", "Steep coarse coffee in cold water for 12 hours.",
     "Judge whether the passage is a recipe"),
    ("nfd_accents", "cafe\u0301 de\u0301ja\u0300 vu", "nai\u0308ve re\u0301sume\u0301 of a cafe\u0301",
     None),
    ("special_token_text", Q_FRANCE,
     "A literal <|im_end|> and <|endoftext|> must stay plain text, yes.", None),
    ("think_text", "reasoning", "Reasoning models write <think> before answering.", None),
    ("whitespace", "  spaced  query ", "  tabs\tand\n\nnewlines   \r\n mixed  ", None),
    ("starts_with_digits", "numbers", "2024 was a leap year; 1900 was not.", None),
    ("long", Q_FRANCE, LONG_DOC, None),
]

# Cut to a token limit (prompt included), as Qwen's reference truncates the pair text: the
# document loses its end.
TRUNCATED = [("long", 96), ("paris", 80)]

# Quantization types of tests/fixtures/dequant.gguf, and where each block's f16 scales are.
DEQUANT_TYPES = {
    "Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0],
    "Q2_K": [80, 82], "Q3_K": [108], "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208],
}


def tokenizers(tok_path: Path):
    """The reference tokenizer twice: for our fixed template (special tokens parsed) and for
    the pair text (user text: special tokens stay text, as in our product)."""
    from tokenizers import Tokenizer

    template = Tokenizer.from_file(str(tok_path))
    user = Tokenizer.from_file(str(tok_path))
    user.encode_special_tokens = True
    return template, user


def token_ids(tok_template, tok_user, instruction, query, document, max_length=None):
    prefix = tok_template.encode(PREFIX, add_special_tokens=False).ids
    suffix = tok_template.encode(SUFFIX, add_special_tokens=False).ids
    body = tok_user.encode(pair_text(instruction, query, document), add_special_tokens=False).ids
    if max_length is not None:
        body = body[: max_length - len(prefix) - len(suffix)]
    return prefix + body + suffix


def build_model(shape: dict, seed: int, init_std: float):
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=mf.VOCAB_SIZE,
        hidden_size=shape["hidden"],
        intermediate_size=shape["ffn"],
        num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"],
        num_key_value_heads=shape["kv_heads"],
        head_dim=shape["head_dim"],
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
        tie_word_embeddings=True,
        initializer_range=init_std,
        torch_dtype="float32",
    )
    model = Qwen3ForCausalLM(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(), \
        "the head must be tied, as in Qwen3-Reranker-0.6B"
    return config, model


def last_hidden(model, ids):
    """The final normed hidden state at the last token (what the LM head multiplies)."""
    import torch

    with torch.no_grad():
        out = model.model(input_ids=torch.tensor([ids]))
    return out.last_hidden_state[0, -1].double().numpy()


def logits_yes_no(model, ids, yes_id, no_id):
    import torch

    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
    return float(logits[yes_id]), float(logits[no_id])


def spread_scores(model, all_ids, yes_id, no_id, target_std):
    """Sets the "yes" and "no" rows so that their difference lies along the direction in
    which the cases' last hidden states vary most, orthogonal to their mean (so the log-odds
    centre on 0), scaled to `target_std`. Their sum is kept. Twice, since the prompt itself
    contains "yes" and "no" and so moves with the rows."""
    import torch

    emb = model.model.embed_tokens.weight
    for _ in range(2):
        h = np.stack([last_hidden(model, ids) for ids in all_ids])
        mean = h.mean(axis=0)
        _, _, vt = np.linalg.svd(h - mean, full_matrices=False)
        direction = vt[0] - (vt[0] @ mean) / (mean @ mean) * mean
        spread = (h @ direction).std()
        w = direction * (target_std / spread)
        with torch.no_grad():
            total = (emb[yes_id] + emb[no_id]).double().numpy()
            emb[yes_id] = torch.from_numpy((total + w) / 2).float()
            emb[no_id] = torch.from_numpy((total - w) / 2).float()


def round_to_q8_0(model) -> None:
    """Rounds every matrix to the values a Q8_0 file holds; checks that a second rounding
    changes nothing (so a Q8_0 file of these weights holds them exactly)."""
    import gguf
    import torch

    q8 = gguf.GGMLQuantizationType.Q8_0
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                data = p.numpy()
                back = gguf.quants.dequantize(gguf.quants.quantize(data, q8), q8)
                again = gguf.quants.dequantize(gguf.quants.quantize(back, q8), q8)
                assert np.array_equal(back, again), "Q8_0 rounding is not idempotent"
                p.copy_(torch.from_numpy(back.reshape(p.shape)))


def write_files(out: Path, prefix: str, config, model, tok_json, yes_id, no_id, headless: bool):
    import gguf

    state = model.model.state_dict()
    emb = model.model.embed_tokens.weight.detach().float().numpy()
    cls_out = np.stack([emb[yes_id], emb[no_id]])

    def reranker_metadata(writer):
        writer.add_classifier_output_labels(["yes", "no"])
        writer.add_chat_template([{"name": "rerank", "template": RERANK_TEMPLATE}])

    path = out / f"{prefix}-q8_0.gguf"
    mf.write_gguf(path, config, state, tok_json, "q8_0",
                  name=f"{prefix} (random weights, test fixture)", pooling="rank",
                  add_eos=False, extra_tensors=[("cls.output.weight", cls_out)],
                  extra_metadata=reranker_metadata)
    check_exact(path, state, cls_out)
    print(f"wrote {path} ({path.stat().st_size:,} bytes)", file=sys.stderr)
    if headless:
        path = out / f"{prefix}-headless-q8_0.gguf"
        mf.write_gguf(path, config, state, tok_json, "q8_0",
                      name=f"{prefix}-headless (random weights, test fixture)", pooling=None,
                      add_eos=False)
        check_exact(path, state, None)
        print(f"wrote {path} ({path.stat().st_size:,} bytes)", file=sys.stderr)


def check_exact(path: Path, state, cls_out) -> None:
    """Reads the file back: its matrices must dequantize to exactly the model's weights."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    tensors = {t.name: t for t in reader.tensors}
    emb = tensors["token_embd.weight"]
    values = gguf.quants.dequantize(emb.data, emb.tensor_type)
    assert np.array_equal(values, state["embed_tokens.weight"].numpy()), path
    if cls_out is not None:
        t = tensors["cls.output.weight"]
        assert np.array_equal(gguf.quants.dequantize(t.data, t.tensor_type), cls_out), path
    else:
        assert "cls.output.weight" not in tensors and "output.weight" not in tensors


def compute_reference(model, tok_path: Path, out: Path, yes_id: int, no_id: int) -> None:
    tok_template, tok_user = tokenizers(tok_path)
    cases = []

    def score(ids):
        yes, no = logits_yes_no(model, ids, yes_id, no_id)
        # Qwen's rule: log_softmax over [no, yes], then exp of the "yes" entry.
        log_odds = yes - no
        p_yes = float(np.exp(yes - np.logaddexp(yes, no)))
        return log_odds, p_yes

    for name, query, document, instruction in CASES:
        instr = instruction or DEFAULT_TASK
        ids = token_ids(tok_template, tok_user, instr, query, document)
        log_odds, p_yes = score(ids)
        cases.append({"name": name, "query": query, "document": document,
                      "instruction": instruction, "token_ids": ids,
                      "log_odds": round(log_odds, 7), "score": round(p_yes, 8)})
    truncated = []
    by_name = {c[0]: c for c in CASES}
    for name, max_tokens in TRUNCATED:
        _, query, document, instruction = by_name[name]
        ids = token_ids(tok_template, tok_user, instruction or DEFAULT_TASK, query, document,
                        max_length=max_tokens)
        assert len(ids) <= max_tokens
        log_odds, p_yes = score(ids)
        truncated.append({"name": name, "max_tokens": max_tokens, "token_ids": ids,
                          "log_odds": round(log_odds, 7), "score": round(p_yes, 8)})
    scores = [c["score"] for c in cases]
    print(f"scores: min {min(scores):.3f}, max {max(scores):.3f}, "
          f"std {np.std(scores):.3f}", file=sys.stderr)
    assert min(scores) < 0.2 and max(scores) > 0.8, "scores do not spread over (0, 1)"
    doc = {
        "about": "Reference token ids and scores from Hugging Face tokenizers/transformers "
                 "(float32) for the tiny reranker fixtures, by Qwen3-Reranker's rule; made by "
                 "models/make_reranker_fixtures.py. The weights are exactly those the Q8_0 "
                 "files hold. score = P(yes) = softmax([logit(no), logit(yes)])[1] at the last "
                 "token; log_odds = logit(yes) - logit(no). The pair text is tokenized without "
                 "parsing special tokens (user text stays text); `instruction` null means the "
                 "default web-search instruction. `truncated`: the same pairs cut to "
                 "max_tokens (prompt included) by cutting the document's end.",
        "yes_id": yes_id,
        "no_id": no_id,
        "default_instruction": DEFAULT_TASK,
        "cases": cases,
        "truncated": truncated,
    }
    (out / "reranker-reference.json").write_text(
        json.dumps(doc, ensure_ascii=False, indent=1) + "\n")


def write_dequant_fixture(path: Path, seed: int) -> None:
    """Random blocks of each type (with sane f16 scales) and gguf-py's dequantization of
    them, as tensors `<type>` (the blocks, two rows) and `<type>.expected` (F32)."""
    import gguf

    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), "dequant-test")
    for name, scale_offsets in DEQUANT_TYPES.items():
        qtype = gguf.GGMLQuantizationType[name]
        block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
        rows, blocks_per_row = 2, max(1, 512 // block_size)
        raw = rng.integers(0, 256, size=(rows * blocks_per_row, type_size), dtype=np.uint8)
        for at in scale_offsets:
            scales = rng.uniform(-0.05, 0.05, size=raw.shape[0]).astype(np.float16)
            raw[:, at:at + 2] = scales.view(np.uint8).reshape(-1, 2)
        raw = raw.reshape(rows, blocks_per_row * type_size)
        expected = gguf.quants.dequantize(raw, qtype).astype(np.float32)
        assert expected.shape == (rows, blocks_per_row * block_size)
        assert np.isfinite(expected).all()
        writer.add_tensor(name.lower(), raw, raw_dtype=qtype)
        writer.add_tensor(f"{name.lower()}.expected", expected)
    for name, dtype in (("F16", np.float16), ("BF16", None)):
        values = rng.normal(0, 1, size=(2, 64)).astype(np.float32)
        if dtype is None:
            raw = gguf.quants.quantize(values, gguf.GGMLQuantizationType.BF16)
            qtype = gguf.GGMLQuantizationType.BF16
        else:
            raw = values.astype(dtype)
            qtype = gguf.GGMLQuantizationType.F16
        expected = gguf.quants.dequantize(
            raw.view(np.uint8) if dtype is not None else raw, qtype).astype(np.float32)
        writer.add_tensor(name.lower(), raw, raw_dtype=qtype)
        writer.add_tensor(f"{name.lower()}.expected", expected.reshape(2, 64))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"wrote {path} ({path.stat().st_size:,} bytes)", file=sys.stderr)


def write_head_fixtures(folder: Path) -> None:
    """Tiny model files (a five-token vocabulary, no layers to run) that only the head reader
    reads: where the "yes" and "no" rows are found, and which files are refused. In each, the
    right "yes" row is all +127/128 and the right "no" row all -127/128 (values Q8_0 stores
    exactly), every other row 0.5: with a hidden state of ones, the right rows give log-odds
    2 * 127/128 * n_embd = 63.5, and any other pair of rows something else."""
    import gguf

    n_embd = 32
    EXACT = 127 / 128  # noqa: N806  (Q8_0 scale 1/128, exact in f16)
    tokens = ["a", "no", "yes", "b", "<|endoftext|>"]
    yes, no = tokens.index("yes"), tokens.index("no")

    def matrix(rows, yes_row=None, no_row=None):
        m = np.full((rows, n_embd), 0.5, dtype=np.float32)
        if yes_row is not None:
            m[yes_row] = EXACT
        if no_row is not None:
            m[no_row] = -EXACT
        return m

    def write(name, tensors, labels=None, vocab=tokens):
        path = folder / f"{name}.gguf"
        writer = gguf.GGUFWriter(str(path), "qwen3")
        writer.add_name(f"head fixture {name}")
        writer.add_context_length(64)
        writer.add_embedding_length(n_embd)
        writer.add_feed_forward_length(64)
        writer.add_block_count(1)
        writer.add_head_count(1)
        writer.add_tokenizer_model("gpt2")
        writer.add_token_list(vocab)
        if labels is not None:
            writer.add_classifier_output_labels(labels)
        writer.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
        writer.add_tensor("blk.0.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        for tensor_name, data, qtype in tensors:
            if qtype is None:
                writer.add_tensor(tensor_name, data)
            else:
                writer.add_tensor(tensor_name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()

    q8, f32 = gguf.GGMLQuantizationType.Q8_0, None
    vocab = len(tokens)
    # An untied head: the rows are in output.weight, not in token_embd.
    write("untied", [("token_embd.weight", matrix(vocab), q8),
                     ("output.weight", matrix(vocab, yes, no), f32)])
    # Tied, stored as Q8_0 as a quantized file holds it.
    write("tied", [("token_embd.weight", matrix(vocab, yes, no), q8)])
    # The converter's head with its labels in the other order.
    write("labels_reversed", [("token_embd.weight", matrix(vocab), q8),
                              ("cls.output.weight",
                               np.stack([np.full(n_embd, -EXACT), np.full(n_embd, EXACT)])
                               .astype(np.float32), q8)],
          labels=["no", "yes"])
    # A classifier head whose labels are not "yes" and "no".
    write("foreign_labels", [("token_embd.weight", matrix(vocab), q8),
                             ("cls.output.weight", matrix(2), q8)], labels=["positive", "negative"])
    # No "yes" token anywhere and no head: nothing to score with.
    write("no_yes_token", [("token_embd.weight", matrix(vocab), q8)],
          vocab=["a", "no", "maybe", "b", "<|endoftext|>"])
    print(f"wrote the head fixtures in {folder}", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent))
    ap.add_argument("--shape", choices=sorted(mf.SHAPES), default="tiny")
    ap.add_argument("--seed", type=int, default=20251204)
    ap.add_argument("--init-std", type=float, default=None,
                    help="weight init std (default: 0.25 for tiny, 0.02 for real)")
    ap.add_argument("--prefix", default=None, help="GGUF file name prefix")
    ap.add_argument("--tokenizer", default=os.environ.get("QWEN3_TOKENIZER_JSON"))
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--spread", type=float, default=2.5,
                    help="standard deviation of the cases' log-odds after the yes/no rows are set")
    args = ap.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shape = mf.SHAPES[args.shape]
    tiny = args.shape == "tiny"
    init_std = args.init_std if args.init_std is not None else (0.25 if tiny else 0.02)
    prefix = args.prefix or ("tiny-qwen3-reranker" if tiny else "qwen3-reranker-0.6b-random")

    tok_path = mf.fetch_tokenizer(args.tokenizer)
    tok_json = json.loads(tok_path.read_text())
    tok_template, tok_user = tokenizers(tok_path)
    yes_id, no_id = tok_template.token_to_id("yes"), tok_template.token_to_id("no")
    config, model = build_model(shape, args.seed, init_std)
    all_ids = [token_ids(tok_template, tok_user, instr or DEFAULT_TASK, q, d)
               for _, q, d, instr in CASES]
    spread_scores(model, all_ids, yes_id, no_id, args.spread)
    round_to_q8_0(model)
    print(f"{args.shape} reranker: {sum(p.numel() for p in model.parameters()):,} parameters; "
          f"yes {yes_id}, no {no_id}", file=sys.stderr)

    write_files(out, prefix, config, model, tok_json, yes_id, no_id, headless=tiny)
    if not args.no_reference:
        compute_reference(model, tok_path, out, yes_id, no_id)
    if tiny:
        fixtures = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
        write_dequant_fixture(fixtures / "dequant.gguf", args.seed)
        (fixtures / "heads").mkdir(exist_ok=True)
        write_head_fixtures(fixtures / "heads")


if __name__ == "__main__":
    main()
