//! One writer per index: an exclusive lock on a file next to it (`INDEX.lock`). Readers take
//! no lock (SQLite's write-ahead log lets them search while the writer writes), and the
//! operating system releases the lock when its holder exits or is killed, so a crashed
//! indexer never leaves the index locked.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use super::IndexError;

/// The held writer lock of one index; released when dropped.
#[derive(Debug)]
pub struct WriterLock {
    _file: File,
    path: PathBuf,
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
        Ok(Some(Self { _file: file, path }))
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
        let first = WriterLock::acquire(&index, false).unwrap().unwrap();
        assert!(first.path().ends_with("index.sqlite.lock"));
        assert!(WriterLock::acquire(&index, false).unwrap().is_none());
        drop(first);
        assert!(WriterLock::acquire(&index, false).unwrap().is_some());
    }
}
