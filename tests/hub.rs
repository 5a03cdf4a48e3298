//! The model cache against a local mock of the Hugging Face Hub.
//!
//! Every test gets its own cache (HF_HOME in a temporary directory) and its own mock server,
//! reached through HF_ENDPOINT, and drives the real CLI in separate processes.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::mock_hub::{Behaviour, MockFile, MockHub};
use common::{case, cli, q8_model};
use gguf_embed::vector::cosine;
use serde_json::Value;

const REPO: &str = "test-org/tiny-qwen3-GGUF";
const FILE: &str = "tiny-qwen3-embedding-q8_0.gguf";

fn spec() -> String {
    format!("hf:{REPO}/{FILE}")
}

/// A fresh cache directory and a mock Hub serving the tiny Q8_0 fixture.
struct Setup {
    home: tempfile::TempDir,
    hub: MockHub,
    file: MockFile,
}

impl Setup {
    fn new() -> Self {
        Self::serving(FILE, std::fs::read(q8_model()).unwrap())
    }

    /// A mock Hub serving `content` as `name` in REPO.
    fn serving(name: &str, content: Vec<u8>) -> Self {
        let hub = MockHub::start();
        let file = MockFile::new(content, 0xab);
        hub.add(REPO, name, file.clone());
        Self {
            home: tempfile::tempdir().unwrap(),
            hub,
            file,
        }
    }

    fn cache_dir(&self) -> PathBuf {
        self.home.path().join("hub")
    }

    fn repo_dir(&self) -> PathBuf {
        self.cache_dir().join("models--test-org--tiny-qwen3-GGUF")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(cli());
        c.args(args)
            .env("HF_HOME", self.home.path())
            .env("HF_ENDPOINT", &self.hub.endpoint)
            .env("GGUF_EMBED_CACHE", self.home.path().join("gguf-embed"))
            .env_remove("HF_HUB_CACHE")
            .env_remove("HF_HUB_OFFLINE")
            .env_remove("HF_TOKEN")
            .env_remove("GGUF_EMBED_MODEL")
            .env_remove("RUST_LOG");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = self.command(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstderr: {}",
        out.status,
        stderr(out)
    );
}

fn first_vector(out: &Output) -> Vec<f32> {
    assert_ok(out);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0].as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn no_partial_files(dir: &Path) -> bool {
    walk(dir)
        .iter()
        .all(|p| !p.to_string_lossy().ends_with(".incomplete"))
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn downloads_once_into_the_hf_layout_then_works_with_the_server_stopped() {
    let mut s = Setup::new();
    let text = &case("english").text;
    let v = first_vector(&s.run(&["-m", &spec(), text]));
    let reference = &case("english").embedding_q8_0;
    assert!(cosine(&v, reference) >= 0.999);

    // The standard layout: blob named by sha256, relative snapshot symlink, ref to the commit.
    let blob = s.repo_dir().join("blobs").join(&s.file.sha256);
    assert_eq!(
        std::fs::metadata(&blob).unwrap().len(),
        s.file.content.len() as u64
    );
    let pointer = s
        .repo_dir()
        .join("snapshots")
        .join(&s.file.commit)
        .join(FILE);
    let link = std::fs::read_link(&pointer).unwrap();
    assert_eq!(link, Path::new("../../blobs").join(&s.file.sha256));
    let main_ref = std::fs::read_to_string(s.repo_dir().join("refs/main")).unwrap();
    assert_eq!(main_ref, s.file.commit);
    assert!(no_partial_files(&s.cache_dir()));
    assert_eq!(s.hub.content_requests().len(), 1);

    // A cached file is used without any request, even with the server gone.
    let before = s.hub.seen().len();
    s.hub.stop();
    let again = first_vector(&s.run(&["-m", &spec(), text]));
    assert_eq!(again, v);
    assert_eq!(s.hub.seen().len(), before);
}

#[test]
fn offline_mode_uses_the_cache_and_never_the_network() {
    let s = Setup::new();
    let offline = [("HF_HUB_OFFLINE", "1")];
    let missing = s.run_env(&["-m", &spec(), "hello"], &offline);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("is not in the model cache"),
        "{}",
        stderr(&missing)
    );
    assert!(
        stderr(&missing).contains("models pull"),
        "{}",
        stderr(&missing)
    );
    let flag = s.run(&["--offline", "-m", &spec(), "hello"]);
    assert_eq!(flag.status.code(), Some(1));
    assert!(
        s.hub.seen().is_empty(),
        "offline mode made requests: {:?}",
        s.hub.seen()
    );

    assert_ok(&s.run(&["models", "pull", &spec()]));
    let requests = s.hub.seen().len();
    assert_ok(&s.run_env(&["-m", &spec(), "hello"], &offline));
    assert_ok(&s.run_env(&["models", "pull", &spec()], &offline));
    assert_eq!(s.hub.seen().len(), requests);
}

#[test]
fn corrupt_downloads_are_rejected_and_the_good_copy_is_kept() {
    let s = Setup::new();
    s.hub.set_behaviour(Behaviour {
        corrupt: true,
        ..Behaviour::default()
    });
    let out = s.run(&["models", "pull", &spec()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("is corrupt"), "{err}");
    assert!(
        err.contains(&format!("expected sha256 {}", s.file.sha256)),
        "{err}"
    );
    assert!(!s.repo_dir().join("blobs").join(&s.file.sha256).exists());
    assert!(no_partial_files(&s.cache_dir()));

    // With a good copy cached, a corrupt newer revision leaves it in place.
    s.hub.set_behaviour(Behaviour::default());
    assert_ok(&s.run(&["models", "pull", &spec()]));
    let mut newer = std::fs::read(q8_model()).unwrap();
    newer.extend_from_slice(&[0u8; 32]); // a different file (trailing padding)
    let newer = MockFile::new(newer, 0xcd);
    s.hub.add(REPO, FILE, newer.clone());
    s.hub.set_behaviour(Behaviour {
        corrupt: true,
        ..Behaviour::default()
    });
    let out = s.run(&["models", "pull", &spec()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&newer.sha256), "{}", stderr(&out));
    assert!(s.repo_dir().join("blobs").join(&s.file.sha256).exists());
    assert!(!s.repo_dir().join("blobs").join(&newer.sha256).exists());
    assert_ok(&s.run(&["-m", &spec(), "still works"]));
}

#[test]
fn a_dropped_connection_resumes_where_it_stopped() {
    let s = Setup::new();
    let half = s.file.content.len() / 2;
    s.hub.set_behaviour(Behaviour {
        drop_after: Some(half),
        ..Behaviour::default()
    });
    assert_ok(&s.run(&["models", "pull", &spec()]));
    let requests = s.hub.content_requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].range_start, None);
    assert_eq!(requests[1].range_start, Some(half as u64));
    // Nothing was downloaded twice.
    assert_eq!(s.hub.body_bytes(), s.file.content.len() as u64);
    let verify = s.run(&["models", "verify", &spec()]);
    assert_ok(&verify);
    assert!(stdout(&verify).starts_with("ok "), "{}", stdout(&verify));
}

#[test]
fn a_connection_that_keeps_breaking_is_a_clear_error_and_the_next_pull_resumes() {
    let s = Setup::new();
    let piece = 64 * 1024;
    s.hub.set_behaviour(Behaviour {
        drop_every: Some(piece),
        ..Behaviour::default()
    });
    let out = s.run(&["-m", &spec(), "hello"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("was interrupted and did not resume after 4 attempts")
            && err.contains(&format!(
                "the {} of {} bytes received are kept",
                4 * piece,
                s.file.content.len()
            ))
            && err.contains("try again"),
        "{err}"
    );
    // Nothing looks complete: no blob, no snapshot link; the bytes wait in the partial file.
    let blobs = s.repo_dir().join("blobs");
    assert!(!blobs.join(&s.file.sha256).exists());
    assert!(
        !s.repo_dir().join("snapshots").exists()
            || walk(&s.repo_dir().join("snapshots")).is_empty()
    );
    let partial = blobs.join(format!("{}.incomplete", s.file.sha256));
    assert_eq!(std::fs::metadata(&partial).unwrap().len(), 4 * piece as u64);
    let offline = s.run(&["--offline", "-m", &spec(), "hello"]);
    assert!(
        stderr(&offline).contains("is not in the model cache"),
        "{}",
        stderr(&offline)
    );

    // The connection is fixed: the next run resumes and embeds.
    s.hub.set_behaviour(Behaviour::default());
    let resumed = first_vector(&s.run(&["-m", &spec(), "hello"]));
    let local = first_vector(&s.run(&["-m", q8_model().to_str().unwrap(), "hello"]));
    assert_eq!(resumed, local);
    let last = s.hub.content_requests().pop().unwrap();
    assert_eq!(last.range_start, Some(4 * piece as u64));
    assert_eq!(s.hub.body_bytes(), s.file.content.len() as u64);
    assert!(no_partial_files(&s.cache_dir()));
}

#[test]
fn a_partial_download_left_by_a_killed_process_is_resumed() {
    let s = Setup::new();
    let blobs = s.repo_dir().join("blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    let third = s.file.content.len() / 3;
    std::fs::write(
        blobs.join(format!("{}.incomplete", s.file.sha256)),
        &s.file.content[..third],
    )
    .unwrap();
    assert_ok(&s.run(&["models", "pull", &spec()]));
    let requests = s.hub.content_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].range_start, Some(third as u64));
    assert_eq!(s.hub.body_bytes(), (s.file.content.len() - third) as u64);

    // A server that ignores ranges still ends with the right file.
    let s = Setup::new();
    std::fs::create_dir_all(s.repo_dir().join("blobs")).unwrap();
    std::fs::write(
        s.repo_dir()
            .join("blobs")
            .join(format!("{}.incomplete", s.file.sha256)),
        &s.file.content[..third],
    )
    .unwrap();
    s.hub.set_behaviour(Behaviour {
        ignore_range: true,
        ..Behaviour::default()
    });
    assert_ok(&s.run(&["models", "pull", &spec()]));
    assert_ok(&s.run(&["models", "verify", &spec()]));
}

#[test]
fn two_processes_pulling_at_once_download_once() {
    let s = Setup::new();
    // About 16 MB at 64 KiB per 10 ms: well over a second, so the two pulls overlap.
    s.hub.set_behaviour(Behaviour {
        throttle: Some(Duration::from_millis(10)),
        ..Behaviour::default()
    });
    let mut a = s
        .command(&["models", "pull", &spec()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut b = s
        .command(&["models", "pull", &spec()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(a.wait().unwrap().success());
    assert!(b.wait().unwrap().success());
    let content = s.hub.content_requests();
    assert_eq!(content.len(), 1, "{content:?}");
    assert_eq!(s.hub.body_bytes(), s.file.content.len() as u64);
    // Both print the same path.
    let mut pa = String::new();
    let mut pb = String::new();
    use std::io::Read;
    a.stdout.take().unwrap().read_to_string(&mut pa).unwrap();
    b.stdout.take().unwrap().read_to_string(&mut pb).unwrap();
    assert_eq!(pa, pb);
    assert!(pa.trim().ends_with(FILE));
}

#[test]
fn missing_files_and_refused_access_are_explained() {
    let s = Setup::new();
    let out = s.run(&["models", "pull", &format!("hf:{REPO}/nope.gguf")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("was not found on the Hub (HTTP 404)"),
        "{}",
        stderr(&out)
    );

    s.hub.set_behaviour(Behaviour {
        require_token: Some("hf_secret".into()),
        ..Behaviour::default()
    });
    let out = s.run(&["models", "pull", &spec()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("HTTP 401") && err.contains("set HF_TOKEN"),
        "{err}"
    );
    let wrong = s.run_env(&["models", "pull", &spec()], &[("HF_TOKEN", "hf_wrong")]);
    assert!(stderr(&wrong).contains("your token (HF_TOKEN) does not grant access"));

    assert_ok(&s.run_env(&["models", "pull", &spec()], &[("HF_TOKEN", "hf_secret")]));
    let auth: Vec<_> = s
        .hub
        .seen()
        .into_iter()
        .filter_map(|r| r.authorization)
        .collect();
    assert!(auth.contains(&"Bearer hf_secret".to_string()));
    // The token never goes to the content host (here the same host, other path: /cdn/).
    assert!(
        s.hub
            .content_requests()
            .iter()
            .all(|r| r.authorization.is_none())
    );

    // A token file in HF_HOME works too.
    let s2 = Setup::new();
    s2.hub.set_behaviour(Behaviour {
        require_token: Some("hf_file".into()),
        ..Behaviour::default()
    });
    std::fs::write(s2.home.path().join("token"), "hf_file\n").unwrap();
    assert_ok(&s2.run(&["models", "pull", &spec()]));
}

#[test]
fn a_pinned_official_file_must_match_its_pin() {
    let s = Setup::new();
    // The mock pretends to host the official file but serves the tiny fixture.
    s.hub.add(
        "Qwen/Qwen3-Embedding-0.6B-GGUF",
        "Qwen3-Embedding-0.6B-Q8_0.gguf",
        s.file.clone(),
    );
    let out = s.run(&["models", "pull", "Qwen/Qwen3-Embedding-0.6B"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("06507c7b42688469c4e7298b0a1e16deff06caf291cf0a5b278c308249c3e439"),
        "{err}"
    );
    assert!(err.contains(&s.file.sha256), "{err}");
    assert!(s.hub.content_requests().is_empty(), "nothing is downloaded");
}

#[test]
fn an_unusable_cache_is_a_clear_error() {
    let s = Setup::new();
    let blocker = s.home.path().join("not-a-dir");
    std::fs::write(&blocker, "x").unwrap();
    let cache = blocker.join("hub");
    let out = s.run_env(
        &["models", "pull", &spec()],
        &[("HF_HUB_CACHE", cache.to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("cannot use the model cache"), "{err}");
    assert!(err.contains("HF_HUB_CACHE"), "{err}");
}

#[test]
fn models_commands_list_path_verify_and_remove() {
    let s = Setup::new();
    let path = s.run(&["models", "path", &spec()]);
    assert_eq!(path.status.code(), Some(1));
    assert!(stderr(&path).contains("not in the cache"));

    let pulled = s.run(&["models", "pull", &spec(), "--format", "json"]);
    assert_ok(&pulled);
    let pulled: Value = serde_json::from_slice(&pulled.stdout).unwrap();
    assert_eq!(pulled["bytes"], s.file.content.len());

    let path = s.run(&["models", "path", &spec()]);
    assert_ok(&path);
    assert_eq!(stdout(&path).trim(), pulled["path"].as_str().unwrap());

    let list = s.run(&["models", "list", "--format", "json"]);
    assert_ok(&list);
    let list: Value = serde_json::from_slice(&list.stdout).unwrap();
    let cached = list["cached"].as_array().unwrap();
    assert_eq!(cached.len(), 1);
    assert_eq!(cached[0]["repo"], REPO);
    assert_eq!(cached[0]["verified"], true);
    let catalog = list["catalog"].as_array().unwrap();
    // 14 embedding files (0.6B, 4B, 8B in their quantisations) and the reranker.
    assert_eq!(catalog.len(), 15);
    let kinds = |kind: &str| catalog.iter().filter(|e| e["kind"] == kind).count();
    assert_eq!((kinds("embedding"), kinds("reranker")), (14, 1));
    let text = stdout(&s.run(&["models", "list"]));
    assert!(text.contains("0.6B  Q8_0"), "{text}");
    assert!(text.contains(&format!("hf:{REPO}/{FILE}@")), "{text}");

    // Damage the blob: verify reports it and fails.
    let blob = s.repo_dir().join("blobs").join(&s.file.sha256);
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[1000] ^= 1;
    std::fs::write(&blob, bytes).unwrap();
    let verify = s.run(&["models", "verify"]);
    assert_eq!(verify.status.code(), Some(1));
    assert!(stdout(&verify).contains("MISMATCH"), "{}", stdout(&verify));

    let rm = s.run(&["models", "rm", &spec()]);
    assert_ok(&rm);
    assert!(stdout(&rm).contains("removed"), "{}", stdout(&rm));
    assert!(!blob.exists());
    let again = s.run(&["models", "rm", &spec()]);
    assert_eq!(again.status.code(), Some(1));
}

/// The copies of `kind` (`bf16`, `q8_0x16`, `f16x16`) in the setup's gguf-embed cache.
fn copies(s: &Setup, kind: &str) -> usize {
    let suffix = format!(".{kind}.gguf");
    std::fs::read_dir(s.home.path().join("gguf-embed").join(kind)).map_or(0, |d| {
        d.flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(&suffix))
            .count()
    })
}

/// A hub serving the tiny model as an F16 file (its weights rounded through bfloat16, so
/// that a BF16 copy is lossless), and the spec that names it.
fn serving_tiny_f16() -> (Setup, String) {
    use common::f16_writer::{Rounding, write_f16_copy};

    let tmp = tempfile::tempdir().unwrap();
    let f16 = tmp.path().join("tiny-f16.gguf");
    write_f16_copy(&common::f32_model(), &f16, Rounding::ViaBfloat16);
    let s = Setup::serving("tiny-f16.gguf", std::fs::read(&f16).unwrap());
    (s, format!("hf:{REPO}/tiny-f16.gguf"))
}

#[test]
fn an_f16_model_gets_a_bf16_copy_that_models_rm_removes() {
    let (s, spec) = serving_tiny_f16();
    let out = s.run_env(&["-m", &spec, "--bf16", "always", "-v", "hello"], &[]);
    assert_ok(&out);
    assert!(
        stderr(&out).contains("lossless BF16 copy"),
        "{}",
        stderr(&out)
    );
    assert_eq!(copies(&s, "bf16"), 1);
    let never = s.run(&["-m", &spec, "--bf16", "never", "-v", "hello"]);
    assert_ok(&never);
    assert!(
        !stderr(&never).contains("BF16 kernels"),
        "{}",
        stderr(&never)
    );

    // A folder that cannot be made: a warning, then the F16 kernels.
    let blocker = s.home.path().join("a-file");
    std::fs::write(&blocker, b"not a folder").unwrap();
    let cache = blocker.join("cache");
    let fallback = s.run_env(
        &["-m", &spec, "--bf16", "always", "hello"],
        &[("GGUF_EMBED_CACHE", cache.to_str().unwrap())],
    );
    assert_ok(&fallback);
    let err = stderr(&fallback);
    assert!(
        err.contains("cannot write a lossless BF16 copy")
            && err.contains("running F16 kernels (set the"),
        "{err}"
    );

    assert_ok(&s.run(&["models", "rm", &spec]));
    assert_eq!(
        copies(&s, "bf16"),
        0,
        "models rm leaves the BF16 copy behind"
    );
}

/// The CLI's default (`--prepack auto`, `--bf16 never`) writes a copy of `spec` in the CPU
/// `layout` where this CPU runs the interleaved kernels, `--prepack never` neither writes nor
/// uses one and gives the same vectors, and `models rm` removes the copy.
fn the_cpu_layout_copy_is_written_used_and_removed(s: &Setup, spec: &str, layout: &str) {
    let expected = usize::from(gguf_embed::gguf::prepack::cpu_runs_interleaved_kernels());
    let out = s.run_env(&["-m", spec, "-v", "hello"], &[]);
    assert_ok(&out);
    assert_eq!(copies(s, layout), expected, "{}", stderr(&out));
    if expected == 1 {
        assert!(
            stderr(&out).contains(&format!("CPU-layout ({layout}) copy")),
            "{}",
            stderr(&out)
        );
    }
    let never = s.run(&["-m", spec, "--prepack", "never", "-v", "hello"]);
    assert_ok(&never);
    assert!(
        !stderr(&never).contains("CPU layout from"),
        "{}",
        stderr(&never)
    );
    assert_eq!(stdout(&never), stdout(&out), "the same vectors either way");

    assert_ok(&s.run(&["models", "rm", spec]));
    assert_eq!(
        copies(s, layout),
        0,
        "models rm leaves the CPU-layout copy behind"
    );
}

#[test]
fn a_q8_0_model_gets_a_cpu_layout_copy_that_models_rm_removes() {
    the_cpu_layout_copy_is_written_used_and_removed(&Setup::new(), &spec(), "q8_0x16");
}

#[test]
fn an_f16_model_gets_a_cpu_layout_copy_that_models_rm_removes() {
    let (s, spec) = serving_tiny_f16();
    the_cpu_layout_copy_is_written_used_and_removed(&s, &spec, "f16x16");
}

/// The CPU-layout copies in the setup's cache (their paths), checksum files left out.
fn copy_paths(s: &Setup, kind: &str) -> Vec<PathBuf> {
    let suffix = format!(".{kind}.gguf");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(s.home.path().join("gguf-embed").join(kind))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    paths.retain(|p| p.to_string_lossy().ends_with(&suffix));
    paths
}

/// Overwrites 8 bytes in the middle of a file (its tensor data), keeping its size and header.
fn damage(path: &Path) {
    use std::io::{Seek, SeekFrom, Write};
    let len = std::fs::metadata(path).unwrap().len();
    let mut f = std::fs::File::options().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(len / 2)).unwrap();
    f.write_all(&[0x5a; 8]).unwrap();
}

/// `models verify` re-hashes the copies of models: a damaged copy of an unchanged model is
/// written again, one whose model changed since is removed, and each is named.
#[test]
fn models_verify_rebuilds_or_removes_a_damaged_copy() {
    if !gguf_embed::gguf::prepack::cpu_runs_interleaved_kernels() {
        return eprintln!("this CPU has no interleaved kernels: no copies");
    }
    let s = Setup::new();
    let model = s.home.path().join("local.gguf");
    std::fs::copy(q8_model(), &model).unwrap();
    let model_arg = model.to_str().unwrap();
    let first = s.run(&["-m", model_arg, "hello"]);
    assert_ok(&first);
    let [copy] = copy_paths(&s, "q8_0x16").try_into().unwrap();
    let intact = std::fs::read(&copy).unwrap();

    let ok = s.run(&["models", "verify", model_arg]);
    assert_ok(&ok);
    assert!(stdout(&ok).starts_with("ok "), "{}", stdout(&ok));

    // 8 bytes of tensor data overwritten: the copy still loads, so only a hash can tell.
    damage(&copy);
    let verify = s.run(&["models", "verify", model_arg, "--format", "json"]);
    assert_ok(&verify);
    let report: Value = serde_json::from_slice(&verify.stdout).unwrap();
    let checked = &report["copies"][0];
    assert_eq!(checked["status"], "rebuilt", "{report}");
    assert!(
        checked["reason"].as_str().unwrap().starts_with("damaged"),
        "{report}"
    );
    assert!(
        std::fs::read(&copy).unwrap() == intact,
        "not rebuilt as it was"
    );
    let again = s.run(&["-m", model_arg, "hello"]);
    assert_eq!(
        stdout(&again),
        stdout(&first),
        "the rebuilt copy embeds as before"
    );

    // Damaged again, and its model changed since (touched): removed, not rebuilt.
    damage(&copy);
    let f = std::fs::File::options().write(true).open(&model).unwrap();
    f.set_modified(std::time::SystemTime::now()).unwrap();
    drop(f);
    let verify = s.run(&["models", "verify"]);
    assert_ok(&verify);
    assert!(
        stdout(&verify).contains(&format!(
            "REMOVED   CPU-layout (q8_0x16) copy {}",
            copy.display()
        )),
        "{}",
        stdout(&verify)
    );
    assert!(copy_paths(&s, "q8_0x16").is_empty());
}

#[test]
fn the_download_progress_is_reported_to_library_callers() {
    use gguf_embed::hub::{DownloadEvent, Hub, HubConfig, ModelSpec};
    use std::sync::{Arc, Mutex};

    let s = Setup::new();
    let config = HubConfig::from_vars(|name| match name {
        "HF_HOME" => Some(s.home.path().display().to_string()),
        "HF_ENDPOINT" => Some(s.hub.endpoint.clone()),
        _ => None,
    });
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let hub = Hub::new(config).with_progress(move |e| sink.lock().unwrap().push(e.clone()));
    let path = hub
        .resolve(&ModelSpec::parse(&spec(), "Q8_0").unwrap())
        .unwrap();
    assert!(path.ends_with(FILE));
    let events = events.lock().unwrap();
    assert!(
        matches!(events.first(), Some(DownloadEvent::Started { total, resumed_from: 0, .. }) if *total == s.file.content.len() as u64)
    );
    assert!(matches!(
        events.last(),
        Some(DownloadEvent::Finished { .. })
    ));
    let last_progress = events.iter().rev().find_map(|e| match e {
        DownloadEvent::Progress { downloaded, .. } => Some(*downloaded),
        _ => None,
    });
    assert_eq!(last_progress, Some(s.file.content.len() as u64));
}

#[test]
fn a_progress_callback_can_cancel_the_download_and_a_later_one_resumes() {
    use gguf_embed::hub::{DownloadEvent, Hub, HubConfig, HubError, ModelSpec};
    use std::sync::{Arc, Mutex};

    let s = Setup::new();
    let config = || {
        HubConfig::from_vars(|name| match name {
            "HF_HOME" => Some(s.home.path().display().to_string()),
            "HF_ENDPOINT" => Some(s.hub.endpoint.clone()),
            _ => None,
        })
    };
    let spec = ModelSpec::parse(&spec(), "Q8_0").unwrap();
    let total = s.file.content.len() as u64;
    // Cancel once at least a quarter arrived.
    let cancelled = Hub::new(config())
        .with_cancellable_progress(move |e| {
            !matches!(e, DownloadEvent::Progress { downloaded, .. } if *downloaded >= total / 4)
        })
        .resolve(&spec);
    let kept = match cancelled {
        Err(HubError::Cancelled { downloaded, .. }) => downloaded,
        other => panic!("expected a cancelled download, got {other:?}"),
    };
    assert!(kept >= total / 4 && kept < total, "{kept} of {total}");
    assert!(
        walk(&s.repo_dir())
            .iter()
            .all(|p| !p.to_string_lossy().contains("snapshots")),
        "a cancelled download must not appear in the cache as a model"
    );

    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let path = Hub::new(config())
        .with_cancellable_progress(move |e| {
            sink.lock().unwrap().push(e.clone());
            true
        })
        .resolve(&spec)
        .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), *s.file.content);
    let events = events.lock().unwrap();
    assert!(
        matches!(events.first(), Some(DownloadEvent::Started { resumed_from, .. }) if *resumed_from == kept),
        "the second download resumes where the first was cancelled: {:?}",
        events.first()
    );
}

/// The real Hub: downloads the official 0.6B Q8_0 file (639 MB) and embeds with it.
/// Opt-in: `cargo test --release --test hub -- --ignored`.
#[test]
#[ignore = "downloads 639 MB from huggingface.co"]
fn real_hub_download_of_the_official_model() {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(cli())
        .args([
            "--quant",
            "Q8_0",
            "--query",
            "what is the capital of France?",
        ])
        .env("HF_HOME", home.path())
        .env_remove("HF_ENDPOINT")
        .env_remove("HF_HUB_OFFLINE")
        .output()
        .unwrap();
    let v = first_vector(&out);
    assert_eq!(v.len(), 1024);
    let verify = Command::new(cli())
        .args(["models", "verify", "Qwen/Qwen3-Embedding-0.6B"])
        .env("HF_HOME", home.path())
        .output()
        .unwrap();
    assert_ok(&verify);
}
