//! `gguf-embed serve` over real HTTP: the three APIs, the official OpenAI Python client,
//! dynamic batching under load, limits and errors, graceful shutdown.
//!
//! The OpenAI client test installs the official `openai` package into the tests' virtual
//! environment (`tests/common/python.rs`).

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::server::{Server, assert_same, cli_vectors};
use common::{case, cases, f32_model, floats};
use gguf_embed::vector::cosine;
use serde_json::{Value, json};

#[test]
fn openai_endpoint_returns_the_cli_vectors_with_usage() {
    let s = Server::start(&["--allow-token-input"]);
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

/// Token ids are read as Qwen3 ids, which no client sends by accident, while LangChain's
/// OpenAIEmbeddings sends tiktoken ids by default: refused unless the server allows them.
#[test]
fn token_input_is_refused_unless_the_server_allows_it() {
    let s = Server::start(&[]);
    let ids = &case("english").token_ids;
    for (path, body) in [
        ("/v1/embeddings", json!({"input": ids})),
        ("/v1/embeddings", json!({"input": [ids, ids]})),
        ("/embed", json!({"inputs": ids})),
    ] {
        let (status, body, _) = s.post(path, &body);
        assert_eq!(status, 422, "{path}: {body}");
        let message = body["error"]["message"]
            .as_str()
            .or(body["error"].as_str())
            .unwrap()
            .to_string();
        assert!(
            message.contains("--allow-token-input") && message.contains("tiktoken"),
            "{path}: {message}"
        );
    }
    // Text still works.
    let (status, _, _) = s.post("/v1/embeddings", &json!({"input": "text"}));
    assert_eq!(status, 200);
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
        "--allow-token-input",
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
    let (status, body, _) = post("/v1/embeddings", br#"{"input": [[999999999]]}"#);
    assert_eq!(status, 422);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("outside the vocabulary"),
        "{body}"
    );
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
    // Texts are packed into shared decodes (32 sequences per decode on the CPU). The F32
    // fixture decodes one text per decode by default, since packing is not bit-exact for F32
    // weights (tests/batch_invariance.rs); this test is about merging requests, so it packs.
    let s = Server::start(&["--batch-variant"]);
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
    let mut s = Server::start(&["--batch-tokens", "256", "--batch-sequences", "1"]);
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
    // Signal only once the request is queued (bounded by count, not time).
    let mut queued = 0;
    for _ in 0..2000 {
        queued = s.health()["queued"].as_u64().unwrap();
        if queued > 0 || request.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(queued > 0, "the request never showed up in the queue");
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
    // The server itself says the signal found work in flight.
    let log = s.log.lock().unwrap().join("\n");
    let in_flight: u64 = log
        .split("shutting down after the requests in flight (")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no shutdown line in the server's log:\n{log}"));
    assert!(
        in_flight > 0,
        "the signal came when nothing was in flight:\n{log}"
    );
}

/// Sends one POST over a fresh loopback connection; returns the status (0 when the server
/// closed the connection without an answer).
fn raw_post(addr: &str, path: &str, body: &str) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    // A guard against hanging forever, not a performance limit.
    stream
        .set_read_timeout(Some(Duration::from_secs(600)))
        .unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Lets this process (and the server it starts) hold a few thousand sockets.
fn raise_open_file_limit() {
    // SAFETY: getrlimit/setrlimit read and write one plain struct.
    unsafe {
        let mut limit = std::mem::zeroed::<libc::rlimit>();
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max.min(8192);
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
}

/// The server's thread count and resident memory (KiB), from /proc.
fn threads_and_rss(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("Threads:"), field("VmRSS:"))
}

/// How many connections a flood makes: 1,000, or fewer where the kernel caps the listen backlog
/// lower. The server asks for a deep listen backlog; the kernel caps it at net.core.somaxconn
/// (4096 by default). Past the cap, the kernel itself resets connections (SYN cookies), so on a
/// kernel set lower the flood is sized to fit.
fn flood_size() -> usize {
    let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096);
    1000.min(somaxconn * 3 / 4)
}

/// What a flood saw: each connection's status, and the server's most threads and RSS (KiB).
struct Flood {
    statuses: Vec<u16>,
    max_threads: u64,
    max_rss: u64,
}

impl Flood {
    fn count(&self, status: u16) -> usize {
        self.statuses.iter().filter(|&&s| s == status).count()
    }
}

/// `clients` concurrent POSTs of a long text to `/v1/embeddings`, all released at once.
fn flood(addr: &str, pid: u32, clients: usize) -> Flood {
    let body = json!({"input": case("long").text, "truncate": true}).to_string();
    let (mut max_threads, mut max_rss) = threads_and_rss(pid);
    let start = Arc::new(std::sync::Barrier::new(clients + 1));
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (addr, body, start) = (addr.to_string(), body.clone(), Arc::clone(&start));
            std::thread::Builder::new()
                .stack_size(128 << 10)
                .spawn(move || {
                    start.wait();
                    raw_post(&addr, "/v1/embeddings", &body)
                })
                .unwrap()
        })
        .collect();
    start.wait();
    while !handles.iter().all(|h| h.is_finished()) {
        let (threads, rss) = threads_and_rss(pid);
        max_threads = max_threads.max(threads);
        max_rss = max_rss.max(rss);
        std::thread::sleep(Duration::from_millis(10));
    }
    Flood {
        statuses: handles.into_iter().map(|h| h.join().unwrap()).collect(),
        max_threads,
        max_rss,
    }
}

/// 1,000 concurrent connections against `--max-queued 64`: each gets 200 or 503 (none is left
/// without an answer), the server's threads and memory stay bounded, the counters add up, and
/// the server answers normally afterwards. Run with `--nocapture` to see the figures.
#[cfg(target_os = "linux")]
#[test]
fn a_flood_of_connections_gets_answers_with_bounded_threads_and_memory() {
    raise_open_file_limit();
    let s = Server::start(&["--max-queued", "64"]);
    let pid = s.child.id();
    let (threads_before, rss_before) = threads_and_rss(pid);
    let clients = flood_size();
    let f = flood(&s.addr(), pid, clients);
    let (ok, busy) = (f.count(200), f.count(503));
    let (max_threads, max_rss) = (f.max_threads, f.max_rss);
    eprintln!(
        "flood: {clients} connections, {ok} x 200, {busy} x 503; server threads {threads_before} \
         before, at most {max_threads} during; RSS {} MiB before, at most {} MiB during",
        rss_before >> 10,
        max_rss >> 10
    );
    assert_eq!(
        ok + busy,
        clients,
        "statuses other than 200/503: {:?}",
        f.statuses
    );
    assert!(ok > 0 && busy > 0, "{ok} x 200, {busy} x 503");
    // Before admission came first, every waiting request held one of tokio's 512 blocking
    // threads; now waiting takes none.
    assert!(
        max_threads <= threads_before + 16,
        "the server grew from {threads_before} to {max_threads} threads"
    );
    assert!(
        max_rss <= rss_before + (256 << 10),
        "the server's RSS grew from {} to {} MiB",
        rss_before >> 10,
        max_rss >> 10
    );
    let served = s.metric("gguf_embed_requests_total{api=\"openai\",status=\"200\"}");
    let refused = s.metric("gguf_embed_requests_total{api=\"openai\",status=\"503\"}");
    assert_eq!((served as usize, refused as usize), (ok, busy));
    assert_eq!(s.metric("gguf_embed_rejected_total") as usize, busy);
    let (status, _, _) = s.post("/v1/embeddings", &json!({"input": "after the flood"}));
    assert_eq!(status, 200);
    assert_eq!(s.health()["queued"], 0);
    // The 503s were warned about in a few lines, not one per refusal.
    let log = s.log.lock().unwrap().join("\n");
    let warned = log.lines().filter(|l| l.contains("WARN")).count();
    assert!(
        warned < 10 && warned < busy,
        "{warned} warning lines for {busy} refusals:\n{log}"
    );
}

/// Fills a pipe through a write end of it until it takes no more (the reader reads nothing).
#[cfg(target_os = "linux")]
fn fill_pipe(writer: &std::io::PipeWriter) -> usize {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let fd = writer.as_raw_fd();
    // SAFETY: fcntl reads and sets the flags of an open descriptor.
    unsafe {
        libc::fcntl(
            fd,
            libc::F_SETFL,
            libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK,
        )
    };
    let mut writer = writer;
    let mut written = 0;
    loop {
        match writer.write(&[b'x'; 4096]) {
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return written,
            Err(e) => panic!("{e}"),
        }
    }
}

/// A log nobody reads (a paused terminal, a stuck log shipper, an MCP client that never drains
/// stderr) must not stop the server. Its stderr pipe is filled to the brim once the server
/// listens, and never read again: a flood that logs (refusals are warnings) still gets 200 or
/// 503 on every connection, and the server answers afterwards, `/health` and `/metrics`
/// included. (Before the non-blocking log, the first warning blocked an async worker, and
/// soon nothing answered.)
#[cfg(target_os = "linux")]
#[test]
fn a_stalled_log_does_not_stop_the_server() {
    raise_open_file_limit();
    let (mut child, base, _stderr, writer) = Server::spawn(
        &f32_model(),
        &["--max-queued", "64"],
        &[("RUST_LOG", "debug")],
    );
    let filled = fill_pipe(&writer);
    assert!(filled >= 4096, "the pipe took only {filled} bytes");
    let addr = base.trim_start_matches("http://").to_string();
    let clients = flood_size();
    let f = flood(&addr, child.id(), clients);
    let (ok, busy) = (f.count(200), f.count(503));
    eprintln!(
        "stalled log ({filled} bytes in the pipe): {clients} connections, {ok} x 200, {busy} x 503"
    );
    assert_eq!(
        ok + busy,
        clients,
        "statuses other than 200/503: {:?}",
        f.statuses
    );
    assert!(ok > 0 && busy > 0, "{ok} x 200, {busy} x 503");
    let get = |path: &str| {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        agent
            .get(&format!("{base}{path}"))
            .call()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(get("/health"), 200);
    assert_eq!(get("/metrics"), 200);
    let body = json!({"input": "after the flood"}).to_string();
    assert_eq!(raw_post(&addr, "/v1/embeddings", &body), 200);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// 100 clients send large requests and hang up at once: their work stops (the engine's token
/// counter shows it), and the server then answers normally.
#[test]
fn clients_that_hang_up_stop_their_work() {
    use std::io::Write;
    let s = Server::start(&[]);
    let addr = s.addr();
    let long = case("long").text.clone();
    let (_, probe, _) = s.post("/v1/embeddings", &json!({"input": long, "truncate": true}));
    let per_input = probe["usage"]["prompt_tokens"].as_u64().unwrap();
    let decoded_before = s.metric("gguf_embed_batch_tokens_sum");
    let (clients, inputs) = (100u64, 64u64);
    let body = json!({"input": vec![long; inputs as usize], "truncate": true}).to_string();
    let streams: Vec<std::net::TcpStream> = (0..clients)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(&addr).unwrap();
            write!(
                stream,
                "POST /v1/embeddings HTTP/1.1\r\nHost: {addr}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            stream
        })
        .collect();
    // Hang up only once the server took every request and the engine is at work on them
    // (bounded by count, a guard against hanging forever: ten minutes on a loaded machine).
    let all = clients * inputs;
    for _ in 0..60_000 {
        let health = s.health();
        if health["admitted"] == all && health["queued"].as_u64() > Some(0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let health = s.health();
    assert_eq!(health["admitted"], all, "{health}");
    let decoded_at_hang_up = (s.metric("gguf_embed_batch_tokens_sum") - decoded_before) as u64;
    drop(streams);
    // Wait until nothing is admitted or queued (bounded likewise).
    for _ in 0..60_000 {
        let health = s.health();
        if health["queued"] == 0 && health["admitted"] == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let health = s.health();
    assert_eq!(
        (&health["queued"], &health["admitted"]),
        (&json!(0), &json!(0))
    );
    let decoded = (s.metric("gguf_embed_batch_tokens_sum") - decoded_before) as u64;
    let requested = clients * inputs * per_input;
    eprintln!(
        "hang-ups: {decoded} of the {requested} tokens requested were decoded \
         ({decoded_at_hang_up} when the clients hung up)"
    );
    assert!(
        decoded * 2 < requested,
        "{decoded} of {requested} tokens were decoded for clients that hung up"
    );
    let (status, _, _) = s.post("/v1/embeddings", &json!({"input": "still here"}));
    assert_eq!(status, 200);
}

/// Through the server, a text's vector is the same bit for bit whoever else is asking: alone,
/// and packed beside a long text in one decode (the default; Q8_0 fixture, base64 carries the
/// exact bits).
#[test]
fn a_texts_vector_does_not_depend_on_who_else_is_asking() {
    use base64::Engine as _;
    let s = Server::start_with(&common::q8_model(), &["--batch-tokens", "1024"]);
    let (short, long) = (case("english").text.clone(), case("long").text.clone());
    let vectors = |input: Value| -> Vec<Vec<u8>> {
        let (status, body, _) = s.post(
            "/v1/embeddings",
            &json!({"input": input, "encoding_format": "base64"}),
        );
        assert_eq!(status, 200, "{body}");
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                base64::engine::general_purpose::STANDARD
                    .decode(d["embedding"].as_str().unwrap())
                    .unwrap()
            })
            .collect()
    };
    let alone = vectors(json!([short]));
    let decodes = s.metric("gguf_embed_batch_sequences_count");
    let sequences = s.metric("gguf_embed_batch_sequences_sum");
    let beside = vectors(json!([long, short]));
    assert_eq!(
        (
            s.metric("gguf_embed_batch_sequences_count") - decodes,
            s.metric("gguf_embed_batch_sequences_sum") - sequences
        ),
        (1.0, 2.0),
        "the two texts share one decode"
    );
    assert_eq!(alone[0], beside[1], "the vector moved with its batch-mate");
    // Many clients at once, each with the short text: every answer has the same bits.
    std::thread::scope(|scope| {
        for _ in 0..8 {
            let (vectors, alone) = (&vectors, &alone);
            let (short, long) = (&short, &long);
            scope.spawn(move || {
                let got = vectors(json!([long, short]));
                assert_eq!(got[1], alone[0]);
            });
        }
    });
}
