//! `gguf-embed index` on repositories with bad files: each is reported and skipped, the rest is
//! indexed, and what the index held for a file it cannot read now is kept.
//!
//! Permission-denied cases need a user the file modes apply to: root reads any file. When
//! the tests run as root, the CLI runs as `nobody` (uid 65534) on a repository it owns;
//! otherwise as the current user.

#![cfg(target_os = "linux")]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::repos::{indexed_paths, write};
use common::{cli, f32_model};
use serde_json::Value;

const NOBODY: u32 = 65534;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Hands the whole tree to `nobody` when running as root (so that modes apply to the CLI).
fn give_away(root: &Path) {
    if !is_root() {
        return;
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        std::os::unix::fs::lchown(&p, Some(NOBODY), Some(NOBODY)).unwrap();
        if p.is_dir() && !p.is_symlink() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
}

/// Runs `gguf-embed index` offline on `repo` (as `nobody` when root) with JSON output.
fn index(repo: &Path, home: &Path, extra: &[&str]) -> Output {
    let mut cmd = Command::new(cli());
    cmd.args(["index", "--repo", repo.to_str().unwrap(), "-f", "json"])
        .args(["-m", f32_model().to_str().unwrap()])
        .args(extra)
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("GGUF_EMBED_MODEL")
        .env("HOME", home)
        .env("GGUF_EMBED_CACHE", home.join("cache"))
        .env("HF_HOME", home.join("hf"))
        .stdin(Stdio::null());
    if is_root() {
        cmd.uid(NOBODY).gid(NOBODY);
    }
    cmd.output().unwrap()
}

fn report(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "the run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn indexed(repo: &Path) -> Vec<String> {
    indexed_paths(&repo.join(".gguf-embed/index.sqlite"))
}

/// The unreadable entries of a report as (path, reason), sorted.
fn unreadable(report: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = report["unreadable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["path"].as_str().unwrap().to_string(),
                u["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// A home folder for the CLI that `nobody` can write.
fn home() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    give_away(home.path());
    home
}

/// A repository whose temporary folder `nobody` can enter.
fn repo() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o755);
    let root = dir.path().join("repo");
    std::fs::create_dir(&root).unwrap();
    (dir, root)
}

#[test]
fn special_files_links_loops_binary_and_huge_files_are_skipped_and_the_rest_indexed() {
    let (_dir, root) = repo();
    write(&root, "src/lib.rs", b"pub fn kept() -> u8 { 1 }\n");
    write(&root, "tools/run.py", b"def run():\n    return 2\n");
    // Latin-1 text: not UTF-8, no NUL byte.
    write(
        &root,
        "notes/latin1.txt",
        b"caf\xe9 cr\xe8me br\xfbl\xe9e\n",
    );
    write(&root, "assets/blob.bin", b"\x7fELF\x00\x00\x01binary");
    write(&root, "data/huge.rs", "// big\n".repeat(2000).as_bytes());
    // Links are never followed: a loop of folders, a link to itself, a dangling link and a
    // link to a real file are all left out, and none of them hangs or fails the walk.
    std::os::unix::fs::symlink(".", root.join("src/loop")).unwrap();
    std::os::unix::fs::symlink("self.rs", root.join("self.rs")).unwrap();
    std::os::unix::fs::symlink("nowhere.rs", root.join("dangling.rs")).unwrap();
    std::os::unix::fs::symlink("lib.rs", root.join("src/alias.rs")).unwrap();
    // A FIFO would block a reader forever; a socket cannot be read at all.
    let status = Command::new("mkfifo")
        .arg(root.join("src/pipe.rs"))
        .status()
        .unwrap();
    assert!(status.success());
    let _socket = std::os::unix::net::UnixListener::bind(root.join("src/sock.rs")).unwrap();
    give_away(&root);
    let home = home();

    let r = report(&index(&root, home.path(), &["--max-file-size", "4096"]));
    assert_eq!(indexed(&root), ["src/lib.rs", "tools/run.py"]);
    assert_eq!(r["files"], 2);
    assert_eq!(r["skipped"]["binary"], 2, "{r}");
    assert_eq!(r["skipped"]["too_large"], 1, "{r}");
    assert!(r["skipped"].get("unreadable").is_none(), "{r}");
    assert_eq!(r["unreadable"], serde_json::json!([]));
}

#[test]
fn unreadable_files_and_folders_are_warnings_and_keep_what_was_indexed() {
    let (_dir, root) = repo();
    write(&root, "src/lib.rs", b"pub fn kept() -> u8 { 1 }\n");
    write(&root, "src/locked.rs", b"pub fn locked() -> u8 { 2 }\n");
    write(&root, "private/inner.rs", b"pub fn inner() -> u8 { 3 }\n");
    give_away(&root);
    let home = home();
    let first = report(&index(&root, home.path(), &[]));
    assert_eq!(first["files"], 3);
    let before = indexed(&root);
    assert_eq!(before, ["private/inner.rs", "src/lib.rs", "src/locked.rs"]);

    // Now one file cannot be read and one folder cannot be listed; a new file appears.
    chmod(&root.join("src/locked.rs"), 0o000);
    chmod(&root.join("private"), 0o000);
    write(&root, "src/new.rs", b"pub fn added() -> u8 { 4 }\n");
    give_away(&root.join("src/new.rs"));
    let out = index(&root, home.path(), &[]);
    chmod(&root.join("private"), 0o755);
    chmod(&root.join("src/locked.rs"), 0o644);
    let r = report(&out);
    assert_eq!(
        unreadable(&r),
        [
            ("private".to_string(), "unreadable".to_string()),
            ("src/locked.rs".to_string(), "unreadable".to_string()),
        ],
        "{r}"
    );
    for u in r["unreadable"].as_array().unwrap() {
        assert!(
            u["error"].as_str().unwrap().contains("ermission denied"),
            "{u}"
        );
    }
    assert_eq!(r["skipped"]["unreadable"], 2, "{r}");
    assert_eq!(r["embedded_files"], 1, "only the new file: {r}");
    assert_eq!(r["removed_files"], 0, "{r}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("src/locked.rs"), "{stderr}");
    // Nothing was lost: the files it could not read keep their chunks, the new one is in.
    assert_eq!(
        indexed(&root),
        [
            "private/inner.rs",
            "src/lib.rs",
            "src/locked.rs",
            "src/new.rs"
        ]
    );

    // Readable again and then deleted: the next run removes them as usual.
    std::fs::remove_file(root.join("src/locked.rs")).unwrap();
    std::fs::remove_dir_all(root.join("private")).unwrap();
    let r = report(&index(&root, home.path(), &[]));
    assert_eq!(r["removed_files"], 2, "{r}");
    assert_eq!(indexed(&root), ["src/lib.rs", "src/new.rs"]);
}

#[test]
fn a_missing_repository_is_an_error_that_removes_nothing() {
    let (_dir, root) = repo();
    write(&root, "src/lib.rs", b"pub fn kept() -> u8 { 1 }\n");
    give_away(&root);
    let home = home();
    let index_file = root.join(".gguf-embed/index.sqlite");
    report(&index(&root, home.path(), &[]));
    // The same index, pointed at a repository path that does not exist.
    let gone = root.join("not-here");
    let out = index(
        &gone,
        home.path(),
        &["--index", index_file.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not-here"), "{stderr}");
    assert_eq!(indexed(&root), ["src/lib.rs"]);
}
