//! `gguf-embed index export` / `index import`: vectors shared between clones by chunk text, so
//! that a clone embeds only what the file does not hold; files for another model, size or
//! budget are refused.

mod common;

use std::path::{Path, PathBuf};

use common::repos::{numbered_files, write};
use common::{f32_model, json_output as json, q8_model, run_offline as run};
use gguf_embed::index::{Index, IndexOptions};
use gguf_embed::{Embedder, EmbedderOptions};
use serde_json::Value;

fn db(repo: &Path) -> PathBuf {
    repo.join(".gguf-embed/index.sqlite")
}

fn index(repo: &Path, model: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["index", "--repo", repo.to_str().unwrap(), "-m"];
    args.push(model.to_str().unwrap());
    args.extend(["-f", "json"]);
    args.extend(extra);
    json(&run(&args))
}

fn export(repo: &Path, file: &Path) -> Value {
    json(&run(&[
        "index",
        "export",
        "--repo",
        repo.to_str().unwrap(),
        "-o",
        file.to_str().unwrap(),
        "-f",
        "json",
    ]))
}

fn import(repo: &Path, file: &Path) -> std::process::Output {
    run(&[
        "index",
        "import",
        file.to_str().unwrap(),
        "--repo",
        repo.to_str().unwrap(),
        "-f",
        "json",
    ])
}

/// A copy of a directory tree (without its index).
fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        if name == ".gguf-embed" {
            continue;
        }
        if path.is_dir() {
            std::fs::create_dir_all(to.join(name)).unwrap();
            copy_tree(&path, &to.join(name));
        } else {
            std::fs::copy(&path, to.join(name)).unwrap();
        }
    }
}

#[test]
fn a_clone_that_imports_the_exported_vectors_embeds_only_what_differs() {
    let original = tempfile::tempdir().unwrap();
    numbered_files(original.path(), 60);
    let model = f32_model();
    let first = index(original.path(), &model, &[]);
    let chunks = first["chunks"].as_u64().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vectors.bin");
    let exported = export(original.path(), &file);
    assert_eq!(exported["vectors"].as_u64().unwrap(), chunks);
    assert_eq!(
        exported["bytes"].as_u64().unwrap(),
        std::fs::metadata(&file).unwrap().len()
    );

    // A fresh clone: the import creates its index; indexing then embeds nothing, and the
    // clone's index holds the original's vectors, bit for bit.
    let clone = tempfile::tempdir().unwrap();
    copy_tree(original.path(), clone.path());
    let imported = json(&import(clone.path(), &file));
    assert_eq!(imported["created"], true);
    assert_eq!(imported["vectors"].as_u64().unwrap(), chunks);
    assert_eq!(imported["new_vectors"].as_u64().unwrap(), chunks);
    assert_eq!(imported["filled_chunks"], 0, "no chunk yet");
    let report = index(clone.path(), &model, &[]);
    assert_eq!(report["chunks"], 0, "{report}");
    assert_eq!(report["reused_chunks"].as_u64().unwrap(), chunks);
    let a = Index::open_read_only(db(original.path()))
        .unwrap()
        .vectors()
        .unwrap();
    let b = Index::open_read_only(db(clone.path()))
        .unwrap()
        .vectors()
        .unwrap();
    assert_eq!(a, b);

    // Another clone, 10% of its files edited and one added: only those are embedded.
    let other = tempfile::tempdir().unwrap();
    copy_tree(original.path(), other.path());
    for i in (0..60).step_by(10) {
        write(
            other.path(),
            &format!("m{:02}/file_{i:04}.rs", i % 17),
            format!("fn edited_{i}() -> u32 {{ {i} }}\n"),
        );
    }
    write(other.path(), "new/added.rs", "pub fn added() -> u8 { 7 }\n");
    json(&import(other.path(), &file));
    let report = index(other.path(), &model, &[]);
    assert_eq!(report["chunks"], 7, "{report}");
    assert_eq!(report["reused_chunks"].as_u64().unwrap(), chunks - 6);
    // An export of the clone passes on what it holds: its own chunks' vectors (the imported
    // ones its chunks took are kept once, in the chunks) and the imported ones no chunk took
    // (the six edited files' old texts).
    let again = export(other.path(), &dir.path().join("again.bin"));
    assert_eq!(again["vectors"].as_u64().unwrap(), chunks + 1 + 6);
}

#[test]
fn an_import_gives_waiting_chunks_their_vectors_at_once() {
    let repo = tempfile::tempdir().unwrap();
    numbered_files(repo.path(), 30);
    let model = f32_model();
    index(repo.path(), &model, &[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("v.bin");
    export(repo.path(), &file);

    // A clone written lexically only (as a killed first run leaves it): nothing embedded.
    let clone = tempfile::tempdir().unwrap();
    copy_tree(repo.path(), clone.path());
    let embedder = Embedder::new(&model, EmbedderOptions::default()).unwrap();
    let options = IndexOptions::default();
    let clone_db = db(clone.path());
    {
        let mut index = Index::open_or_create(&clone_db, &embedder, &options, false).unwrap();
        index
            .update_lexical(clone.path(), &embedder, &options, &|_| {})
            .unwrap();
        let c = index.coverage().unwrap();
        assert_eq!(c.embedded, 0);
        assert!(c.total >= 30);
    }
    let report = Index::import_vectors(&clone_db, &file).unwrap();
    let c = Index::open_read_only(&clone_db)
        .unwrap()
        .coverage()
        .unwrap();
    assert_eq!(report.filled_chunks, c.total);
    assert_eq!((c.embedded, c.total), (c.total, report.filled_chunks));
    let found = json(&run(&[
        "search",
        "items_7",
        "--mode",
        "semantic",
        "--repo",
        clone.path().to_str().unwrap(),
        "-m",
        model.to_str().unwrap(),
        "-f",
        "json",
    ]));
    assert!(!found["results"].as_array().unwrap().is_empty());
}

#[test]
fn a_file_for_another_model_size_or_budget_is_refused_and_nothing_is_mixed_in() {
    let repo = tempfile::tempdir().unwrap();
    numbered_files(repo.path(), 12);
    let dir = tempfile::tempdir().unwrap();
    // Files made with another model, another size and another budget.
    let mut files = Vec::new();
    for (name, model, extra) in [
        ("q8", q8_model(), vec![]),
        ("dim32", f32_model(), vec!["--dim", "32"]),
        ("budget", f32_model(), vec!["--chunk-tokens", "128"]),
    ] {
        let other = tempfile::tempdir().unwrap();
        copy_tree(repo.path(), other.path());
        index(other.path(), &model, &extra);
        let file = dir.path().join(format!("{name}.bin"));
        export(other.path(), &file);
        files.push((name, file));
    }
    let first = index(repo.path(), &f32_model(), &[]);
    let before = Index::open_read_only(db(repo.path()))
        .unwrap()
        .vectors()
        .unwrap();
    for (name, file) in &files {
        let out = import(repo.path(), file);
        assert_eq!(out.status.code(), Some(1), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        let says = match *name {
            "q8" => "another model",
            "dim32" => "other dimensions",
            _ => "another token budget",
        };
        assert!(err.contains(says), "{name}: {err}");
    }
    let after = Index::open_read_only(db(repo.path()))
        .unwrap()
        .vectors()
        .unwrap();
    assert_eq!(before, after);
    let again = index(repo.path(), &f32_model(), &[]);
    assert_eq!(again["chunks"], 0);
    assert!(first["chunks"].as_u64().unwrap() > 0);

    // A damaged file: refused whole.
    let (_, file) = &files[0];
    let mut bytes = std::fs::read(file).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(file, bytes).unwrap();
    let out = import(repo.path(), file);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("damaged"));
}

#[test]
fn export_and_import_are_subcommands_that_take_no_index_options() {
    let repo = tempfile::tempdir().unwrap();
    let out = run(&[
        "index",
        "--limit",
        "3",
        "export",
        "--repo",
        repo.path().to_str().unwrap(),
        "-o",
        "x.bin",
    ]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let help = run(&["index", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("export") && help.contains("import"), "{help}");
    // Exporting an index that does not exist says so.
    let out = run(&[
        "index",
        "export",
        "--repo",
        repo.path().to_str().unwrap(),
        "-o",
        repo.path().join("x.bin").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("there is no index"));
    assert!(!repo.path().join("x.bin").exists());
}
