//! The command-line contract: outputs, formats, error messages and exit codes.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{case, cli, f32_model, floats};
use gguf_embed::vector::cosine;
use serde_json::Value;

/// Runs the CLI with `args` and `stdin`, offline and without any user model configured.
fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(cli())
        .args(args)
        .env_remove("GGUF_EMBED_MODEL")
        .env_remove("RUST_LOG")
        .env("HF_HUB_OFFLINE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn model_arg() -> String {
    f32_model().display().to_string()
}

fn stdout_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn vectors(value: &Value) -> Vec<Vec<f32>> {
    value.as_array().unwrap().iter().map(floats).collect()
}

#[test]
fn text_arguments_print_one_json_array_matching_the_reference() {
    let m = model_arg();
    let (a, b) = (case("english"), case("japanese"));
    let out = run(&["-m", &m, &a.text, &b.text], b"");
    let got = vectors(&stdout_json(&out));
    assert_eq!(got.len(), 2);
    assert!(cosine(&got[0], &a.embedding) >= 0.9999);
    assert!(cosine(&got[1], &b.embedding) >= 0.9999);
}

#[test]
fn stdin_lines_give_one_vector_per_line_in_order() {
    let m = model_arg();
    let names = ["arabic", "rust_code", "empty", "hindi"];
    // rust_code spans lines; as line input each line is its own text, so use the others.
    let texts: Vec<&str> = names
        .iter()
        .filter(|n| **n != "rust_code")
        .map(|n| case(n).text.as_str())
        .collect();
    let input = texts.join("\n") + "\n";
    let out = run(&["-m", &m, "-f", "jsonl"], input.as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<Value> = out
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for (i, (line, name)) in lines.iter().zip(["arabic", "empty", "hindi"]).enumerate() {
        assert_eq!(line["index"], i);
        assert!(line.get("id").is_none());
        let v = floats(&line["embedding"]);
        assert!(cosine(&v, &case(name).embedding) >= 0.9999, "{name}");
    }
}

#[test]
fn jsonl_input_echoes_ids_and_handles_multiline_texts() {
    let m = model_arg();
    let code = case("rust_code");
    let input = format!(
        "{}\n\n{}\n",
        serde_json::json!({"id": "doc-1", "text": code.text}),
        serde_json::json!({"text": case("greek").text, "id": {"n": 2}})
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.jsonl");
    std::fs::write(&path, input).unwrap();
    let out = run(
        &["-m", &m, "--input", path.to_str().unwrap(), "-f", "jsonl"],
        b"",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["id"], "doc-1");
    assert_eq!(lines[1]["id"], serde_json::json!({"n": 2}));
    assert!(text.starts_with("{\"index\":0,\"id\":\"doc-1\",\"embedding\":["));
    let v = floats(&lines[0]["embedding"]);
    assert!(cosine(&v, &code.embedding) >= 0.9999);
}

#[test]
fn query_flags_format_the_prompt() {
    let m = model_arg();
    let q = case("query_web");
    let by_flag = vectors(&stdout_json(&run(&["-m", &m, "--query", &q.text], b"")));
    assert!(cosine(&by_flag[0], &q.embedding) >= 0.9999);
    let task = q.task.clone().unwrap();
    let by_text = vectors(&stdout_json(&run(&["-m", &m, "-i", &task, &q.text], b"")));
    assert!(cosine(&by_text[0], &q.embedding) >= 0.9999);
    let c = case("query_code");
    let by_task = vectors(&stdout_json(&run(
        &["-m", &m, "--task", "code-search", &c.text],
        b"",
    )));
    assert!(cosine(&by_task[0], &c.embedding) >= 0.9999);

    let both = run(&["-m", &m, "--query", "--task", "bitext", "x"], b"");
    assert_eq!(both.status.code(), Some(2), "{}", stderr(&both));
    let unknown = run(&["-m", &m, "--task", "poetry", "x"], b"");
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("known tasks"),
        "{}",
        stderr(&unknown)
    );
}

#[test]
fn dim_and_no_normalize_shape_the_output() {
    let m = model_arg();
    let c = case("korean");
    let v = vectors(&stdout_json(&run(&["-m", &m, "--dim", "32", &c.text], b"")));
    assert_eq!(v[0].len(), 32);
    let norm: f32 = v[0].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4);
    let raw = vectors(&stdout_json(&run(
        &["-m", &m, "--no-normalize", &c.text],
        b"",
    )));
    let norm: f32 = raw[0].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() > 1e-2);

    let bad = run(&["-m", &m, "--dim", "20", "x"], b"");
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("dimensions must be between 32 and 64"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn binary_formats_hold_the_same_vectors() {
    let m = model_arg();
    let texts = [case("thai").text.as_str(), case("emoji").text.as_str()];
    let json = vectors(&stdout_json(&run(&["-m", &m, texts[0], texts[1]], b"")));

    let raw = run(&["-m", &m, "-f", "f32", texts[0], texts[1]], b"");
    assert!(raw.status.success());
    let floats: Vec<f32> = raw
        .stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(floats.len(), 2 * 64);
    assert_eq!(&floats[..64], &json[0][..]);
    assert_eq!(&floats[64..], &json[1][..]);

    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("v.npy");
    let out = run(
        &[
            "-m",
            &m,
            "-f",
            "npy",
            "-o",
            npy.to_str().unwrap(),
            texts[0],
            texts[1],
        ],
        b"",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    let bytes = std::fs::read(&npy).unwrap();
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(header.contains("'shape': (2, 64)"), "{header}");
    let data = &bytes[10 + header_len..];
    assert_eq!(data.len(), 2 * 64 * 4);
    assert_eq!(
        f32::from_le_bytes(data[..4].try_into().unwrap()),
        json[0][0]
    );
    assert!(!Path::new(&format!("{}.partial", npy.display())).exists());
}

#[test]
fn empty_input_gives_an_empty_result_and_an_empty_string_is_a_text() {
    let m = model_arg();
    assert_eq!(vectors(&stdout_json(&run(&["-m", &m], b""))).len(), 0);
    let jsonl = run(&["-m", &m, "-f", "jsonl"], b"");
    assert!(jsonl.status.success() && jsonl.stdout.is_empty());
    let one = vectors(&stdout_json(&run(&["-m", &m, ""], b"")));
    assert_eq!(one.len(), 1);
    assert!(cosine(&one[0], &case("empty").embedding) >= 0.9999);
    let blank_line = vectors(&stdout_json(&run(&["-m", &m], b"\n")));
    assert_eq!(blank_line.len(), 1);
}

#[test]
fn invalid_utf8_names_the_line_and_fails() {
    let m = model_arg();
    let out = run(&["-m", &m], b"fine\nstill fine\nbroken \xc3\x28 here\n");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("input line 3 is not valid UTF-8"), "{err}");
    assert!(err.starts_with("gguf-embed: "), "{err}");

    let bad_json = run(&["-m", &m, "--input-format", "jsonl"], b"{\"text\": 1}\n");
    assert_eq!(bad_json.status.code(), Some(1));
    assert!(stderr(&bad_json).contains("input line 1: the \"text\" field must be a string"));
}

#[test]
fn over_long_inputs_truncate_with_a_warning_or_fail() {
    let m = model_arg();
    let long = &case("long").text;
    let out = run(&["-m", &m, "--max-tokens", "16", long], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("truncated"), "{}", stderr(&out));
    let fail = run(
        &[
            "-m",
            &m,
            "--max-tokens",
            "16",
            "--truncate",
            "error",
            "short",
            long,
        ],
        b"",
    );
    assert_eq!(fail.status.code(), Some(1));
    assert!(stderr(&fail).contains("input 1 has"), "{}", stderr(&fail));
    assert!(fail.stdout.is_empty() || fail.stdout == b"[\n");
    let too_big = run(&["-m", &m, "--max-tokens", "40000", "x"], b"");
    assert_eq!(too_big.status.code(), Some(1));
    assert!(
        stderr(&too_big).contains("context length 32768"),
        "{}",
        stderr(&too_big)
    );
}

#[test]
fn bad_model_files_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let original = std::fs::read(f32_model()).unwrap();

    let not_gguf = dir.path().join("notes.gguf");
    std::fs::write(&not_gguf, "just some text\n").unwrap();
    let truncated = dir.path().join("truncated.gguf");
    std::fs::write(&truncated, &original[..original.len() / 2]).unwrap();
    let header_only = dir.path().join("header.gguf");
    std::fs::write(&header_only, &original[..100]).unwrap();
    let llama = dir.path().join("llama.gguf");
    let mut patched = original.clone();
    let at =
        find(&patched, b"general.architecture").unwrap() + b"general.architecture".len() + 4 + 8;
    assert_eq!(&patched[at..at + 5], b"qwen3");
    patched[at..at + 5].copy_from_slice(b"llama");
    std::fs::write(&llama, &patched).unwrap();

    let cases = [
        (&not_gguf, "not a GGUF file"),
        (&truncated, "the file is truncated"),
        (&header_only, "download it again"),
        (&llama, "unsupported model architecture \"llama\""),
    ];
    for (path, expected) in cases {
        let out = run(&["-m", path.to_str().unwrap(), "hello"], b"");
        assert_eq!(out.status.code(), Some(1), "{}", path.display());
        let err = stderr(&out);
        assert!(err.contains(expected), "{}: {err}", path.display());
        assert!(!err.contains("panicked"), "{err}");
        assert!(out.stdout.is_empty());

        let inspect = run(&["inspect", path.to_str().unwrap()], b"");
        assert_eq!(inspect.status.code(), Some(1));
        assert!(stderr(&inspect).contains(expected));
    }
    let missing = run(&["-m", "/no/such/model.gguf", "hello"], b"");
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("/no/such/model.gguf: no such file"),
        "{}",
        stderr(&missing)
    );
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn inspect_prints_text_and_json() {
    let m = model_arg();
    let text = run(&["inspect", &m], b"");
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    for expected in [
        "architecture    qwen3",
        "dimensions      64",
        "<|endoftext|>   token 151643",
        "pooling (file)  last",
    ] {
        assert!(text.contains(expected), "{expected:?} in\n{text}");
    }
    let json = stdout_json(&run(&["inspect", &m, "--format", "json"], b""));
    assert_eq!(json["architecture"], "qwen3");
    assert_eq!(json["embedding_length"], 64);
    assert_eq!(json["vocab_size"], 151669);
    assert_eq!(json["add_eos_token"], true);
    assert_eq!(json["tensor_count"], 24);
}

#[test]
fn usage_errors_exit_2() {
    let m = model_arg();
    for args in [
        vec!["--no-such-flag"],
        vec!["-m", &m, "--format", "xml", "x"],
        vec!["-m", &m, "--input", "a.txt", "x"],
    ] {
        let out = run(&args, b"");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
    let help = run(&["--help"], b"");
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--instruction"));
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    let m = model_arg();
    let mut child = Command::new(cli())
        .args(["-m", &m, "-f", "jsonl", "--input", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        for i in 0..3000 {
            if writeln!(stdin, "line {i}").is_err() {
                break;
            }
        }
    });
    let mut first = [0u8; 64];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    feeder.join().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "exit {status:?}: {err}");
    assert!(err.is_empty(), "{err}");
}

/// Through the CLI, a text's vector is the same bit for bit alone and packed beside others in
/// one decode (the default): the short texts lie at cells 771 and 823 of the KV cache, behind
/// the long text (Q8_0 fixture, where flash attention's CPU kernels once made them differ;
/// vendor patch 7 made packing invariant).
#[test]
fn a_texts_vector_does_not_depend_on_its_batch_mates() {
    let m = common::q8_model().display().to_string();
    let long = case("long").text.as_str();
    let shorts = [
        case("python_code").text.as_str(),
        case("english").text.as_str(),
    ];
    let raw = |texts: &[&str]| -> Vec<u32> {
        // One decode holds the long text (771 tokens) and the short ones (52 and 11).
        let mut args = vec!["-m", m.as_str(), "-f", "f32", "--batch-tokens", "1024"];
        args.extend(texts);
        let out = run(&args, b"");
        assert!(out.status.success(), "{}", stderr(&out));
        out.stdout
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    };
    let beside = raw(&[long, shorts[0], shorts[1]]);
    assert_eq!(beside.len(), 3 * 64);
    for (i, short) in shorts.into_iter().enumerate() {
        let alone = raw(&[short]);
        assert_eq!(
            alone,
            beside[64 * (i + 1)..][..64],
            "short text {i}'s vector moved with its batch-mates"
        );
    }
}
