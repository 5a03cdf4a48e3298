//! The index file: one SQLite database (WAL mode) with files, chunks, their vectors and a
//! full-text (FTS5) table of the chunks. Every SQL statement of the index lives here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::IndexError;

/// Marks a database as ours.
const FORMAT: &str = "gguf-embed-index";
/// Bumped when the schema changes (2: chunk hashes, symbols and the FTS5 table; 3: the
/// vectors' int8 codes). Version 2 is upgraded in place when it is opened for writing, and
/// searched without codes when it is opened read-only; older versions need `--reindex`.
pub const SCHEMA_VERSION: i64 = 3;
/// The oldest schema this build reads.
const OLDEST_READABLE: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    id         INTEGER PRIMARY KEY,
    path       TEXT NOT NULL UNIQUE,
    sha256     TEXT NOT NULL,
    bytes      INTEGER NOT NULL,
    indexed_at INTEGER NOT NULL
);
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
    embedding  BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_file ON chunks(file_id);
CREATE INDEX IF NOT EXISTS chunks_by_hash ON chunks(text_hash);
-- Each chunk's vector coded in one byte per dimension with one scale (index/codes.rs), in a
-- table of its own so that the exact-search scan reads a quarter of the vectors' bytes.
-- Its id is the chunk's id; it goes with the chunk's file.
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
";

/// A chunk as it is written.
pub struct NewChunk<'a> {
    pub start_line: usize,
    pub end_line: usize,
    pub symbol: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub text_hash: &'a str,
    pub tokens: usize,
    pub text: &'a str,
    pub parts: &'a str,
    pub vector: &'a [u8],
}

/// A file and its chunks as they are written.
pub struct NewFile<'a> {
    pub path: &'a str,
    pub sha256: &'a str,
    pub bytes: usize,
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

/// A chunk's path, first and last line, and vector bytes.
pub type StoredVector = (String, usize, usize, Vec<u8>);

/// An open index database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Whether every chunk has its code (schema 3); a version-2 index opened read-only has
    /// none, and its scan reads the float vectors.
    has_codes: bool,
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
            has_codes: false,
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
        self.has_codes = true;
        Ok(())
    }

    /// Brings a version-2 index to this schema in one transaction: the codes table, filled
    /// from the stored vectors (a few seconds for 100,000 chunks). Another process may be
    /// doing the same: the version is read again once the write lock is held.
    fn upgrade(&mut self) -> Result<(), IndexError> {
        if self.has_codes {
            return Ok(());
        }
        self.db(self.conn.execute_batch("BEGIN IMMEDIATE"))?;
        let result = (|| {
            if self.format_and_version()?.1 == SCHEMA_VERSION {
                return Ok(());
            }
            self.db(self.conn.execute_batch(SCHEMA))?;
            let mut read = self.db(self
                .conn
                .prepare("SELECT id, file_id, embedding FROM chunks"))?;
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
            self.set_meta("schema_version", &SCHEMA_VERSION.to_string())
        })();
        match result {
            Ok(()) => {
                self.db(self.conn.execute_batch("COMMIT"))?;
                self.has_codes = true;
                Ok(())
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
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
        self.has_codes = version == SCHEMA_VERSION;
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

    /// Every indexed file: path → sha256.
    pub fn file_hashes(&self) -> Result<HashMap<String, String>, IndexError> {
        let mut stmt = self.db(self.conn.prepare("SELECT path, sha256 FROM files"))?;
        let rows = self.db(stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))))?;
        self.db(rows.collect())
    }

    /// Marks every indexed file as changed (its hash forgotten), so that the next updates
    /// chunk it again; its chunks and their vectors stay for reuse until then.
    pub fn forget_file_hashes(&self) -> Result<(), IndexError> {
        self.db(self.conn.execute("UPDATE files SET sha256 = ''", []))?;
        Ok(())
    }

    /// Every file's id and path.
    pub fn file_paths(&self) -> Result<Vec<(i64, String)>, IndexError> {
        let mut stmt = self.db(self.conn.prepare("SELECT id, path FROM files"))?;
        let rows = self.db(stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))))?;
        self.db(rows.collect())
    }

    /// A stored vector (and its token count) for a chunk text of this hash, if any chunk has
    /// one.
    pub fn vector_for_hash(&self, text_hash: &str) -> Result<Option<(usize, Vec<u8>)>, IndexError> {
        let mut stmt = self.db(self
            .conn
            .prepare_cached("SELECT tokens, embedding FROM chunks WHERE text_hash = ?1 LIMIT 1"))?;
        self.db(stmt
            .query_row([text_hash], |r| {
                Ok((r.get::<_, i64>(0)? as usize, r.get::<_, Vec<u8>>(1)?))
            })
            .optional())
    }

    /// Deletes these files (and their chunks) in one transaction.
    pub fn delete_files(&self, paths: &[&String]) -> Result<(), IndexError> {
        let tx = self.db(self.conn.unchecked_transaction())?;
        for path in paths {
            self.db(tx.execute("DELETE FROM files WHERE path = ?1", [path]))?;
        }
        self.db(tx.commit())
    }

    /// Replaces these files and their chunks in one transaction.
    pub fn write_files(&self, files: &[NewFile<'_>], now: u64) -> Result<(), IndexError> {
        let tx = self.db(self.conn.unchecked_transaction())?;
        for file in files {
            self.db(tx.execute("DELETE FROM files WHERE path = ?1", [file.path]))?;
            self.db(tx.execute(
                "INSERT INTO files (path, sha256, bytes, indexed_at) VALUES (?1, ?2, ?3, ?4)",
                params![file.path, file.sha256, file.bytes as i64, now as i64],
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
                let (scale, code) = super::codes::encode(&blob_vector(c.vector));
                self.db(codes.execute(params![id, file_id, scale, code]))?;
            }
        }
        self.db(tx.commit())
    }

    /// Calls `f(chunk id, file id, vector bytes)` for every stored chunk.
    pub fn scan_vectors(&self, mut f: impl FnMut(i64, i64, &[u8])) -> Result<(), IndexError> {
        let mut stmt = self.db(self
            .conn
            .prepare("SELECT id, file_id, embedding FROM chunks"))?;
        let mut rows = self.db(stmt.query([]))?;
        while let Some(row) = self.db(rows.next())? {
            let id: i64 = self.db(row.get(0))?;
            let file_id: i64 = self.db(row.get(1))?;
            let blob = self.db(row.get_ref(2).and_then(|v| Ok(v.as_blob()?)))?;
            f(id, file_id, blob);
        }
        Ok(())
    }

    /// Whether [`scan_codes`](Self::scan_codes) covers every chunk (else scan the vectors).
    pub fn has_codes(&self) -> bool {
        self.has_codes
    }

    /// Calls `f(chunk id, file id, scale, code)` for every stored chunk's code.
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

    /// Calls `f(vector bytes)` with the vector of one chunk, read in place.
    pub fn with_vector<T>(&self, id: i64, f: impl FnOnce(&[u8]) -> T) -> Result<T, IndexError> {
        let mut stmt = self.db(self
            .conn
            .prepare_cached("SELECT embedding FROM chunks WHERE id = ?1"))?;
        let mut rows = self.db(stmt.query([id]))?;
        let row = self.db(rows.next())?.ok_or_else(|| {
            IndexError::from_sqlite(&self.path, rusqlite::Error::QueryReturnedNoRows)
        })?;
        let blob = self.db(row.get_ref(0).and_then(|v| Ok(v.as_blob()?)))?;
        Ok(f(blob))
    }

    /// The vector of one chunk.
    pub fn vector(&self, id: i64) -> Result<Vec<u8>, IndexError> {
        self.with_vector(id, <[u8]>::to_vec)
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

    /// Every chunk as (path, first line, last line, vector bytes), in path and line order.
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
                r.get(3)?,
            ))
        }))?;
        self.db(rows.collect())
    }

    /// Rows in `files` and `chunks`.
    pub fn counts(&self) -> Result<(usize, usize), IndexError> {
        let count = |table: &str| -> Result<usize, IndexError> {
            self.db(self
                .conn
                .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
                    r.get::<_, i64>(0)
                }))
            .map(|n| n as usize)
        };
        Ok((count("files")?, count("chunks")?))
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
