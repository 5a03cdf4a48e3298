"""Shared fixtures. The Rust test tests/python.rs runs pytest with these variables set:

GGUF_EMBED_TEST_MODEL  the committed tiny F32 fixture model (models/)
GGUF_EMBED_CLI         the gguf-embed CLI of the same build, whose vectors are the reference
GGUF_EMBED_REFERENCE   models/reference.json (texts, and Hugging Face tokenizers' token ids)
"""

import json
import os
import subprocess

import numpy as np
import pytest

from gguf_embed import Embedder


def _env(name):
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run these tests through `cargo test --release`")
    return value


@pytest.fixture(scope="session")
def model_path():
    return _env("GGUF_EMBED_TEST_MODEL")


@pytest.fixture(scope="session")
def reference():
    with open(_env("GGUF_EMBED_REFERENCE"), encoding="utf-8") as f:
        return json.load(f)["cases"]


@pytest.fixture(scope="session")
def texts(reference):
    return [c["text"] for c in reference]


@pytest.fixture(scope="session")
def embedder(model_path):
    return Embedder(model_path, device="cpu", threads=2)


@pytest.fixture(scope="session")
def cli(model_path, tmp_path_factory):
    """The CLI's vectors for texts and flags, as an (n, dim) float32 array."""
    cli_path = _env("GGUF_EMBED_CLI")
    folder = tmp_path_factory.mktemp("cli")

    def run(texts, *flags):
        path = folder / "texts.jsonl"
        path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
        out = subprocess.run(
            [cli_path, "-m", model_path, "--device", "cpu", "--threads", "2", "--quiet",
             "-f", "jsonl", "--input", str(path), *flags],
            capture_output=True, check=True,
        )
        rows = [json.loads(line)["embedding"] for line in out.stdout.decode().splitlines()]
        return np.array(rows, dtype=np.float32)

    return run
