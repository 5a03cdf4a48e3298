//! The rerank routes over real HTTP (ureq): `/v1/rerank` and `/rerank` in the llama-server /
//! Jina / Cohere shape and in TEI's, a reranker served alone and beside an embedder, limits,
//! errors and metrics like the embeddings routes'.

mod common;

use common::rerankers::{Pair, pairs, reranker_q8, truncated_pairs};
use common::server::Server;
use common::{case, cli, f32_model, floats};
use gguf_embed::vector::cosine;
use serde_json::{Value, json};

/// Q8_0 scores and log-odds within these of the reference (tests/rerank.rs measures them).
const Q8_0_SCORE_TOLERANCE: f64 = 0.015;
const Q8_0_LOG_ODDS_TOLERANCE: f64 = 0.1;

/// The reference pairs that ask the first query with the default instruction.
fn france() -> Vec<Pair> {
    let all = pairs();
    all.iter()
        .filter(|p| p.query == all[0].query && p.instruction.is_none())
        .cloned()
        .collect()
}

fn documents(pairs: &[Pair]) -> Vec<&str> {
    pairs.iter().map(|p| p.document.as_str()).collect()
}

fn reranker_alone(extra: &[&str]) -> Server {
    Server::start_with(&reranker_q8(), extra)
}

/// Checks ranked results (`field`: where the score is) against the reference pairs.
fn check(results: &[Value], pairs: &[Pair], field: &str, log_odds: bool) {
    let mut last = f64::INFINITY;
    for r in results {
        let pair = &pairs[r["index"].as_u64().unwrap() as usize];
        let got = r[field].as_f64().unwrap();
        let (want, tolerance) = if log_odds {
            (pair.log_odds, Q8_0_LOG_ODDS_TOLERANCE)
        } else {
            (pair.score, Q8_0_SCORE_TOLERANCE)
        };
        assert!(
            (got - want).abs() <= tolerance,
            "{}: {got} vs {want}",
            pair.name
        );
        assert!(got <= last, "best first: {results:?}");
        last = got;
    }
}

#[test]
fn llama_server_jina_and_cohere_shape() {
    let s = reranker_alone(&[]);
    let pairs = france();
    let docs = documents(&pairs);
    let all_tokens: usize = pairs.iter().map(|p| p.token_ids.len()).sum();
    for route in ["/v1/rerank", "/rerank"] {
        let (status, body, _) = s.post(
            route,
            &json!({"model": "m", "query": pairs[0].query, "documents": docs, "top_n": 3,
                    "return_documents": true}),
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["model"], "m");
        assert_eq!(body["object"], "list");
        let results = body["results"].as_array().unwrap();
        assert_eq!(results.len(), 3);
        check(results, &pairs, "relevance_score", false);
        for r in results {
            let index = r["index"].as_u64().unwrap() as usize;
            assert_eq!(r["document"]["text"], docs[index]);
        }
        // Usage counts every pair scored, not only the top 3.
        assert_eq!(body["usage"]["prompt_tokens"], all_tokens);
        assert_eq!(body["usage"]["total_tokens"], all_tokens);
    }
    // Documents as objects (Jina, Cohere v1), no top_n, no documents back, the model's name.
    let objects: Vec<Value> = docs.iter().map(|d| json!({"text": d})).collect();
    let (status, body, _) = s.post(
        "/v1/rerank",
        &json!({"query": pairs[0].query, "documents": objects}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"], "tiny-qwen3-reranker-q8_0");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), docs.len());
    assert!(results.iter().all(|r| r.get("document").is_none()));
    check(results, &pairs, "relevance_score", false);
    // The instruction extension.
    let code = pairs_named("rust_code");
    let (_, body, _) = s.post(
        "/v1/rerank",
        &json!({"query": code.query, "documents": [code.document], "task": "code-search"}),
    );
    check(
        body["results"].as_array().unwrap(),
        std::slice::from_ref(&code),
        "relevance_score",
        false,
    );
    assert!(s.metric("gguf_embed_rerank_pairs_total") >= (2 * docs.len() + 1) as f64);
    assert!(s.metric("gguf_embed_requests_total{api=\"rerank\",status=\"200\"}") >= 4.0);
}

fn pairs_named(name: &str) -> Pair {
    pairs().into_iter().find(|p| p.name == name).unwrap()
}

#[test]
fn tei_shape_with_its_defaults_and_root_route() {
    let s = reranker_alone(&["--max-tokens", "96"]);
    // The pairs that fit the limit (TEI does not truncate unless asked).
    let pairs: Vec<Pair> = france()
        .into_iter()
        .filter(|p| p.token_ids.len() <= 96)
        .collect();
    assert!(pairs.len() >= 4);
    let docs = documents(&pairs);
    for route in ["/rerank", "/v1/rerank", "/"] {
        let (status, body, _) = s.post(
            route,
            &json!({"query": pairs[0].query, "texts": docs, "return_text": true}),
        );
        assert_eq!(status, 200, "{route}: {body}");
        let results = body.as_array().unwrap();
        assert_eq!(results.len(), docs.len());
        check(results, &pairs, "score", false);
        for r in results {
            assert_eq!(r["text"], docs[r["index"].as_u64().unwrap() as usize]);
        }
    }
    let (_, raw, _) = s.post(
        "/rerank",
        &json!({"query": pairs[0].query, "texts": docs, "raw_scores": true}),
    );
    let results = raw.as_array().unwrap();
    check(results, &pairs, "score", true);
    assert!(results.iter().all(|r| r.get("text").is_none()));

    // TEI refuses a text over the limit unless asked to truncate; the other shape truncates.
    let long = truncated_pairs()
        .into_iter()
        .find(|p| p.name == "long")
        .unwrap();
    let (status, body, _) = s.post(
        "/rerank",
        &json!({"query": long.query, "texts": [long.document]}),
    );
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error_type"], "Validation");
    assert!(body["error"].as_str().unwrap().contains("96"), "{body}");
    let (status, body, _) = s.post(
        "/rerank",
        &json!({"query": long.query, "texts": [long.document], "truncate": true,
                "raw_scores": true}),
    );
    assert_eq!(status, 200, "{body}");
    check(
        body.as_array().unwrap(),
        std::slice::from_ref(&long),
        "score",
        true,
    );
    let (status, body, _) = s.post(
        "/v1/rerank",
        &json!({"query": long.query, "documents": [long.document]}),
    );
    assert_eq!(status, 200, "{body}");
    check(
        body["results"].as_array().unwrap(),
        std::slice::from_ref(&long),
        "relevance_score",
        false,
    );
    assert_eq!(body["usage"]["prompt_tokens"], long.token_ids.len());
}

#[test]
fn bad_requests_get_each_shapes_errors_and_limits_apply() {
    let s = reranker_alone(&["--max-inputs", "3"]);
    let cases: [(&str, Value, u16, &str); 6] = [
        (
            "/v1/rerank",
            json!({"query": "q", "documents": []}),
            400,
            "empty",
        ),
        ("/rerank", json!({"query": "q", "texts": []}), 400, "empty"),
        ("/v1/rerank", json!({"query": "q"}), 422, "documents"),
        (
            "/v1/rerank",
            json!({"query": "q", "documents": ["a", "b", "c", "d"]}),
            413,
            "--max-inputs",
        ),
        (
            "/rerank",
            json!({"query": "q", "texts": ["a"], "task": "poetry"}),
            422,
            "unknown task",
        ),
        (
            "/rerank",
            json!({"query": "q", "texts": ["a"], "truncation_direction": "up"}),
            422,
            "truncation_direction",
        ),
    ];
    for (route, body, status, message) in cases {
        let (got, answer, _) = s.post(route, &body);
        assert_eq!(got, status, "{body} -> {answer}");
        let text = if answer.get("error_type").is_some() {
            answer["error"].as_str().unwrap().to_string()
        } else {
            answer["error"]["message"].as_str().unwrap().to_string()
        };
        assert!(text.contains(message), "{text}");
    }
    let (status, body, _) = s.post_raw("/v1/rerank", b"{not json", &[]);
    assert_eq!(status, 400, "{body}");
    // A reranker-only server has no embeddings, and says how to get them.
    let (status, body, _) = s.post("/v1/embeddings", &json!({"input": "x"}));
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no embedding model"),
        "{body}"
    );
    assert!(s.metric("gguf_embed_requests_total{api=\"tei_rerank\",status=\"422\"}") >= 2.0);
    let (_, models) = s.get("/v1/models");
    let models: Value = serde_json::from_str(&models).unwrap();
    assert_eq!(models["data"].as_array().unwrap().len(), 1);
    assert_eq!(models["data"][0]["type"], "reranker");
    // Still serving.
    let (status, _, _) = s.post("/rerank", &json!({"query": "q", "texts": ["a"]}));
    assert_eq!(status, 200);
}

#[test]
fn a_full_queue_answers_503_with_retry_after() {
    let s = reranker_alone(&["--max-queued", "2"]);
    let long = pairs_named("long");
    let statuses: Vec<(u16, Option<String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..12)
            .map(|_| {
                let (s, long) = (&s, &long);
                scope.spawn(move || {
                    let docs = [&long.document, &long.document, &long.document];
                    let (status, body, retry) = s.post(
                        "/v1/rerank",
                        &json!({"query": long.query, "documents": docs}),
                    );
                    if status == 503 {
                        assert_eq!(body["error"]["type"], "server_overloaded");
                    }
                    (status, retry)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        statuses.iter().all(|(s, _)| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    assert!(statuses.iter().any(|(s, _)| *s == 503), "{statuses:?}");
    assert!(statuses.iter().any(|(s, _)| *s == 200));
    assert!(
        statuses
            .iter()
            .filter(|(s, _)| *s == 503)
            .all(|(_, r)| r.as_deref() == Some("1"))
    );
    assert_eq!(s.health()["queued"], 0);
}

#[test]
fn an_embedder_and_a_reranker_in_one_server() {
    let reranker = reranker_q8().display().to_string();
    let s = Server::start_with(&f32_model(), &["--reranker", &reranker]);
    let pairs = france();
    let docs = documents(&pairs);
    let text = case("english");
    std::thread::scope(|scope| {
        let embed = scope.spawn(|| {
            (0..4)
                .map(|_| s.post("/v1/embeddings", &json!({"input": text.text})))
                .collect::<Vec<_>>()
        });
        let rerank = scope.spawn(|| {
            (0..4)
                .map(|_| s.post("/rerank", &json!({"query": pairs[0].query, "texts": docs})))
                .collect::<Vec<_>>()
        });
        for (status, body, _) in embed.join().unwrap() {
            assert_eq!(status, 200, "{body}");
            let v = floats(&body["data"][0]["embedding"]);
            assert!(cosine(&v, &text.embedding) >= 0.99999);
        }
        for (status, body, _) in rerank.join().unwrap() {
            assert_eq!(status, 200, "{body}");
            check(body.as_array().unwrap(), &pairs, "score", false);
        }
    });
    // `POST /` is the embedder's TEI route when the server has one.
    let (status, body, _) = s.post("/", &json!({"inputs": text.text}));
    assert_eq!(status, 200, "{body}");
    assert!(cosine(&floats(&body[0]), &text.embedding) >= 0.99999);
    let (_, models) = s.get("/v1/models");
    let models: Value = serde_json::from_str(&models).unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["tiny-qwen3-embedding-f32", "tiny-qwen3-reranker-q8_0"]
    );
}

#[test]
fn a_reranker_given_as_both_models_is_a_usage_error() {
    let reranker = reranker_q8().display().to_string();
    let out = std::process::Command::new(cli())
        .args([
            "serve",
            "-m",
            &reranker,
            "--reranker",
            &reranker,
            "--port",
            "0",
        ])
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is a reranker"), "{err}");
    // And an embedding model as the reranker is refused.
    let embedder = f32_model().display().to_string();
    let out = std::process::Command::new(cli())
        .args([
            "serve",
            "-m",
            &embedder,
            "--reranker",
            &embedder,
            "--port",
            "0",
        ])
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is an embedding model"), "{err}");
}
