//! The Python clients that the tests drive (the official OpenAI and MCP clients, the Python
//! bindings), installed by the tests themselves into one virtual environment under `target/`,
//! so that `cargo test --release` needs nothing typed before it.
//!
//! The environment lives at `$CARGO_TARGET_TMPDIR/../test-venv` (`target/test-venv`), is
//! created with `python3 -m venv` on first use and shared by every test binary; packages are
//! installed from PyPI once and then found there. A file lock serialises the set-up between
//! test binaries that run at the same time.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The virtual environment's folder.
pub fn venv_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR has a parent")
        .join("test-venv")
}

/// The interpreter of the test environment, with every `packages` requirement (pip syntax,
/// e.g. `"openai>=1.40"`) installed. Panics with what is missing and how to get it when
/// python3 or its `venv` module is not there, or when pip fails.
pub fn python_with(packages: &[&str]) -> PathBuf {
    let dir = venv_dir();
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    let lock = File::create(dir.with_extension("lock")).unwrap();
    lock.lock().unwrap();
    let python = dir.join("bin").join("python");
    if !python.exists() {
        let out = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&dir)
            .output()
            .expect(
                "python3 is needed for the tests that drive Python clients \
                 (Debian/Ubuntu: sudo apt-get install python3 python3-venv)",
            );
        assert!(
            out.status.success(),
            "could not create the test virtual environment at {} (Debian/Ubuntu: sudo \
             apt-get install python3-venv): {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !dir.join("installed").join(marker(p)).exists())
        .collect();
    if !missing.is_empty() {
        let out = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(&missing)
            .output()
            .expect("running pip");
        assert!(
            out.status.success(),
            "pip could not install {missing:?} into {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::create_dir_all(dir.join("installed")).unwrap();
        for p in missing {
            File::create(dir.join("installed").join(marker(p))).unwrap();
        }
    }
    lock.unlock().unwrap();
    python
}

/// A file name that stands for one requirement string.
fn marker(requirement: &str) -> String {
    requirement
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}
