//! Measures exact search on a large repository index: fills an index with random unit vectors
//! (the scan costs the same whatever the values), then times the scan alone and a whole search
//! (query embedding + scan).
//!
//!     cargo run --release --example search_latency -- MODEL.gguf [CHUNKS]
//!
//! MODEL.gguf should have the real shape (1024 dimensions): `models/make_fixtures.py --shape real`.

use std::error::Error;
use std::time::{Duration, Instant};

use gguf_embed::index::{Index, IndexOptions, SearchOptions};
use gguf_embed::{Embedder, EmbedderOptions};

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let model = args
        .get(1)
        .ok_or("usage: search_latency MODEL.gguf [CHUNKS]")?;
    let chunks: usize = args.get(2).map_or(Ok(100_000), |s| s.parse())?;

    let embedder = Embedder::new(model, EmbedderOptions::default())?;
    let dims = embedder.dimensions();
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("index.sqlite");
    drop(Index::open_or_create(
        &path,
        &embedder,
        &IndexOptions::default(),
        false,
    )?);
    fill(&path, chunks, dims)?;
    let index = Index::open(&path)?;
    let size = std::fs::metadata(&path)?.len();
    println!(
        "{chunks} chunks of {dims} dimensions, index {:.0} MB",
        size as f64 / 1e6
    );

    let query: Vec<f32> = unit_vector(dims, 42);
    let scan = median(5, || {
        index.search_vector(&query, 10).unwrap();
    });
    let full = median(5, || {
        index
            .search(
                &embedder,
                "where is the configuration parsed",
                &SearchOptions::default(),
            )
            .unwrap();
    });
    println!("scan only (top 10): {:.1} ms", scan.as_secs_f64() * 1e3);
    println!(
        "search (embed the query + scan): {:.1} ms",
        full.as_secs_f64() * 1e3
    );
    Ok(())
}

/// Inserts `chunks` rows (ten per file) of random unit vectors straight into the database.
fn fill(path: &std::path::Path, chunks: usize, dims: usize) -> rusqlite::Result<()> {
    let mut conn = rusqlite::Connection::open(path)?;
    let tx = conn.transaction()?;
    for f in 0..chunks.div_ceil(10) {
        tx.execute(
            "INSERT INTO files (path, sha256, bytes, indexed_at) VALUES (?1, '', 0, 0)",
            [format!("src/file_{f}.rs")],
        )?;
        let file_id = tx.last_insert_rowid();
        for c in 0..10.min(chunks - f * 10) {
            let v = unit_vector(dims, (f * 10 + c) as u64);
            let blob: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            tx.execute(
                "INSERT INTO chunks (file_id, start_line, end_line, tokens, text, embedding) VALUES (?1, ?2, ?3, 100, 'fn x() {}', ?4)",
                rusqlite::params![file_id, (c * 20 + 1) as i64, (c * 20 + 20) as i64, blob],
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

fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}
