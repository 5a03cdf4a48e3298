//! One writer per index: an exclusive lock on a file next to it (`INDEX.lock`). Readers take
//! no lock (SQLite's write-ahead log lets them search while the writer writes), and the
//! operating system releases the lock when its holder exits or is killed, so a crashed
//! indexer never leaves the index locked. The holder says who it is in the lock file, so that
//! another process can tell a one-off update (that will finish) from a watcher or an MCP
//! server (that keeps the index current and never finishes), and can ask a keeper for a pass
//! through a request file next to the index (`INDEX.pass`), which its watcher sees.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::IndexError;

/// The held writer lock of one index; released when dropped.
#[derive(Debug)]
pub struct WriterLock {
    file: File,
    path: PathBuf,
}

/// Who holds an index's writer lock, as the holder wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Holder {
    /// Its process id.
    pub pid: u32,
    /// What it is, for people: `gguf-embed index --watch`, `gguf-embed mcp`, ...
    pub command: String,
    /// Whether it keeps the index current until it is stopped (a watcher, an MCP server)
    /// rather than finishing one update.
    pub keeps_current: bool,
}

impl Holder {
    /// This process, described as `command`.
    pub fn this_process(command: impl Into<String>, keeps_current: bool) -> Self {
        Self {
            pid: std::process::id(),
            command: command.into(),
            keeps_current,
        }
    }
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        // Nobody holds it any more: no one should read this holder from it.
        let _ = self.file.set_len(0);
    }
}

impl WriterLock {
    /// The lock file of the index at `index`.
    pub fn path_for(index: &Path) -> PathBuf {
        let mut name = index.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    }

    /// Takes the writer lock of the index at `index`: with `wait`, blocks until the current
    /// holder lets go; without, returns `None` at once when another process (or another
    /// handle in this one) holds it.
    pub fn acquire(index: &Path, wait: bool) -> Result<Option<Self>, IndexError> {
        let path = Self::path_for(index);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| IndexError::io(dir, e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| IndexError::io(&path, e))?;
        if wait {
            file.lock().map_err(|e| IndexError::io(&path, e))?;
        } else {
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => return Ok(None),
                Err(TryLockError::Error(e)) => return Err(IndexError::io(&path, e)),
            }
        }
        // A holder killed before it could clear its description leaves it behind.
        file.set_len(0).map_err(|e| IndexError::io(&path, e))?;
        Ok(Some(Self { file, path }))
    }

    /// Says who holds the lock (in the lock file, for [`WriterLock::holder`]).
    pub fn announce(&mut self, holder: &Holder) -> Result<(), IndexError> {
        let json = serde_json::to_vec(holder).expect("a holder serializes");
        let io = |e| IndexError::io(&self.path, e);
        self.file.set_len(0).map_err(io)?;
        self.file.rewind().map_err(io)?;
        self.file.write_all(&json).map_err(io)
    }

    /// Who holds the lock of the index at `index`, if its holder said (read without taking
    /// the lock: meaningful when [`acquire`](Self::acquire) just failed).
    pub fn holder(index: &Path) -> Option<Holder> {
        let text = std::fs::read(Self::path_for(index)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// The request file of the index at `index`: writing it asks the process that keeps the
    /// index current for a pass (its watcher sees the change).
    pub fn request_path(index: &Path) -> PathBuf {
        let mut name = index.as_os_str().to_owned();
        name.push(".pass");
        PathBuf::from(name)
    }

    /// Asks the process that keeps the index at `index` current for a pass.
    pub fn request_pass(index: &Path) -> Result<(), IndexError> {
        let path = Self::request_path(index);
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        std::fs::write(&path, format!("{} {stamp}\n", std::process::id()))
            .map_err(|e| IndexError::io(&path, e))
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let index = dir.path().join("sub/index.sqlite");
        let mut first = WriterLock::acquire(&index, false).unwrap().unwrap();
        assert!(first.path().ends_with("index.sqlite.lock"));
        assert_eq!(WriterLock::holder(&index), None);
        let me = Holder::this_process("gguf-embed index --watch", true);
        first.announce(&me).unwrap();
        assert!(WriterLock::acquire(&index, false).unwrap().is_none());
        assert_eq!(WriterLock::holder(&index), Some(me));
        drop(first);
        assert_eq!(
            WriterLock::holder(&index),
            None,
            "a released lock names nobody"
        );
        assert!(WriterLock::acquire(&index, false).unwrap().is_some());
    }
}
