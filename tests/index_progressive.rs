//! A repository searchable while it is being indexed: every chunk is written (searchable
//! lexically) before any is embedded, searches from other processes see the coverage, the
//! files of a search's hits are embedded first, queries never wait behind documents, a second
//! `index` beside a watcher returns, vendored and generated files are searched lexically
//! only, and an index of schema 3 is upgraded in place.
//!
//! "While it is being indexed" is made observable with the test-only per-decode delay
//! (`GGUF_EMBED_TEST_DECODE_DELAY_MS`): nothing here times anything; ordering and counts are
//! the evidence.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use common::repos::{numbered_files, write};
use common::{cli, f32_model, json_output as json, run_offline as run};
use gguf_embed::index::{Index, WriterLock};
use gguf_embed::{EmbedOptions, Embedder, EmbedderOptions, Priority};
use serde_json::Value;

/// A planted definition, last in path order (so last in the embedding queue).
const PLANTED: &str = "zz/ledger.rs";

fn planted_repo(files: usize) -> tempfile::TempDir {
    let repo = tempfile::tempdir().unwrap();
    numbered_files(repo.path(), files);
    write(
        repo.path(),
        PLANTED,
        "/// Makes the books add up.\npub fn reconcileLedgerBalances(book: &mut Book) {\n    book.fix();\n}\n",
    );
    repo
}

fn db(repo: &Path) -> PathBuf {
    repo.join(".gguf-embed/index.sqlite")
}

/// Kills a child process when the test ends, passed or not.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `gguf-embed index` on `repo` with slow decodes (`delay_ms` after each).
fn slow_index(repo: &Path, delay_ms: u64, extra: &[&str]) -> Running {
    Running(
        Command::new(cli())
            .args(["index", "-f", "json", "--repo"])
            .arg(repo)
            .args(["-m", f32_model().to_str().unwrap()])
            .args(extra)
            .env("HF_HUB_OFFLINE", "1")
            .env("GGUF_EMBED_TEST_DECODE_DELAY_MS", delay_ms.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Polls `f` until it gives a value (a guard against waiting forever, not a time limit).
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "waited 10 minutes for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The index's chunks as (path, embedded), read in one statement.
fn chunk_states(db: &Path) -> Option<Vec<(String, bool)>> {
    let index = Index::open_read_only(db).ok()?;
    let vectors = index.vectors().ok()?;
    Some(
        vectors
            .into_iter()
            .map(|(path, _, _, v)| (path, !v.is_empty()))
            .collect(),
    )
}

#[test]
fn every_file_is_searchable_lexically_before_any_is_embedded_and_searches_say_how_much_is() {
    let repo = planted_repo(300);
    let db = db(repo.path());
    let mut indexer = slow_index(repo.path(), 60, &[]);
    // The first vector is written only after every file was written.
    let states = wait_for("a first vector", || {
        chunk_states(&db).filter(|s| s.iter().any(|(_, embedded)| *embedded))
    });
    let files: std::collections::HashSet<&str> = states.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        files.len(),
        301,
        "not every file was written before the first vector"
    );

    // A search from another process, while the indexer embeds: the planted definition is
    // found (lexically: it is last in the queue), and the answer says what it covered.
    let found = json(&run(&[
        "search",
        "reconcileLedgerBalances",
        "--repo",
        repo.path().to_str().unwrap(),
        "-f",
        "json",
        "-k",
        "3",
    ]));
    assert!(
        indexer.0.try_wait().unwrap().is_none(),
        "the indexer finished before the search: raise the delay"
    );
    assert_eq!(found["results"][0]["path"], PLANTED, "{found}");
    assert!(found["results"][0]["lexical_rank"].is_number());
    let coverage = &found["coverage"];
    let (embedded, total) = (
        coverage["embedded"].as_u64().unwrap(),
        coverage["total"].as_u64().unwrap(),
    );
    assert!(embedded > 0 && embedded < total, "{coverage}");
    assert_eq!(total, 301);
    assert!(
        coverage["eta_seconds"].as_f64().unwrap() > 0.0,
        "a running indexer gives an estimate: {coverage}"
    );
    // Text output says it too.
    let text = run(&[
        "search",
        "ledger",
        "--mode",
        "lexical",
        "--repo",
        repo.path().to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    if indexer.0.try_wait().unwrap().is_none() {
        assert!(text.contains("semantic search covered"), "{text}");
    }
    let out = indexer.0.wait_with_output_ref();
    let report: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(report["files"], 301);
    assert_eq!(report["pending_chunks"], 0);
    assert!(report["lexical_seconds"].as_f64() <= report["seconds"].as_f64());
    let c = Index::open_read_only(&db).unwrap().coverage().unwrap();
    assert_eq!((c.embedded, c.total, c.eta_seconds), (301, 301, None));
}

/// Waits for a running child and returns its stdout.
trait WaitOutput {
    fn wait_with_output_ref(&mut self) -> Vec<u8>;
}

impl WaitOutput for Child {
    fn wait_with_output_ref(&mut self) -> Vec<u8> {
        use std::io::Read;
        let mut out = Vec::new();
        self.stdout.take().unwrap().read_to_end(&mut out).unwrap();
        assert!(self.wait().unwrap().success());
        out
    }
}

#[test]
fn a_search_moves_the_files_of_its_hits_to_the_front_of_the_queue() {
    let repo = planted_repo(400);
    let db = db(repo.path());
    // One text per decode, slowed down: the queue takes long to drain, while groups (sized to
    // a second or two of the engine's work) stay small.
    let _indexer = slow_index(repo.path(), 30, &["--batch-sequences", "1"]);
    wait_for("the first vectors", || {
        chunk_states(&db).filter(|s| s.len() == 401 && s.iter().any(|(_, e)| *e))
    });
    let found = json(&run(&[
        "search",
        "reconcileLedgerBalances",
        "--mode",
        "lexical",
        "--repo",
        repo.path().to_str().unwrap(),
        "-f",
        "json",
    ]));
    assert_eq!(found["results"][0]["path"], PLANTED);
    // The planted file was queued last; once asked for, it is embedded while most of the
    // files queued before it still wait.
    let states = wait_for("the planted file's vector", || {
        chunk_states(&db).filter(|s| s.iter().any(|(p, e)| p == PLANTED && *e))
    });
    let waiting = states.iter().filter(|(_, e)| !e).count();
    assert!(
        waiting > 150,
        "only {waiting} of 401 chunks were still waiting when the planted file was embedded"
    );
}

#[test]
fn a_query_is_decoded_before_the_documents_queued_ahead_of_it() {
    let decodes = Arc::new(AtomicUsize::new(0));
    let counter = decodes.clone();
    let embedder = Embedder::new(
        f32_model(),
        EmbedderOptions::default()
            .with_batch_sequences(2)
            .with_decode_observer(move |_| {
                counter.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(2));
            }),
    )
    .unwrap();
    let docs: Vec<String> = (0..120)
        .map(|i| format!("document number {i} about nothing in particular"))
        .collect();
    for priority in [Priority::Background, Priority::Normal] {
        let start = decodes.load(Ordering::SeqCst);
        let batch = embedder
            .submit(&docs, &EmbedOptions::documents().with_priority(priority))
            .unwrap();
        let asked = decodes.load(Ordering::SeqCst);
        let query = embedder
            .embed(
                &["where are the documents"],
                &EmbedOptions::queries().with_priority(Priority::Query),
            )
            .unwrap();
        let answered = decodes.load(Ordering::SeqCst);
        assert_eq!(query.len(), 1);
        // The decode in progress when it was asked, then its own.
        assert!(
            answered - asked <= 2,
            "{priority:?}: the query waited {} decodes",
            answered - asked
        );
        batch.wait().unwrap();
        let all = decodes.load(Ordering::SeqCst) - start;
        assert!(all >= 60, "{all} decodes for 120 documents two at a time");
        assert!(
            answered - start < all / 2,
            "the query came early in the batch"
        );
    }
}

/// The report lines of an `index --watch -f json`, read on a thread.
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

#[test]
fn a_second_index_beside_a_watcher_asks_for_a_pass_and_returns_when_it_is_done() {
    let repo = planted_repo(30);
    let db = db(repo.path());
    let mut watcher = slow_index(repo.path(), 0, &["--watch"]);
    let passes = reports(&mut watcher.0);
    let first = passes.recv_timeout(Duration::from_secs(600)).unwrap();
    assert_eq!(first["files"], 31);
    let finished_before = Index::open_read_only(&db).unwrap().passes().unwrap().1;

    // A file the second run should find indexed when it returns.
    write(
        repo.path(),
        "new/added.rs",
        "pub fn added_later() -> u8 { 7 }\n",
    );
    let second = json(&run(&[
        "index",
        "--repo",
        repo.path().to_str().unwrap(),
        "-m",
        f32_model().to_str().unwrap(),
        "-f",
        "json",
    ]));
    assert_eq!(second["held_by"]["command"], "gguf-embed index --watch");
    assert_eq!(second["held_by"]["keeps_current"], true);
    assert_eq!(second["waited"], true);
    assert_eq!(second["coverage"]["embedded"], second["coverage"]["total"]);
    let index = Index::open_read_only(&db).unwrap();
    assert!(index.passes().unwrap().1 > finished_before);
    assert!(
        index
            .files()
            .unwrap()
            .iter()
            .any(|f| f.path == "new/added.rs"),
        "the pass it waited for started after it"
    );
    // The watcher ran that pass (and reported it).
    let next = passes.recv_timeout(Duration::from_secs(300)).unwrap();
    assert!(next["files"].as_u64().unwrap() >= 31, "{next}");
}

#[test]
fn no_wait_returns_at_once_saying_who_keeps_the_index_current() {
    let repo = planted_repo(300);
    let db = db(repo.path());
    let mut watcher = slow_index(repo.path(), 100, &["--watch"]);
    let passes = reports(&mut watcher.0);
    wait_for("the watcher to hold the index", || {
        WriterLock::holder(&db).filter(|h| h.keeps_current)
    });
    let out = run(&[
        "index",
        "--no-wait",
        "--repo",
        repo.path().to_str().unwrap(),
        "-f",
        "json",
    ]);
    let beside = json(&out);
    assert_eq!(beside["held_by"]["command"], "gguf-embed index --watch");
    assert_eq!(beside["waited"], false);
    // It returned while the watcher's first pass still runs.
    assert!(
        passes.try_recv().is_err(),
        "the watcher's first pass ended before --no-wait returned"
    );
    let text = run(&[
        "index",
        "--no-wait",
        "--repo",
        repo.path().to_str().unwrap(),
    ]);
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("`gguf-embed index --watch`") && text.contains("keeps the index current"),
        "{text}"
    );
}

#[test]
fn vendored_and_generated_files_are_searched_lexically_unless_asked() {
    let repo = tempfile::tempdir().unwrap();
    let root = repo.path();
    write(
        root,
        ".gitattributes",
        "third/** linguist-vendored\nvendor/ours/** -linguist-vendored\n",
    );
    write(root, "src/lib.rs", "pub fn own_function() -> u8 { 1 }\n");
    write(
        root,
        "vendor/dep/lib.rs",
        "pub fn vendored_by_folder() -> u8 { 2 }\n",
    );
    write(
        root,
        "vendor/ours/lib.rs",
        "pub fn ours_after_all() -> u8 { 3 }\n",
    );
    write(
        root,
        "third/zlib.rs",
        "pub fn vendored_by_attribute() -> u8 { 4 }\n",
    );
    write(
        root,
        "gen/parser.rs",
        "// @generated by a parser generator\npub fn generated_parser() -> u8 { 5 }\n",
    );
    let index = |extra: &[&str]| {
        let mut args = vec!["index", "--repo", root.to_str().unwrap(), "-m"];
        let model = f32_model();
        let model = model.to_str().unwrap().to_string();
        args.push(&model);
        args.extend(["-f", "json"]);
        args.extend(extra);
        json(&run(&args))
    };
    let search = |query: &str, mode: &str| -> Vec<String> {
        let found = json(&run(&[
            "search",
            query,
            "--mode",
            mode,
            "-k",
            "100",
            "--repo",
            root.to_str().unwrap(),
            "-f",
            "json",
        ]));
        found["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["path"].as_str().unwrap().to_string())
            .collect()
    };
    let report = index(&[]);
    assert_eq!(report["files"], 5);
    assert_eq!(report["lexical_only_files"], 3);
    let stats = json(&run(&[
        "index",
        "--stats",
        "--repo",
        root.to_str().unwrap(),
        "-f",
        "json",
    ]));
    assert_eq!(stats["vendored_files"], 2);
    assert_eq!(stats["generated_files"], 1);
    assert_eq!(stats["coverage"]["lexical_only"], 3);
    assert_eq!(stats["coverage"]["embedded"], stats["coverage"]["total"]);
    // Lexically everything is found; semantically only the repository's own code.
    assert_eq!(
        search("vendored_by_attribute", "lexical")[0],
        "third/zlib.rs"
    );
    assert_eq!(search("generated_parser", "lexical")[0], "gen/parser.rs");
    let mut semantic = search("function", "semantic");
    semantic.sort();
    assert_eq!(semantic, ["src/lib.rs", "vendor/ours/lib.rs"]);

    // Asked for, they are embedded (without writing any file again); asked no more, they are
    // lexical-only again and keep their vectors for next time.
    let report = index(&["--embed-vendored"]);
    assert_eq!(report["embedded_files"], 0);
    assert_eq!(report["chunks"], 3);
    assert_eq!(report["lexical_only_files"], 0);
    assert_eq!(search("function", "semantic").len(), 5);
    let report = index(&[]);
    assert_eq!(report["chunks"], 0);
    assert_eq!(report["lexical_only_files"], 3);
    assert_eq!(search("function", "semantic").len(), 2);
}

/// The schema of a version-3 index, as gguf-embed wrote it before chunks could wait for
/// their vectors.
const SCHEMA_3: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL, indexed_at INTEGER NOT NULL);
CREATE TABLE chunks (id INTEGER PRIMARY KEY,
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    start_line INTEGER NOT NULL, end_line INTEGER NOT NULL, symbol TEXT, kind TEXT,
    text_hash TEXT NOT NULL, tokens INTEGER NOT NULL, text TEXT NOT NULL,
    embedding BLOB NOT NULL);
CREATE INDEX chunks_by_file ON chunks(file_id);
CREATE INDEX chunks_by_hash ON chunks(text_hash);
CREATE TABLE codes (id INTEGER PRIMARY KEY,
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    scale REAL NOT NULL, code BLOB NOT NULL);
CREATE INDEX codes_by_file ON codes(file_id);
CREATE VIRTUAL TABLE chunks_fts USING fts5(path, body, parts,
    tokenize = \"unicode61 tokenchars '_'\");
CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN
    DELETE FROM chunks_fts WHERE rowid = old.id;
END;
";

#[test]
fn an_index_of_schema_3_is_searched_as_it_is_and_upgraded_in_place() {
    let repo = planted_repo(40);
    let root = repo.path();
    let model = f32_model();
    json(&run(&[
        "index",
        "--repo",
        root.to_str().unwrap(),
        "-m",
        model.to_str().unwrap(),
        "-f",
        "json",
    ]));
    let current = db(root);
    // The same index as version 3 wrote it: its rows copied into the old schema.
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.sqlite");
    {
        let conn = rusqlite::Connection::open(&old).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA page_size = 16384; PRAGMA journal_mode = WAL; {SCHEMA_3}
             ATTACH '{}' AS v4;
             INSERT INTO meta SELECT key, value FROM v4.meta;
             UPDATE meta SET value = '3' WHERE key = 'schema_version';
             INSERT INTO files SELECT id, path, sha256, bytes, indexed_at FROM v4.files;
             INSERT INTO chunks SELECT id, file_id, start_line, end_line, symbol, kind,
                 text_hash, tokens, text, embedding FROM v4.chunks;
             INSERT INTO codes SELECT * FROM v4.codes;
             INSERT INTO chunks_fts (rowid, path, body, parts)
                 SELECT rowid, path, body, parts FROM v4.chunks_fts;
             DETACH v4;",
            current.display()
        ))
        .unwrap();
    }
    let version = |path: &Path| -> String {
        rusqlite::Connection::open(path)
            .unwrap()
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert_eq!(version(&old), "3");
    // Read-only, it is searched as it is (and stays version 3).
    let found = json(&run(&[
        "search",
        "reconcileLedgerBalances",
        "--index",
        old.to_str().unwrap(),
        "-m",
        model.to_str().unwrap(),
        "-f",
        "json",
    ]));
    assert_eq!(found["results"][0]["path"], PLANTED);
    assert_eq!(found["coverage"]["embedded"], 41);
    assert_eq!(found["coverage"]["total"], 41);
    assert_eq!(version(&old), "3");
    // An update upgrades it in place: nothing is embedded again, nothing changes.
    let report = json(&run(&[
        "index",
        "--repo",
        root.to_str().unwrap(),
        "--index",
        old.to_str().unwrap(),
        "-m",
        model.to_str().unwrap(),
        "-f",
        "json",
    ]));
    assert_eq!(version(&old), "4");
    assert_eq!(report["unchanged_files"], 41);
    assert_eq!(report["chunks"], 0);
    assert_eq!(report["pending_chunks"], 0);
    let upgraded = Index::open_read_only(&old).unwrap();
    let c = upgraded.coverage().unwrap();
    assert_eq!((c.embedded, c.total), (41, 41));
    assert_eq!(
        upgraded.files().unwrap(),
        Index::open_read_only(&current).unwrap().files().unwrap()
    );
    common::vectors::assert_same_chunks(&old, &current);
    let found = json(&run(&[
        "search",
        "reconcileLedgerBalances",
        "--index",
        old.to_str().unwrap(),
        "-f",
        "json",
    ]));
    assert_eq!(found["results"][0]["path"], PLANTED);
}
