"""Type stubs of the Rust extension module (gguf_embed._native)."""

import os
from typing import Literal, Optional, Sequence, Union, overload

import numpy as np
import numpy.typing as npt

__version__: str

class GgufEmbedError(RuntimeError):
    """An error from gguf-embed's engine."""

class ModelError(GgufEmbedError):
    """The model could not be found, downloaded or loaded."""

TaskName = Literal["web-search", "similarity", "bitext", "code-search"]

class Embedder:
    """A Qwen3-Embedding model loaded once, to embed texts from any thread."""

    def __init__(
        self,
        model: Union[str, os.PathLike[str]] = "Qwen/Qwen3-Embedding-0.6B",
        *,
        quant: str = "Q8_0",
        device: str = "auto",
        threads: Optional[int] = None,
        max_tokens: int = 8192,
        truncate: Literal["end", "start", "error"] = "end",
        offline: bool = False,
    ) -> None:
        """Loads a model: a .gguf path, a catalog name ("Qwen/Qwen3-Embedding-0.6B",
        "qwen3-embedding-4b:q4_k_m") or "hf:OWNER/REPO/FILE.gguf", found in or downloaded to
        the Hugging Face cache (HF_HOME, HF_TOKEN, HF_HUB_OFFLINE...). `device` is "auto",
        "cpu", "gpu" or "gpu:N"; texts over `max_tokens` are cut at the end (or the start),
        or raise ValueError with truncate="error". Raises ModelError when the model cannot
        be found, downloaded or loaded."""
    @property
    def dimensions(self) -> int:
        """The model's full output size."""
    @property
    def model_path(self) -> str:
        """The model file in use."""
    @overload
    def encode(
        self,
        texts: str,
        *,
        task: Optional[TaskName] = None,
        instruction: Optional[str] = None,
        query: bool = False,
        dim: Optional[int] = None,
        normalize: bool = True,
    ) -> npt.NDArray[np.float32]: ...
    @overload
    def encode(
        self,
        texts: Sequence[str],
        *,
        task: Optional[TaskName] = None,
        instruction: Optional[str] = None,
        query: bool = False,
        dim: Optional[int] = None,
        normalize: bool = True,
    ) -> npt.NDArray[np.float32]: ...
    def encode(self, texts, *, task=None, instruction=None, query=False, dim=None, normalize=True):
        """Embeds one text (a 1-D float32 array) or a list of texts (an (n, dim) array).
        Documents by default; query=True (web search), a `task` or your own `instruction`
        embed queries. `dim` is a Matryoshka size (32 up to `dimensions`). Releases the GIL.
        Raises TypeError for items that are not str, ValueError for bad options or a text
        over the limit with truncate="error"."""
    def tokenize(
        self,
        text: str,
        *,
        task: Optional[TaskName] = None,
        instruction: Optional[str] = None,
        query: bool = False,
    ) -> list[int]:
        """The token ids the model sees (instruction and <|endoftext|> included)."""
    def count_tokens(
        self,
        text: str,
        *,
        task: Optional[TaskName] = None,
        instruction: Optional[str] = None,
        query: bool = False,
    ) -> int:
        """The number of tokens the model sees, before truncation."""

class Reranker:
    """A Qwen3-Reranker model loaded once, to score how well documents answer a query from
    any thread."""

    def __init__(
        self,
        model: Union[str, os.PathLike[str]] = "Qwen3-Reranker-0.6B",
        *,
        quant: str = "Q8_0",
        device: str = "auto",
        threads: Optional[int] = None,
        max_tokens: int = 8192,
        truncate: Literal["end", "start", "error"] = "end",
        offline: bool = False,
    ) -> None:
        """Loads a reranker: a .gguf path, a catalog name ("Qwen3-Reranker-0.6B", the default:
        ggml-org/Qwen3-Reranker-0.6B-Q8_0-GGUF) or "hf:OWNER/REPO/FILE.gguf", found in or
        downloaded to the Hugging Face cache. Pairs over `max_tokens` (prompt included) get
        their document cut at the end (or the start), or raise ValueError with
        truncate="error"; the query is never cut. Raises ModelError when the model cannot be
        found, downloaded or loaded, or is an embedding model."""
    @property
    def model_path(self) -> str:
        """The model file in use."""
    @property
    def head(self) -> str:
        """Where the "yes" and "no" rows were read from."""
    def score(
        self,
        query: str,
        documents: Union[str, Sequence[str]],
        *,
        task: Optional[TaskName] = None,
        instruction: Optional[str] = None,
        log_odds: bool = False,
    ) -> npt.NDArray[np.float32]:
        """Each document's score in input order: P("yes") in [0, 1], or with log_odds=True
        logit("yes") - logit("no"). The instruction defaults to the web-search task's.
        Releases the GIL."""
    def rerank(
        self,
        query: str,
        documents: Union[str, Sequence[str]],
        *,
        top_n: Optional[int] = None,
        task: Optional[TaskName] = None,
        instruction: Optional[str] = None,
    ) -> list[tuple[int, float]]:
        """(index, score) pairs, best first (by log-odds), the best `top_n` if given."""
    def tokenize(
        self,
        query: str,
        document: str,
        *,
        task: Optional[TaskName] = None,
        instruction: Optional[str] = None,
    ) -> list[int]:
        """The token ids the model sees for the pair (the whole prompt)."""
