"""gguf_embed.Reranker against the reference (Hugging Face transformers scoring the same
random-weight reranker by Qwen3-Reranker's rule: models/reranker-reference.json) and its own
contract: input order, ranking, top_n, log-odds, threads, asyncio, errors."""

import asyncio
import json
import os
import threading

import numpy as np
import pytest

from gguf_embed import GgufEmbedError, ModelError, Reranker

# Q8_0 scores within this of the float32 reference (the Rust tests measure the error).
Q8_0_SCORE_TOLERANCE = 0.015
Q8_0_LOG_ODDS_TOLERANCE = 0.1


@pytest.fixture(scope="session")
def cases():
    with open(os.environ["GGUF_EMBED_RERANKER_REFERENCE"], encoding="utf-8") as f:
        return json.load(f)["cases"]


@pytest.fixture(scope="session")
def reranker():
    return Reranker(os.environ["GGUF_EMBED_TEST_RERANKER"], device="cpu", threads=2)


@pytest.fixture(scope="session")
def france(cases):
    """The pairs that ask the first query with the default instruction."""
    return [c for c in cases if c["query"] == cases[0]["query"] and c["instruction"] is None]


def test_scores_match_the_reference_in_input_order(reranker, france):
    docs = [c["document"] for c in france]
    scores = reranker.score(france[0]["query"], docs)
    assert scores.dtype == np.float32 and scores.shape == (len(docs),)
    np.testing.assert_allclose(scores, [c["score"] for c in france], atol=Q8_0_SCORE_TOLERANCE)
    log_odds = reranker.score(france[0]["query"], docs, log_odds=True)
    np.testing.assert_allclose(log_odds, [c["log_odds"] for c in france],
                               atol=Q8_0_LOG_ODDS_TOLERANCE)
    # P(yes) is the logistic function of the log-odds.
    np.testing.assert_allclose(scores, 1 / (1 + np.exp(-log_odds)), rtol=1e-5)
    one = reranker.score(france[0]["query"], docs[0])
    assert one.shape == (1,) and one[0] == scores[0]


def test_instructions_and_tasks(reranker, cases):
    for case in cases:
        if case["instruction"] is None:
            continue
        kwargs = ({"task": "code-search"} if "code search" in case["instruction"]
                  else {"instruction": case["instruction"]})
        score = reranker.score(case["query"], [case["document"]], **kwargs)[0]
        assert abs(score - case["score"]) <= Q8_0_SCORE_TOLERANCE, case["name"]
        assert reranker.tokenize(case["query"], case["document"], **kwargs) == case["token_ids"]


def test_token_ids_equal_the_reference_tokenizers(reranker, cases):
    for case in cases:
        if case["instruction"] is None:
            assert reranker.tokenize(case["query"], case["document"]) == case["token_ids"]


def test_rerank_orders_best_first_with_top_n(reranker, france):
    docs = [c["document"] for c in france]
    ranked = reranker.rerank(france[0]["query"], docs)
    assert sorted(i for i, _ in ranked) == list(range(len(docs)))
    expected = sorted(range(len(docs)), key=lambda i: -france[i]["log_odds"])
    assert [i for i, _ in ranked] == expected
    scores = reranker.score(france[0]["query"], docs)
    assert all(score == scores[i] for i, score in ranked)
    assert reranker.rerank(france[0]["query"], docs, top_n=2) == ranked[:2]
    assert reranker.rerank("q", []) == []


def test_threads_share_the_reranker(reranker, france):
    docs = [c["document"] for c in france]
    alone = reranker.score(france[0]["query"], docs)
    results = [None] * 4

    def work(i):
        results[i] = reranker.score(france[0]["query"], docs)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        # A pair's score does not depend on what shares its decode: bit for bit.
        np.testing.assert_array_equal(r, alone)


def test_asyncio(reranker, france):
    docs = [c["document"] for c in france]
    got = asyncio.run(reranker.score_async(france[0]["query"], docs))
    np.testing.assert_array_equal(got, reranker.score(france[0]["query"], docs))
    ranked = asyncio.run(reranker.rerank_async(france[0]["query"], docs, top_n=1))
    assert ranked == reranker.rerank(france[0]["query"], docs)[:1]


def test_errors(reranker, cases):
    with pytest.raises(ModelError, match="is an embedding model"):
        Reranker(os.environ["GGUF_EMBED_TEST_MODEL"], device="cpu", threads=1)
    with pytest.raises(ModelError):
        Reranker("/nonexistent/reranker.gguf", offline=True)
    with pytest.raises(TypeError, match=r"texts\[1\] is None"):
        reranker.score("q", ["a", None])
    with pytest.raises(ValueError, match="either task or instruction"):
        reranker.score("q", ["a"], task="code-search", instruction="x")
    with pytest.raises(ValueError, match="unknown task"):
        reranker.score("q", ["a"], task="poetry")
    long = next(c for c in cases if c["name"] == "long")
    strict = Reranker(os.environ["GGUF_EMBED_TEST_RERANKER"], device="cpu", threads=1,
                      max_tokens=96, truncate="error")
    with pytest.raises(ValueError, match="more than the limit of 96"):
        strict.score(long["query"], [long["document"]])
    # Cutting documents cannot help a query that alone fills the limit.
    cutting = Reranker(os.environ["GGUF_EMBED_TEST_RERANKER"], device="cpu", threads=1,
                       max_tokens=96)
    with pytest.raises(ValueError, match="shorten the query"):
        cutting.score("why " * 200, ["a"])
    assert issubclass(ModelError, GgufEmbedError)
