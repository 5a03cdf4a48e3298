"""Embed a corpus with Ray Data through gguf_embed, writing Parquet (id, embedding).

Each Ray worker is an actor that loads the model once and embeds batch after batch; Ray
spreads the batches over the workers of one machine or of a whole cluster.

    python ray_embed_corpus.py --input corpus.jsonl --output vectors/ --workers 2

The input is JSON Lines with an "id" and a "text" per line (or a folder of such files, or
Parquet with those columns: --input-format parquet). The output folder receives Parquet files
with the columns id and embedding (a fixed-size list of float32).

On a cluster: start Ray there (`ray start --head` / `ray up`), make the model file reachable
from every node (a shared path, or a catalog name such as Qwen/Qwen3-Embedding-0.6B that each
node downloads into its Hugging Face cache once), and run this script with --address auto on
the head node (or submit it with `ray job submit -- python ray_embed_corpus.py ...`), with
input and output on storage every node can read and write (s3://, gs://, NFS).
"""

from __future__ import annotations

import argparse

import numpy as np
import pyarrow as pa
import ray


class EmbedBatches:
    """A Ray Data actor: one model per worker process, loaded in the constructor."""

    def __init__(self, model: str, quant: str, threads: int, dim: int | None, task: str | None):
        from gguf_embed import Embedder

        self.embedder = Embedder(model, quant=quant, device="cpu", threads=threads)
        self.dim = dim
        self.task = task

    def __call__(self, batch: pa.Table) -> pa.Table:
        texts = batch.column("text").to_pylist()
        vectors = self.embedder.encode(texts, dim=self.dim, task=self.task)
        flat = pa.array(np.ascontiguousarray(vectors).reshape(-1), type=pa.float32())
        embedding = pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])
        return pa.table({"id": batch.column("id"), "embedding": embedding})


def embed_corpus(
    input_path: str,
    output_path: str,
    *,
    model: str,
    quant: str = "Q8_0",
    workers: int = 2,
    threads_per_worker: int = 1,
    batch_size: int = 64,
    dim: int | None = None,
    task: str | None = None,
    input_format: str = "json",
) -> None:
    """Embeds every row of the input once and writes (id, embedding) Parquet files."""
    if input_format == "parquet":
        ds = ray.data.read_parquet(input_path, columns=["id", "text"])
    else:
        ds = ray.data.read_json(input_path)
    vectors = ds.select_columns(["id", "text"]).map_batches(
        EmbedBatches,
        fn_constructor_kwargs={
            "model": model,
            "quant": quant,
            "threads": threads_per_worker,
            "dim": dim,
            "task": task,
        },
        batch_format="pyarrow",
        batch_size=batch_size,
        concurrency=workers,
        num_cpus=threads_per_worker,
    )
    vectors.write_parquet(output_path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, help="JSON Lines (id, text) or Parquet")
    parser.add_argument("--input-format", choices=["json", "parquet"], default="json")
    parser.add_argument("--output", required=True, help="a folder for the Parquet files")
    parser.add_argument("--model", default="Qwen/Qwen3-Embedding-0.6B")
    parser.add_argument("--quant", default="Q8_0")
    parser.add_argument("--workers", type=int, default=2, help="model copies (actors)")
    parser.add_argument("--threads-per-worker", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--dim", type=int, default=None, help="Matryoshka size")
    parser.add_argument("--task", default=None, help="embed as queries with this task")
    parser.add_argument(
        "--address", default=None, help="a Ray cluster ('auto'); default: start Ray locally"
    )
    parser.add_argument(
        "--num-cpus", type=int, default=None,
        help="CPUs of a local Ray (default: workers x threads per worker, plus one)",
    )
    args = parser.parse_args()
    if args.address:
        ray.init(address=args.address)
    else:
        # One CPU beyond the workers' for Ray Data's read and write tasks: with every CPU held
        # by a model actor, the reads would wait for a CPU forever.
        ray.init(num_cpus=args.num_cpus or args.workers * args.threads_per_worker + 1)
    embed_corpus(
        args.input,
        args.output,
        model=args.model,
        quant=args.quant,
        workers=args.workers,
        threads_per_worker=args.threads_per_worker,
        batch_size=args.batch_size,
        dim=args.dim,
        task=args.task,
        input_format=args.input_format,
    )


if __name__ == "__main__":
    main()
