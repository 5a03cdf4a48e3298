//! The index file: one SQLite database (WAL mode) with files, chunks and their vectors.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use super::IndexError;

/// Marks a database as ours.
const FORMAT: &str = "gguf-embed-index";
/// Bumped when the schema changes incompatibly.
pub const SCHEMA_VERSION: i64 = 1;

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
    tokens     INTEGER NOT NULL,
    text       TEXT NOT NULL,
    embedding  BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_file ON chunks(file_id);
";

/// An open index database.
pub struct Store {
    pub(super) conn: Connection,
}

fn sql(path: &Path) -> impl Fn(rusqlite::Error) -> IndexError + '_ {
    move |e| IndexError::from_sqlite(path, e)
}

impl Store {
    /// Opens an existing index, checking that it is one of ours.
    pub fn open(path: &Path) -> Result<Self, IndexError> {
        if !path.is_file() {
            return Err(IndexError::Missing(path.to_path_buf()));
        }
        let conn = Connection::open(path).map_err(sql(path))?;
        let store = Self { conn };
        store.configure(path)?;
        store.check_format(path)?;
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
        let store = Self { conn };
        store.configure(path)?;
        store.conn.execute_batch(SCHEMA).map_err(sql(path))?;
        store.set_meta("format", FORMAT).map_err(sql(path))?;
        store
            .set_meta("schema_version", &SCHEMA_VERSION.to_string())
            .map_err(sql(path))?;
        Ok(store)
    }

    fn configure(&self, path: &Path) -> Result<(), IndexError> {
        // WAL keeps readers (search) working while an update writes, and with it a crash
        // loses at most the transaction in progress.
        self.conn
            .execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
            )
            .map_err(sql(path))
    }

    fn check_format(&self, path: &Path) -> Result<(), IndexError> {
        let has_meta: bool = self
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(sql(path))?
            > 0;
        let format = if has_meta {
            self.meta("format").map_err(sql(path))?
        } else {
            None
        };
        if format.as_deref() != Some(FORMAT) {
            return Err(IndexError::NotAnIndex {
                path: path.to_path_buf(),
                reason: "it is an SQLite database without gguf-embed's metadata".into(),
            });
        }
        let version: i64 = self
            .meta("schema_version")
            .map_err(sql(path))?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if version != SCHEMA_VERSION {
            return Err(IndexError::NotAnIndex {
                path: path.to_path_buf(),
                reason: format!(
                    "it has schema version {version}, this gguf-embed reads version {SCHEMA_VERSION}; rebuild it with --reindex"
                ),
            });
        }
        Ok(())
    }

    /// A metadata value.
    pub fn meta(&self, key: &str) -> rusqlite::Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
    }

    /// Sets a metadata value.
    pub fn set_meta(&self, key: &str, value: &str) -> rusqlite::Result<()> {
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(|_| ())
    }

    /// Every indexed file: path → sha256.
    pub fn file_hashes(&self) -> rusqlite::Result<std::collections::HashMap<String, String>> {
        let mut stmt = self.conn.prepare("SELECT path, sha256 FROM files")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect()
    }
}

/// Encodes a vector as little-endian f32 bytes.
pub fn vector_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
