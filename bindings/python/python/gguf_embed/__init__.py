"""Local Qwen3-Embedding text embeddings from GGUF files, run by llama.cpp.

    >>> from gguf_embed import Embedder
    >>> embedder = Embedder("Qwen/Qwen3-Embedding-0.6B")      # or a .gguf path
    >>> docs = embedder.encode(["first document", "second document"])   # (2, 1024) float32
    >>> query = embedder.encode("what is in the documents?", query=True)  # (1024,)
    >>> scores = docs @ query

The vectors are the ``gguf-embed`` CLI's: ``<|endoftext|>`` appended, last-token pooling,
Qwen's query instructions, NFC normalisation, L2 normalisation, Matryoshka sizes (``dim=``).
``encode`` releases the GIL, so threads embed at once (their texts share decodes) and
``encode_async`` runs it in a worker thread for asyncio code.

A second stage, Qwen3-Reranker, scores how well documents answer a query:

    >>> from gguf_embed import Reranker
    >>> reranker = Reranker()              # ggml-org/Qwen3-Reranker-0.6B-Q8_0-GGUF, or a path
    >>> reranker.score("capital of france", ["Paris is in France.", "Bread recipes"])
    array([0.98, 0.01], dtype=float32)     # P(yes), in input order
    >>> reranker.rerank("capital of france", docs, top_n=1)   # [(index, score)], best first
"""

from __future__ import annotations

import asyncio
from typing import Any

from ._native import Embedder as _NativeEmbedder
from ._native import GgufEmbedError, ModelError, __version__
from ._native import Reranker as _NativeReranker

__all__ = ["Embedder", "GgufEmbedError", "ModelError", "Reranker", "__version__"]


class Embedder(_NativeEmbedder):
    """A Qwen3-Embedding model, loaded once; safe to share between threads."""

    async def encode_async(self, texts: Any, **options: Any) -> Any:
        """``encode`` in a worker thread (``asyncio.to_thread``): the event loop keeps running."""
        return await asyncio.to_thread(self.encode, texts, **options)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Documents as lists of floats (LangChain's ``Embeddings`` interface)."""
        return self.encode(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        """A query with the web-search instruction, as a list of floats (LangChain)."""
        return self.encode(text, query=True).tolist()

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """``embed_documents`` for asyncio callers (LangChain's async interface)."""
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        """``embed_query`` for asyncio callers (LangChain's async interface)."""
        return await asyncio.to_thread(self.embed_query, text)


class Reranker(_NativeReranker):
    """A Qwen3-Reranker model, loaded once; safe to share between threads."""

    async def score_async(self, query: str, documents: Any, **options: Any) -> Any:
        """``score`` in a worker thread (``asyncio.to_thread``)."""
        return await asyncio.to_thread(self.score, query, documents, **options)

    async def rerank_async(self, query: str, documents: Any, **options: Any) -> Any:
        """``rerank`` in a worker thread (``asyncio.to_thread``)."""
        return await asyncio.to_thread(self.rerank, query, documents, **options)
