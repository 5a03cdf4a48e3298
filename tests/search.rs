//! `gguf-embed search` modes, filters and output options, and chunk reuse, on generated
//! repositories with the tiny model (whose vectors carry no meaning: what must find the right
//! chunk here is the lexical side and the fusion).

mod common;

use std::path::Path;
use std::process::Command;

use common::{cli, f32_model, json_output as json, run_offline as run};
use gguf_embed::index::Index;
use serde_json::Value;

/// Files with planted identifiers, paths and error messages, among filler files that share
/// their words.
fn planted_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let write = |rel: &str, content: &str| common::repos::write(dir.path(), rel, content);
    write(
        "billing/invoice.rs",
        "/// Totals an invoice.\npub fn parse_invoice_total(lines: &[Line]) -> Result<Cents, Error> {\n    let total: i64 = lines.iter().map(|l| l.cents).sum();\n    if total < 0 {\n        return Err(Error::msg(\"invoice total must not be negative\"));\n    }\n    Ok(Cents(total))\n}\n",
    );
    write(
        "billing/refunds/policy.py",
        "class RefundPolicyEngine:\n    \"\"\"Decides refunds.\"\"\"\n    def allowed(self, order):\n        return order.days_since_delivery <= 30\n",
    );
    write(
        "web/shipping.ts",
        "export function computeShippingQuote(weightGrams: number): number {\n  if (weightGrams <= 0) throw new RangeError(\"weight: must be > 0 (grams)\");\n  return 499 + Math.ceil(weightGrams / 500) * 150;\n}\n",
    );
    write(
        "server/retry.go",
        "package server\n\nfunc uploadWithRetry(c *Client, blob []byte) error {\n\tfor attempt := 0; attempt < 5; attempt++ {\n\t\tif err := c.put(blob); err == nil {\n\t\t\treturn nil\n\t\t}\n\t}\n\treturn errors.New(\"upload failed after 5 attempts\")\n}\n",
    );
    // Fillers: the same words in other combinations, so that words alone do not decide.
    for i in 0..30 {
        write(
            &format!("misc/filler_{i:02}.rs"),
            &format!(
                "// invoice, refund, shipping, upload, total, policy, quote, retry, error {i}\npub fn helper_{i}(total: i64, policy: &str) -> i64 {{\n    let quote = total * {i};\n    if quote < 0 {{ panic!(\"must not be negative\") }}\n    quote\n}}\n"
            ),
        );
    }
    dir
}

fn index(repo: &Path, extra: &[&str]) -> Value {
    let model = f32_model();
    let mut args = vec![
        "index",
        "--repo",
        repo.to_str().unwrap(),
        "-m",
        model.to_str().unwrap(),
        "-f",
        "json",
    ];
    args.extend_from_slice(extra);
    json(&run(&args))
}

fn search(repo: &Path, query: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec![
        "search",
        query,
        "--repo",
        repo.to_str().unwrap(),
        "-f",
        "json",
    ];
    args.extend_from_slice(extra);
    let found = json(&run(&args));
    // Every answer says how much of the index it covered; these indexes are complete.
    assert_eq!(found["coverage"]["embedded"], found["coverage"]["total"]);
    found["results"].as_array().unwrap().clone()
}

/// Identifier, path and error-message queries, and where the answer is.
const PLANTED: [(&str, &str); 8] = [
    ("parse_invoice_total", "billing/invoice.rs"),
    ("parseInvoiceTotal", "billing/invoice.rs"),
    ("RefundPolicyEngine", "billing/refunds/policy.py"),
    ("computeShippingQuote", "web/shipping.ts"),
    ("billing/refunds/policy", "billing/refunds/policy.py"),
    ("invoice total must not be negative", "billing/invoice.rs"),
    ("weight: must be > 0 (grams)", "web/shipping.ts"),
    ("upload failed after 5 attempts", "server/retry.go"),
];

#[test]
fn identifier_path_and_error_queries_rank_the_right_chunk_first() {
    let repo = planted_repo();
    index(repo.path(), &[]);
    for mode in ["lexical", "hybrid"] {
        for (query, path) in PLANTED {
            let hits = search(repo.path(), query, &["--mode", mode, "-k", "3"]);
            assert_eq!(hits[0]["path"], path, "{mode} {query:?}: {hits:#?}");
            assert!(hits[0]["lexical_rank"].as_u64().is_some());
        }
    }
    // Hybrid hits carry the cosine similarity beside the fused score.
    let hybrid = search(repo.path(), "RefundPolicyEngine", &[]);
    assert!(hybrid[0]["similarity"].as_f64().is_some());
    assert!(hybrid[0]["score"].as_f64().unwrap() > 0.0);
    // Semantic search is today's: ranked by cosine alone, without lexical ranks.
    let semantic = search(repo.path(), "RefundPolicyEngine", &["--mode", "semantic"]);
    assert_eq!(semantic.len(), 10);
    for pair in semantic.windows(2) {
        assert!(pair[0]["score"].as_f64() >= pair[1]["score"].as_f64());
        assert_eq!(pair[0]["score"], pair[0]["similarity"]);
        assert!(pair[0].get("lexical_rank").is_none());
    }
}

#[test]
fn query_syntax_is_searched_as_text_and_never_an_error() {
    let repo = planted_repo();
    index(repo.path(), &[]);
    for query in [
        "\"unbalanced quote",
        "a:b (c OR d) AND NOT e*",
        "-negative -x NEAR(a b)",
        "*",
        "()",
        "\"\"",
        "OR",
        "col:value ^start",
    ] {
        for mode in ["lexical", "hybrid"] {
            let out = run(&[
                "search",
                query,
                "--mode",
                mode,
                "--repo",
                repo.path().to_str().unwrap(),
                "-f",
                "json",
            ]);
            assert!(
                out.status.success(),
                "{mode} {query:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    // Punctuation is no query: lexical finds nothing, rather than failing.
    assert!(search(repo.path(), "()*", &["--mode", "lexical"]).is_empty());
    // The colon of an error message is text, not a column filter.
    let hits = search(repo.path(), "weight: must", &["--mode", "lexical"]);
    assert_eq!(hits[0]["path"], "web/shipping.ts");
}

#[test]
fn lexical_search_needs_no_model() {
    let repo = planted_repo();
    index(repo.path(), &[]);
    let out = Command::new(cli())
        .args([
            "search",
            "computeShippingQuote",
            "--mode",
            "lexical",
            "-f",
            "json",
        ])
        .args(["--repo", repo.path().to_str().unwrap()])
        .args(["-m", "/nonexistent/model.gguf"])
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert_eq!(json(&out)["results"][0]["path"], "web/shipping.ts");
}

fn paths(hits: &[Value]) -> Vec<String> {
    hits.iter()
        .map(|h| h["path"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn filters_paging_context_and_token_budget() {
    let repo = planted_repo();
    index(repo.path(), &[]);
    let r = repo.path();
    let all = search(r, "total policy", &["-k", "40"]);
    assert!(all.len() > 20);

    let py = search(r, "total policy", &["--glob", "**/*.py"]);
    assert_eq!(paths(&py), ["billing/refunds/policy.py"]);
    let no_misc = search(r, "total policy", &["-g", "!misc/**", "-k", "40"]);
    assert!(!no_misc.is_empty());
    assert!(paths(&no_misc).iter().all(|p| !p.starts_with("misc/")));
    let go = search(r, "total policy", &["--lang", "go", "--lang", "typescript"]);
    let mut go_paths = paths(&go);
    go_paths.sort();
    // The Go file is two chunks: `package server` and the function.
    go_paths.dedup();
    assert_eq!(go_paths, ["server/retry.go", "web/shipping.ts"]);
    let billing = search(r, "total policy", &["--path", "billing/", "-k", "40"]);
    assert!(paths(&billing).iter().all(|p| p.starts_with("billing/")));
    assert_eq!(billing.len(), 2);
    for hit in &go {
        assert!(hit["language"] == "go" || hit["language"] == "typescript");
    }

    // Pages are the same list cut in pieces.
    for mode in ["hybrid", "semantic", "lexical"] {
        let whole = search(r, "total policy", &["--mode", mode, "-k", "6"]);
        let first = search(r, "total policy", &["--mode", mode, "-k", "3"]);
        let second = search(
            r,
            "total policy",
            &["--mode", mode, "-k", "3", "--offset", "3"],
        );
        assert_eq!(paths(&whole)[..3], paths(&first)[..], "{mode}");
        assert_eq!(paths(&whole)[3..], paths(&second)[..], "{mode}");
    }

    // A token budget keeps whole results while they fit.
    let tokens: Vec<u64> = all.iter().map(|h| h["tokens"].as_u64().unwrap()).collect();
    let budget = tokens[0] + tokens[1] + tokens[2] / 2;
    let budgeted = search(
        r,
        "total policy",
        &["-k", "40", "--max-tokens", &budget.to_string()],
    );
    assert_eq!(paths(&budgeted), paths(&all)[..2]);
    let tiny = search(r, "total policy", &["--max-tokens", "1"]);
    assert_eq!(tiny.len(), 1, "the first result always comes");

    // A threshold keeps only hits at least that similar.
    let scored = search(r, "total policy", &["-k", "40"]);
    let mut sims: Vec<f64> = scored
        .iter()
        .map(|h| h["similarity"].as_f64().unwrap())
        .collect();
    sims.sort_by(f64::total_cmp);
    let t = sims[sims.len() / 2];
    let above = search(
        r,
        "total policy",
        &["-k", "40", "--threshold", &t.to_string()],
    );
    assert!(!above.is_empty() && above.len() < scored.len());
    assert!(
        above
            .iter()
            .all(|h| h["similarity"].as_f64().unwrap() >= t - 1e-6)
    );

    // Bad filters and options are clear errors.
    for (args, says) in [
        (vec!["--lang", "klingon"], "unknown language"),
        (vec!["--glob", "a[b"], "bad glob"),
        (vec!["--mode", "lexical", "--threshold", "0.5"], "threshold"),
    ] {
        let mut full = vec!["search", "x", "--repo", r.to_str().unwrap()];
        full.extend(args);
        let out = run(&full);
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains(says));
    }
}

#[test]
fn text_output_shows_location_and_score() {
    let repo = planted_repo();
    index(repo.path(), &[]);
    let out = run(&[
        "search",
        "computeShippingQuote",
        "--repo",
        repo.path().to_str().unwrap(),
        "-k",
        "1",
        "-C",
        "1",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap();
    assert!(first.starts_with("web/shipping.ts:1-"), "{text}");
    assert!(first.contains("  0."), "{text}");
}

#[test]
fn only_changed_chunks_are_embedded_after_edits_moves_and_copies() {
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path();
    let body: String = (1..=80)
        .map(|i| format!("pub fn function_{i}(x: u32) -> u32 {{ x * {i} + 7 }}\n"))
        .collect();
    std::fs::create_dir_all(r.join("src")).unwrap();
    std::fs::write(r.join("src/many.rs"), &body).unwrap();
    std::fs::write(r.join("src/other.rs"), "pub fn other() -> u8 { 1 }\n").unwrap();
    let first = index(r, &["--chunk-tokens", "64"]);
    let db = r.join(".gguf-embed/index.sqlite");
    let chunks_of_many = Index::open(&db).unwrap().files().unwrap()[0].chunks.len();
    assert!(chunks_of_many > 4);
    assert_eq!(first["chunks"], chunks_of_many + 1);
    assert_eq!(first["reused_chunks"], 0);

    // Context lines come from the file around the chunk.
    let hits = search(
        r,
        "function_40",
        &["--mode", "lexical", "-C", "2", "-k", "1"],
    );
    let (start, end) = (
        hits[0]["start_line"].as_u64().unwrap() as usize,
        hits[0]["end_line"].as_u64().unwrap() as usize,
    );
    assert!(
        start > 2 && end < 79 && (start..=end).contains(&40),
        "{hits:?}"
    );
    let lines: Vec<&str> = body.split_inclusive('\n').collect();
    assert_eq!(
        hits[0]["context_before"],
        lines[start - 3..start - 1].concat()
    );
    assert_eq!(hits[0]["context_after"], lines[end..end + 2].concat());

    // One digit changed in line 40: one chunk's text changes, the others are reused.
    let edited = body.replace("x * 40 + 7", "x * 40 + 8");
    std::fs::write(r.join("src/many.rs"), &edited).unwrap();
    let report = index(r, &["--chunk-tokens", "64"]);
    assert_eq!(report["embedded_files"], 1);
    assert_eq!(report["chunks"], 1);
    assert_eq!(report["reused_chunks"], chunks_of_many - 1);

    // A moved file and a copy reuse every chunk; the old path leaves the index.
    std::fs::create_dir_all(r.join("lib")).unwrap();
    std::fs::rename(r.join("src/many.rs"), r.join("lib/moved.rs")).unwrap();
    std::fs::write(r.join("src/copy.rs"), "pub fn other() -> u8 { 1 }\n").unwrap();
    let report = index(r, &["--chunk-tokens", "64"]);
    assert_eq!(report["chunks"], 0);
    assert_eq!(report["reused_chunks"], chunks_of_many + 1);
    assert_eq!(report["removed_files"], 1);
    let text = run(&[
        "index",
        "--repo",
        r.to_str().unwrap(),
        "-m",
        f32_model().to_str().unwrap(),
        "--chunk-tokens",
        "64",
    ]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("0 chunks embedded, 0 reused"));

    // The result equals a fresh index of the same tree, vectors included.
    let fresh = tempfile::tempdir().unwrap();
    let fresh_db = fresh.path().join("fresh.sqlite");
    index(
        r,
        &[
            "--chunk-tokens",
            "64",
            "--index",
            fresh_db.to_str().unwrap(),
        ],
    );
    common::vectors::assert_same_chunks(&db, &fresh_db);
}

#[test]
fn a_read_only_index_is_searchable() {
    let repo = planted_repo();
    index(repo.path(), &[]);
    let dir = repo.path().join(".gguf-embed");
    // A clean close leaves no write-ahead log; take the folder's write permission away so
    // that SQLite cannot create one either.
    use std::os::unix::fs::PermissionsExt;
    let db = dir.join("index.sqlite");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
    let mut perms = std::fs::metadata(&dir).unwrap().permissions();
    perms.set_mode(0o555);
    std::fs::set_permissions(&dir, perms.clone()).unwrap();
    let hits = search(repo.path(), "computeShippingQuote", &[]);
    assert_eq!(hits[0]["path"], "web/shipping.ts");
    let lexical = search(repo.path(), "RefundPolicyEngine", &["--mode", "lexical"]);
    assert_eq!(lexical[0]["path"], "billing/refunds/policy.py");
    perms.set_mode(0o755);
    std::fs::set_permissions(&dir, perms).unwrap();
}

#[test]
fn a_search_reads_one_state_of_the_index_while_a_writer_deletes_and_adds_files() {
    use gguf_embed::index::{IndexOptions, SearchMode, SearchOptions};
    use gguf_embed::{Embedder, EmbedderOptions};
    use std::sync::atomic::{AtomicBool, Ordering};

    // Forty files of one chunk each, every chunk holding the word searched for: a lexical
    // search with room for all of them returns every chunk of the state it read.
    let repo = tempfile::tempdir().unwrap();
    let root = repo.path();
    let body = |i: usize| {
        format!("fn marker_{i}() -> u32 {{\n    let shared_marker = {i};\n    shared_marker\n}}\n")
    };
    for i in 0..40 {
        common::repos::write(root, &format!("f{i:02}.rs"), body(i));
    }
    let db = root.join(".gguf-embed/index.sqlite");
    let embedder = Embedder::new(f32_model(), EmbedderOptions::default()).unwrap();
    let options = IndexOptions::default();
    let mut index = Index::open_or_create(&db, &embedder, &options, false).unwrap();
    index.update(root, &embedder, &options, &|_| {}).unwrap();

    let done = AtomicBool::new(false);
    let searches = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            // Half of the files leave and come back, again and again: every pass commits
            // several states (files deleted; files written without vectors; vectors).
            for round in 0..12 {
                for i in (round % 2..40).step_by(2) {
                    std::fs::remove_file(root.join(format!("f{i:02}.rs"))).unwrap();
                }
                index.update(root, &embedder, &options, &|_| {}).unwrap();
                for i in (round % 2..40).step_by(2) {
                    common::repos::write(root, &format!("f{i:02}.rs"), body(i));
                }
                index.update(root, &embedder, &options, &|_| {}).unwrap();
            }
            done.store(true, Ordering::SeqCst);
        });
        for _ in 0..2 {
            scope.spawn(|| {
                let reader = Index::open_read_only(&db).unwrap();
                while !done.load(Ordering::SeqCst) {
                    for mode in [
                        SearchMode::Lexical,
                        SearchMode::Semantic,
                        SearchMode::Hybrid,
                    ] {
                        let options = SearchOptions::default().with_mode(mode).with_k(1000);
                        let found = reader
                            .search(Some(&embedder), "shared_marker", &options)
                            .unwrap_or_else(|e| panic!("{mode:?} search failed: {e}"));
                        let c = found.coverage;
                        let want = match mode {
                            SearchMode::Semantic => c.embedded,
                            _ => c.total + c.lexical_only,
                        };
                        assert_eq!(
                            found.hits.len(),
                            want,
                            "{mode:?}: hits of another state than {c:?}"
                        );
                        assert!(c.total == 20 || c.total == 40, "{c:?}");
                        searches.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert!(searches.into_inner() > 10);
}
