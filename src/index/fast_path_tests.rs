//! The fast search paths return exactly what a straightforward reference returns: every
//! match scored, joined with its chunk, sorted (score, then id) and cut in Rust.

use std::collections::HashSet;
use std::path::Path;

use rusqlite::Connection;

use super::lexical::fts_query;
use super::store::{NewChunk, NewFile, Store, vector_blob};

const WORDS: &[&str] = &[
    "load", "config", "parse", "header", "retry", "token", "cache", "index", "path", "error",
    "buffer", "stream", "request", "client", "server", "model", "vector", "chunk", "query",
];

/// A deterministic pseudo-random sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn word(&mut self) -> &'static str {
        WORDS[(self.next() % WORDS.len() as u64) as usize]
    }
}

/// An index of `files` files with five chunks each: generated code, some chunks repeated
/// word for word in other files (equal scores), and random unit vectors of `dims`.
fn fill(path: &Path, files: usize, dims: usize) -> Store {
    fill_with(path, files, &mut |rng| {
        let mut v: Vec<f32> = (0..dims)
            .map(|_| (rng.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
            .collect();
        crate::vector::l2_normalize(&mut v);
        v
    })
}

/// [`fill`] with the vectors `vector` makes, in chunk order.
fn fill_with(path: &Path, files: usize, vector: &mut dyn FnMut(&mut Rng) -> Vec<f32>) -> Store {
    let store = Store::create(path).unwrap();
    let mut rng = Rng(0x9e3779b97f4a7c15);
    // Per file: its path and its chunks' (text, parts, vector bytes).
    type Chunks = Vec<(String, String, Vec<u8>)>;
    let mut rows: Vec<(String, Chunks)> = Vec::new();
    for f in 0..files {
        let path = format!("src/{}/{}_{f}.rs", rng.word(), rng.word());
        let chunks = (0..5)
            .map(|c| {
                let text = if c == 0 {
                    // The same text in every file: ties in lexical search.
                    "fn shared() { load(config) }\n".to_string()
                } else {
                    (0..6)
                        .map(|_| format!("let {}_{} = {}();\n", rng.word(), rng.word(), rng.word()))
                        .collect()
                };
                let v = vector(&mut rng);
                let parts = super::lexical::parts_column(&text);
                (text, parts, vector_blob(&v))
            })
            .collect();
        rows.push((path, chunks));
    }
    let hashes: Vec<Vec<String>> = rows
        .iter()
        .enumerate()
        .map(|(f, (_, cs))| (0..cs.len()).map(|c| format!("{f}-{c}")).collect())
        .collect();
    let new: Vec<NewFile<'_>> = rows
        .iter()
        .zip(&hashes)
        .map(|((path, chunks), hashes)| NewFile {
            path,
            sha256: "",
            bytes: 0,
            origin: 0,
            lexical_only: false,
            rank: 0,
            chunks: chunks
                .iter()
                .zip(hashes)
                .enumerate()
                .map(|(c, ((text, parts, vector), hash))| NewChunk {
                    start_line: c * 10 + 1,
                    end_line: c * 10 + 10,
                    symbol: None,
                    kind: None,
                    text_hash: hash,
                    tokens: 10,
                    text,
                    parts,
                    vector: Some(vector),
                })
                .collect(),
        })
        .collect();
    store.write_files(&new, 0).unwrap();
    store
}

/// Every match of `query` with its file, scored by the same bm25 weights, best first, equal
/// scores by id; only files `keep` accepts; the first `limit`.
fn reference_lexical(
    db: &Path,
    query: &str,
    limit: usize,
    keep: &dyn Fn(i64) -> bool,
) -> Vec<(i64, f32)> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT f.rowid, c.file_id, bm25(chunks_fts, 2.0, 1.0, 0.5) FROM chunks_fts f \
             JOIN chunks c ON c.id = f.rowid WHERE chunks_fts MATCH ?1",
        )
        .unwrap();
    let mut all: Vec<(i64, i64, f64)> = stmt
        .query_map([query], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    all.sort_by(|a, b| a.2.total_cmp(&b.2).then(a.0.cmp(&b.0)));
    all.into_iter()
        .filter(|&(_, file, _)| keep(file))
        .take(limit)
        .map(|(id, _, bm25)| (id, -bm25 as f32))
        .collect()
}

#[test]
fn lexical_search_equals_the_reference_with_and_without_a_filter() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.sqlite");
    let store = fill(&db, 300, 16);
    let even = |file: i64| file % 2 == 0;
    let few: HashSet<i64> = [3, 77, 150, 299].into();
    let rare = |file: i64| few.contains(&file);
    let mut ties_seen = false;
    for text in [
        "load config",
        "shared",
        "parseHeader retry_token",
        "where do we cache the request",
        "vector",
        "no_such_word",
    ] {
        let q = fts_query(text).unwrap();
        for limit in [0, 1, 10, 30, 5000] {
            let fast = store.lexical(&q, limit, None).unwrap();
            let want = reference_lexical(&db, &q, limit, &|_| true);
            assert_eq!(fast, want, "{text:?}, limit {limit}");
            ties_seen |= fast.windows(2).any(|w| w[0].1 == w[1].1);
            for keep in [&even as &dyn Fn(i64) -> bool, &rare] {
                let fast = store.lexical(&q, limit, Some(keep)).unwrap();
                assert_eq!(fast, reference_lexical(&db, &q, limit, keep), "{text:?}");
            }
        }
    }
    assert!(ties_seen, "the data should hold equal scores");
}

/// Every embedded chunk's (path, first line, cosine) for `query`, best first, equal scores in
/// id order (the order the scan meets them), the first `k`: what a plain scan of the float
/// vectors returns.
fn reference_semantic(db: &Path, query: &[f32], k: usize) -> Vec<(String, usize, f32)> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT f.path, c.start_line, c.embedding FROM chunks c JOIN files f \
             ON f.id = c.file_id WHERE c.embedding IS NOT NULL ORDER BY c.id",
        )
        .unwrap();
    let mut all: Vec<(String, usize, f32)> = stmt
        .query_map([], |r| {
            let blob: Vec<u8> = r.get(2)?;
            Ok((
                r.get(0)?,
                r.get::<_, i64>(1)? as usize,
                super::search::dot_blob(&blob, query),
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    // A stable sort keeps id order among equal scores.
    all.sort_by(|a, b| b.2.total_cmp(&a.2));
    all.truncate(k);
    all
}

fn semantic(index: &super::Index, query: &[f32], k: usize) -> Vec<(String, usize, f32)> {
    index
        .search_vector(query, k)
        .unwrap()
        .into_iter()
        .map(|h| (h.path, h.start_line, h.score))
        .collect()
}

#[test]
fn the_scan_of_int8_codes_returns_what_the_float_scan_returns() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.sqlite");
    let dims = 64;
    let store = fill(&db, 400, dims);
    // Queries: random directions, and stored vectors themselves (a perfect match first,
    // then close calls for the codes).
    let stored: Vec<Vec<f32>> = store
        .all_vectors()
        .unwrap()
        .into_iter()
        .step_by(97)
        .map(|(_, _, _, b)| super::store::blob_vector(&b))
        .collect();
    let mut rng = Rng(7);
    let mut queries: Vec<Vec<f32>> = (0..8)
        .map(|_| {
            let mut v: Vec<f32> = (0..dims)
                .map(|_| (rng.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
                .collect();
            crate::vector::l2_normalize(&mut v);
            v
        })
        .collect();
    queries.extend(stored);
    drop(store);

    let with_codes = super::Index::open_read_only(&db).unwrap();
    assert!(with_codes.store.has_codes());
    for q in &queries {
        for k in [1, 10, 30, 2001, 5000] {
            assert_eq!(
                semantic(&with_codes, q, k),
                reference_semantic(&db, q, k),
                "k {k}"
            );
        }
    }
    drop(with_codes);

    // The same file as an index of schema 2 (no codes): read-only, it is scanned as floats;
    // opened for writing, it gains its codes and gives the same results again.
    {
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "DROP TABLE codes; UPDATE meta SET value = '2' WHERE key = 'schema_version';",
        )
        .unwrap();
    }
    let old = super::Index::open_read_only(&db).unwrap();
    assert!(!old.store.has_codes());
    for q in &queries[..3] {
        assert_eq!(semantic(&old, q, 10), reference_semantic(&db, q, 10));
    }
    drop(old);
    let upgraded = super::Index::open(&db).unwrap();
    assert!(upgraded.store.has_codes());
    let chunks = upgraded.store.counts().unwrap().total;
    let codes: i64 = Connection::open(&db)
        .unwrap()
        .query_row("SELECT count(*) FROM codes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(codes as usize, chunks);
    for q in &queries {
        assert_eq!(semantic(&upgraded, q, 30), reference_semantic(&db, q, 30));
    }
}

#[test]
fn the_int8_scan_equals_the_float_scan_when_scores_tie() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.sqlite");
    let dims = 32;
    // Seven distinct unit vectors, each stored for about 140 chunks (identical scores for any
    // query), built so that several also tie with one another on the axis queries below: the
    // first four share their first value, and each has exactly two non-zero values.
    let axis = |i: usize| {
        let mut v = vec![0f32; dims];
        v[i] = 1.0;
        v
    };
    let mut bases: Vec<Vec<f32>> = Vec::new();
    for (a, b) in [(1, 2), (1, 3), (1, 4), (1, 5), (0, 6), (7, 8), (9, 10)] {
        let mut v = vec![0f32; dims];
        v[0] = 0.6;
        v[a] += 0.8;
        v[b] += if a == 0 { 0.5 } else { 0.0 };
        crate::vector::l2_normalize(&mut v);
        bases.push(v);
    }
    let mut n = 0usize;
    let store = fill_with(&db, 200, &mut |_| {
        n += 1;
        bases[(n * 5 + n / 7) % bases.len()].clone()
    });
    let mut queries: Vec<Vec<f32>> = bases.clone();
    queries.extend([axis(0), axis(1), axis(6), axis(20)]);
    drop(store);
    let index = super::Index::open_read_only(&db).unwrap();
    let (mut ties, mut cut_ties) = (0, 0);
    for q in &queries {
        let whole = reference_semantic(&db, q, 1000);
        for k in [1, 2, 50, 139, 140, 141, 142, 280, 500, 999, 1000] {
            let want = reference_semantic(&db, q, k);
            assert_eq!(semantic(&index, q, k), want, "k {k}");
            // Evidence that the case is the one named: equal scores in the list, and cut
            // lists that end inside a run of equal scores.
            ties += want.windows(2).filter(|w| w[0].2 == w[1].2).count();
            cut_ties += (k < whole.len() && whole[k - 1].2 == whole[k].2) as usize;
        }
    }
    assert!(ties > 1000, "{ties} equal neighbours");
    assert!(cut_ties > 20, "{cut_ties} cuts inside a tie");
}

#[test]
fn deleting_a_file_deletes_its_codes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.sqlite");
    let store = fill(&db, 20, 8);
    let path = store.file_paths().unwrap()[3].1.clone();
    store.delete_files(&[&path]).unwrap();
    let conn = Connection::open(&db).unwrap();
    let orphans: i64 = conn
        .query_row(
            "SELECT count(*) FROM codes WHERE id NOT IN (SELECT id FROM chunks)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let codes: i64 = conn
        .query_row("SELECT count(*) FROM codes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(orphans, 0);
    assert_eq!(codes, 19 * 5);
}
