//! The index file: one SQLite database (WAL mode) with files, chunks, their vectors and a
//! full-text (FTS5) table of the chunks. Every SQL statement of the index lives here.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::IndexError;

/// Marks a database as ours.
const FORMAT: &str = "gguf-embed-index";
/// Bumped when the schema changes (2: chunk hashes, symbols and the FTS5 table; 3: the
/// vectors' int8 codes; 4: chunks without a vector yet, searchable lexically, and the queue
/// state of files). Versions 2 and 3 are upgraded in place when opened for writing, and
/// searched as they are when opened read-only; older versions need `--reindex`.
pub const SCHEMA_VERSION: i64 = 4;
/// The oldest schema this build reads.
const OLDEST_READABLE: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    id           INTEGER PRIMARY KEY,
    path         TEXT NOT NULL UNIQUE,
    sha256       TEXT NOT NULL,
    bytes        INTEGER NOT NULL,
    indexed_at   INTEGER NOT NULL,
    -- Its chunks, and how many of them have no vector yet.
    chunks       INTEGER NOT NULL DEFAULT 0,
    pending      INTEGER NOT NULL DEFAULT 0,
    -- 0: the repository's own file; 1: vendored; 2: generated (see index/classify.rs).
    origin       INTEGER NOT NULL DEFAULT 0,
    -- 1: searched lexically only, never embedded (vendored or generated, unless asked).
    lexical_only INTEGER NOT NULL DEFAULT 0,
    -- The queue order: when a search last asked for the file (Unix milliseconds, 0: never),
    -- then its rank (the day it was modified, then source before tests, docs and data).
    wanted       INTEGER NOT NULL DEFAULT 0,
    rank         INTEGER NOT NULL DEFAULT 0
);
-- The embedding queue: files with chunks to embed, most wanted first.
CREATE INDEX IF NOT EXISTS files_queue ON files(wanted DESC, rank DESC, path)
    WHERE pending > 0 AND lexical_only = 0;
CREATE TABLE IF NOT EXISTS chunks (
    id         INTEGER PRIMARY KEY,
    file_id    INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    start_line INTEGER NOT NULL,
    end_line   INTEGER NOT NULL,
    symbol     TEXT,
    kind       TEXT,
    text_hash  TEXT NOT NULL,
    tokens     INTEGER NOT NULL,
    text       TEXT NOT NULL,
    -- NULL until the chunk is embedded: it is searched lexically meanwhile.
    embedding  BLOB
);
CREATE INDEX IF NOT EXISTS chunks_by_file ON chunks(file_id);
CREATE INDEX IF NOT EXISTS chunks_by_hash ON chunks(text_hash);
-- Each embedded chunk's vector coded in one byte per dimension with one scale
-- (index/codes.rs), in a table of its own so that the exact-search scan reads a quarter of
-- the vectors' bytes. Its id is the chunk's id; it goes with the chunk's file.
CREATE TABLE IF NOT EXISTS codes (
    id      INTEGER PRIMARY KEY,
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    scale   REAL NOT NULL,
    code    BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS codes_by_file ON codes(file_id);
-- The lexical index: the path, the text as written (identifiers kept whole: `_` is a token
-- character) and the parts of compound identifiers. Its rowid is the chunk's id.
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    path, body, parts, tokenize = \"unicode61 tokenchars '_'\"
);
-- Chunks also go when their file is deleted (ON DELETE CASCADE): this keeps the lexical
-- index in step either way.
CREATE TRIGGER IF NOT EXISTS chunks_fts_delete AFTER DELETE ON chunks BEGIN
    DELETE FROM chunks_fts WHERE rowid = old.id;
END;
-- Vectors imported from a vector file (index/vector_file.rs) for chunk texts the index does
-- not hold yet: a chunk of that text takes its vector instead of being embedded. (Added
-- within schema 4: an index written before it gets the table when next opened for writing.)
CREATE TABLE IF NOT EXISTS imported (
    text_hash TEXT PRIMARY KEY,
    embedding BLOB NOT NULL
) WITHOUT ROWID;
";

/// The queue columns schema 4 adds to `files`.
const FILE_COLUMNS_4: [&str; 6] = [
    "chunks",
    "pending",
    "origin",
    "lexical_only",
    "wanted",
    "rank",
];

/// Schema 3 to 4: `chunks` rebuilt with a vector that may be NULL (SQLite cannot drop a NOT
/// NULL constraint in place). Ids are kept, so the codes and the lexical index still point at
/// their chunks.
const NULLABLE_VECTORS: &str = "
DROP TRIGGER IF EXISTS chunks_fts_delete;
CREATE TABLE chunks_v4 (
    id         INTEGER PRIMARY KEY,
    file_id    INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    start_line INTEGER NOT NULL,
    end_line   INTEGER NOT NULL,
    symbol     TEXT,
    kind       TEXT,
    text_hash  TEXT NOT NULL,
    tokens     INTEGER NOT NULL,
    text       TEXT NOT NULL,
    embedding  BLOB
);
INSERT INTO chunks_v4 SELECT id, file_id, start_line, end_line, symbol, kind, text_hash, tokens,
    text, embedding FROM chunks;
DROP TABLE chunks;
ALTER TABLE chunks_v4 RENAME TO chunks;
";

/// A chunk as it is written.
pub struct NewChunk<'a> {
    pub start_line: usize,
    pub end_line: usize,
    pub symbol: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub text_hash: &'a str,
    /// The tokens it is embedded with (counted before it is embedded).
    pub tokens: usize,
    pub text: &'a str,
    pub parts: &'a str,
    /// Its vector, when one is known already (a stored chunk of the same text).
    pub vector: Option<&'a [u8]>,
}

/// A file and its chunks as they are written.
pub struct NewFile<'a> {
    pub path: &'a str,
    pub sha256: &'a str,
    pub bytes: usize,
    /// Where it comes from (see [`super::classify::Origin`]).
    pub origin: i64,
    /// Searched lexically only: its chunks are never queued for embedding.
    pub lexical_only: bool,
    /// Its place in the embedding queue after the files searches asked for.
    pub rank: i64,
    pub chunks: Vec<NewChunk<'a>>,
}

/// A stored chunk's location and text, for a search result.
pub struct ChunkRow {
    pub path: String,
    pub start_line: usize,
    pub end_line: usize,
    pub symbol: Option<String>,
    pub kind: Option<String>,
    pub tokens: usize,
    pub text: String,
}

/// One indexed file with its chunks' line ranges (see [`super::IndexedFile`]).
pub struct FileRow {
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
    pub start: Option<i64>,
    pub end: Option<i64>,
}

/// What an indexed file is, as the walk last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownFile {
    pub id: i64,
    pub sha256: String,
    pub origin: i64,
    pub lexical_only: bool,
}

/// A chunk's path, first and last line, and vector bytes (empty when it has none yet).
pub type StoredVector = (String, usize, usize, Vec<u8>);

/// A stored vector's bytes and, when known (not for an imported vector), its token count.
pub type KnownVector = (Option<usize>, Vec<u8>);

/// A chunk text waiting for its vector: its hash and text.
pub struct PendingText {
    pub text_hash: String,
    pub text: String,
}

/// Chunk counts of the index at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Files.
    pub files: usize,
    /// Chunks of files that are embedded (not lexical-only).
    pub total: usize,
    /// Of those, chunks without a vector yet.
    pub pending: usize,
    /// Chunks of lexical-only files.
    pub lexical_only: usize,
    /// Lexical-only files by origin: vendored, generated.
    pub vendored_files: usize,
    pub generated_files: usize,
}

/// An open index database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// The schema version of the file: an index of version 2 or 3 opened read-only is
    /// searched as it is (version 2 without codes: its scan reads the float vectors).
    version: i64,
}

fn sql(path: &Path) -> impl Fn(rusqlite::Error) -> IndexError + '_ {
    move |e| IndexError::from_sqlite(path, e)
}

impl Store {
    /// Opens an existing index for reading and writing, checking that it is one of ours.
    pub fn open(path: &Path) -> Result<Self, IndexError> {
        if !path.is_file() {
            return Err(IndexError::Missing(path.to_path_buf()));
        }
        let conn = Connection::open(path).map_err(sql(path))?;
        let mut store = Self::wrap(conn, path);
        store.configure()?;
        store.check_format()?;
        store.upgrade()?;
        // Tables added within this schema version (every statement is IF NOT EXISTS).
        store.db(store.conn.execute_batch(SCHEMA))?;
        Ok(store)
    }

    /// Opens an existing index without writing to it, so that an index on a read-only disk or
    /// owned by another user can still be searched. When SQLite cannot even create the
    /// write-ahead log's shared-memory file next to it, the file is read as immutable.
    pub fn open_read_only(path: &Path) -> Result<Self, IndexError> {
        if !path.is_file() {
            return Err(IndexError::Missing(path.to_path_buf()));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let first = Connection::open_with_flags(path, flags)
            .map(|c| Self::wrap(c, path))
            .map_err(sql(path))
            .and_then(|mut s| s.check_format().map(|_| s));
        match first {
            Ok(store) => {
                store.map_pages()?;
                store.read_timeout()?;
                Ok(store)
            }
            Err(IndexError::Database { .. }) => {
                let uri = format!("file:{}?immutable=1", path.display());
                let conn = Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI)
                    .map_err(sql(path))?;
                let mut store = Self::wrap(conn, path);
                store.check_format()?;
                store.map_pages()?;
                Ok(store)
            }
            Err(e) => Err(e),
        }
    }

    /// Opens an existing index only to ask for files to be embedded first: waits a moment at
    /// most for a writer's transaction, never creates, upgrades or configures anything.
    pub fn open_for_requests(path: &Path) -> Result<Self, IndexError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(sql(path))?;
        let mut store = Self::wrap(conn, path);
        store.db(store
            .conn
            .busy_timeout(std::time::Duration::from_millis(250)))?;
        store.check_format()?;
        Ok(store)
    }

    /// Creates a new, empty index (the file must not exist).
    pub fn create(path: &Path) -> Result<Self, IndexError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| IndexError::io(dir, e))?;
        }
        let conn = Connection::open(path).map_err(sql(path))?;
        // Pages of 16 KiB hold a 1024-dimension vector (4 KiB) inline instead of spilling it
        // to overflow pages: the exact-search scan reads them 1.5x faster.
        conn.execute_batch("PRAGMA page_size = 16384;")
            .map_err(sql(path))?;
        let mut store = Self::wrap(conn, path);
        store.configure()?;
        store.init_schema()?;
        Ok(store)
    }

    fn wrap(conn: Connection, path: &Path) -> Self {
        Self {
            conn,
            path: path.to_path_buf(),
            version: 0,
        }
    }

    fn db<T>(&self, r: rusqlite::Result<T>) -> Result<T, IndexError> {
        r.map_err(|e| IndexError::from_sqlite(&self.path, e))
    }

    /// Creates the tables and marks the file as ours in one transaction, so that a reader
    /// sees either an empty file or a whole index.
    fn init_schema(&mut self) -> Result<(), IndexError> {
        let tx = self.db(self.conn.unchecked_transaction())?;
        self.db(tx.execute_batch(SCHEMA))?;
        self.set_meta("format", FORMAT)?;
        self.set_meta("schema_version", &SCHEMA_VERSION.to_string())?;
        self.db(tx.commit())?;
        self.version = SCHEMA_VERSION;
        Ok(())
    }

    /// Brings an index of schema 2 or 3 to this one in one transaction: the codes table,
    /// filled from the stored vectors (version 2; a few seconds for 100,000 chunks), then the
    /// queue state (version 3; every chunk of an old index has its vector). Another process
    /// may be doing the same: the version is read again once the write lock is held.
    fn upgrade(&mut self) -> Result<(), IndexError> {
        if self.version == SCHEMA_VERSION {
            return Ok(());
        }
        self.db(self.conn.execute_batch("BEGIN IMMEDIATE"))?;
        let result = (|| {
            let version = self.format_and_version()?.1;
            if version < 3 {
                self.add_codes()?;
            }
            if version < 4 {
                self.add_queue_state()?;
            }
            self.set_meta("schema_version", &SCHEMA_VERSION.to_string())
        })();
        match result {
            Ok(()) => {
                self.db(self.conn.execute_batch("COMMIT"))?;
                self.version = SCHEMA_VERSION;
                Ok(())
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Schema 3 to 4: the queue columns, nullable vectors, and every file's chunk count (an
    /// old index has every vector). Each step checks whether it is done already.
    fn add_queue_state(&self) -> Result<(), IndexError> {
        let columns = |table: &str| -> Result<Vec<(String, bool)>, IndexError> {
            let mut stmt = self.db(self.conn.prepare(&format!("PRAGMA table_info({table})")))?;
            let rows = self.db(stmt.query_map([], |r| {
                Ok((r.get::<_, String>(1)?, r.get::<_, i64>(3)? != 0))
            }))?;
            self.db(rows.collect())
        };
        let files = columns("files")?;
        for column in FILE_COLUMNS_4 {
            if !files.iter().any(|(name, _)| name == column) {
                self.db(self.conn.execute_batch(&format!(
                    "ALTER TABLE files ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0"
                )))?;
            }
        }
        let vector_required = columns("chunks")?
            .iter()
            .any(|(name, not_null)| name == "embedding" && *not_null);
        if vector_required {
            self.db(self.conn.execute_batch(NULLABLE_VECTORS))?;
        }
        // The indexes, the trigger and anything else missing.
        self.db(self.conn.execute_batch(SCHEMA))?;
        self.db(self.conn.execute_batch(
            "UPDATE files SET chunks = (SELECT count(*) FROM chunks WHERE chunks.file_id = files.id), \
             pending = (SELECT count(*) FROM chunks WHERE chunks.file_id = files.id \
                        AND chunks.embedding IS NULL);",
        ))
    }

    /// Schema 2 to 3: the codes of every stored vector.
    fn add_codes(&self) -> Result<(), IndexError> {
        self.db(self.conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS codes (id INTEGER PRIMARY KEY, \
             file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE, \
             scale REAL NOT NULL, code BLOB NOT NULL); \
             CREATE INDEX IF NOT EXISTS codes_by_file ON codes(file_id);",
        ))?;
        let mut read = self.db(self
            .conn
            .prepare("SELECT id, file_id, embedding FROM chunks WHERE embedding IS NOT NULL"))?;
        let mut write = self.db(self.conn.prepare(
            "INSERT OR REPLACE INTO codes (id, file_id, scale, code) VALUES (?1, ?2, ?3, ?4)",
        ))?;
        let mut rows = self.db(read.query([]))?;
        while let Some(row) = self.db(rows.next())? {
            let id: i64 = self.db(row.get(0))?;
            let file_id: i64 = self.db(row.get(1))?;
            let blob: Vec<u8> = self.db(row.get(2))?;
            let (scale, code) = super::codes::encode(&blob_vector(&blob));
            self.db(write.execute(params![id, file_id, scale, code]))?;
        }
        Ok(())
    }

    fn configure(&self) -> Result<(), IndexError> {
        // WAL keeps readers (search) working while an update writes, and with it a crash
        // loses at most the transaction in progress. The busy timeout lets a reader wait out
        // a checkpoint instead of failing.
        self.db(self.conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; \
             PRAGMA busy_timeout=5000;",
        ))?;
        self.map_pages()
    }

    /// A reader waits out a checkpoint or a recovery instead of failing.
    fn read_timeout(&self) -> Result<(), IndexError> {
        self.db(self.conn.busy_timeout(std::time::Duration::from_secs(5)))
    }

    /// Reads the database through a memory map: the vector scan then reads every page in
    /// place instead of copying it into SQLite's page cache first (docs/BENCHMARKS.md has the
    /// figures). SQLite caps the map at its compile-time maximum (2 GiB); pages beyond it are
    /// read as before.
    fn map_pages(&self) -> Result<(), IndexError> {
        self.db(self
            .conn
            .query_row("PRAGMA mmap_size = 1099511627776", [], |_| Ok(())))
    }

    /// The format marker and schema version, or why the file is not a usable index. A
    /// database without any table is an index being created: missing for now.
    fn check_format(&mut self) -> Result<(), IndexError> {
        let tables: i64 =
            self.db(self
                .conn
                .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)))?;
        if tables == 0 {
            return Err(IndexError::Missing(self.path.clone()));
        }
        let (format, version) = self.format_and_version()?;
        if format.as_deref() != Some(FORMAT) {
            return Err(IndexError::NotAnIndex {
                path: self.path.clone(),
                reason: "it is an SQLite database without gguf-embed's metadata".into(),
            });
        }
        if !(OLDEST_READABLE..=SCHEMA_VERSION).contains(&version) {
            return Err(IndexError::NotAnIndex {
                path: self.path.clone(),
                reason: format!(
                    "it has schema version {version}, this gguf-embed reads versions {OLDEST_READABLE} to {SCHEMA_VERSION}; rebuild it with --reindex"
                ),
            });
        }
        self.version = version;
        Ok(())
    }

    fn format_and_version(&self) -> Result<(Option<String>, i64), IndexError> {
        let has_meta: bool = self.db(self.conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
            [],
            |r| r.get::<_, i64>(0),
        ))? > 0;
        if !has_meta {
            return Ok((None, 0));
        }
        let format = self.meta("format")?;
        let version = self
            .meta("schema_version")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Ok((format, version))
    }

    /// Opens an index to rebuild it: a gguf-embed index of any schema version is emptied and
    /// given the current schema; anything else is refused as by [`Store::open`].
    pub fn open_for_rebuild(path: &Path) -> Result<Self, IndexError> {
        if !path.is_file() {
            return Err(IndexError::Missing(path.to_path_buf()));
        }
        let conn = Connection::open(path).map_err(sql(path))?;
        let mut store = Self::wrap(conn, path);
        store.configure()?;
        if store.format_and_version()?.0.as_deref() != Some(FORMAT) {
            store.check_format()?;
        }
        store.db(store.conn.execute_batch(
            "BEGIN; DROP TRIGGER IF EXISTS chunks_fts_delete; DROP TABLE IF EXISTS chunks_fts; \
             DROP TABLE IF EXISTS codes; DROP TABLE IF EXISTS chunks; DROP TABLE IF EXISTS files; \
             DROP TABLE IF EXISTS meta; COMMIT;",
        ))?;
        store.init_schema()?;
        Ok(store)
    }

    /// Runs `f` in one read transaction: every statement it makes sees the same committed
    /// state of the index, whatever a writer commits meanwhile (the write-ahead log keeps
    /// that state until the transaction ends).
    pub fn snapshot<T>(&self, f: impl FnOnce() -> Result<T, IndexError>) -> Result<T, IndexError> {
        if !self.conn.is_autocommit() {
            // Already inside a transaction (of this connection): that one is the snapshot.
            return f();
        }
        self.db(self.conn.execute_batch("BEGIN DEFERRED"))?;
        // The snapshot starts with the first read, so read now: `f` may wait on other work
        // (the query's embedding) before its first statement.
        let started = self.db(self
            .conn
            .query_row("SELECT count(*) FROM meta", [], |_| Ok(())));
        let result = started.and_then(|()| f());
        // A read transaction has nothing to keep: ending it cannot lose anything.
        let _ = self.conn.execute_batch("COMMIT");
        result
    }

    /// A metadata value.
    pub fn meta(&self, key: &str) -> Result<Option<String>, IndexError> {
        self.db(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional())
    }

    /// Sets a metadata value.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), IndexError> {
        self.db(self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        ))
        .map(|_| ())
    }

    /// Counts a new update pass as started and returns its number. A pass is finished once
    /// its lexical pass and the embedding of everything it queued are done
    /// ([`finish_pass`](Self::finish_pass)): a process that waits for the index to be current
    /// waits for a pass numbered above the last one started when it began.
    pub fn start_pass(&self) -> Result<u64, IndexError> {
        let n = self.passes()?.0 + 1;
        self.set_meta("pass_started", &n.to_string())?;
        Ok(n)
    }

    /// Records pass `n` as finished.
    pub fn finish_pass(&self, n: u64) -> Result<(), IndexError> {
        if n > self.passes()?.1 {
            self.set_meta("pass_finished", &n.to_string())?;
        }
        Ok(())
    }

    /// The last pass started and the last pass finished (0: none).
    pub fn passes(&self) -> Result<(u64, u64), IndexError> {
        let read = |key| -> Result<u64, IndexError> {
            Ok(self.meta(key)?.and_then(|v| v.parse().ok()).unwrap_or(0))
        };
        Ok((read("pass_started")?, read("pass_finished")?))
    }

    /// Records the embedding rate measured now (chunks per second), or that no embedding is
    /// running (`None`), for the coverage's time estimate.
    pub fn record_rate(&self, chunks_per_second: Option<f64>) -> Result<(), IndexError> {
        match chunks_per_second {
            Some(rate) => self.set_meta(
                "embed_rate",
                &serde_json::json!({ "chunks_per_second": rate, "at": super::unix_now() })
                    .to_string(),
            ),
            None => self
                .db(self
                    .conn
                    .execute("DELETE FROM meta WHERE key = 'embed_rate'", []))
                .map(|_| ()),
        }
    }

    /// The last recorded embedding rate (chunks per second) and when it was recorded.
    pub fn rate(&self) -> Result<Option<(f64, u64)>, IndexError> {
        Ok(self.meta("embed_rate")?.and_then(|v| {
            let v: serde_json::Value = serde_json::from_str(&v).ok()?;
            Some((v["chunks_per_second"].as_f64()?, v["at"].as_u64()?))
        }))
    }

    /// The ids of the lexical-only files: their chunks stay out of semantic search even when
    /// they have a vector (embedded while asked for, or shared with another chunk's text).
    pub fn lexical_only_files(&self) -> Result<HashSet<i64>, IndexError> {
        if self.version < 4 {
            return Ok(HashSet::new());
        }
        let mut stmt = self.db(self
            .conn
            .prepare_cached("SELECT id FROM files WHERE lexical_only = 1"))?;
        let rows = self.db(stmt.query_map([], |r| r.get(0)))?;
        self.db(rows.collect())
    }

    /// The files among `ids` that still have chunks to embed (and are not lexical-only).
    pub fn waiting_files(&self, ids: &[i64]) -> Result<Vec<i64>, IndexError> {
        if self.version < 4 {
            return Ok(Vec::new());
        }
        let mut stmt = self.db(self.conn.prepare_cached(
            "SELECT 1 FROM files WHERE id = ?1 AND pending > 0 AND lexical_only = 0",
        ))?;
        let mut out = Vec::new();
        for &id in ids {
            if self.db(stmt.exists([id]))? && !out.contains(&id) {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Every indexed file by path.
    pub fn known_files(&self) -> Result<HashMap<String, KnownFile>, IndexError> {
        let mut stmt = self.db(self
            .conn
            .prepare("SELECT path, id, sha256, origin, lexical_only FROM files"))?;
        let rows = self.db(stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                KnownFile {
                    id: r.get(1)?,
                    sha256: r.get(2)?,
                    origin: r.get(3)?,
                    lexical_only: r.get::<_, i64>(4)? != 0,
                },
            ))
        }))?;
        self.db(rows.collect())
    }

    /// Marks every indexed file as changed (its hash forgotten), so that the next updates
    /// chunk it again; its chunks and their vectors stay for reuse until then.
    pub fn forget_file_hashes(&self) -> Result<(), IndexError> {
        self.db(self.conn.execute("UPDATE files SET sha256 = ''", []))?;
        Ok(())
    }

    /// Gives unchanged files their origin and lexical-only state as the walk sees them now
    /// (a `.gitattributes` rule or `--embed-vendored` changed), in one transaction.
    pub fn set_origins(&self, files: &[(i64, i64, bool)]) -> Result<(), IndexError> {
        let tx = self.db(self.conn.unchecked_transaction())?;
        for &(id, origin, lexical_only) in files {
            self.db(tx.execute(
                "UPDATE files SET origin = ?2, lexical_only = ?3 WHERE id = ?1",
                params![id, origin, lexical_only as i64],
            ))?;
        }
        self.db(tx.commit())
    }

    /// Every file's id and path.
    pub fn file_paths(&self) -> Result<Vec<(i64, String)>, IndexError> {
        let mut stmt = self.db(self.conn.prepare("SELECT id, path FROM files"))?;
        let rows = self.db(stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))))?;
        self.db(rows.collect())
    }

    /// A stored vector for a chunk text of this hash, if any chunk has one, with its token
    /// count; else an imported one (without: the chunk keeps its own count).
    pub fn vector_for_hash(&self, text_hash: &str) -> Result<Option<KnownVector>, IndexError> {
        let mut stmt = self.db(self.conn.prepare_cached(
            "SELECT tokens, embedding FROM chunks WHERE text_hash = ?1 AND embedding IS NOT NULL \
             LIMIT 1",
        ))?;
        let stored = self.db(stmt
            .query_row([text_hash], |r| {
                Ok((Some(r.get::<_, i64>(0)? as usize), r.get::<_, Vec<u8>>(1)?))
            })
            .optional())?;
        if stored.is_some() || self.version < 4 {
            return Ok(stored);
        }
        let mut stmt = self.db(self
            .conn
            .prepare_cached("SELECT embedding FROM imported WHERE text_hash = ?1"))?;
        self.db(stmt
            .query_row([text_hash], |r| Ok((None, r.get::<_, Vec<u8>>(0)?)))
            .optional())
    }

    /// Calls `f(text hash, vector bytes)` once for every distinct chunk text with a vector,
    /// embedded or imported.
    pub fn each_vector(
        &self,
        mut f: impl FnMut(&str, &[u8]) -> Result<(), IndexError>,
    ) -> Result<u64, IndexError> {
        let mut n = 0;
        for sql in [
            // A bare column of an aggregate query comes from one row of its group: any chunk
            // of that text.
            "SELECT text_hash, embedding FROM chunks WHERE embedding IS NOT NULL GROUP BY text_hash",
            "SELECT i.text_hash, i.embedding FROM imported i WHERE NOT EXISTS \
             (SELECT 1 FROM chunks c WHERE c.text_hash = i.text_hash AND c.embedding IS NOT NULL)",
        ] {
            let mut stmt = self.db(self.conn.prepare(sql))?;
            let mut rows = self.db(stmt.query([]))?;
            while let Some(row) = self.db(rows.next())? {
                let hash = self.db(row.get_ref(0).and_then(|v| Ok(v.as_str()?)))?;
                let blob = self.db(row.get_ref(1).and_then(|v| Ok(v.as_blob()?)))?;
                f(hash, blob)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Keeps these vectors for chunk texts the index has no vector for, in one transaction
    /// (with every chunk of such a text given its vector); returns how many were new to the
    /// index. `next` yields (text hash, vector bytes) until `None`.
    pub fn import_vectors(
        &self,
        next: &mut dyn FnMut() -> Result<Option<(String, Vec<u8>)>, IndexError>,
    ) -> Result<(u64, usize), IndexError> {
        let tx = self.db(self.conn.unchecked_transaction())?;
        let mut new = 0;
        {
            let mut known = self.db(tx.prepare_cached(
                "SELECT 1 FROM chunks WHERE text_hash = ?1 AND embedding IS NOT NULL",
            ))?;
            let mut insert = self.db(tx.prepare_cached(
                "INSERT OR IGNORE INTO imported (text_hash, embedding) VALUES (?1, ?2)",
            ))?;
            while let Some((hash, blob)) = next()? {
                if !self.db(known.exists([&hash]))? {
                    new += self.db(insert.execute(params![hash, blob]))? as u64;
                }
            }
        }
        let filled = self.fill_from_imported()?;
        self.db(tx.commit())?;
        Ok((new, filled))
    }

    /// Gives every chunk without a vector the imported vector of its text; returns how many.
    fn fill_from_imported(&self) -> Result<usize, IndexError> {
        let rows: Vec<(String, Vec<u8>)> = {
            let mut stmt = self.db(self.conn.prepare(
                "SELECT i.text_hash, i.embedding FROM imported i WHERE EXISTS \
                 (SELECT 1 FROM chunks c WHERE c.text_hash = i.text_hash AND c.embedding IS NULL)",
            ))?;
            let rows = self.db(stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))))?;
            self.db(rows.collect())?
        };
        let vectors: Vec<(&str, Option<usize>, &[u8])> = rows
            .iter()
            .map(|(h, b)| (h.as_str(), None, b.as_slice()))
            .collect();
        self.fill_vectors(&vectors)
    }

    /// Drops the imported vectors that some chunk holds now (they live on in the chunk).
    pub fn prune_imported(&self) -> Result<(), IndexError> {
        if self.version < 4 {
            return Ok(());
        }
        self.db(self.conn.execute(
            "DELETE FROM imported WHERE EXISTS (SELECT 1 FROM chunks c \
             WHERE c.text_hash = imported.text_hash AND c.embedding IS NOT NULL)",
            [],
        ))?;
        Ok(())
    }

    /// Deletes these files (and their chunks) in one transaction.
    pub fn delete_files(&self, paths: &[&String]) -> Result<(), IndexError> {
        let tx = self.db(self.conn.unchecked_transaction())?;
        for path in paths {
            self.db(tx.execute("DELETE FROM files WHERE path = ?1", [path]))?;
        }
        self.db(tx.commit())
    }

    /// Replaces these files and their chunks in one transaction. Chunks without a vector are
    /// searchable lexically at once and wait in the queue (unless the file is lexical-only).
    pub fn write_files(&self, files: &[NewFile<'_>], now: u64) -> Result<(), IndexError> {
        let tx = self.db(self.conn.unchecked_transaction())?;
        for file in files {
            let pending = file.chunks.iter().filter(|c| c.vector.is_none()).count();
            self.db(tx.execute("DELETE FROM files WHERE path = ?1", [file.path]))?;
            self.db(tx.execute(
                "INSERT INTO files (path, sha256, bytes, indexed_at, chunks, pending, origin, \
                 lexical_only, rank) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    file.path,
                    file.sha256,
                    file.bytes as i64,
                    now as i64,
                    file.chunks.len() as i64,
                    pending as i64,
                    file.origin,
                    file.lexical_only as i64,
                    file.rank
                ],
            ))?;
            let file_id = tx.last_insert_rowid();
            let mut insert = self.db(tx.prepare_cached(
                "INSERT INTO chunks (file_id, start_line, end_line, symbol, kind, text_hash, tokens, text, embedding) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            ))?;
            let mut fts = self.db(tx.prepare_cached(
                "INSERT INTO chunks_fts (rowid, path, body, parts) VALUES (?1, ?2, ?3, ?4)",
            ))?;
            let mut codes = self.db(tx.prepare_cached(
                "INSERT INTO codes (id, file_id, scale, code) VALUES (?1, ?2, ?3, ?4)",
            ))?;
            for c in &file.chunks {
                self.db(insert.execute(params![
                    file_id,
                    c.start_line as i64,
                    c.end_line as i64,
                    c.symbol,
                    c.kind,
                    c.text_hash,
                    c.tokens as i64,
                    c.text,
                    c.vector
                ]))?;
                let id = tx.last_insert_rowid();
                self.db(fts.execute(params![id, file.path, c.text, c.parts]))?;
                if let Some(vector) = c.vector {
                    let (scale, code) = super::codes::encode(&blob_vector(vector));
                    self.db(codes.execute(params![id, file_id, scale, code]))?;
                }
            }
        }
        self.db(tx.commit())
    }

    /// The next chunk texts to embed, in queue order (the files searches asked for most
    /// recently, then by rank, then by path; each file's chunks in order): distinct texts not
    /// in `skip`, until `tokens` are taken (at least one text) or `max` texts.
    pub fn next_pending(
        &self,
        tokens: usize,
        max: usize,
        skip: &HashSet<String>,
    ) -> Result<Vec<PendingText>, IndexError> {
        let mut stmt = self.db(self.conn.prepare_cached(
            "SELECT c.text_hash, c.text, c.tokens FROM files f JOIN chunks c ON c.file_id = f.id \
             WHERE f.pending > 0 AND f.lexical_only = 0 AND c.embedding IS NULL \
             ORDER BY f.wanted DESC, f.rank DESC, f.path, c.id",
        ))?;
        let mut rows = self.db(stmt.query([]))?;
        let mut out: Vec<PendingText> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut taken = 0;
        while out.len() < max
            && let Some(row) = self.db(rows.next())?
        {
            let text_hash: String = self.db(row.get(0))?;
            if skip.contains(&text_hash) || seen.contains(&text_hash) {
                continue;
            }
            let n = self.db(row.get::<_, i64>(2))? as usize;
            if !out.is_empty() && taken + n > tokens {
                break;
            }
            taken += n;
            seen.insert(text_hash.clone());
            out.push(PendingText {
                text_hash,
                text: self.db(row.get(1))?,
            });
        }
        Ok(out)
    }

    /// Stores the vectors of embedded texts (hash, tokens, vector bytes) in one transaction,
    /// with the embedding rate measured (chunks per second, see [`record_rate`]): every chunk
    /// of that text still without one takes it. Returns the chunks given a vector.
    ///
    /// [`record_rate`]: Self::record_rate
    pub fn write_vectors(
        &self,
        vectors: &[(&str, Option<usize>, &[u8])],
        rate: Option<f64>,
    ) -> Result<usize, IndexError> {
        let tx = self.db(self.conn.unchecked_transaction())?;
        self.record_rate(rate)?;
        let filled = self.fill_vectors(vectors)?;
        self.db(tx.commit())?;
        Ok(filled)
    }

    /// Gives every chunk of these texts that has no vector the text's vector (and its token
    /// count, when known), in the transaction in progress.
    fn fill_vectors(&self, vectors: &[(&str, Option<usize>, &[u8])]) -> Result<usize, IndexError> {
        let mut filled = 0;
        let mut update = self.db(self.conn.prepare_cached(
            "UPDATE chunks SET embedding = ?2, tokens = coalesce(?3, tokens) \
             WHERE text_hash = ?1 AND embedding IS NULL RETURNING id, file_id",
        ))?;
        let mut codes = self.db(self.conn.prepare_cached(
            "INSERT OR REPLACE INTO codes (id, file_id, scale, code) VALUES (?1, ?2, ?3, ?4)",
        ))?;
        let mut pending = self.db(self
            .conn
            .prepare_cached("UPDATE files SET pending = pending - 1 WHERE id = ?1"))?;
        for &(hash, tokens, vector) in vectors {
            let (scale, code) = super::codes::encode(&blob_vector(vector));
            let rows: Vec<(i64, i64)> = self.db(update
                .query_map(params![hash, vector, tokens.map(|t| t as i64)], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .and_then(|rows| rows.collect()))?;
            for (id, file_id) in rows {
                self.db(codes.execute(params![id, file_id, scale, &code]))?;
                self.db(pending.execute([file_id]))?;
                filled += 1;
            }
        }
        Ok(filled)
    }

    /// Moves the files with these ids to the front of the embedding queue, in this order
    /// (`at`: the time of the request, later requests first; within one request the first id
    /// first). Files with nothing left to embed are left alone.
    pub fn want(&self, ids: &[i64], at: i64) -> Result<usize, IndexError> {
        if self.version < 4 || ids.is_empty() {
            return Ok(0);
        }
        let tx = self.db(self.conn.unchecked_transaction())?;
        let mut n = 0;
        {
            let mut stmt = self.db(tx.prepare_cached(
                "UPDATE files SET wanted = ?2 WHERE id = ?1 AND pending > 0 AND lexical_only = 0",
            ))?;
            for (i, &id) in ids.iter().enumerate() {
                n += self.db(stmt.execute(params![id, at - i as i64]))?;
            }
        }
        self.db(tx.commit())?;
        Ok(n)
    }

    /// Calls `f(chunk id, file id, vector bytes)` for every embedded chunk.
    pub fn scan_vectors(&self, mut f: impl FnMut(i64, i64, &[u8])) -> Result<(), IndexError> {
        let mut stmt = self.db(self
            .conn
            .prepare("SELECT id, file_id, embedding FROM chunks WHERE embedding IS NOT NULL"))?;
        let mut rows = self.db(stmt.query([]))?;
        while let Some(row) = self.db(rows.next())? {
            let id: i64 = self.db(row.get(0))?;
            let file_id: i64 = self.db(row.get(1))?;
            let blob = self.db(row.get_ref(2).and_then(|v| Ok(v.as_blob()?)))?;
            f(id, file_id, blob);
        }
        Ok(())
    }

    /// Whether [`scan_codes`](Self::scan_codes) covers every embedded chunk (else scan the
    /// vectors).
    pub fn has_codes(&self) -> bool {
        self.version >= 3
    }

    /// Calls `f(chunk id, file id, scale, code)` for every embedded chunk's code.
    pub fn scan_codes(&self, mut f: impl FnMut(i64, i64, f32, &[u8])) -> Result<(), IndexError> {
        let mut stmt = self.db(self
            .conn
            .prepare("SELECT id, file_id, scale, code FROM codes"))?;
        let mut rows = self.db(stmt.query([]))?;
        while let Some(row) = self.db(rows.next())? {
            let id: i64 = self.db(row.get(0))?;
            let file_id: i64 = self.db(row.get(1))?;
            let scale: f64 = self.db(row.get(2))?;
            let code = self.db(row.get_ref(3).and_then(|v| Ok(v.as_blob()?)))?;
            f(id, file_id, scale as f32, code);
        }
        Ok(())
    }

    /// Calls `f(vector bytes)` with the vector of one chunk, read in place (`None` for a chunk
    /// not embedded yet).
    pub fn with_vector<T>(
        &self,
        id: i64,
        f: impl FnOnce(Option<&[u8]>) -> T,
    ) -> Result<T, IndexError> {
        let mut stmt = self.db(self
            .conn
            .prepare_cached("SELECT embedding FROM chunks WHERE id = ?1"))?;
        let mut rows = self.db(stmt.query([id]))?;
        let row = self.db(rows.next())?.ok_or_else(|| {
            IndexError::from_sqlite(&self.path, rusqlite::Error::QueryReturnedNoRows)
        })?;
        let blob = self.db(row.get_ref(0).and_then(|v| Ok(v.as_blob_or_null()?)))?;
        Ok(f(blob))
    }

    /// Chunks that match an FTS5 query, best first (`bm25`, negated so that higher is better;
    /// equal scores by chunk id), at most `limit`. With `keep`, only the chunks whose file
    /// id it accepts count.
    pub fn lexical(
        &self,
        fts_query: &str,
        limit: usize,
        keep: Option<&dyn Fn(i64) -> bool>,
    ) -> Result<Vec<(i64, f32)>, IndexError> {
        // The path counts double and the identifier parts half: a whole identifier or a file
        // name is a stronger sign than a word inside a longer name. The FTS table alone is
        // ranked: joining `chunks` for every match read each matching chunk's row (text and
        // vector) just for its file id, which cost most of a query whose words are common.
        const RANKED: &str = "SELECT rowid, bm25(chunks_fts, 2.0, 1.0, 0.5) AS score \
             FROM chunks_fts WHERE chunks_fts MATCH ?1 ORDER BY score, rowid";
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let Some(keep) = keep else {
            let mut stmt = self.db(self.conn.prepare_cached(&format!("{RANKED} LIMIT ?2")))?;
            let rows = self.db(stmt.query_map(params![fts_query, limit as i64], |r| {
                Ok((r.get::<_, i64>(0)?, -r.get::<_, f64>(1)? as f32))
            }))?;
            return self.db(rows.collect());
        };
        // Filtered: walk the ranking and look up each match's file until `limit` are kept.
        let mut file_of = self.db(self
            .conn
            .prepare_cached("SELECT file_id FROM chunks WHERE id = ?1"))?;
        let mut stmt = self.db(self.conn.prepare_cached(RANKED))?;
        let mut rows = self.db(stmt.query([fts_query]))?;
        while out.len() < limit
            && let Some(row) = self.db(rows.next())?
        {
            let id: i64 = self.db(row.get(0))?;
            let bm25: f64 = self.db(row.get(1))?;
            let file_id: i64 = self.db(file_of.query_row([id], |r| r.get(0)))?;
            if keep(file_id) {
                out.push((id, -bm25 as f32));
            }
        }
        Ok(out)
    }

    /// The file ids of these chunks.
    pub fn files_of(&self, chunks: &[i64]) -> Result<Vec<i64>, IndexError> {
        let mut stmt = self.db(self
            .conn
            .prepare_cached("SELECT file_id FROM chunks WHERE id = ?1"))?;
        let mut out = Vec::new();
        for &id in chunks {
            if let Some(file) = self.db(stmt.query_row([id], |r| r.get(0)).optional())? {
                out.push(file);
            }
        }
        Ok(out)
    }

    /// A chunk's location, symbol and text.
    pub fn chunk(&self, id: i64) -> Result<ChunkRow, IndexError> {
        self.db(self.conn.query_row(
            "SELECT f.path, c.start_line, c.end_line, c.symbol, c.kind, c.tokens, c.text \
             FROM chunks c JOIN files f ON f.id = c.file_id WHERE c.id = ?1",
            [id],
            |r| {
                Ok(ChunkRow {
                    path: r.get(0)?,
                    start_line: r.get::<_, i64>(1)? as usize,
                    end_line: r.get::<_, i64>(2)? as usize,
                    symbol: r.get(3)?,
                    kind: r.get(4)?,
                    tokens: r.get::<_, i64>(5)? as usize,
                    text: r.get(6)?,
                })
            },
        ))
    }

    /// Every file with its chunks' line ranges, in path and line order (a file without
    /// chunks comes once with `None` lines).
    pub fn files_and_chunks(&self) -> Result<Vec<FileRow>, IndexError> {
        let mut stmt = self.db(self.conn.prepare(
            "SELECT f.path, f.sha256, f.bytes, c.start_line, c.end_line FROM files f \
             LEFT JOIN chunks c ON c.file_id = f.id ORDER BY f.path, c.start_line",
        ))?;
        let rows = self.db(stmt.query_map([], |r| {
            Ok(FileRow {
                path: r.get(0)?,
                sha256: r.get(1)?,
                bytes: r.get::<_, i64>(2)? as u64,
                start: r.get(3)?,
                end: r.get(4)?,
            })
        }))?;
        self.db(rows.collect())
    }

    /// Every chunk as (path, first line, last line, vector bytes), in path and line order; a
    /// chunk not embedded yet has no bytes.
    pub fn all_vectors(&self) -> Result<Vec<StoredVector>, IndexError> {
        let mut stmt = self.db(self.conn.prepare(
            "SELECT f.path, c.start_line, c.end_line, c.embedding FROM chunks c \
             JOIN files f ON f.id = c.file_id ORDER BY f.path, c.start_line",
        ))?;
        let rows = self.db(stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get::<_, i64>(1)? as usize,
                r.get::<_, i64>(2)? as usize,
                r.get::<_, Option<Vec<u8>>>(3)?.unwrap_or_default(),
            ))
        }))?;
        self.db(rows.collect())
    }

    /// Files and chunks, embedded and not, in one statement (one state of the index).
    pub fn counts(&self) -> Result<Counts, IndexError> {
        if self.version < 4 {
            // Every chunk of an older index has its vector, and none is lexical-only.
            let (files, chunks) = self.db(self.conn.query_row(
                "SELECT (SELECT count(*) FROM files), (SELECT count(*) FROM chunks)",
                [],
                |r| Ok((r.get::<_, i64>(0)? as usize, r.get::<_, i64>(1)? as usize)),
            ))?;
            return Ok(Counts {
                files,
                total: chunks,
                ..Counts::default()
            });
        }
        self.db(self.conn.query_row(
            "SELECT count(*), \
                    coalesce(sum(CASE WHEN lexical_only = 0 THEN chunks END), 0), \
                    coalesce(sum(CASE WHEN lexical_only = 0 THEN pending END), 0), \
                    coalesce(sum(CASE WHEN lexical_only = 1 THEN chunks END), 0), \
                    coalesce(sum(lexical_only = 1 AND origin = 1), 0), \
                    coalesce(sum(lexical_only = 1 AND origin = 2), 0) \
             FROM files",
            [],
            |r| {
                let n = |i: usize| r.get::<_, i64>(i).map(|v| v.max(0) as usize);
                Ok(Counts {
                    files: n(0)?,
                    total: n(1)?,
                    pending: n(2)?,
                    lexical_only: n(3)?,
                    vendored_files: n(4)?,
                    generated_files: n(5)?,
                })
            },
        ))
    }
}

/// Encodes a vector as little-endian f32 bytes.
pub fn vector_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Decodes little-endian f32 bytes.
pub fn blob_vector(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|x| f32::from_le_bytes([x[0], x[1], x[2], x[3]]))
        .collect()
}
