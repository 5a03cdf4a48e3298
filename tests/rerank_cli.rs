//! `gguf-embed rerank`: documents from arguments, files and stdin, both output formats, the
//! reranker's own model variable, the catalog's reranker from a mock Hub (checked against the
//! sha256 the Hub publishes), and the refusals between embedder and reranker files.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::mock_hub::{Behaviour, MockFile, MockHub};
use common::rerankers::{Pair, pairs, reranker_q8};
use common::{cli, q8_model};
use serde_json::Value;

/// Q8_0 scores within this of the reference (tests/rerank.rs measures the error).
const Q8_0_SCORE_TOLERANCE: f64 = 0.015;

fn rerank(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(cli());
    c.arg("rerank")
        .args(["--threads", "2"])
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("GGUF_EMBED_MODEL")
        .env_remove("GGUF_EMBED_RERANKER");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn ok_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The pairs of the reference that ask the first query with the default instruction.
fn france() -> Vec<Pair> {
    let all = pairs();
    all.iter()
        .filter(|p| p.query == all[0].query && p.instruction.is_none())
        .cloned()
        .collect()
}

fn check_ranked(results: &[Value], pairs: &[Pair]) {
    assert_eq!(results.len(), pairs.len());
    let mut last = f64::INFINITY;
    for r in results {
        let pair = &pairs[r["index"].as_u64().unwrap() as usize];
        let score = r["score"].as_f64().unwrap();
        assert!(
            (score - pair.score).abs() <= Q8_0_SCORE_TOLERANCE,
            "{}: {score} vs {}",
            pair.name,
            pair.score
        );
        let log_odds = r["log_odds"].as_f64().unwrap();
        assert!(log_odds <= last, "best first");
        last = log_odds;
    }
}

#[test]
fn documents_as_arguments_print_a_sorted_json_array() {
    let pairs = france();
    let model = reranker_q8().display().to_string();
    let mut args = vec!["-m", &model, "--query", &pairs[0].query, "--"];
    args.extend(pairs.iter().map(|p| p.document.as_str()));
    let out = ok_json(&rerank(&args, &[]));
    check_ranked(out.as_array().unwrap(), &pairs);
    // --top-n keeps the best.
    let mut top = args.clone();
    top.splice(0..0, ["--top-n", "2"]);
    let best = ok_json(&rerank(&top, &[]));
    assert_eq!(best.as_array().unwrap()[..], out.as_array().unwrap()[..2]);
}

#[test]
fn jsonl_input_with_ids_and_jsonl_output_from_stdin() {
    let pairs = france();
    let model = reranker_q8().display().to_string();
    let mut child = Command::new(cli())
        .args(["rerank", "--threads", "2", "-m", &model, "--input", "-"])
        .args([
            "--input-format",
            "jsonl",
            "-f",
            "jsonl",
            "--query",
            &pairs[0].query,
        ])
        .env("HF_HUB_OFFLINE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for (i, p) in pairs.iter().enumerate() {
        let line = serde_json::json!({"text": p.document, "id": format!("doc-{i}")});
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    check_ranked(&lines, &pairs);
    for line in &lines {
        assert_eq!(line["id"], format!("doc-{}", line["index"]));
    }
}

#[test]
fn a_task_sets_the_instruction() {
    let pair = pairs().into_iter().find(|p| p.name == "rust_code").unwrap();
    let model = reranker_q8().display().to_string();
    let out = ok_json(&rerank(
        &[
            "-m",
            &model,
            "--task",
            "code-search",
            "--query",
            &pair.query,
            "--",
            &pair.document,
        ],
        &[],
    ));
    check_ranked(out.as_array().unwrap(), std::slice::from_ref(&pair));
}

#[test]
fn the_reranker_has_its_own_model_variable() {
    let pair = &france()[0];
    let model = reranker_q8().display().to_string();
    let args = ["--query", pair.query.as_str(), "--", pair.document.as_str()];
    let out = ok_json(&rerank(&args, &[("GGUF_EMBED_RERANKER", &model)]));
    check_ranked(out.as_array().unwrap(), std::slice::from_ref(pair));
    // The embedder's variable is not the reranker's: without GGUF_EMBED_RERANKER the catalog's
    // reranker is wanted (and, offline with an empty cache, missing).
    let home = tempfile::tempdir().unwrap();
    let embedder = q8_model().display().to_string();
    let out = rerank(
        &args,
        &[
            ("GGUF_EMBED_MODEL", &embedder),
            ("HF_HOME", home.path().to_str().unwrap()),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("qwen3-reranker-0.6b-q8_0.gguf"), "{err}");
    assert!(err.contains("not in the model cache"), "{err}");
}

#[test]
fn embedder_and_reranker_files_are_refused_by_each_other() {
    let embedder = q8_model().display().to_string();
    let out = rerank(&["-m", &embedder, "--query", "q", "--", "doc"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is an embedding model (its pooling type is LAST)"),
        "{err}"
    );
    let reranker = reranker_q8().display().to_string();
    let out = Command::new(cli())
        .args(["-m", &reranker, "some text"])
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is a reranker"), "{err}");
    assert!(err.contains("gguf-embed rerank"), "{err}");
}

/// The catalog's reranker comes from the Hub (here a mock serving the fixture as
/// ggml-org's file): downloaded once, checked against the sha256 the Hub publishes, refused
/// when the bytes do not match it.
#[test]
fn the_catalog_reranker_downloads_and_is_checked_against_the_hubs_sha256() {
    let hub = MockHub::start();
    let file = MockFile::new(std::fs::read(reranker_q8()).unwrap(), 0x5e);
    hub.add(
        "ggml-org/Qwen3-Reranker-0.6B-Q8_0-GGUF",
        "qwen3-reranker-0.6b-q8_0.gguf",
        file.clone(),
    );
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(cli())
            .args(args)
            .env("HF_HOME", home.path())
            .env("HF_ENDPOINT", &hub.endpoint)
            .env("GGUF_EMBED_CACHE", home.path().join("gguf-embed"))
            .env_remove("HF_HUB_CACHE")
            .env_remove("HF_HUB_OFFLINE")
            .env_remove("HF_TOKEN")
            .env_remove("GGUF_EMBED_RERANKER")
            .output()
            .unwrap()
    };
    // Corrupt bytes are refused and nothing is kept.
    hub.set_behaviour(Behaviour {
        corrupt: true,
        ..Behaviour::default()
    });
    let out = run(&["rerank", "--threads", "2", "--query", "q", "--", "d"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("corrupt") && err.contains(&file.sha256),
        "{err}"
    );
    // Good bytes: downloaded, verified, and used.
    hub.set_behaviour(Behaviour::default());
    let pair = &france()[0];
    let out = run(&[
        "rerank",
        "--threads",
        "2",
        "--query",
        &pair.query,
        "--",
        &pair.document,
    ]);
    check_ranked(
        ok_json(&out).as_array().unwrap(),
        std::slice::from_ref(pair),
    );
    let out = run(&["models", "verify", "Qwen3-Reranker-0.6B", "-f", "json"]);
    let verified = ok_json(&out);
    let files = &verified["files"];
    assert_eq!(files[0]["actual"], file.sha256, "{verified}");
    assert_eq!(files[0]["ok"], true, "{verified}");
    // Its CPU-layout copy is checked too.
    assert_eq!(verified["copies"][0]["status"], "ok", "{verified}");
    let out = run(&["models", "list", "-f", "json"]);
    let listed = ok_json(&out);
    let entry = listed["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "reranker")
        .unwrap()
        .clone();
    assert_eq!(entry["repo"], "ggml-org/Qwen3-Reranker-0.6B-Q8_0-GGUF");
    assert_eq!(entry["verified"], true, "{entry}");
}
