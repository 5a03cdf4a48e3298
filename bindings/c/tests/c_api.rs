//! The C API from C: programs in tests/c are compiled with the system's C compiler against
//! include/gguf_embed.h and the cdylib, then run on the committed fixture model. Their
//! vectors must be the CLI's; bad arguments must come back as status codes with messages.

#[path = "../../../tests/common/mock_hub.rs"]
mod mock_hub;
#[path = "../../../tests/common/workspace.rs"]
mod workspace;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use workspace::{cli, f32_model, profile_dir, reference_texts};

/// How a C program links the library.
#[derive(Clone, Copy)]
enum Linking {
    Shared,
    /// The static library, with the system libraries it needs on Linux (llama.cpp is C++).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Static,
}

/// A command that runs a compiled C program against the library cargo just built. cargo test
/// puts `target/release` on the library path too, where `cargo build` left its own copy, maybe
/// older; the search path (RUNPATH) comes after that variable, so it is set to deps/ alone.
fn program(exe: &Path) -> Command {
    let mut c = Command::new(exe);
    let deps = profile_dir().join("deps");
    for var in [
        "LD_LIBRARY_PATH",
        "DYLD_LIBRARY_PATH",
        "DYLD_FALLBACK_LIBRARY_PATH",
    ] {
        c.env(var, &deps);
    }
    c
}

/// Compiles `tests/c/{name}.c` against the library and returns the executable.
fn compile(name: &str, out_dir: &Path, linking: Linking) -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Cargo leaves the library it builds for the tests in deps/ (`cargo build` copies it up).
    let lib_dir = profile_dir().join("deps");
    let library = match linking {
        Linking::Shared => lib_dir.join(shared_library()),
        Linking::Static => lib_dir.join("libgguf_embed_c.a"),
    };
    assert!(
        library.exists(),
        "{} is missing: cargo builds it with this crate's tests",
        library.display()
    );
    let link: Vec<String> = match linking {
        Linking::Shared => vec![
            "-L".into(),
            lib_dir.display().to_string(),
            format!("-Wl,-rpath,{}", lib_dir.display()),
            "-lgguf_embed_c".into(),
            "-lpthread".into(),
            "-lm".into(),
        ],
        Linking::Static => [library.display().to_string()]
            .into_iter()
            .chain(["-lstdc++", "-lm", "-lpthread", "-ldl"].map(String::from))
            .collect(),
    };
    let exe = out_dir.join(name);
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", "-o"])
        .arg(&exe)
        .arg(crate_dir.join("tests/c").join(format!("{name}.c")))
        .arg("-I")
        .arg(crate_dir.join("include"))
        .args(&link)
        .output()
        .unwrap_or_else(|e| panic!("running the C compiler {cc:?}: {e} (set CC to use another)"));
    assert!(
        out.status.success(),
        "compiling {name}.c failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

fn shared_library() -> &'static str {
    if cfg!(target_os = "macos") {
        "libgguf_embed_c.dylib"
    } else {
        "libgguf_embed_c.so"
    }
}

/// Runs the C embed program on `texts` and returns (tokens, vector) per text.
fn c_vectors(
    exe: &Path,
    dir: &Path,
    texts: &[String],
    task: i32,
    dim: usize,
) -> Vec<(u64, Vec<f32>)> {
    let out = run_embed(program(exe), &f32_model(), dir, texts, task, dim);
    assert!(
        out.status.success(),
        "the C program failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_c_vectors(&out)
}

/// Runs the C embed program (`command`, with its environment) on `model` and `texts`.
fn run_embed(
    mut command: Command,
    model: &Path,
    dir: &Path,
    texts: &[String],
    task: i32,
    dim: usize,
) -> std::process::Output {
    let mut records = Vec::new();
    for t in texts {
        records.extend_from_slice(format!("{}\n", t.len()).as_bytes());
        records.extend_from_slice(t.as_bytes());
        records.push(b'\n');
    }
    let file = dir.join("texts.bin");
    std::fs::write(&file, records).unwrap();
    command
        .arg(model)
        .arg(&file)
        .arg(task.to_string())
        .arg(dim.to_string())
        .output()
        .unwrap()
}

/// The C embed program's output: (tokens, vector) per text.
fn parse_c_vectors(out: &std::process::Output) -> Vec<(u64, Vec<f32>)> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|line| {
            let mut fields = line.split(' ');
            let tokens = fields.next().unwrap().parse().unwrap();
            (tokens, fields.map(|f| f.parse().unwrap()).collect())
        })
        .collect()
}

/// The CLI's jsonl output for `texts` with extra flags: (tokens, vector) per text.
fn cli_vectors(dir: &Path, texts: &[String], flags: &[&str]) -> Vec<Vec<f32>> {
    let input = dir.join("texts.jsonl");
    let lines: Vec<String> = texts
        .iter()
        .map(|t| serde_json::json!({ "text": t }).to_string() + "\n")
        .collect();
    std::fs::write(&input, lines.concat()).unwrap();
    let out = Command::new(cli())
        .arg("-m")
        .arg(f32_model())
        .args([
            "--device",
            "cpu",
            "--threads",
            "2",
            "--quiet",
            "-f",
            "jsonl",
            "--input",
        ])
        .arg(&input)
        .args(flags)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the CLI failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            workspace::floats(&v["embedding"])
        })
        .collect()
}

/// The largest absolute difference between two vectors of the same length.
fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn c_program_gets_the_clis_vectors_for_the_fixture_texts() {
    let dir = tempfile::tempdir().unwrap();
    let exe = compile("embed", dir.path(), Linking::Shared);
    let texts = reference_texts();
    // Documents at full size, then code-search queries at a Matryoshka size.
    for (task, dim, flags) in [
        (0, 0, vec![]),
        (4, 64, vec!["--task", "code-search", "--dim", "64"]),
    ] {
        let from_c = c_vectors(&exe, dir.path(), &texts, task, dim);
        let from_cli = cli_vectors(dir.path(), &texts, &flags);
        assert_eq!(from_c.len(), texts.len());
        assert_eq!(from_cli.len(), texts.len());
        for (i, ((tokens, c), cli)) in from_c.iter().zip(&from_cli).enumerate() {
            assert!(*tokens >= 1, "text {i}: no tokens");
            if dim > 0 {
                assert_eq!(c.len(), dim);
            }
            // Same engine, same texts in one call, same threads: the same floats.
            let diff = max_diff(c, cli);
            assert!(
                diff == 0.0,
                "task {task} text {i}: C and CLI differ by {diff}"
            );
        }
    }
}

#[test]
fn c_program_gets_errors_for_bad_arguments_and_embeds_from_two_threads() {
    run_faults(Linking::Shared);
}

#[cfg(target_os = "linux")]
#[test]
fn c_program_linked_with_the_static_library_runs_the_same_checks() {
    run_faults(Linking::Static);
}

/// Compiles and runs tests/c/faults.c: every check must pass.
fn run_faults(linking: Linking) {
    let dir = tempfile::tempdir().unwrap();
    let exe = compile("faults", dir.path(), linking);
    let out = program(&exe).arg(f32_model()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "faults.c failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for check in [
        "new_null_model",
        "new_null_out",
        "new_missing_file",
        "new_invalid_utf8",
        "new_hub_unreachable",
        "new_offline_not_cached",
        "new_unknown_device",
        "embed_null_texts",
        "embed_null_text_data",
        "embed_invalid_utf8",
        "embed_wrong_buffer_size",
        "embed_bad_dimensions",
        "embed_unknown_task",
        "embed_too_long",
        "count_tokens",
        "two_threads",
    ] {
        assert!(
            stdout.lines().any(|l| l == format!("ok {check}")),
            "check {check} did not pass:\n{stdout}"
        );
    }
    assert!(stdout.ends_with("done\n"), "{stdout}");
}

/// An interrupted download through the C API: a local stand-in for the Hub (HF_ENDPOINT)
/// whose every content response breaks off after 64 KiB. The C program gets
/// `GGUF_EMBED_STATUS_DOWNLOAD` with a message that says what happened and what to do, the
/// cache holds no file that passes for the model, and once the connection is fixed the next
/// load resumes and gives the local file's vectors.
#[test]
fn c_program_gets_a_download_error_for_an_interrupted_download_and_the_next_load_resumes() {
    use mock_hub::{Behaviour, MockFile, MockHub};

    const REPO: &str = "test-org/tiny-qwen3-GGUF";
    const FILE: &str = "tiny-qwen3-embedding-f32.gguf";
    const PIECE: usize = 64 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let exe = compile("embed", dir.path(), Linking::Shared);
    let hub = MockHub::start();
    let file = MockFile::new(std::fs::read(f32_model()).unwrap(), 0xab);
    hub.add(REPO, FILE, file.clone());
    let command = || {
        let mut c = program(&exe);
        c.env("HF_HOME", home.path())
            .env("HF_ENDPOINT", &hub.endpoint)
            .env("GGUF_EMBED_CACHE", home.path().join("gguf-embed"))
            .env_remove("HF_HUB_CACHE")
            .env_remove("HF_HUB_OFFLINE")
            .env_remove("HF_TOKEN");
        c
    };
    let spec = PathBuf::from(format!("hf:{REPO}/{FILE}"));
    let texts: Vec<String> = reference_texts().into_iter().take(4).collect();

    hub.set_behaviour(Behaviour {
        drop_every: Some(PIECE),
        ..Behaviour::default()
    });
    let out = run_embed(command(), &spec, dir.path(), &texts, 0, 0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("gguf_embed_embedder_new failed (status 6)"),
        "not GGUF_EMBED_STATUS_DOWNLOAD: {stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "the download of hf:{REPO}/{FILE} was interrupted and did not resume after 4 attempts"
        )) && stderr.contains(&format!(
            "the {} of {} bytes received are kept",
            4 * PIECE,
            file.content.len()
        )) && stderr.contains("check the network connection and try again"),
        "{stderr}"
    );
    let blobs = home
        .path()
        .join("hub/models--test-org--tiny-qwen3-GGUF/blobs");
    assert!(!blobs.join(&file.sha256).exists());
    let partial = blobs.join(format!("{}.incomplete", file.sha256));
    assert_eq!(std::fs::metadata(&partial).unwrap().len(), 4 * PIECE as u64);

    hub.set_behaviour(Behaviour::default());
    let out = run_embed(command(), &spec, dir.path(), &texts, 0, 0);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = hub.content_requests().pop().unwrap();
    assert_eq!(last.range_start, Some(4 * PIECE as u64));
    assert_eq!(hub.body_bytes(), file.content.len() as u64);
    assert!(!partial.exists());
    assert_eq!(
        parse_c_vectors(&out),
        c_vectors(&exe, dir.path(), &texts, 0, 0)
    );
}

/// The reranker from C: the library's scores (the same engine through another door, so the
/// same floats), in input order, and its faults.
#[test]
fn c_program_reranks_like_the_library_and_reports_faults() {
    let dir = tempfile::tempdir().unwrap();
    let exe = compile("rerank", dir.path(), Linking::Shared);
    let model = workspace::models_dir().join("tiny-qwen3-reranker-q8_0.gguf");
    let query = "What is the capital of France?";
    let docs = [
        "Paris is the capital and largest city of France.",
        "Bake the bread for forty minutes at 220 degrees.",
        "",
        "東京は日本の首都であり、世界有数の大都市です。",
    ];
    let mut records = Vec::new();
    for t in std::iter::once(&query).chain(&docs) {
        records.extend_from_slice(format!("{}\n", t.len()).as_bytes());
        records.extend_from_slice(t.as_bytes());
        records.push(b'\n');
    }
    let file = dir.path().join("pairs.bin");
    std::fs::write(&file, records).unwrap();
    let out = Command::new(&exe)
        .arg("score")
        .arg(&model)
        .arg(&file)
        .arg("0")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let options = gguf_embed::EmbedderOptions::default()
        .with_device(gguf_embed::Device::Cpu)
        .with_threads(2);
    let reranker = gguf_embed::Reranker::new(&model, options).unwrap();
    let mut want = reranker
        .rerank(query, &docs, &gguf_embed::RerankOptions::default())
        .unwrap();
    want.sort_by_key(|r| r.index);
    let got: Vec<(usize, f32, f32)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(got.len(), docs.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(*g, (w.tokens, w.score, w.log_odds));
    }

    let out = Command::new(&exe)
        .arg("faults")
        .arg(&model)
        .arg(f32_model())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "rerank.c faults failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for check in [
        "new_embedding_model",
        "new_null_model",
        "new_null_out",
        "embedder_refuses_a_reranker",
        "wrong_buffer_size",
        "null_documents",
        "null_reranker",
        "unknown_task",
        "invalid_utf8_query",
        "no_documents",
        "custom_instruction",
    ] {
        assert!(
            stdout.lines().any(|l| l == format!("ok {check}")),
            "check {check} did not pass:\n{stdout}"
        );
    }
    assert!(stdout.ends_with("done\n"), "{stdout}");
}
