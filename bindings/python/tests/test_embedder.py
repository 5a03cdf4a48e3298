"""The Python package against the CLI (the same engine through another door), Hugging Face
tokenizers' token ids, and its own contract: shapes, tasks, Matryoshka sizes, threads,
asyncio, errors."""

import asyncio
import threading
import time

import numpy as np
import pytest

import gguf_embed
from gguf_embed import Embedder, GgufEmbedError, ModelError

TASKS = ["web-search", "similarity", "bitext", "code-search"]


def assert_same_vectors_across_batches(actual, expected):
    """Texts that shared a decode with other callers' texts: a different batch moves a vector
    by up to 1e-5 in cosine (the library's own tests allow the same), so compare directions."""
    assert actual.shape == expected.shape
    cosines = np.sum(actual * expected, axis=-1) / (
        np.linalg.norm(actual, axis=-1) * np.linalg.norm(expected, axis=-1)
    )
    assert cosines.min() >= 0.99999, cosines.min()


def test_documents_equal_the_clis_vectors(embedder, texts, cli):
    vectors = embedder.encode(texts)
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(texts), embedder.dimensions)
    np.testing.assert_array_equal(vectors, cli(texts))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("task", TASKS)
def test_queries_with_each_task_equal_the_cli(embedder, texts, cli, task):
    queries = texts[:6]
    np.testing.assert_array_equal(embedder.encode(queries, task=task), cli(queries, "--task", task))


def test_query_flag_and_custom_instruction_equal_the_cli(embedder, texts, cli):
    queries = texts[:6]
    np.testing.assert_array_equal(embedder.encode(queries, query=True), cli(queries, "--query"))
    instruction = "Find the function that does this"
    np.testing.assert_array_equal(
        embedder.encode(queries, instruction=instruction), cli(queries, "-i", instruction)
    )
    # A query is not a document.
    assert not np.array_equal(embedder.encode(queries, query=True), embedder.encode(queries))


@pytest.mark.parametrize("dim", [32, 64])
def test_matryoshka_sizes_equal_the_cli(embedder, texts, cli, dim):
    vectors = embedder.encode(texts, dim=dim)
    assert vectors.shape == (len(texts), dim)
    np.testing.assert_array_equal(vectors, cli(texts, "--dim", str(dim)))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


def test_normalize_false_equals_the_cli(embedder, texts, cli):
    raw = embedder.encode(texts[:4], normalize=False)
    np.testing.assert_array_equal(raw, cli(texts[:4], "--no-normalize"))
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)


def test_one_string_gives_a_vector(embedder, texts):
    one = embedder.encode(texts[0])
    assert one.shape == (embedder.dimensions,)
    np.testing.assert_array_equal(one, embedder.encode([texts[0]])[0])
    assert embedder.encode(texts[0], dim=32).shape == (32,)


def test_tuples_and_generators_are_accepted(embedder, texts):
    expected = embedder.encode(texts[:3])
    np.testing.assert_array_equal(embedder.encode(tuple(texts[:3])), expected)
    np.testing.assert_array_equal(embedder.encode(t for t in texts[:3]), expected)


def test_an_empty_list_gives_an_empty_matrix(embedder):
    empty = embedder.encode([])
    assert empty.shape == (0, embedder.dimensions)
    assert empty.dtype == np.float32


def test_token_ids_match_hugging_face_tokenizers(embedder, reference):
    for case in reference:
        ids = embedder.tokenize(case["text"], instruction=case["task"])
        assert ids == case["token_ids"], case["name"]
        assert embedder.count_tokens(case["text"], instruction=case["task"]) == len(ids)
    # A task's instruction costs tokens.
    assert embedder.count_tokens("read a file", task="code-search") > embedder.count_tokens("read a file")


def test_langchain_methods(embedder, texts):
    docs = embedder.embed_documents(texts[:3])
    assert isinstance(docs, list) and isinstance(docs[0], list) and isinstance(docs[0][0], float)
    np.testing.assert_array_equal(np.array(docs, dtype=np.float32), embedder.encode(texts[:3]))
    query = embedder.embed_query("read a file")
    np.testing.assert_array_equal(np.array(query, dtype=np.float32), embedder.encode("read a file", query=True))
    assert asyncio.run(embedder.aembed_query("read a file")) == query


def test_threads_embed_at_once_with_the_same_vectors(embedder, texts):
    expected = embedder.encode(texts)
    results, errors = {}, []

    def work(i):
        try:
            results[i] = [embedder.encode(texts) for _ in range(3)]
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(results) == 4
    for runs in results.values():
        for vectors in runs:
            assert_same_vectors_across_batches(vectors, expected)


def test_the_gil_is_released_while_embedding(embedder, texts):
    """Two threads' calls overlap in time; a call that held the GIL would run alone."""
    big = texts * 4
    spans, started = {}, threading.Event()

    def work(name, wait):
        if wait:
            started.wait()
        else:
            started.set()
        begin = time.perf_counter()
        embedder.encode(big)
        spans[name] = (begin, time.perf_counter())

    threads = [threading.Thread(target=work, args=(n, n == "second")) for n in ("first", "second")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (a0, a1), (b0, b1) = spans["first"], spans["second"]
    assert b0 < a1 and a0 < b1, f"the calls did not overlap: {spans}"


def test_encode_async_runs_beside_the_event_loop(embedder, texts):
    async def main():
        return await asyncio.gather(*(embedder.encode_async(texts, dim=64) for _ in range(3)))

    results = asyncio.run(main())
    assert len(results) == 3
    for vectors in results:
        assert_same_vectors_across_batches(vectors, embedder.encode(texts, dim=64))


@pytest.mark.parametrize(
    "texts, message",
    [
        (["fine", None], "texts[1] is None"),
        (["fine", 3], "texts[1] is int, not str"),
        ([b"bytes"], "texts[0] is bytes, not str"),
        (5, "texts must be a str or a list of str"),
        (None, "texts must be a str or a list of str"),
    ],
)
def test_items_that_are_not_strings_raise_type_error(embedder, texts, message):
    with pytest.raises(TypeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        embedder.encode(texts)


def test_bad_options_raise_value_error(embedder):
    with pytest.raises(ValueError, match="dimensions must be between 32"):
        embedder.encode(["x"], dim=7)
    with pytest.raises(ValueError, match="unknown task"):
        embedder.encode(["x"], task="poetry")
    with pytest.raises(ValueError, match="either task or instruction"):
        embedder.encode(["x"], task="similarity", instruction="mine")


def test_too_long_with_truncate_error_names_the_input(model_path):
    strict = Embedder(model_path, device="cpu", max_tokens=8, truncate="error")
    with pytest.raises(ValueError, match="input 1 has"):
        strict.encode(["short", "a text that is clearly longer than eight tokens, surely"])
    cut = Embedder(model_path, device="cpu", max_tokens=8)
    assert cut.encode("a text that is clearly longer than eight tokens, surely").shape == (cut.dimensions,)


def test_missing_and_uncached_models_raise_model_error(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere" / "model.gguf"
    with pytest.raises(ModelError, match="no such file"):
        Embedder(str(missing))
    not_a_model = tmp_path / "model.gguf"
    not_a_model.write_bytes(b"not a gguf file at all")
    with pytest.raises(ModelError, match="model.gguf"):
        Embedder(not_a_model)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelError, match="not in the model cache"):
        Embedder("Qwen/Qwen3-Embedding-0.6B", offline=True)
    # Not cached, and the Hub unreachable: the download fails with the library's message.
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(ModelError, match="127.0.0.1:9"):
        Embedder("Qwen/Qwen3-Embedding-0.6B")
    with pytest.raises(ModelError, match="unknown model"):
        Embedder("no-such-model")
    assert issubclass(ModelError, GgufEmbedError)


def test_bad_loader_options_raise_value_error(model_path):
    with pytest.raises(ValueError, match="unknown device"):
        Embedder(model_path, device="tpu")
    with pytest.raises(ValueError, match="truncate"):
        Embedder(model_path, truncate="middle")
    with pytest.raises(ValueError, match="threads"):
        Embedder(model_path, threads=0)


def test_package_surface(embedder, model_path):
    assert gguf_embed.__version__
    assert embedder.model_path == model_path
    assert "dimensions=" in repr(embedder)
    assert isinstance(embedder, gguf_embed._native.Embedder)
