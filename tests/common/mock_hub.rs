//! A local stand-in for the Hugging Face Hub's file API on 127.0.0.1, which can misbehave on
//! demand: corrupt content, dropped connections, required tokens, slow transfers, ignored
//! ranges. It speaks just enough HTTP/1.1 (one request per connection).
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use sha2::{Digest, Sha256};

/// A file the mock serves.
#[derive(Clone)]
pub struct MockFile {
    pub content: Arc<Vec<u8>>,
    pub sha256: String,
    pub commit: String,
}

impl MockFile {
    pub fn new(content: Vec<u8>, commit_seed: u8) -> Self {
        let sha256 = hex(&Sha256::digest(&content));
        Self {
            content: Arc::new(content),
            sha256,
            commit: format!("{commit_seed:02x}").repeat(20),
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How the mock misbehaves.
#[derive(Clone, Default)]
pub struct Behaviour {
    /// Serve bytes that differ from the announced sha256.
    pub corrupt: bool,
    /// Close the connection after this many body bytes, once.
    pub drop_after: Option<usize>,
    /// Close every content connection after this many body bytes (a connection that keeps
    /// breaking).
    pub drop_every: Option<usize>,
    /// Answer 401 unless `Authorization: Bearer <token>` is sent.
    pub require_token: Option<String>,
    /// Sleep this long per 64 KiB sent.
    pub throttle: Option<Duration>,
    /// Answer 200 with the whole file to range requests.
    pub ignore_range: bool,
}

/// A request the mock saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub range_start: Option<u64>,
    pub authorization: Option<String>,
}

#[derive(Default)]
struct State {
    /// (repo, file) -> file; every revision resolves to the file's commit.
    files: HashMap<(String, String), MockFile>,
    behaviour: Behaviour,
    dropped_once: bool,
    seen: Vec<Seen>,
    body_bytes: u64,
}

pub struct MockHub {
    pub endpoint: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    port: u16,
}

impl MockHub {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (Arc::clone(&state), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    let s = Arc::clone(&s);
                    std::thread::spawn(move || handle(conn, &s));
                }
            }
        });
        Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            state,
            stop,
            thread: Some(thread),
            port,
        }
    }

    pub fn add(&self, repo: &str, file: &str, mock: MockFile) {
        self.state
            .lock()
            .unwrap()
            .files
            .insert((repo.into(), file.into()), mock);
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        let mut s = self.state.lock().unwrap();
        s.behaviour = behaviour;
        s.dropped_once = false;
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Content bytes sent by the CDN route.
    pub fn body_bytes(&self) -> u64 {
        self.state.lock().unwrap().body_bytes
    }

    /// Content requests (the CDN route), with where they started.
    pub fn content_requests(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.path.starts_with("/cdn/"))
            .collect()
    }

    /// Stops accepting connections; later requests fail to connect.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for MockHub {
    fn drop(&mut self) {
        self.stop();
    }
}

fn handle(mut conn: TcpStream, state: &Mutex<State>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let range_start = headers
        .get("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split('-').next())
        .and_then(|n| n.parse().ok());
    let authorization = headers.get("authorization").cloned();
    state.lock().unwrap().seen.push(Seen {
        method: method.clone(),
        path: path.clone(),
        range_start,
        authorization: authorization.clone(),
    });

    if let Some(sha) = path.strip_prefix("/cdn/") {
        serve_content(&mut conn, state, sha, range_start, method == "HEAD");
        return;
    }
    // /{owner}/{name}/resolve/{revision}/{file}
    let segments: Vec<&str> = path.trim_start_matches('/').splitn(5, '/').collect();
    if segments.len() != 5 || segments[2] != "resolve" {
        respond(&mut conn, "404 Not Found", &[], b"");
        return;
    }
    let repo = format!("{}/{}", segments[0], segments[1]);
    let file_name = segments[4].to_string();
    let (file, behaviour) = {
        let s = state.lock().unwrap();
        (
            s.files.get(&(repo.clone(), file_name)).cloned(),
            s.behaviour.clone(),
        )
    };
    if let Some(token) = &behaviour.require_token
        && authorization.as_deref() != Some(&format!("Bearer {token}"))
    {
        respond(
            &mut conn,
            "401 Unauthorized",
            &[("X-Error-Code", "GatedRepo".into())],
            b"",
        );
        return;
    }
    let Some(file) = file else {
        respond(
            &mut conn,
            "404 Not Found",
            &[("X-Error-Code", "EntryNotFound".into())],
            b"",
        );
        return;
    };
    // Like the real Hub, large files redirect to another host (absolute URL).
    let host = headers.get("host").cloned().unwrap_or_default();
    let headers = [
        ("Location", format!("http://{host}/cdn/{}", file.sha256)),
        ("X-Repo-Commit", file.commit.clone()),
        ("X-Linked-Etag", format!("\"{}\"", file.sha256)),
        ("X-Linked-Size", file.content.len().to_string()),
        (
            "ETag",
            "\"0123456789abcdef0123456789abcdef01234567\"".into(),
        ),
    ];
    respond(&mut conn, "302 Found", &headers, b"");
}

fn serve_content(
    conn: &mut TcpStream,
    state: &Mutex<State>,
    sha: &str,
    range_start: Option<u64>,
    head: bool,
) {
    let (file, behaviour, drop_now) = {
        let mut s = state.lock().unwrap();
        let file = s.files.values().find(|f| f.sha256 == sha).cloned();
        let drop_now = s.behaviour.drop_after.is_some() && !s.dropped_once;
        if drop_now {
            s.dropped_once = true;
        }
        (file, s.behaviour.clone(), drop_now)
    };
    let Some(file) = file else {
        respond(conn, "404 Not Found", &[], b"");
        return;
    };
    let mut content = file.content.to_vec();
    if behaviour.corrupt {
        let mid = content.len() / 2;
        content[mid] ^= 0xff;
    }
    let total = content.len();
    let start = if behaviour.ignore_range {
        0
    } else {
        range_start.unwrap_or(0) as usize
    };
    let body = &content[start.min(total)..];
    let mut headers = vec![("Content-Length", body.len().to_string())];
    let status = if start > 0 {
        headers.push((
            "Content-Range",
            format!("bytes {start}-{}/{total}", total - 1),
        ));
        "206 Partial Content"
    } else {
        "200 OK"
    };
    write_head(conn, status, &headers);
    if head {
        return;
    }
    let limit = if drop_now {
        behaviour.drop_after.unwrap().min(body.len())
    } else if let Some(every) = behaviour.drop_every {
        every.min(body.len())
    } else {
        body.len()
    };
    for chunk in body[..limit].chunks(64 * 1024) {
        if conn.write_all(chunk).is_err() {
            return;
        }
        state.lock().unwrap().body_bytes += chunk.len() as u64;
        if let Some(t) = behaviour.throttle {
            std::thread::sleep(t);
        }
    }
    let _ = conn.flush();
    let _ = conn.shutdown(Shutdown::Both);
}

fn write_head(conn: &mut TcpStream, status: &str, headers: &[(&str, String)]) {
    let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = conn.write_all(head.as_bytes());
}

fn respond(conn: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut all = headers.to_vec();
    all.push(("Content-Length", body.len().to_string()));
    write_head(conn, status, &all);
    let _ = conn.write_all(body);
    let _ = conn.flush();
}
