//! Code search over a source repository: an incremental, crash-safe index of code chunks in
//! one SQLite file, searched semantically (exact scan of the vectors), lexically (FTS5 with
//! code-aware terms) or both fused by reciprocal rank.
//!
//! ```no_run
//! use gguf_embed::index::{Index, IndexOptions, SearchOptions};
//! use gguf_embed::{Embedder, EmbedderOptions};
//!
//! let embedder = Embedder::new("Qwen3-Embedding-0.6B-Q8_0.gguf", EmbedderOptions::default())?;
//! let options = IndexOptions::default();
//! let mut index = Index::open_or_create(".gguf-embed/index.sqlite", &embedder, &options, false)?;
//! let report = index.update(".".as_ref(), &embedder, &options, &|_| {})?;
//! println!("{} chunks embedded, {} reused", report.chunks, report.reused_chunks);
//! let found = index.search(Some(&embedder), "where is the config parsed", &SearchOptions::default())?;
//! for hit in found.hits {
//!     println!("{}:{}-{} {:.3}", hit.path, hit.start_line, hit.end_line, hit.score);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! **Lexical first.** Every chunk exists in the index as soon as its file is chunked: its text
//! in the full-text table (searchable at once) and a state, embedded or not. An update is two
//! steps: the lexical pass ([`Index::update_lexical`]) writes every new and changed file's
//! chunks, with the vector of any chunk whose exact text is stored already (an unchanged
//! chunk of an edited file, a moved file, a copied block); then one writer drains the queue of
//! chunks without a vector ([`Index::embed_pending`]) in priority order: the files of the
//! lexical hits of recent searches (from any process: raising a file's priority is an UPDATE
//! the writer reads between groups), then recently modified files, then source before tests,
//! docs and data. A search reads one state of both ([`SearchResults::coverage`] says how much
//! is embedded). `index --watch`, the MCP server and a one-shot update differ only in when
//! they stop draining ([`Index::keep_current`]). Vendored and generated files are searched
//! lexically only unless asked ([`Origin`]).
//!
//! Files are keyed by content hash and chunks by the hash of their exact embedded text; each
//! group of files and each group of vectors is one transaction, so a run killed at any moment
//! leaves a usable index and the next run goes on from there. The index records the model
//! file's hash, quantization, dimensions and chunking; using it with another model is an
//! error whose fix is `--reindex`.
//!
//! Semantic search is exact: every stored vector is compared with the query (a dot product of
//! unit vectors). That stays well under the query's own embedding time up to a few hundred
//! thousand chunks (see docs/BENCHMARKS.md); beyond that an approximate index would be needed.
//!
//! Source files in nine languages are cut at their definitions (tree-sitter, see
//! [`chunk_code`]): a hit is one function, method, class or the like, named and kinded in
//! [`Hit::symbol`] and [`Hit::kind`]; other files are cut at lines ([`split`]).
//!
//! The modules: `store` (every SQL statement), `update` (the lexical pass and the embedding
//! queue), `keep` (passes for as long as a process runs), `pending` (the changed files read
//! again group by group, so that an update holds the text of one group at most, whatever the
//! repository's size), `classify` (vendored, generated, source, tests, docs, data), `chunk`
//! and `code` (line chunks, and tree-sitter chunks with the per-language tables), `search`
//! (the three modes, fusion, filters, output shaping), `lexical` (terms and safe FTS5
//! queries), `filter` (globs, languages, path prefix), `checks` (the model fingerprint), `lock`
//! (one writer per index, who it is, and requests for a pass), `watch` (batches of file
//! changes and requests).

mod checks;
mod chunk;
mod classify;
mod code;
mod codes;
#[cfg(test)]
mod fast_path_tests;
mod filter;
mod keep;
mod lexical;
mod lock;
mod pending;
mod search;
mod store;
mod update;
mod vector_file;
mod walk;
mod watch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

pub use checks::Fingerprint;
pub use chunk::{Chunk, chunk_file, embedded_text, split};
pub use classify::{Class, Classifier, Origin, class_of};
pub use code::chunk_code;
pub use filter::{PathFilter, language_names, language_of};
pub use keep::{KeepControl, KeepEvent};
pub use lexical::{fts_query, identifier_parts};
pub use lock::{Holder, WriterLock};
pub use search::{DEFAULT_RRF_K, Hit, SearchMode, SearchOptions, SearchResults, rrf};
pub use vector_file::{VectorFileHeader, VectorReader, VectorWriter};
pub use walk::{DEFAULT_MAX_FILE_BYTES, SkipReason, SourceFile, Unreadable, Walk, walk};
pub use watch::{Batch, Changes, DEFAULT_DEBOUNCE, Requester};

use crate::Embedder;
use store::{Store, blob_vector};

/// The default token budget of a chunk (its path line included).
pub const DEFAULT_CHUNK_TOKENS: usize = 256;

/// The smallest chunk budget accepted (a path line and a few lines of code).
pub const MIN_CHUNK_TOKENS: usize = 32;

/// Source text per write group at most by default (1 MiB): see [`IndexOptions::group_bytes`].
/// Groups usually end sooner, at 128 chunks (about 128 KiB of code at the default budget);
/// this bound is for files of long lines.
pub const DEFAULT_GROUP_BYTES: usize = 1 << 20;

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
    /// A search option or filter is not valid.
    #[error("{0}")]
    InvalidQuery(String),
    /// A vector file that cannot be used.
    #[error("{}: {reason}", path.display())]
    VectorFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Another process holds the index's writer lock.
    #[error(
        "another gguf-embed process is updating the index at {} (it holds {}); searches still work",
        .0.display(),
        WriterLock::path_for(.0).display()
    )]
    Busy(PathBuf),
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
    /// Source text per write group at most, in bytes (a larger file makes a group of its
    /// own). An update holds the text of two groups at most (one being embedded, the next
    /// being chunked), so this bounds its memory whatever the size of the repository.
    pub group_bytes: usize,
    /// Embed vendored and generated files too (by default they are searched lexically only:
    /// see [`Origin`]).
    pub embed_vendored: bool,
}

impl Default for IndexOptions {
    fn default() -> Self {
        Self {
            chunk_tokens: DEFAULT_CHUNK_TOKENS,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            limit: None,
            dimensions: None,
            group_bytes: DEFAULT_GROUP_BYTES,
            embed_vendored: false,
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

    /// Sets the text per write group (see [`IndexOptions::group_bytes`]).
    pub fn with_group_bytes(mut self, bytes: usize) -> Self {
        self.group_bytes = bytes;
        self
    }

    /// Embeds vendored and generated files too.
    pub fn with_embed_vendored(mut self, embed: bool) -> Self {
        self.embed_vendored = embed;
        self
    }

    /// Whether files of this origin are searched lexically only.
    pub fn is_lexical_only(&self, origin: Origin) -> bool {
        origin != Origin::Own && !self.embed_vendored
    }
}

/// Progress of an update, for progress bars.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpdateEvent {
    /// The repository was walked: this many new or changed files will be chunked and written.
    Planned {
        /// Files to write.
        files: usize,
    },
    /// The lexical pass wrote more files (searchable lexically from now on).
    Written {
        /// Files written so far in this pass.
        files: usize,
        /// Their chunks.
        chunks: usize,
    },
    /// More chunks were embedded.
    Embedded {
        /// Chunks of the index with their vector now.
        embedded: usize,
        /// Chunks that are to have one (lexical-only files aside).
        total: usize,
        /// Tokens embedded so far in this run.
        tokens: usize,
    },
}

/// What an update did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct UpdateReport {
    /// Files in the repository that are indexed.
    pub files: usize,
    /// Files chunked and written in this run (new or changed).
    pub embedded_files: usize,
    /// Files left as they were.
    pub unchanged_files: usize,
    /// Files removed from the index (deleted, ignored, or beyond the limit).
    pub removed_files: usize,
    /// Chunk texts embedded.
    pub chunks: usize,
    /// Chunks of new and changed files whose text was already stored: they took that vector
    /// instead of being embedded.
    pub reused_chunks: usize,
    /// Tokens embedded.
    pub tokens: usize,
    /// Chunks of a single line longer than the budget, embedded truncated.
    pub truncated_chunks: usize,
    /// Files searched lexically only (vendored or generated; see [`Origin`]).
    pub lexical_only_files: usize,
    /// Chunks still waiting for their vector at the end (0 after a whole update).
    pub pending_chunks: usize,
    /// Files skipped, by reason.
    pub skipped: HashMap<String, usize>,
    /// Files and folders that could not be read (also counted in `skipped`), with the error.
    /// The run went on without them; what the index held for them is kept.
    pub unreadable: Vec<Unreadable>,
    /// The most source text, in bytes, held in memory at once: files read and not yet
    /// written (with their chunks). At most [`IndexOptions::group_bytes`], or the largest
    /// file when that is larger.
    pub peak_text_bytes: usize,
    /// Wall time of the lexical pass: every chunk was searchable lexically after it.
    pub lexical_seconds: f64,
    /// Wall time.
    pub seconds: f64,
}

impl UpdateReport {
    /// Adds what an embedding run did.
    pub fn add(&mut self, embedded: &EmbedReport) {
        self.chunks += embedded.chunks;
        self.tokens += embedded.tokens;
        self.truncated_chunks += embedded.truncated_chunks;
        self.pending_chunks = self.pending_chunks.saturating_sub(embedded.filled_chunks);
    }
}

/// What [`Index::embed_pending`] did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct EmbedReport {
    /// Distinct chunk texts embedded.
    pub chunks: usize,
    /// Chunks that took those vectors (several chunks may share a text).
    pub filled_chunks: usize,
    /// Tokens embedded.
    pub tokens: usize,
    /// Chunks of a single line longer than the budget, embedded truncated.
    pub truncated_chunks: usize,
    /// Whether the queue was drained (false: stopped when asked).
    pub complete: bool,
    /// Wall time.
    pub seconds: f64,
}

/// What [`Index::import_vectors`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ImportReport {
    /// Vectors in the file.
    pub vectors: u64,
    /// Of those, vectors of texts the index had no vector for.
    pub new_vectors: u64,
    /// Chunks of the index that took a vector from the file.
    pub filled_chunks: usize,
    /// Whether the index was created by the import.
    pub created: bool,
    /// The CPU path that computed the file's vectors.
    pub computed_on: String,
}

/// How much of an index is searchable semantically, at the moment of one read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Coverage {
    /// Chunks with their vector.
    pub embedded: usize,
    /// Chunks that are to have one (every chunk is searchable lexically; chunks of
    /// lexical-only files are not counted here).
    pub total: usize,
    /// Chunks of lexical-only files (vendored, generated): searched lexically only.
    pub lexical_only: usize,
    /// Seconds until every chunk is embedded, at the rate an indexer measured; `None` when
    /// every chunk is, or no indexer is embedding.
    pub eta_seconds: Option<f64>,
}

impl Coverage {
    /// Whether every chunk that is to have a vector has it.
    pub fn is_complete(&self) -> bool {
        self.embedded >= self.total
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
    /// Stored chunks (all searchable lexically).
    pub chunks: usize,
    /// How many are embedded, of how many to embed.
    pub coverage: Coverage,
    /// Files searched lexically only because they are vendored.
    pub vendored_files: usize,
    /// Files searched lexically only because they are generated.
    pub generated_files: usize,
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

/// A chunk's path, first and last line, and vector (see [`Index::vectors`]).
pub type ChunkVector = (String, usize, usize, Vec<f32>);

/// An index of a repository's code chunks and their vectors.
pub struct Index {
    path: PathBuf,
    store: Store,
    /// The writer lock, once this handle has written or was given it.
    writer: Option<WriterLock>,
    /// The number of the last lexical pass whose chunks are not all embedded yet.
    pass: Option<u64>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Index {
    /// Opens an existing index for updating.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, IndexError> {
        let path = path.as_ref().to_path_buf();
        let store = Store::open(&path)?;
        Ok(Self {
            path,
            store,
            writer: None,
            pass: None,
        })
    }

    /// Opens an existing index for searching only: it writes nothing, so an index without
    /// write permission can be searched.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self, IndexError> {
        let path = path.as_ref().to_path_buf();
        let store = Store::open_read_only(&path)?;
        Ok(Self {
            path,
            store,
            writer: None,
            pass: None,
        })
    }

    /// Opens the index at `path` for `embedder`, creating it if needed. With `reindex`, an
    /// existing index (of any schema version) is emptied first; without it, an index built
    /// with another model or settings is an error. A caller that may run beside other
    /// writers takes the [`WriterLock`] first and hands it over with [`Index::hold_writer`].
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
        let store = match (path.exists(), reindex) {
            (true, true) => Store::open_for_rebuild(&path)?,
            // An empty file is an index whose creation was interrupted: create it now.
            (true, false) => match Store::open(&path) {
                Err(IndexError::Missing(_)) => Store::create(&path)?,
                other => other?,
            },
            (false, _) => {
                ignore_in_git(&path);
                Store::create(&path)?
            }
        };
        let index = Self {
            path,
            store,
            writer: None,
            pass: None,
        };
        let fingerprint = Fingerprint::of(&index.store, embedder, options)?;
        match index.fingerprint()? {
            Some(built) if built != fingerprint => Err(IndexError::ModelMismatch {
                path: index.path.clone(),
                built: built.describe(),
                now: fingerprint.describe(),
            }),
            Some(_) => Ok(index),
            None => {
                fingerprint.write(&index.store)?;
                Ok(index)
            }
        }
    }

    /// Empties the index (keeping its model and settings, and its pass count) to build it
    /// again from scratch.
    pub fn clear(&mut self, embedder: &Embedder, options: &IndexOptions) -> Result<(), IndexError> {
        self.ensure_writer()?;
        let passes = self.store.passes()?;
        self.store = Store::open_for_rebuild(&self.path)?;
        Fingerprint::of(&self.store, embedder, options)?.write(&self.store)?;
        self.store.set_meta("pass_started", &passes.0.to_string())?;
        self.store
            .set_meta("pass_finished", &passes.1.to_string())?;
        self.pass = None;
        Ok(())
    }

    /// Gives this handle the index's writer lock (taken with [`WriterLock::acquire`]).
    pub fn hold_writer(&mut self, lock: WriterLock) {
        self.writer = Some(lock);
    }

    /// Hands back the writer lock this handle holds, if any.
    pub fn release_writer(&mut self) -> Option<WriterLock> {
        self.writer.take()
    }

    /// Takes the writer lock unless this handle has it; [`IndexError::Busy`] when another
    /// process holds it.
    fn ensure_writer(&mut self) -> Result<(), IndexError> {
        if self.writer.is_none() {
            match WriterLock::acquire(&self.path, false)? {
                Some(lock) => self.writer = Some(lock),
                None => return Err(IndexError::Busy(self.path.clone())),
            }
        }
        Ok(())
    }

    /// The index file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the index is tied to (`None` for a new, empty index).
    pub fn fingerprint(&self) -> Result<Option<Fingerprint>, IndexError> {
        Fingerprint::read(&self.store)
    }

    /// The repository the index was last updated from (its canonical path), if recorded.
    pub fn repo(&self) -> Result<Option<PathBuf>, IndexError> {
        Ok(self.store.meta("repo")?.map(PathBuf::from))
    }

    /// Every indexed file with its chunks' line ranges, in path order.
    pub fn files(&self) -> Result<Vec<IndexedFile>, IndexError> {
        let mut files: Vec<IndexedFile> = Vec::new();
        for row in self.store.files_and_chunks()? {
            if files.last().is_none_or(|f| f.path != row.path) {
                files.push(IndexedFile {
                    path: row.path,
                    sha256: row.sha256,
                    bytes: row.bytes,
                    chunks: Vec::new(),
                });
            }
            if let (Some(s), Some(e)) = (row.start, row.end) {
                files
                    .last_mut()
                    .expect("pushed above")
                    .chunks
                    .push((s as usize, e as usize));
            }
        }
        Ok(files)
    }

    /// Every chunk's path, line range and stored vector, in path and line order: what two
    /// indexes of the same tree must agree on.
    pub fn vectors(&self) -> Result<Vec<ChunkVector>, IndexError> {
        Ok(self
            .store
            .all_vectors()?
            .into_iter()
            .map(|(p, s, e, b)| (p, s, e, blob_vector(&b)))
            .collect())
    }

    /// How much of the index is embedded, read in one statement.
    pub fn coverage(&self) -> Result<Coverage, IndexError> {
        self.store.snapshot(|| self.coverage_now())
    }

    /// The coverage as the current transaction sees it.
    pub(super) fn coverage_now(&self) -> Result<Coverage, IndexError> {
        let counts = self.store.counts()?;
        self.coverage_of(&counts)
    }

    fn coverage_of(&self, counts: &store::Counts) -> Result<Coverage, IndexError> {
        // A rate recorded long ago is from an indexer that is gone (killed): no estimate.
        const FRESH: u64 = 120;
        let eta_seconds = match self.store.rate()? {
            Some((rate, at)) if counts.pending > 0 && rate > 0.0 && unix_now() <= at + FRESH => {
                Some(counts.pending as f64 / rate)
            }
            _ => None,
        };
        Ok(Coverage {
            embedded: counts.total - counts.pending.min(counts.total),
            total: counts.total,
            lexical_only: counts.lexical_only,
            eta_seconds,
        })
    }

    /// The last update pass started and the last one finished (see
    /// [`WriterLock`]'s holder and `gguf-embed index` beside a watcher).
    pub fn passes(&self) -> Result<(u64, u64), IndexError> {
        self.store.passes()
    }

    /// Moves these files (paths relative to the repository) to the front of the embedding
    /// queue, most recent request first and, within one request, in the order given; returns
    /// how many still had chunks to embed. Works
    /// from any process, beside a running indexer: it reads the queue between groups. An
    /// index opened read-only is written through a second connection; when that fails (a
    /// read-only disk, a writer holding SQLite's lock too long) nothing changes.
    pub fn prioritize(&self, paths: &[&str]) -> Result<usize, IndexError> {
        let by_path: HashMap<String, i64> = self
            .store
            .file_paths()?
            .into_iter()
            .map(|(id, p)| (p, id))
            .collect();
        let ids: Vec<i64> = paths
            .iter()
            .filter_map(|p| by_path.get(*p).copied())
            .collect();
        self.want(&ids)
    }

    /// Moves the files with these ids to the front of the queue (see [`prioritize`]).
    ///
    /// [`prioritize`]: Self::prioritize
    pub(super) fn want(&self, ids: &[i64]) -> Result<usize, IndexError> {
        let waiting = self.store.waiting_files(ids)?;
        if waiting.is_empty() {
            return Ok(0);
        }
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        match Store::open_for_requests(&self.path) {
            Ok(store) => store.want(&waiting, at),
            Err(e) => {
                tracing::debug!("cannot ask for files to be embedded first: {e}");
                Ok(0)
            }
        }
    }

    /// Writes every distinct chunk text's vector (embedded or imported) to a vector file at
    /// `dest` (atomically: a temporary file renamed when complete), with a header naming the
    /// model, dimensions and chunk budget. Returns the vectors written.
    pub fn export_vectors(&self, dest: &Path) -> Result<u64, IndexError> {
        let fingerprint = self
            .fingerprint()?
            .ok_or_else(|| IndexError::Missing(self.path.clone()))?;
        let mut writer = VectorWriter::create(dest, &VectorFileHeader::new(fingerprint))?;
        self.store.snapshot(|| {
            self.store
                .each_vector(|hash, blob| writer.push_blob(hash, blob))
        })?;
        writer.finish()
    }

    /// Makes the vectors of a vector file available to the index at `path` (created if
    /// absent, for the file's model and settings): every chunk of a text the file holds takes
    /// its vector now, and chunks written later take it instead of being embedded. A file
    /// for another model, size or budget is refused; a damaged one is refused whole. Takes
    /// the writer lock ([`IndexError::Busy`] when another process has it).
    pub fn import_vectors(path: &Path, file: &Path) -> Result<ImportReport, IndexError> {
        let mut reader = VectorReader::open(file)?;
        let header = reader.header().clone();
        let Some(lock) = WriterLock::acquire(path, false)? else {
            return Err(IndexError::Busy(path.to_path_buf()));
        };
        let created = !path.exists();
        let mut index = if created {
            ignore_in_git(path);
            let store = Store::create(path)?;
            header.fingerprint.write(&store)?;
            Self {
                path: path.to_path_buf(),
                store,
                writer: None,
                pass: None,
            }
        } else {
            Self::open(path)?
        };
        index.hold_writer(lock);
        match index.fingerprint()? {
            Some(built) => header.check(&built, file)?,
            None => header.fingerprint.write(&index.store)?,
        }
        let vectors = reader.len();
        let (new, filled) = index.store.import_vectors(&mut || reader.next_vector())?;
        if header.computed_on != vector_file::cpu_path() {
            tracing::info!(
                "the vectors of {} were computed on another CPU path ({}); they can differ \
                 from this machine's in their last bits",
                file.display(),
                header.computed_on
            );
        }
        Ok(ImportReport {
            vectors,
            new_vectors: new,
            filled_chunks: filled,
            created,
            computed_on: header.computed_on,
        })
    }

    /// Files, chunks, model, size on disk and the last run.
    pub fn stats(&self) -> Result<IndexStats, IndexError> {
        let counts = self.store.snapshot(|| self.store.counts())?;
        let coverage = self.coverage_of(&counts)?;
        let (files, chunks) = (counts.files, counts.total + counts.lexical_only);
        let mut wal = self.path.as_os_str().to_owned();
        wal.push("-wal");
        let bytes_on_disk = [self.path.clone(), PathBuf::from(wal)]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        Ok(IndexStats {
            path: self.path.clone(),
            files,
            chunks,
            coverage,
            vendored_files: counts.vendored_files,
            generated_files: counts.generated_files,
            fingerprint: self.fingerprint()?,
            bytes_on_disk,
            last_run: self
                .store
                .meta("last_run")?
                .and_then(|s| serde_json::from_str(&s).ok()),
            model_path: self.store.meta("model_path")?,
        })
    }
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
