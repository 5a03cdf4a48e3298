//! Measures search on a large repository index: fills an index with random unit vectors and
//! generated code-like chunk text (the scan costs the same whatever the values; the lexical
//! index gets realistic identifiers), then times the vector scan alone and whole searches in
//! each mode (hybrid and semantic include the query embedding).
//!
//!     cargo run --release --example search_latency -- MODEL.gguf [CHUNKS] [RUNS]
//!
//! MODEL.gguf should have the real shape (1024 dimensions): `models/make_fixtures.py --shape real`.
//! Prints the median (p50) and p95 of RUNS (default 21) queries per mode, each query
//! different. With `SEARCH_LATENCY_INDEX=PATH` the filled index is kept at PATH and reused by
//! the next run (filling 100,000 chunks takes minutes); delete it to rebuild.

use std::error::Error;
use std::time::{Duration, Instant};

use gguf_embed::index::{Index, IndexOptions, SearchMode, SearchOptions, identifier_parts};
use gguf_embed::{Embedder, EmbedderOptions};

/// Words the generated identifiers are made of.
const WORDS: &[&str] = &[
    "load", "config", "parse", "header", "retry", "upload", "token", "cache", "index", "search",
    "file", "path", "error", "buffer", "stream", "request", "response", "client", "server",
    "model", "vector", "chunk", "query", "batch", "queue", "lock", "write", "read", "open",
    "close", "hash", "table", "row", "column", "user", "session", "event", "handler", "state",
    "value", "key", "node", "tree", "graph", "edge", "limit", "offset", "page", "score", "rank",
];

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let model = args
        .get(1)
        .ok_or("usage: search_latency MODEL.gguf [CHUNKS] [RUNS]")?;
    let chunks: usize = args.get(2).map_or(Ok(100_000), |s| s.parse())?;
    let runs: usize = args.get(3).map_or(Ok(21), |s| s.parse())?;

    let embedder = Embedder::new(model, EmbedderOptions::default())?;
    let dims = embedder.dimensions();
    let dir = tempfile::tempdir()?;
    let path = std::env::var_os("SEARCH_LATENCY_INDEX")
        .map_or_else(|| dir.path().join("index.sqlite"), std::path::PathBuf::from);
    let reuse = path.exists() && Index::open_read_only(&path)?.stats()?.chunks == chunks;
    if !reuse {
        let _ = std::fs::remove_file(&path);
        drop(Index::open_or_create(
            &path,
            &embedder,
            &IndexOptions::default(),
            false,
        )?);
        fill(&path, chunks, dims)?;
    }
    // Opening for writing gives an index of an older schema (or the one just filled, which
    // has no codes yet) the current one: the scan reads the vectors' int8 codes.
    drop(Index::open(&path)?);
    let index = Index::open_read_only(&path)?;
    let size = std::fs::metadata(&path)?.len();
    println!(
        "{chunks} chunks of {dims} dimensions, index {:.0} MB, {} ({} queries per figure)",
        size as f64 / 1e6,
        embedder.info().path.display(),
        runs
    );

    let mut seed = 1000u64;
    let (scan, scan95) = percentiles(runs, || {
        seed += 1;
        index.search_vector(&unit_vector(dims, seed), 10).unwrap();
    });
    println!(
        "scan only (top 10): p50 {:.1} ms, p95 {:.1} ms",
        ms(scan),
        ms(scan95)
    );
    for mode in [
        SearchMode::Lexical,
        SearchMode::Semantic,
        SearchMode::Hybrid,
    ] {
        let mut n = 0u64;
        let (p50, p95) = percentiles(runs, || {
            n += 1;
            let query = format!("where do we {} the {}", word(n * 7), identifier(n * 13));
            let options = SearchOptions::default().with_mode(mode);
            index.search(Some(&embedder), &query, &options).unwrap();
        });
        println!(
            "{mode:?} search: p50 {:.1} ms, p95 {:.1} ms",
            ms(p50),
            ms(p95)
        );
    }
    Ok(())
}

fn word(n: u64) -> &'static str {
    WORDS[(n as usize * 2654435761) % WORDS.len()]
}

/// A snake_case or camelCase identifier of two or three words.
fn identifier(n: u64) -> String {
    let (a, b, c) = (word(n), word(n / 3 + 1), word(n / 7 + 2));
    match n % 3 {
        0 => format!("{a}_{b}"),
        1 => format!("{a}{}{}", capitalise(b), capitalise(c)),
        _ => format!("{a}_{b}_{c}"),
    }
}

fn capitalise(w: &str) -> String {
    let mut c = w.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// Inserts `chunks` rows (ten per file) of random unit vectors and generated code straight
/// into the database, with their lexical-index rows, and marks it as schema 2 (chunks
/// without int8 codes): the next open for writing computes the codes as it would for an
/// index written by an older gguf-embed.
fn fill(path: &std::path::Path, chunks: usize, dims: usize) -> rusqlite::Result<()> {
    let mut conn = rusqlite::Connection::open(path)?;
    let tx = conn.transaction()?;
    tx.execute_batch(
        "DROP TABLE codes; UPDATE meta SET value = '2' WHERE key = 'schema_version';",
    )?;
    for f in 0..chunks.div_ceil(10) {
        let file = format!("src/{}/{}_{f}.rs", word(f as u64), identifier(f as u64));
        tx.execute(
            "INSERT INTO files (path, sha256, bytes, indexed_at) VALUES (?1, '', 0, 0)",
            [&file],
        )?;
        let file_id = tx.last_insert_rowid();
        for c in 0..10.min(chunks - f * 10) {
            let n = (f * 10 + c) as u64;
            let v = unit_vector(dims, n);
            let blob: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            let text: String = (0..12)
                .map(|l| {
                    format!(
                        "    let {} = {}(&{}, {l});\n",
                        identifier(n * 31 + l),
                        identifier(n * 17 + l),
                        word(n + l)
                    )
                })
                .collect();
            tx.execute(
                "INSERT INTO chunks (file_id, start_line, end_line, text_hash, tokens, text, embedding) \
                 VALUES (?1, ?2, ?3, ?4, 100, ?5, ?6)",
                rusqlite::params![
                    file_id,
                    (c * 20 + 1) as i64,
                    (c * 20 + 20) as i64,
                    format!("{n:064x}"),
                    text,
                    blob
                ],
            )?;
            let id = tx.last_insert_rowid();
            let parts: String = text
                .split(|ch: char| !(ch.is_alphanumeric() || ch == '_'))
                .filter(|w| !w.is_empty())
                .flat_map(identifier_parts)
                .collect::<Vec<_>>()
                .join(" ");
            tx.execute(
                "INSERT INTO chunks_fts (rowid, path, body, parts) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![id, file, text, parts],
            )?;
        }
    }
    tx.commit()
}

/// A deterministic pseudo-random unit vector.
fn unit_vector(dims: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut v: Vec<f32> = (0..dims)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    gguf_embed::vector::l2_normalize(&mut v);
    v
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The median and the 95th percentile (nearest rank) of `runs` timed calls.
fn percentiles(runs: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    let p95 = ((runs * 95).div_ceil(100)).clamp(1, runs) - 1;
    (times[runs / 2], times[p95])
}
