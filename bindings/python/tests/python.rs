//! Builds the Python package with maturin (from PyPI, into the tests' virtual environment),
//! installs the wheel there and runs the pytest suites in this folder against it.
//!
//! maturin runs cargo on this workspace with the same profile and target folder as the
//! enclosing `cargo test --release`, so llama.cpp and the library are not compiled again.

#[path = "../../../tests/common/python.rs"]
mod python;
#[path = "../../../tests/common/workspace.rs"]
mod workspace;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The interpreter of the test environment, with the freshly built package installed (once
/// per test binary).
fn python_with_package(extra: &[&str]) -> PathBuf {
    static INSTALLED: OnceLock<PathBuf> = OnceLock::new();
    let python = INSTALLED.get_or_init(build_and_install).clone();
    if !extra.is_empty() {
        python::python_with(extra);
    }
    python
}

fn build_and_install() -> PathBuf {
    let python = python::python_with(&["maturin>=1.9.4,<2", "pytest>=8", "numpy>=1.21"]);
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let wheels = tempfile::tempdir().unwrap();
    let mut maturin = Command::new(&python);
    maturin
        .args([
            "-m",
            "maturin",
            "build",
            "--release",
            "--compatibility",
            "linux",
        ])
        .arg("--manifest-path")
        .arg(crate_dir.join("Cargo.toml"))
        .arg("--interpreter")
        .arg(&python)
        .arg("--out")
        .arg(wheels.path());
    // The inner cargo must not see the variables cargo set for this test crate.
    workspace::clear_cargo_test_env(&mut maturin);
    let out = maturin.output().expect("running maturin");
    assert!(
        out.status.success(),
        "maturin build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wheel = std::fs::read_dir(wheels.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .expect("maturin wrote no wheel");
    let name = wheel.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.contains("abi3"), "{name} is not an abi3 wheel");
    let out = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(["--force-reinstall", "--no-deps"])
        .arg(&wheel)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pip could not install {name}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    python
}

/// Runs one pytest file against the installed package.
fn pytest(file: &str, extra_packages: &[&str]) {
    let python = python_with_package(extra_packages);
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let out = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(tests.join(file))
        .env("GGUF_EMBED_TEST_MODEL", workspace::f32_model())
        .env("GGUF_EMBED_CLI", workspace::cli())
        .env(
            "GGUF_EMBED_REFERENCE",
            workspace::models_dir().join("reference.json"),
        )
        .env(
            "GGUF_EMBED_TEST_RERANKER",
            workspace::models_dir().join("tiny-qwen3-reranker-q8_0.gguf"),
        )
        .env(
            "GGUF_EMBED_RERANKER_REFERENCE",
            workspace::models_dir().join("reranker-reference.json"),
        )
        // The package must come from the installed wheel, not from the source folder.
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pytest {file} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn python_package_matches_the_cli_and_handles_bad_input() {
    pytest("test_embedder.py", &[]);
}

#[test]
fn python_reranker_matches_the_reference_and_handles_bad_input() {
    pytest("test_reranker.py", &[]);
}

#[test]
fn ray_example_embeds_a_corpus_once_on_two_local_workers() {
    pytest("test_ray_corpus.py", &["ray[data]>=2.40", "pyarrow>=14"]);
}

#[test]
fn an_interrupted_download_is_a_model_error_and_the_next_load_resumes() {
    pytest("test_download.py", &[]);
}
