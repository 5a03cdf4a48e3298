//! Test models of the 4B and 8B models' other file types (Q4_K_M, Q5_K_M, Q6_K, Q5_0), written
//! by `models/make_quant_fixtures.py` with the `gguf` Python package next to the test virtual
//! environment under `target/`. They are not committed: K-quant rows are 256 values long, so
//! the vocabulary matrix alone is 32 MB per file.
//!
//! The files are made once per version of the script (its hash names the folder) and shared
//! by every test binary; a file lock serialises the making.

use std::collections::hash_map::DefaultHasher;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::python::{python_with, venv_dir};
use super::workspace::models_dir;

/// The file types the script writes, as its `--types` names them.
pub const FILE_TYPES: [&str; 4] = ["q4_k_m", "q5_k_m", "q6_k", "q5_0"];

/// The model of `file_type` (one of [`FILE_TYPES`]), made on first use.
pub fn quant_model(file_type: &str) -> PathBuf {
    assert!(FILE_TYPES.contains(&file_type), "{file_type}");
    let script = models_dir().join("make_quant_fixtures.py");
    let source = std::fs::read(&script).unwrap();
    let mut hasher = DefaultHasher::new();
    source.hash(&mut hasher);
    let dir = venv_dir()
        .parent()
        .unwrap()
        .join(format!("quant-fixtures-{:016x}", hasher.finish()));
    let path = dir.join(format!("quant-qwen3-embedding-{file_type}.gguf"));
    if path.exists() {
        return path;
    }
    // numpy is what the script computes with; gguf 0.19 reads K-quants (the script checks its
    // own quantisers against it) and writes GGUF.
    let python = python_with(&["gguf==0.19.0", "numpy"]);
    std::fs::create_dir_all(&dir).unwrap();
    let lock = File::create(dir.with_extension("lock")).unwrap();
    lock.lock().unwrap();
    if !all_made(&dir) {
        let out = Command::new(python)
            .arg(&script)
            .arg("--out")
            .arg(&dir)
            .output()
            .expect("running models/make_quant_fixtures.py");
        assert!(
            out.status.success(),
            "models/make_quant_fixtures.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    lock.unlock().unwrap();
    assert!(path.exists(), "{} was not written", path.display());
    path
}

fn all_made(dir: &Path) -> bool {
    FILE_TYPES
        .iter()
        .all(|t| dir.join(format!("quant-qwen3-embedding-{t}.gguf")).exists())
}
