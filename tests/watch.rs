//! `gguf-embed index --watch`: edits, additions, deletions, renames and a 1000-file mass
//! change reach the index, which then equals a fresh index of the same tree; reading files
//! wakes nothing.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use common::repos::write;
use common::{cli, f32_model};
use gguf_embed::index::Index;
use serde_json::Value;
use sha2::{Digest, Sha256};

fn file_text(i: usize, version: usize) -> String {
    // One function of six statements: chunks follow definitions, and this test needs many
    // files, not many chunks (six one-line functions would be six chunks per file).
    let lines: String = (0..6)
        .map(|l| format!("    let a_{l} = {i} + {l} * {version};\n"))
        .collect();
    format!("fn f_{i}() -> usize {{\n{lines}    a_0 + a_5\n}}\n")
}

/// Every file of the tree (all are indexable here) with its sha256, in path order.
fn tree(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if rel.starts_with('.') {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                let sha = Sha256::digest(std::fs::read(&path).unwrap());
                let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
                out.push((rel, hex));
            }
        }
    }
    out.sort();
    out
}

fn indexed(db: &Path) -> Vec<(String, String)> {
    Index::open_read_only(db)
        .unwrap()
        .files()
        .unwrap()
        .into_iter()
        .map(|f| (f.path, f.sha256))
        .collect()
}

/// The watcher's report lines, read on a thread.
fn reports(child: &mut Child) -> Receiver<Value> {
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in stdout.lines() {
            let Ok(line) = line else { return };
            if tx.send(serde_json::from_str(&line).unwrap()).is_err() {
                return;
            }
        }
    });
    rx
}

/// Kills the watcher when the test ends, passed or not.
struct Watcher(Child);

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for passes until the index holds exactly the tree; returns how many passes it took.
fn passes_until_current(rx: &Receiver<Value>, root: &Path, db: &Path) -> usize {
    let want = tree(root);
    let mut passes = 0;
    while indexed(db) != want {
        // Only a guard against a watcher that never reacts; the test does not time anything.
        rx.recv_timeout(Duration::from_secs(300))
            .expect("the watcher did not update the index");
        passes += 1;
    }
    passes
}

#[test]
fn the_watched_index_follows_edits_moves_deletions_and_mass_changes() {
    let repo = tempfile::tempdir().unwrap();
    let root = repo.path();
    for i in 0..1100 {
        write(root, &format!("d{:02}/f{i:04}.rs", i % 23), file_text(i, 1));
    }
    let model = f32_model();
    let mut child = Watcher(
        Command::new(cli())
            .args([
                "index",
                "--watch",
                "-f",
                "json",
                "--repo",
                root.to_str().unwrap(),
            ])
            .args(["-m", model.to_str().unwrap(), "--chunk-tokens", "64"])
            .env("HF_HUB_OFFLINE", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let rx = reports(&mut child.0);
    let first = rx.recv_timeout(Duration::from_secs(600)).unwrap();
    assert_eq!(first["files"], 1100);
    let db = root.join(".gguf-embed/index.sqlite");
    assert_eq!(indexed(&db), tree(root));

    // An edit, an addition, a deletion and a rename.
    write(root, "d00/f0000.rs", file_text(0, 2));
    write(root, "new/added.rs", "pub fn added() -> u8 { 7 }\n");
    std::fs::remove_file(root.join("d01/f0001.rs")).unwrap();
    std::fs::rename(root.join("d02/f0002.rs"), root.join("d02/renamed.rs")).unwrap();
    passes_until_current(&rx, root, &db);

    // A branch switch: 1000 files change at once.
    for i in 100..1100 {
        write(root, &format!("d{:02}/f{i:04}.rs", i % 23), file_text(i, 3));
    }
    let passes = passes_until_current(&rx, root, &db);
    assert!(passes <= 3, "1000 changes took {passes} passes");
    drop(child);

    // The watched index equals a fresh one of the same tree: paths, lines and vectors.
    let fresh = tempfile::tempdir().unwrap();
    let fresh_db = fresh.path().join("fresh.sqlite");
    let out = Command::new(cli())
        .args(["index", "--repo", root.to_str().unwrap(), "--index"])
        .arg(&fresh_db)
        .args(["-m", model.to_str().unwrap(), "--chunk-tokens", "64"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let watched = Index::open_read_only(&db).unwrap();
    let fresh = Index::open_read_only(&fresh_db).unwrap();
    assert_eq!(watched.files().unwrap(), fresh.files().unwrap());
    common::vectors::assert_same_chunks(&db, &fresh_db);
}

/// The indexed paths.
fn indexed_paths(db: &Path) -> Vec<String> {
    indexed(db).into_iter().map(|(p, _)| p).collect()
}

/// Waits for passes until the index holds exactly `want`.
fn passes_until(rx: &Receiver<Value>, db: &Path, want: &[&str]) {
    while indexed_paths(db) != want {
        rx.recv_timeout(Duration::from_secs(300))
            .unwrap_or_else(|_| {
                panic!(
                    "the watcher never indexed {want:?}: {:?}",
                    indexed_paths(db)
                )
            });
    }
}

#[test]
fn nested_ignore_files_are_honoured_by_index_and_watch() {
    let repo = tempfile::tempdir().unwrap();
    let root = repo.path();
    write(root, ".ignore", "scratch/\n");
    write(root, "sub/.gitignore", "secret_*.rs\n");
    write(root, "sub/deeper/.ignore", "*.gen.rs\n");
    write(root, "sub/keep.rs", file_text(1, 1));
    write(root, "sub/secret_key.rs", file_text(2, 1));
    write(root, "scratch/tmp.rs", file_text(3, 1));
    write(root, "sub/deeper/a.rs", file_text(4, 1));
    write(root, "sub/deeper/b.gen.rs", file_text(5, 1));
    let mut child = Watcher(
        Command::new(cli())
            .args(["index", "--watch", "-f", "json", "--repo"])
            .arg(root)
            .args(["-m", f32_model().to_str().unwrap()])
            .env("HF_HUB_OFFLINE", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let rx = reports(&mut child.0);
    rx.recv_timeout(Duration::from_secs(600)).unwrap();
    let db = root.join(".gguf-embed/index.sqlite");
    assert_eq!(indexed_paths(&db), ["sub/deeper/a.rs", "sub/keep.rs"]);

    // New files under each ignore rule, one file that counts, and a folder that brings its
    // own ignore file.
    write(root, "sub/secret_two.rs", file_text(6, 1));
    write(root, "scratch/more.rs", file_text(7, 1));
    write(root, "sub/deeper/c.gen.rs", file_text(8, 1));
    write(root, "sub/other/.gitignore", "skip.rs\n");
    write(root, "sub/other/skip.rs", file_text(9, 1));
    write(root, "sub/other/ok.rs", file_text(10, 1));
    write(root, "sub/deeper/new.rs", file_text(11, 1));
    passes_until(
        &rx,
        &db,
        &[
            "sub/deeper/a.rs",
            "sub/deeper/new.rs",
            "sub/keep.rs",
            "sub/other/ok.rs",
        ],
    );
    // A rule added to an ignore file drops what it now ignores.
    write(root, "sub/.gitignore", "secret_*.rs\nkeep.rs\n");
    passes_until(
        &rx,
        &db,
        &["sub/deeper/a.rs", "sub/deeper/new.rs", "sub/other/ok.rs"],
    );
}

/// The path counts of the watcher's "N paths changed; updating" log lines, read on a thread.
fn passes_started(child: &mut Child) -> Receiver<usize> {
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in stderr.lines() {
            let Ok(line) = line else { return };
            let words: Vec<&str> = line.split_whitespace().collect();
            if let Some(at) = words.windows(2).position(|w| w == ["paths", "changed;"]) {
                let n = words[at.saturating_sub(1)].parse().unwrap_or(usize::MAX);
                if tx.send(n).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

#[test]
fn reading_files_does_not_wake_the_watcher() {
    let repo = tempfile::tempdir().unwrap();
    let root = repo.path();
    let files: Vec<String> = (0..40).map(|i| format!("r{}/f{i:02}.rs", i % 3)).collect();
    for (i, f) in files.iter().enumerate() {
        write(root, f, file_text(i, 1));
    }
    // Files the index skips are read by people and tools too.
    write(root, "r0/huge.txt", "data\n".repeat(300_000));
    write(root, "r1/blob.bin", [0u8, 159, 146, 150]);
    let mut watcher = Watcher(
        Command::new(cli())
            .args(["index", "--watch", "-f", "json", "--repo"])
            .arg(root)
            .args(["-m", f32_model().to_str().unwrap()])
            .env("HF_HUB_OFFLINE", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let reports = reports(&mut watcher.0);
    let passes = passes_started(&mut watcher.0);
    let first = reports.recv_timeout(Duration::from_secs(600)).unwrap();
    assert_eq!(first["files"], 40);

    // Every file, read several times, through std and through `cat`; folders listed.
    let mut all: Vec<String> = files.clone();
    all.extend(["r0/huge.txt".into(), "r1/blob.bin".into()]);
    for _ in 0..3 {
        for f in &all {
            std::fs::read(root.join(f)).unwrap();
        }
        for dir in ["r0", "r1", "r2"] {
            std::fs::read_dir(root.join(dir)).unwrap().for_each(drop);
        }
    }
    #[cfg(unix)]
    {
        let cat = Command::new("cat")
            .args(&all)
            .current_dir(root)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(cat.success());
    }
    // Then one change, renamed into place so that it is one event: the first pass after the
    // reads is its pass, started by it alone. Were reads changes, a pass would have started
    // for them (its report embedding nothing), or the change's pass would count them too.
    write(root, ".sentinel.tmp", file_text(99, 1));
    std::fs::rename(root.join(".sentinel.tmp"), root.join("r2/sentinel.rs")).unwrap();
    let changed = passes
        .recv_timeout(Duration::from_secs(300))
        .expect("the change started no pass");
    assert!(changed <= 2, "{changed} paths changed: reads counted");
    let report = reports.recv_timeout(Duration::from_secs(300)).unwrap();
    assert_eq!(report["embedded_files"], 1, "{report}");
    assert_eq!(report["files"], 41);
    // No pass started for the reads, late either: a second change, made after the first
    // one's pass ended, starts the very next pass, and that pass is its own (one file).
    write(root, ".sentinel.tmp", file_text(98, 1));
    std::fs::rename(root.join(".sentinel.tmp"), root.join("r2/second.rs")).unwrap();
    let changed = passes
        .recv_timeout(Duration::from_secs(300))
        .expect("the second change started no pass");
    assert!(
        changed <= 2,
        "{changed} paths changed: a pass for something else"
    );
    let report = reports.recv_timeout(Duration::from_secs(300)).unwrap();
    assert_eq!(report["embedded_files"], 1, "{report}");
    assert_eq!(
        report["files"], 42,
        "the pass after the reads was the second change's"
    );
}
