//! `gguf-embed serve` over real HTTP: the three APIs, the official OpenAI Python client,
//! dynamic batching under load, limits and errors, graceful shutdown.
//!
//! The OpenAI client test installs the official `openai` package into the tests' virtual
//! environment (`tests/common/python.rs`).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{case, cases, cli, f32_model, floats};
use gguf_embed::vector::cosine;
use serde_json::{Value, json};

/// A running server process on a free port.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(extra: &[&str]) -> Self {
        let model = f32_model().display().to_string();
        let mut child = Command::new(cli())
            .args(["serve", "-m", &model, "--port", "0", "--threads", "2"])
            .args(extra)
            .env_remove("GGUF_EMBED_API_KEY")
            .env("HF_HUB_OFFLINE", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        let base = loop {
            line.clear();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "server exited before listening"
            );
            if let Some(rest) = line.split("on http://").nth(1) {
                break format!("http://{}", rest.split_whitespace().next().unwrap());
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in stderr.lines() {});
        Self { child, base }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value, Option<String>) {
        self.post_raw(path, body.to_string().as_bytes(), &[])
    }

    fn post_raw(
        &self,
        path: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> (u16, Value, Option<String>) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut req = agent
            .post(&self.url(path))
            .header("Content-Type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut resp = req.send(body).unwrap();
        let status = resp.status().as_u16();
        let retry = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        let text = resp.body_mut().read_to_string().unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value, retry)
    }

    fn get(&self, path: &str) -> (u16, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut resp = agent.get(&self.url(path)).call().unwrap();
        (
            resp.status().as_u16(),
            resp.body_mut().read_to_string().unwrap(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The CLI's vectors for texts (documents), the reference the server must match.
fn cli_vectors(texts: &[&str], extra: &[&str]) -> Vec<Vec<f32>> {
    let model = f32_model().display().to_string();
    let out = Command::new(cli())
        .args(["-m", &model])
        .args(extra)
        .args(texts)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array().unwrap().iter().map(floats).collect()
}

fn assert_same(got: &[Vec<f32>], want: &[Vec<f32>]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.len(), w.len());
        let c = cosine(g, w);
        assert!(c >= 0.99999, "cosine {c}");
    }
}

#[test]
fn openai_endpoint_returns_the_cli_vectors_with_usage() {
    let s = Server::start(&[]);
    let texts = [case("english").text.as_str(), case("chinese").text.as_str()];
    let (status, body, _) = s.post(
        "/v1/embeddings",
        &json!({"input": texts, "model": "anything"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], "anything");
    let data = body["data"].as_array().unwrap();
    assert_eq!(data[1]["index"], 1);
    assert_eq!(data[0]["object"], "embedding");
    let got: Vec<Vec<f32>> = data.iter().map(|d| floats(&d["embedding"])).collect();
    assert_same(&got, &cli_vectors(&texts, &[]));
    let tokens = case("english").token_ids.len() + case("chinese").token_ids.len();
    assert_eq!(body["usage"]["prompt_tokens"], tokens);
    assert_eq!(body["usage"]["total_tokens"], tokens);

    // A single string, token arrays, dimensions and an instruction.
    let (_, one, _) = s.post("/v1/embeddings", &json!({"input": texts[0]}));
    assert_same(
        &[floats(&one["data"][0]["embedding"])],
        &cli_vectors(&texts[..1], &[]),
    );
    let ids = &case("english").token_ids;
    let (_, tok, _) = s.post("/v1/embeddings", &json!({"input": ids}));
    assert_same(
        &[floats(&tok["data"][0]["embedding"])],
        &cli_vectors(&texts[..1], &[]),
    );
    let (_, toks, _) = s.post("/v1/embeddings", &json!({"input": [ids, ids]}));
    assert_eq!(toks["data"].as_array().unwrap().len(), 2);
    let (_, dim, _) = s.post(
        "/v1/embeddings",
        &json!({"input": texts[0], "dimensions": 32}),
    );
    assert_same(
        &[floats(&dim["data"][0]["embedding"])],
        &cli_vectors(&texts[..1], &["--dim", "32"]),
    );
    let q = case("query_code");
    let (_, query, _) = s.post(
        "/v1/embeddings",
        &json!({"input": q.text, "task": "code-search"}),
    );
    assert!(cosine(&floats(&query["data"][0]["embedding"]), &q.embedding) >= 0.9999);
}

#[test]
fn the_official_openai_python_client_works_with_float_and_base64() {
    let s = Server::start(&[]);
    let texts = [
        case("russian").text.as_str(),
        case("python_code").text.as_str(),
    ];
    let script = r#"
import json, sys
from openai import OpenAI
client = OpenAI(base_url=sys.argv[1] + "/v1", api_key="unused")
texts = json.loads(sys.argv[2])
out = {}
for fmt in ("float", "base64"):
    r = client.embeddings.create(model="qwen3", input=texts, encoding_format=fmt)
    out[fmt] = [d.embedding for d in r.data]
# The default: the client asks for base64 and decodes it itself.
r = client.embeddings.create(model="qwen3", input=texts)
out["default"] = [list(d.embedding) for d in r.data]
out["usage"] = r.usage.prompt_tokens
print(json.dumps(out))
"#;
    let out = Command::new(common::python::python_with(&["openai"]))
        .args([
            "-c",
            script,
            &s.base,
            &serde_json::to_string(&texts).unwrap(),
        ])
        .output()
        .expect("running the test environment's python");
    assert!(
        out.status.success(),
        "the OpenAI client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let want = cli_vectors(&texts, &[]);
    for fmt in ["float", "default"] {
        let got: Vec<Vec<f32>> = v[fmt].as_array().unwrap().iter().map(floats).collect();
        assert_same(&got, &want);
    }
    // With encoding_format="base64" the client hands back the base64 string as is.
    for (b64, w) in v["base64"].as_array().unwrap().iter().zip(&want) {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        let got: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_same(&[got], std::slice::from_ref(w));
    }
    assert!(v["usage"].as_u64().unwrap() > 0);
}

#[test]
fn ollama_and_tei_shapes() {
    let s = Server::start(&[]);
    let texts = [case("german").text.as_str(), case("korean").text.as_str()];
    let want = cli_vectors(&texts, &[]);

    let (status, body, _) = s.post(
        "/api/embed",
        &json!({"model": "qwen3", "input": texts, "keep_alive": "5m"}),
    );
    assert_eq!(status, 200, "{body}");
    let got: Vec<Vec<f32>> = body["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .map(floats)
        .collect();
    assert_same(&got, &want);
    assert_eq!(body["model"], "qwen3");
    assert!(body["prompt_eval_count"].as_u64().unwrap() > 0);
    let (_, one, _) = s.post(
        "/api/embed",
        &json!({"model": "m", "input": texts[0], "dimensions": 48}),
    );
    assert_eq!(one["embeddings"][0].as_array().unwrap().len(), 48);

    let (status, body, _) = s.post("/embed", &json!({"inputs": texts}));
    assert_eq!(status, 200, "{body}");
    let got: Vec<Vec<f32>> = body.as_array().unwrap().iter().map(floats).collect();
    assert_same(&got, &want);
    let (_, raw, _) = s.post("/embed", &json!({"inputs": texts[0], "normalize": false}));
    let raw = floats(&raw[0]);
    let norm: f32 = raw.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() > 1e-3);
    assert!(cosine(&raw, &want[0]) >= 0.99999);
    let q = case("query_web");
    let (_, prompt, _) = s.post("/embed", &json!({"inputs": q.text, "prompt_name": "query"}));
    assert!(cosine(&floats(&prompt[0]), &q.embedding) >= 0.9999);

    let (status, models) = s.get("/v1/models");
    assert_eq!(status, 200);
    let models: Value = serde_json::from_str(&models).unwrap();
    assert_eq!(models["data"][0]["id"], "tiny-qwen3-embedding-f32");
    assert_eq!(s.get("/health").0, 200);
}

#[test]
fn over_long_inputs_follow_each_apis_truncate_flag() {
    let s = Server::start(&["--max-tokens", "32"]);
    let long = &case("long").text;
    let (status, body, _) = s.post("/v1/embeddings", &json!({"input": long}));
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["param"], "input");
    let (status, _, _) = s.post("/v1/embeddings", &json!({"input": long, "truncate": true}));
    assert_eq!(status, 200);
    let (status, _, _) = s.post("/api/embed", &json!({"model": "m", "input": long}));
    assert_eq!(status, 200, "Ollama truncates by default");
    let (status, body, _) = s.post(
        "/api/embed",
        &json!({"model": "m", "input": long, "truncate": false}),
    );
    assert_eq!(status, 413);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("more than the limit of 32")
    );
    let (status, body, _) = s.post("/embed", &json!({"inputs": long}));
    assert_eq!(status, 413);
    assert_eq!(body["error_type"], "Validation");
    let (left, _, _) = s.post(
        "/embed",
        &json!({"inputs": long, "truncate": true, "truncation_direction": "Left"}),
    );
    assert_eq!(left, 200);
}

#[test]
fn bad_requests_get_json_errors_and_the_server_keeps_serving() {
    let s = Server::start(&[
        "--max-inputs",
        "4",
        "--max-body",
        "4096",
        "--api-key",
        "sekret",
    ]);
    let auth = [("Authorization", "Bearer sekret")];
    let post = |path: &str, body: &[u8]| s.post_raw(path, body, &auth);

    let (status, body, _) = post("/v1/embeddings", b"{not json");
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    assert_eq!(body["error"]["type"], "invalid_request_error");

    let (status, body, _) = post("/v1/embeddings", br#"{"input": 42}"#);
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["param"], "input");
    let (status, _, _) = post("/v1/embeddings", br#"{"input": ["a", 1]}"#);
    assert_eq!(status, 422);
    let (status, body, _) = post("/v1/embeddings", br#"{"input": []}"#);
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("empty"));
    let (status, body, _) = post(
        "/v1/embeddings",
        br#"{"input": "a", "encoding_format": "hex"}"#,
    );
    assert_eq!(status, 400);
    assert_eq!(body["error"]["param"], "encoding_format");
    let (status, _, _) = post("/v1/embeddings", br#"{"input": "a", "dimensions": 7}"#);
    assert_eq!(status, 422);
    let (status, _, _) = post("/v1/embeddings", br#"{"input": [[999999999]]}"#);
    assert_eq!(status, 422);
    let (status, body, _) = post("/v1/embeddings", br#"{"input": ["a","b","c","d","e"]}"#);
    assert_eq!(status, 413);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--max-inputs")
    );
    let big = format!(r#"{{"input": "{}"}}"#, "x".repeat(5000));
    let (status, body, _) = post("/v1/embeddings", big.as_bytes());
    assert_eq!(status, 413, "{body}");

    // Each API keeps its own error shape.
    let (status, body, _) = post("/api/embed", br#"{"model": "m", "input": {"x": 1}}"#);
    assert_eq!(status, 422);
    assert!(body["error"].is_string());
    let (status, body, _) = post(
        "/embed",
        br#"{"inputs": "a", "truncation_direction": "Up"}"#,
    );
    assert_eq!(status, 422);
    assert_eq!(body["error_type"], "Validation");

    // Authentication.
    let (status, body, _) = s.post_raw("/v1/embeddings", br#"{"input": "a"}"#, &[]);
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "invalid_api_key");
    let (status, _, _) = s.post_raw(
        "/embed",
        br#"{"inputs": "a"}"#,
        &[("Authorization", "Bearer wrong")],
    );
    assert_eq!(status, 401);
    assert_eq!(s.get("/metrics").0, 401);
    assert_eq!(s.get("/health").0, 200);

    // Still serving.
    let (status, body, _) = post("/v1/embeddings", br#"{"input": "still alive"}"#);
    assert_eq!(status, 200, "{body}");
}

#[test]
fn concurrent_clients_are_batched_together_and_each_gets_its_own_vectors() {
    let s = Server::start(&[]);
    let texts: Vec<String> = cases()
        .iter()
        .filter(|c| c.task.is_none())
        .map(|c| c.text.clone())
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let want = cli_vectors(&refs, &[]);
    let clients = 32;
    let requests_per_client = 6;
    std::thread::scope(|scope| {
        for client in 0..clients {
            let (s, texts, want) = (&s, &texts, &want);
            scope.spawn(move || {
                for r in 0..requests_per_client {
                    // Mixed sizes: 1 to 4 inputs of mixed lengths, different per request.
                    let n = 1 + (client + r) % 4;
                    let picks: Vec<usize> = (0..n)
                        .map(|k| (client * 7 + r * 3 + k * 5) % texts.len())
                        .collect();
                    let input: Vec<&str> = picks.iter().map(|&i| texts[i].as_str()).collect();
                    let (status, body, _) = s.post("/v1/embeddings", &json!({"input": input}));
                    assert_eq!(status, 200, "{body}");
                    let data = body["data"].as_array().unwrap();
                    assert_eq!(data.len(), n);
                    for (k, &i) in picks.iter().enumerate() {
                        assert_eq!(data[k]["index"], k);
                        let c = cosine(&floats(&data[k]["embedding"]), &want[i]);
                        assert!(
                            c >= 0.99999,
                            "client {client} request {r} input {k}: cosine {c}"
                        );
                    }
                }
            });
        }
    });
    let (_, metrics) = s.get("/metrics");
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing in\n{metrics}"))
    };
    let decodes = value("gguf_embed_batch_requests_count");
    let single = value("gguf_embed_batch_requests_bucket{le=\"1.0\"}");
    assert!(decodes > 0.0);
    assert!(
        single < decodes,
        "no decode merged two requests:\n{metrics}"
    );
    let total = (clients * requests_per_client) as f64;
    assert_eq!(
        value("gguf_embed_requests_total{api=\"openai\",status=\"200\"}"),
        total
    );
    assert!(metrics.contains("gguf_embed_queue_depth 0"), "{metrics}");
}

#[test]
fn a_full_queue_answers_503_with_retry_after() {
    let s = Server::start(&["--max-queued", "2"]);
    let long = case("long").text.clone();
    let statuses: Vec<(u16, Option<String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let (s, long) = (&s, &long);
                scope.spawn(move || {
                    let (status, body, retry) = s.post(
                        "/v1/embeddings",
                        &json!({"input": [long, long, long, long]}),
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
    assert!(
        statuses.iter().any(|(s, _)| *s == 503),
        "the queue never filled: {statuses:?}"
    );
    assert!(statuses.iter().any(|(s, _)| *s == 200));
    assert!(
        statuses
            .iter()
            .filter(|(s, _)| *s == 503)
            .all(|(_, r)| r.as_deref() == Some("1"))
    );
    let (status, _, _) = s.post("/v1/embeddings", &json!({"input": "after the rush"}));
    assert_eq!(status, 200);
}

#[test]
fn sigterm_finishes_requests_in_flight_then_exits() {
    let mut s = Server::start(&["--batch-tokens", "256"]);
    let long = case("long").text.clone();
    let url = s.url("/v1/embeddings");
    let request = std::thread::spawn(move || {
        let body = json!({"input": vec![long; 64], "truncate": true});
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut resp = agent.post(&url).send(body.to_string().as_bytes()).unwrap();
        (
            resp.status().as_u16(),
            resp.body_mut().read_to_string().unwrap(),
        )
    });
    std::thread::sleep(Duration::from_millis(150));
    let pid = s.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let (status, body) = request.join().unwrap();
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 64);
    let exit = s.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
}
