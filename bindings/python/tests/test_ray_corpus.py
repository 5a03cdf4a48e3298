"""The Ray Data example on a local Ray with 2 workers: every input embedded exactly once,
with the vectors of a single-process run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from gguf_embed import Embedder

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "ray_embed_corpus.py"


def test_ray_job_embeds_every_input_once_like_one_process(model_path, texts, tmp_path):
    # The reference texts several times over, each copy with its own id.
    corpus = [{"id": f"doc-{i:03d}", "text": f"{i}: {t}"} for i, t in enumerate(texts * 3)]
    source = tmp_path / "corpus.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in corpus), encoding="utf-8")
    out = tmp_path / "vectors"
    env = dict(os.environ, RAY_DISABLE_USAGE_STATS="1")
    run = subprocess.run(
        [sys.executable, str(EXAMPLE), "--input", str(source), "--output", str(out),
         "--model", model_path, "--workers", "2", "--threads-per-worker", "1",
         "--batch-size", "8", "--dim", "64"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]

    table = pq.read_table(out)
    ids = table.column("id").to_pylist()
    assert sorted(ids) == sorted(row["id"] for row in corpus), "every input exactly once"
    vectors = np.array(table.column("embedding").to_pylist(), dtype=np.float32)
    assert vectors.shape == (len(corpus), 64)

    single = Embedder(model_path, device="cpu", threads=1)
    expected = single.encode([row["text"] for row in corpus], dim=64)
    by_id = {row["id"]: i for i, row in enumerate(corpus)}
    order = [by_id[i] for i in ids]
    # Other batches than the single run's: a vector moves by up to 1e-5 in cosine (the
    # library's own tests allow the same for batch-mates).
    cosines = np.sum(vectors * expected[order], axis=1)
    assert cosines.min() >= 0.99999, cosines.min()
