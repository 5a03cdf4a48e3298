//! Noticing that a repository changed, so that an index can be kept current: file-system
//! events (inotify, FSEvents, ...) through `notify`, debounced, filtered to the files an
//! update would look at, and delivered as batches. Nothing runs while nothing changes.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};

use super::IndexError;

/// How long the repository must be quiet before a batch is delivered by default: a branch
/// switch or a formatter run that touches a thousand files becomes one batch.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(500);

/// Batches of changed paths under a repository.
pub struct Changes {
    rx: Receiver<DebounceEventResult>,
    _debouncer: Debouncer<RecommendedWatcher>,
    root: PathBuf,
    ignore: Gitignore,
    index: Option<PathBuf>,
}

impl std::fmt::Debug for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changes")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl Changes {
    /// Starts watching `repo` recursively. Changes to `index` (the index file, its log and
    /// lock) are never reported, so that writing the index does not wake the watcher.
    pub fn watch(
        repo: &Path,
        index: Option<&Path>,
        debounce: Duration,
    ) -> Result<Self, IndexError> {
        let root = std::fs::canonicalize(repo).map_err(|e| IndexError::io(repo, e))?;
        let (tx, rx) = channel();
        let mut debouncer = new_debouncer(debounce, tx).map_err(|e| watch_error(&root, e))?;
        debouncer
            .watcher()
            .watch(&root, RecursiveMode::Recursive)
            .map_err(|e| watch_error(&root, e))?;
        // The top-level ignore files: paths they ignore never trigger an update (an update
        // itself honours every ignore file; this only saves passes that would find nothing).
        let mut builder = GitignoreBuilder::new(&root);
        for name in [".gitignore", ".ignore"] {
            let _ = builder.add(root.join(name));
        }
        let ignore = builder.build().unwrap_or_else(|_| Gitignore::empty());
        let index = index.map(|i| {
            i.parent()
                .and_then(|d| std::fs::canonicalize(d).ok())
                .zip(i.file_name())
                .map_or_else(|| i.to_path_buf(), |(d, n)| d.join(n))
        });
        Ok(Self {
            rx,
            _debouncer: debouncer,
            root,
            ignore,
            index,
        })
    }

    /// Blocks until files an update would look at changed, then returns how many paths
    /// changed (after `settle` more of quiet, batches that follow each other are merged).
    /// `Ok(None)` when the watcher stopped.
    pub fn next_batch(&self, settle: Duration) -> Result<Option<usize>, IndexError> {
        loop {
            let first = match self.rx.recv() {
                Ok(batch) => batch,
                Err(_) => return Ok(None),
            };
            let mut changed = self.relevant(first)?;
            loop {
                match self.rx.recv_timeout(settle) {
                    Ok(batch) => changed += self.relevant(batch)?,
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => return Ok(None),
                }
            }
            if changed > 0 {
                return Ok(Some(changed));
            }
        }
    }

    fn relevant(&self, batch: DebounceEventResult) -> Result<usize, IndexError> {
        let events = batch.map_err(|e| watch_error(&self.root, e))?;
        Ok(events.iter().filter(|e| self.is_relevant(&e.path)).count())
    }

    /// Whether a change at `path` can matter to an update: inside the repository, not in a
    /// hidden folder or file (`.git`, `.gguf-embed`), not the index, not ignored at the top.
    fn is_relevant(&self, path: &Path) -> bool {
        if let Some(index) = &self.index
            && path
                .to_string_lossy()
                .starts_with(&*index.to_string_lossy())
        {
            return false;
        }
        let Ok(rel) = path.strip_prefix(&self.root) else {
            return false;
        };
        if rel
            .components()
            .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
        {
            return false;
        }
        let is_dir = path.is_dir();
        !self
            .ignore
            .matched_path_or_any_parents(rel, is_dir)
            .is_ignore()
    }
}

fn watch_error(root: &Path, e: impl std::fmt::Display) -> IndexError {
    IndexError::io(
        root,
        std::io::Error::other(format!("cannot watch for changes: {e}")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_batched_and_filtered() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join(".gitignore"), "target/\n").unwrap();
        std::fs::create_dir_all(root.join("target")).unwrap();
        std::fs::create_dir_all(root.join(".gguf-embed")).unwrap();
        let index = root.join(".gguf-embed/index.sqlite");
        let changes = Changes::watch(root, Some(&index), Duration::from_millis(100)).unwrap();
        std::fs::write(root.join("target/out.o"), "x").unwrap();
        std::fs::write(&index, "x").unwrap();
        for i in 0..50 {
            std::fs::write(root.join(format!("f{i}.rs")), "fn f() {}").unwrap();
        }
        let n = changes
            .next_batch(Duration::from_millis(300))
            .unwrap()
            .unwrap();
        assert!(n >= 50, "{n}");
        assert!(!changes.is_relevant(&changes.root.join("target/out.o")));
        assert!(!changes.is_relevant(&changes.root.join(".git/HEAD")));
        assert!(changes.is_relevant(&changes.root.join("src/a.rs")));
    }
}
