//! Semantic search over a source repository: an incremental, crash-safe index of code chunks
//! in one SQLite file, searched exactly.
//!
//! ```no_run
//! use gguf_embed::index::{Index, IndexOptions, SearchOptions};
//! use gguf_embed::{Embedder, EmbedderOptions};
//!
//! let embedder = Embedder::new("Qwen3-Embedding-0.6B-Q8_0.gguf", EmbedderOptions::default())?;
//! let options = IndexOptions::default();
//! let mut index = Index::open_or_create(".gguf-embed/index.sqlite", &embedder, &options, false)?;
//! let report = index.update(".".as_ref(), &embedder, &options, &|_| {})?;
//! println!("{} files embedded", report.embedded_files);
//! for hit in index.search(&embedder, "where is the config parsed", &SearchOptions::default())? {
//!     println!("{}:{}-{} {:.3}", hit.path, hit.start_line, hit.end_line, hit.score);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Files are keyed by content hash: an update embeds only new and changed files and removes
//! deleted ones, one transaction per group of whole files, so a run killed at any moment leaves
//! a usable index and the next run goes on from there. The index records the model file's
//! hash, quantization, dimensions and chunking; using it with another model is an error whose
//! fix is `--reindex`.
//!
//! Search is exact: every stored vector is compared with the query (a dot product of unit
//! vectors). That stays well under the query's own embedding time up to a few hundred thousand
//! chunks (see the README); beyond that an approximate index (HNSW) would be needed.

mod chunk;
mod store;
mod walk;

use std::collections::{BinaryHeap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rusqlite::params;
use serde::Serialize;
use sha2::{Digest, Sha256};

pub use chunk::{Chunk, embedded_text, split};
pub use walk::{DEFAULT_MAX_FILE_BYTES, SkipReason, SourceFile, Walk, walk};

use crate::{EmbedOptions, Embedder, Instruction, PendingEmbeddings, Task};
use store::{Store, vector_blob};

/// The default token budget of a chunk (its path line included).
pub const DEFAULT_CHUNK_TOKENS: usize = 256;

/// The smallest chunk budget accepted (a path line and a few lines of code).
pub const MIN_CHUNK_TOKENS: usize = 32;

/// Where an index lives by default, relative to the repository.
pub const DEFAULT_INDEX_PATH: &str = ".gguf-embed/index.sqlite";

/// What can go wrong with an index.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// No index at that path.
    #[error("there is no index at {}: build one with `gguf-embed index`", .0.display())]
    Missing(PathBuf),
    /// The file is not a gguf-embed index.
    #[error("{} is not a gguf-embed index: {reason}; move it away or choose another --index", path.display())]
    NotAnIndex {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The index was built with another model or settings.
    #[error(
        "the index at {} was built with {built}, but this run uses {now}; use the same model \
         and settings, or rebuild the index with --reindex",
        path.display()
    )]
    ModelMismatch {
        /// The index.
        path: PathBuf,
        /// What it was built with.
        built: String,
        /// What this run uses.
        now: String,
    },
    /// A database error.
    #[error("index {}: {error}", path.display())]
    Database {
        /// The index.
        path: PathBuf,
        /// SQLite's error.
        error: rusqlite::Error,
    },
    /// A file could not be read or written.
    #[error("{}: {error}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// Embedding failed.
    #[error(transparent)]
    Embed(Box<crate::Error>),
}

impl IndexError {
    fn from_sqlite(path: &Path, error: rusqlite::Error) -> Self {
        if let rusqlite::Error::SqliteFailure(e, _) = &error
            && e.code == rusqlite::ErrorCode::NotADatabase
        {
            return IndexError::NotAnIndex {
                path: path.to_path_buf(),
                reason: "it is not an SQLite database (corrupt or another kind of file)".into(),
            };
        }
        IndexError::Database {
            path: path.to_path_buf(),
            error,
        }
    }

    fn io(path: &Path, error: std::io::Error) -> Self {
        IndexError::Io {
            path: path.to_path_buf(),
            error,
        }
    }
}

impl From<crate::Error> for IndexError {
    fn from(e: crate::Error) -> Self {
        IndexError::Embed(Box::new(e))
    }
}

/// How a repository is indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IndexOptions {
    /// Token budget per chunk.
    pub chunk_tokens: usize,
    /// Files larger than this are skipped.
    pub max_file_bytes: u64,
    /// Index at most this many files (the first in path order).
    pub limit: Option<usize>,
    /// Matryoshka size of the stored vectors (`None`: the model's full size).
    pub dimensions: Option<usize>,
}

impl Default for IndexOptions {
    fn default() -> Self {
        Self {
            chunk_tokens: DEFAULT_CHUNK_TOKENS,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            limit: None,
            dimensions: None,
        }
    }
}

impl IndexOptions {
    /// Sets the chunk token budget.
    pub fn with_chunk_tokens(mut self, tokens: usize) -> Self {
        self.chunk_tokens = tokens;
        self
    }

    /// Sets the file size cap.
    pub fn with_max_file_bytes(mut self, bytes: u64) -> Self {
        self.max_file_bytes = bytes;
        self
    }

    /// Limits the number of files.
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Stores vectors of this Matryoshka size.
    pub fn with_dimensions(mut self, dimensions: usize) -> Self {
        self.dimensions = Some(dimensions);
        self
    }
}

/// What an index is tied to: the model file and the settings that shape its vectors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fingerprint {
    /// The model file's sha256.
    pub model_sha256: String,
    /// The model file's name.
    pub model_file: String,
    /// Its quantization.
    pub quant: String,
    /// Stored vector size.
    pub dimensions: usize,
    /// Chunk token budget.
    pub chunk_tokens: usize,
}

impl Fingerprint {
    fn describe(&self) -> String {
        format!(
            "{} (sha256 {}…, {}), {} dimensions, chunks of {} tokens",
            self.model_file,
            &self.model_sha256[..self.model_sha256.len().min(12)],
            self.quant,
            self.dimensions,
            self.chunk_tokens
        )
    }

    const KEYS: [&'static str; 5] = [
        "model_sha256",
        "model_file",
        "quant",
        "dimensions",
        "chunk_tokens",
    ];

    fn values(&self) -> [String; 5] {
        [
            self.model_sha256.clone(),
            self.model_file.clone(),
            self.quant.clone(),
            self.dimensions.to_string(),
            self.chunk_tokens.to_string(),
        ]
    }
}

/// Progress of an update, for progress bars.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpdateEvent {
    /// The repository was walked: this many new or changed files will be embedded.
    Planned {
        /// Files to embed.
        files: usize,
    },
    /// Changed files embedded so far.
    Progress {
        /// Files embedded.
        files: usize,
        /// Chunks embedded.
        chunks: usize,
        /// Tokens embedded.
        tokens: usize,
    },
}

/// What an update did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct UpdateReport {
    /// Files in the repository that are indexed.
    pub files: usize,
    /// Files embedded in this run (new or changed).
    pub embedded_files: usize,
    /// Files left as they were.
    pub unchanged_files: usize,
    /// Files removed from the index (deleted, ignored, or beyond the limit).
    pub removed_files: usize,
    /// Chunks embedded.
    pub chunks: usize,
    /// Tokens embedded.
    pub tokens: usize,
    /// Chunks of a single line longer than the budget, embedded truncated.
    pub truncated_chunks: usize,
    /// Files skipped, by reason.
    pub skipped: HashMap<String, usize>,
    /// Wall time.
    pub seconds: f64,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Hit {
    /// The file, relative to the repository.
    pub path: String,
    /// First line of the chunk (from 1).
    pub start_line: usize,
    /// Last line of the chunk.
    pub end_line: usize,
    /// Cosine similarity to the query.
    pub score: f32,
    /// The chunk's text.
    pub snippet: String,
}

/// How to search.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SearchOptions {
    /// Results to return.
    pub k: usize,
    /// How the query is embedded: the code-search task by default; [`Instruction::None`] embeds
    /// it as a document (to find code like a given snippet).
    pub instruction: Instruction,
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self {
            k: 10,
            instruction: Instruction::Task(Task::CodeSearch),
        }
    }
}

/// The numbers `gguf-embed index --stats` shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct IndexStats {
    /// The index file.
    pub path: PathBuf,
    /// Indexed files.
    pub files: usize,
    /// Stored chunks.
    pub chunks: usize,
    /// What the index is tied to.
    pub fingerprint: Option<Fingerprint>,
    /// Bytes on disk (database and write-ahead log).
    pub bytes_on_disk: u64,
    /// The last update, as recorded.
    pub last_run: Option<serde_json::Value>,
    /// The model file path last used.
    pub model_path: Option<String>,
}

/// One indexed file and the line ranges of its chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct IndexedFile {
    /// The path relative to the repository.
    pub path: String,
    /// The sha256 of its content when indexed.
    pub sha256: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its chunks' first and last lines, in order.
    pub chunks: Vec<(usize, usize)>,
}

/// An index of a repository's code chunks and their vectors.
pub struct Index {
    path: PathBuf,
    store: Store,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Files per write transaction at most; a group also ends at `GROUP_TOKENS`.
const GROUP_FILES: usize = 64;
/// Tokens per group of files embedded together (enough to keep the engine's decodes full).
const GROUP_TOKENS: usize = 16_384;

impl Index {
    /// Opens an existing index.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, IndexError> {
        let path = path.as_ref().to_path_buf();
        let store = Store::open(&path)?;
        Ok(Self { path, store })
    }

    /// Opens the index at `path` for `embedder`, creating it if needed. With `reindex`, an
    /// existing index is emptied first; without it, an index built with another model or
    /// settings is an error.
    pub fn open_or_create(
        path: impl AsRef<Path>,
        embedder: &Embedder,
        options: &IndexOptions,
        reindex: bool,
    ) -> Result<Self, IndexError> {
        let path = path.as_ref().to_path_buf();
        if options.chunk_tokens < MIN_CHUNK_TOKENS {
            return Err(IndexError::Embed(Box::new(crate::Error::InvalidOption(
                format!(
                    "chunks need at least {MIN_CHUNK_TOKENS} tokens, not {}",
                    options.chunk_tokens
                ),
            ))));
        }
        let index = if path.exists() {
            let index = Self::open(&path)?;
            if reindex {
                index.clear()?;
            }
            index
        } else {
            ignore_in_git(&path);
            Self {
                store: Store::create(&path)?,
                path: path.clone(),
            }
        };
        let fingerprint = index.fingerprint_of(embedder, options)?;
        match index.fingerprint()? {
            Some(built) if built != fingerprint => Err(IndexError::ModelMismatch {
                path,
                built: built.describe(),
                now: fingerprint.describe(),
            }),
            Some(_) => Ok(index),
            None => {
                index.write_fingerprint(&fingerprint)?;
                Ok(index)
            }
        }
    }

    /// The index file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db<T>(&self, r: rusqlite::Result<T>) -> Result<T, IndexError> {
        r.map_err(|e| IndexError::from_sqlite(&self.path, e))
    }

    /// What the index is tied to (`None` for a new, empty index).
    pub fn fingerprint(&self) -> Result<Option<Fingerprint>, IndexError> {
        let mut values = Vec::new();
        for key in Fingerprint::KEYS {
            match self.db(self.store.meta(key))? {
                Some(v) => values.push(v),
                None => return Ok(None),
            }
        }
        Ok(Some(Fingerprint {
            model_sha256: values[0].clone(),
            model_file: values[1].clone(),
            quant: values[2].clone(),
            dimensions: values[3].parse().unwrap_or(0),
            chunk_tokens: values[4].parse().unwrap_or(0),
        }))
    }

    /// The fingerprint `embedder` and `options` would give, reusing the model hash recorded in
    /// the index while the model file is unchanged (hashing 600 MB costs a second).
    fn fingerprint_of(
        &self,
        embedder: &Embedder,
        options: &IndexOptions,
    ) -> Result<Fingerprint, IndexError> {
        let known = self.db(self.store.meta("model_hash_cache"))?.and_then(|v| {
            v.rsplit_once(' ')
                .map(|(stamp, sha)| (stamp.to_string(), sha.to_string()))
        });
        let f = fingerprint(embedder, options, known)?;
        if let Some(stamp) = file_stamp(&embedder.info().path) {
            self.db(self
                .store
                .set_meta("model_hash_cache", &format!("{stamp} {}", f.model_sha256)))?;
        }
        Ok(f)
    }

    fn write_fingerprint(&self, f: &Fingerprint) -> Result<(), IndexError> {
        for (key, value) in Fingerprint::KEYS.iter().zip(f.values()) {
            self.db(self.store.set_meta(key, &value))?;
        }
        Ok(())
    }

    /// Removes every file, chunk and the fingerprint.
    fn clear(&self) -> Result<(), IndexError> {
        self.db(self.store.conn.execute_batch(
            "BEGIN; DELETE FROM chunks; DELETE FROM files; DELETE FROM meta WHERE key NOT IN ('format', 'schema_version'); COMMIT;",
        ))
    }

    /// Brings the index up to date with `repo`: embeds new and changed files, removes deleted
    /// ones. `progress` is told how far it got.
    pub fn update(
        &mut self,
        repo: &Path,
        embedder: &Embedder,
        options: &IndexOptions,
        progress: &dyn Fn(&UpdateEvent),
    ) -> Result<UpdateReport, IndexError> {
        let started = Instant::now();
        // Recorded first, so a search finds the model even after an interrupted run.
        self.db(self
            .store
            .set_meta("model_path", &embedder.info().path.display().to_string()))?;
        let walked = walk(
            repo,
            options.max_file_bytes,
            options.limit,
            self.path.parent(),
        )
        .map_err(|e| IndexError::io(repo, e))?;
        let mut report = UpdateReport {
            files: walked.files.len(),
            ..UpdateReport::default()
        };
        for (_, reason) in &walked.skipped {
            let key = serde_json::to_value(reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            *report.skipped.entry(key).or_default() += 1;
        }
        let known = self.db(self.store.file_hashes())?;
        report.removed_files = self.remove_absent(&walked.files, &known)?;

        let mut changed = Vec::new();
        for file in walked.files {
            let hash = sha256_hex(file.text.as_bytes());
            if known.get(&file.path) == Some(&hash) {
                report.unchanged_files += 1;
            } else {
                changed.push((file, hash));
            }
        }
        progress(&UpdateEvent::Planned {
            files: changed.len(),
        });
        self.embed_files(changed, embedder, options, &mut report, progress)?;
        report.seconds = started.elapsed().as_secs_f64();
        let run = serde_json::json!({
            "finished_at": unix_now(),
            "files": report.files,
            "embedded_files": report.embedded_files,
            "unchanged_files": report.unchanged_files,
            "removed_files": report.removed_files,
            "chunks": report.chunks,
            "tokens": report.tokens,
            "seconds": report.seconds,
        });
        self.db(self.store.set_meta("last_run", &run.to_string()))?;
        Ok(report)
    }

    /// Deletes indexed files that are not in the walk.
    fn remove_absent(
        &self,
        files: &[SourceFile],
        known: &HashMap<String, String>,
    ) -> Result<usize, IndexError> {
        let present: std::collections::HashSet<&str> =
            files.iter().map(|f| f.path.as_str()).collect();
        let gone: Vec<&String> = known
            .keys()
            .filter(|p| !present.contains(p.as_str()))
            .collect();
        if gone.is_empty() {
            return Ok(0);
        }
        let tx = self.db(self.store.conn.unchecked_transaction())?;
        for path in &gone {
            self.db(tx.execute("DELETE FROM files WHERE path = ?1", [path]))?;
        }
        self.db(tx.commit())?;
        Ok(gone.len())
    }

    /// Chunks and embeds changed files group by group, preparing the next group while the
    /// engine embeds the current one, and writes each group in one transaction.
    fn embed_files(
        &self,
        changed: Vec<(SourceFile, String)>,
        embedder: &Embedder,
        options: &IndexOptions,
        report: &mut UpdateReport,
        progress: &dyn Fn(&UpdateEvent),
    ) -> Result<(), IndexError> {
        // A chunk fits its budget unless it is one overlong line: that one is truncated.
        let embed_options = EmbedOptions::documents()
            .with_dimensions(options.dimensions.unwrap_or(embedder.dimensions()))
            .with_max_tokens(options.chunk_tokens)
            .with_truncation_warning(false);
        let count = |text: &str| {
            embedder
                .count_tokens(text, &Instruction::None)
                .unwrap_or(usize::MAX)
        };
        let mut files = changed.into_iter().peekable();
        let mut in_flight: Option<(Group, PendingEmbeddings)> = None;
        let mut done_files = 0;
        loop {
            let group = next_group(&mut files, options.chunk_tokens, &count);
            let next = match group {
                Some(group) => {
                    let texts: Vec<String> = group.texts();
                    let pending = embedder.submit(&texts, &embed_options)?;
                    Some((group, pending))
                }
                None => None,
            };
            if let Some((group, pending)) = in_flight.take() {
                let embeddings = pending.wait()?;
                self.write_group(&group, &embeddings)?;
                report.embedded_files += group.files.len();
                report.chunks += embeddings.len();
                report.tokens += embeddings.iter().map(|e| e.tokens).sum::<usize>();
                report.truncated_chunks += embeddings.iter().filter(|e| e.truncated).count();
                done_files += group.files.len();
                progress(&UpdateEvent::Progress {
                    files: done_files,
                    chunks: report.chunks,
                    tokens: report.tokens,
                });
            }
            match next {
                Some(n) => in_flight = Some(n),
                None => return Ok(()),
            }
        }
    }

    /// Replaces the group's files and chunks in one transaction.
    fn write_group(
        &self,
        group: &Group,
        embeddings: &[crate::Embedding],
    ) -> Result<(), IndexError> {
        let tx = self.db(self.store.conn.unchecked_transaction())?;
        let now = unix_now();
        let mut vectors = embeddings.iter();
        for file in &group.files {
            self.db(tx.execute("DELETE FROM files WHERE path = ?1", [&file.path]))?;
            self.db(tx.execute(
                "INSERT INTO files (path, sha256, bytes, indexed_at) VALUES (?1, ?2, ?3, ?4)",
                params![file.path, file.sha256, file.bytes as i64, now as i64],
            ))?;
            let file_id = tx.last_insert_rowid();
            let mut insert = self.db(tx.prepare_cached(
                "INSERT INTO chunks (file_id, start_line, end_line, tokens, text, embedding) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            ))?;
            for chunk in &file.chunks {
                let e = vectors.next().expect("one embedding per chunk");
                self.db(insert.execute(params![
                    file_id,
                    chunk.start_line as i64,
                    chunk.end_line as i64,
                    e.tokens as i64,
                    chunk.text,
                    vector_blob(&e.vector)
                ]))?;
            }
        }
        self.db(tx.commit())
    }

    /// Embeds the query and returns the `k` most similar chunks, best first.
    pub fn search(
        &self,
        embedder: &Embedder,
        query: &str,
        options: &SearchOptions,
    ) -> Result<Vec<Hit>, IndexError> {
        let fingerprint = self
            .fingerprint()?
            .ok_or_else(|| IndexError::Missing(self.path.clone()))?;
        let now = self.fingerprint_of(
            embedder,
            &IndexOptions {
                chunk_tokens: fingerprint.chunk_tokens,
                dimensions: Some(fingerprint.dimensions),
                ..IndexOptions::default()
            },
        )?;
        if now != fingerprint {
            return Err(IndexError::ModelMismatch {
                path: self.path.clone(),
                built: fingerprint.describe(),
                now: now.describe(),
            });
        }
        let embed = EmbedOptions::default()
            .with_instruction(options.instruction.clone())
            .with_dimensions(fingerprint.dimensions);
        let query = embedder.embed(&[query], &embed)?.remove(0).vector;
        self.search_vector(&query, options.k)
    }

    /// The `k` chunks whose vectors are most similar to `query` (exact scan), best first.
    pub fn search_vector(&self, query: &[f32], k: usize) -> Result<Vec<Hit>, IndexError> {
        let mut best: BinaryHeap<Scored> = BinaryHeap::with_capacity(k + 1);
        let mut stmt = self.db(self.store.conn.prepare("SELECT id, embedding FROM chunks"))?;
        let mut rows = self.db(stmt.query([]))?;
        while let Some(row) = self.db(rows.next())? {
            let id: i64 = self.db(row.get(0))?;
            let blob = self.db(row.get_ref(1).and_then(|v| Ok(v.as_blob()?)))?;
            if blob.len() != query.len() * 4 {
                continue;
            }
            let score = dot_blob(blob, query);
            if best.len() < k || best.peek().is_some_and(|w| score > w.score) {
                best.push(Scored { score, id });
                if best.len() > k {
                    best.pop();
                }
            }
        }
        let mut winners = best.into_sorted_vec();
        winners.truncate(k);
        winners
            .into_iter()
            .map(|s| self.hit(s.id, s.score))
            .collect()
    }

    fn hit(&self, id: i64, score: f32) -> Result<Hit, IndexError> {
        self.db(self.store.conn.query_row(
            "SELECT f.path, c.start_line, c.end_line, c.text FROM chunks c JOIN files f ON f.id = c.file_id WHERE c.id = ?1",
            [id],
            |r| {
                Ok(Hit {
                    path: r.get(0)?,
                    start_line: r.get::<_, i64>(1)? as usize,
                    end_line: r.get::<_, i64>(2)? as usize,
                    score,
                    snippet: r.get(3)?,
                })
            },
        ))
    }

    /// Every indexed file with its chunks' line ranges, in path order.
    pub fn files(&self) -> Result<Vec<IndexedFile>, IndexError> {
        let mut stmt = self.db(self.store.conn.prepare(
            "SELECT f.path, f.sha256, f.bytes, c.start_line, c.end_line FROM files f \
             LEFT JOIN chunks c ON c.file_id = f.id ORDER BY f.path, c.start_line",
        ))?;
        let rows = self.db(stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, Option<i64>>(4)?,
            ))
        }))?;
        let mut files: Vec<IndexedFile> = Vec::new();
        for row in rows {
            let (path, sha256, bytes, start, end) = self.db(row)?;
            if files.last().is_none_or(|f| f.path != path) {
                files.push(IndexedFile {
                    path,
                    sha256,
                    bytes: bytes as u64,
                    chunks: Vec::new(),
                });
            }
            if let (Some(s), Some(e)) = (start, end) {
                files
                    .last_mut()
                    .expect("pushed above")
                    .chunks
                    .push((s as usize, e as usize));
            }
        }
        Ok(files)
    }

    /// Files, chunks, model, size on disk and the last run.
    pub fn stats(&self) -> Result<IndexStats, IndexError> {
        let count = |table: &str| -> Result<usize, IndexError> {
            self.db(self
                .store
                .conn
                .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
                    r.get::<_, i64>(0)
                }))
            .map(|n| n as usize)
        };
        let mut wal = self.path.as_os_str().to_owned();
        wal.push("-wal");
        let bytes_on_disk = [self.path.clone(), PathBuf::from(wal)]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        Ok(IndexStats {
            path: self.path.clone(),
            files: count("files")?,
            chunks: count("chunks")?,
            fingerprint: self.fingerprint()?,
            bytes_on_disk,
            last_run: self
                .db(self.store.meta("last_run"))?
                .and_then(|s| serde_json::from_str(&s).ok()),
            model_path: self.db(self.store.meta("model_path"))?,
        })
    }
}

/// The dot product of a stored little-endian f32 blob with a vector, read in place, with
/// eight independent sums so the compiler can vectorise it.
fn dot_blob(blob: &[u8], query: &[f32]) -> f32 {
    let mut sums = [0f32; 8];
    let blocks = blob.chunks_exact(32).zip(query.chunks_exact(8));
    for (bytes, q) in blocks {
        for lane in 0..8 {
            let b = &bytes[lane * 4..lane * 4 + 4];
            sums[lane] += f32::from_le_bytes([b[0], b[1], b[2], b[3]]) * q[lane];
        }
    }
    let tail = query.len() / 8 * 8;
    let rest: f32 = blob[tail * 4..]
        .chunks_exact(4)
        .zip(&query[tail..])
        .map(|(b, q)| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) * q)
        .sum();
    sums.iter().sum::<f32>() + rest
}

/// A candidate in the top-k heap, ordered so the worst is on top.
#[derive(PartialEq)]
struct Scored {
    score: f32,
    id: i64,
}

impl Eq for Scored {}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Reversed: BinaryHeap is a max-heap and we keep the lowest score on top.
        other
            .score
            .total_cmp(&self.score)
            .then(self.id.cmp(&other.id))
    }
}

/// A file ready to be written: its chunks and hash.
struct PreparedFile {
    path: String,
    sha256: String,
    bytes: usize,
    chunks: Vec<Chunk>,
}

/// Files embedded and written together.
struct Group {
    files: Vec<PreparedFile>,
}

impl Group {
    fn texts(&self) -> Vec<String> {
        self.files
            .iter()
            .flat_map(|f| {
                f.chunks
                    .iter()
                    .map(move |c| embedded_text(&f.path, &c.text))
            })
            .collect()
    }
}

/// Chunks the next files until the group holds enough tokens to keep the engine busy.
fn next_group(
    files: &mut std::iter::Peekable<impl Iterator<Item = (SourceFile, String)>>,
    chunk_tokens: usize,
    count: &dyn Fn(&str) -> usize,
) -> Option<Group> {
    let mut group = Group { files: Vec::new() };
    let mut tokens = 0;
    while group.files.len() < GROUP_FILES && tokens < GROUP_TOKENS {
        let Some((file, sha256)) = files.next() else {
            break;
        };
        let chunks = split(&file.path, &file.text, chunk_tokens, count);
        tokens += chunks.len() * chunk_tokens / 2;
        group.files.push(PreparedFile {
            bytes: file.text.len(),
            path: file.path,
            sha256,
            chunks,
        });
    }
    (!group.files.is_empty()).then_some(group)
}

/// What `embedder` and `options` would tie an index to. `known` is a previously computed
/// `(stamp, sha256)` of a model file, reused while the file is unchanged.
fn fingerprint(
    embedder: &Embedder,
    options: &IndexOptions,
    known: Option<(String, String)>,
) -> Result<Fingerprint, IndexError> {
    let info = embedder.info();
    let sha = match known {
        Some((stamp, sha)) if file_stamp(&info.path).as_ref() == Some(&stamp) => sha,
        _ => model_sha256(&info.path)?,
    };
    Ok(Fingerprint {
        model_sha256: sha,
        model_file: info
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        quant: info.file_type.clone().unwrap_or_else(|| "unknown".into()),
        dimensions: options.dimensions.unwrap_or(embedder.dimensions()),
        chunk_tokens: options.chunk_tokens,
    })
}

/// The canonical path, size and modification time of a file: enough to tell it is unchanged.
fn file_stamp(path: &Path) -> Option<String> {
    let real = std::fs::canonicalize(path).ok()?;
    Some(format!(
        "{}|{}",
        real.display(),
        crate::hub::file_stamp(&real)?
    ))
}

/// The model file's sha256: free for files in the Hugging Face cache (their blob is named by
/// it), computed otherwise.
fn model_sha256(path: &Path) -> Result<String, IndexError> {
    let real = std::fs::canonicalize(path).map_err(|e| IndexError::io(path, e))?;
    if let Some(name) = real.file_name().and_then(|n| n.to_str())
        && crate::hub::is_sha256(name)
    {
        return Ok(name.to_string());
    }
    crate::hub::sha256_of(&real).map_err(|e| IndexError::io(&real, e))
}

fn sha256_hex(bytes: &[u8]) -> String {
    crate::hub::hex(&Sha256::digest(bytes))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Keeps a new index folder out of git: `.gguf-embed/.gitignore` with `*`.
fn ignore_in_git(index: &Path) {
    if let Some(dir) = index.parent()
        && dir.file_name().is_some_and(|n| n == ".gguf-embed")
    {
        let _ = std::fs::create_dir_all(dir);
        let _ = std::fs::write(
            dir.join(".gitignore"),
            "# Created by gguf-embed: the index is a local cache.\n*\n",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_on_stored_bytes_equals_the_plain_dot_product() {
        for len in [1usize, 7, 8, 9, 64, 1027] {
            let a: Vec<f32> = (0..len)
                .map(|i| ((i * 37 % 11) as f32 - 5.0) / 7.0)
                .collect();
            let b: Vec<f32> = (0..len)
                .map(|i| ((i * 13 % 17) as f32 - 8.0) / 9.0)
                .collect();
            let expected = crate::vector::dot(&a, &b);
            let got = dot_blob(&vector_blob(&a), &b);
            assert!(
                (expected - got).abs() <= 1e-4 * expected.abs().max(1.0),
                "{len}: {expected} vs {got}"
            );
        }
    }

    #[test]
    fn the_heap_keeps_the_best_scores() {
        let mut heap = BinaryHeap::new();
        for (id, score) in [(1, 0.5f32), (2, 0.9), (3, 0.1), (4, 0.7)] {
            heap.push(Scored { score, id });
            if heap.len() > 2 {
                heap.pop();
            }
        }
        let ids: Vec<i64> = heap.into_sorted_vec().iter().map(|s| s.id).collect();
        assert_eq!(ids, [2, 4]);
    }
}
