//! Paths every test crate of the workspace shares: the fixture models, the reference texts,
//! the build's output folder and the CLI. The bindings' tests include this file with
//! `#[path]`, so it uses nothing but std and serde_json.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The repository root (the workspace's root package).
pub fn root_dir() -> PathBuf {
    let mut dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    while !dir.join("models").join("reference.json").exists() {
        dir = dir
            .parent()
            .expect("the workspace root holds models/reference.json");
    }
    dir.to_path_buf()
}

/// The committed fixture models.
pub fn models_dir() -> PathBuf {
    root_dir().join("models")
}

/// The committed tiny model with the real Qwen3 vocabulary (F32 weights).
pub fn f32_model() -> PathBuf {
    models_dir().join("tiny-qwen3-embedding-f32.gguf")
}

/// The same weights quantized to Q8_0.
pub fn q8_model() -> PathBuf {
    models_dir().join("tiny-qwen3-embedding-q8_0.gguf")
}

/// The texts of `models/reference.json` (10 scripts, code, NFD accents, a literal
/// `<|endoftext|>`, an empty string, a 700-token text), in file order.
pub fn reference_texts() -> Vec<String> {
    let text = std::fs::read_to_string(models_dir().join("reference.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap().to_string())
        .collect()
}

/// A JSON array of numbers as floats.
pub fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// The folder of this build's profile (`target/release` for `cargo test --release`), where
/// cargo puts the CLI and the bindings' libraries.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test binary>
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

/// The CLI of the same build. Integration tests of the root package get it from cargo; the
/// bindings' tests find it next to their own build, where `cargo test --release` at the root
/// puts it (with `-p` for one binding only, build it first: `cargo build --release`).
pub fn cli() -> PathBuf {
    let path = profile_dir().join(format!("gguf-embed{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run `cargo test --release` at the repository root (it builds the \
         CLI with the bindings), or `cargo build --release` first",
        path.display()
    );
    path
}

/// Removes from `command` the variables cargo set for this test process: they describe the
/// test's own crate, and a cargo that a build tool (maturin, @napi-rs/cli) runs on this
/// workspace would rebuild for them. Cargo's own settings (`CARGO_HOME`, `CARGO_TARGET_DIR`,
/// `CARGO_BUILD_*`, network and registry settings) stay.
pub fn clear_cargo_test_env(command: &mut Command) {
    let setting = |key: &str| {
        [
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_",
            "CARGO_NET_",
            "CARGO_HTTP_",
            "CARGO_REGISTR",
        ]
        .iter()
        .any(|prefix| key.starts_with(prefix))
    };
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("CARGO_") && !setting(&key) {
            command.env_remove(&key);
        }
    }
}
