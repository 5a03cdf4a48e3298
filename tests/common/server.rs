//! A `gguf-embed serve` process for the server tests: started on a free port, its stderr
//! drained into a log the test can read, killed when dropped; and the CLI's vectors to compare
//! with.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use gguf_embed::vector::cosine;

use super::{cli, f32_model, floats};

/// A running server process on a free port.
pub struct Server {
    pub child: Child,
    pub base: String,
    /// Everything the server wrote to stderr after it started listening.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn start(extra: &[&str]) -> Self {
        Self::start_with(&f32_model(), extra)
    }

    pub fn start_with(model: &std::path::Path, extra: &[&str]) -> Self {
        let (child, base, stderr, writer) = Self::spawn(model, extra, &[]);
        // Only the server holds the write end: the reader sees the end when it exits.
        drop(writer);
        // Keep draining stderr so the server never blocks on a full pipe.
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Self { child, base, log }
    }

    /// Starts the server and reads its stderr up to the line that says where it listens.
    /// Returns a second write end of the server's stderr pipe too, with which a test can fill it.
    pub fn spawn(
        model: &std::path::Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> (
        Child,
        String,
        BufReader<std::io::PipeReader>,
        std::io::PipeWriter,
    ) {
        let model = model.display().to_string();
        let (reader, writer) = std::io::pipe().unwrap();
        let ours = writer.try_clone().unwrap();
        let child = Command::new(cli())
            .args(["serve", "-m", &model, "--port", "0", "--threads", "2"])
            .args(extra)
            .envs(env.iter().copied())
            .env_remove("GGUF_EMBED_API_KEY")
            .env("HF_HUB_OFFLINE", "1")
            .stdout(Stdio::null())
            .stderr(writer)
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(reader);
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
        (child, base, stderr, ours)
    }

    /// The server's address (host:port).
    pub fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }

    /// The `/health` fields.
    pub fn health(&self) -> Value {
        serde_json::from_str(&self.get("/health").1).unwrap()
    }

    /// One metric's value from `/metrics`.
    pub fn metric(&self, name: &str) -> f64 {
        let (_, metrics) = self.get("/metrics");
        metrics
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value, Option<String>) {
        self.post_raw(path, body.to_string().as_bytes(), &[])
    }

    pub fn post_raw(
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

    pub fn get(&self, path: &str) -> (u16, String) {
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
pub fn cli_vectors(texts: &[&str], extra: &[&str]) -> Vec<Vec<f32>> {
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

pub fn assert_same(got: &[Vec<f32>], want: &[Vec<f32>]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.len(), w.len());
        let c = cosine(g, w);
        assert!(c >= 0.99999, "cosine {c}");
    }
}
