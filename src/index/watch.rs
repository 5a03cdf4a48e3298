//! Noticing that a repository changed, so that an index can be kept current: file-system
//! events (inotify, FSEvents, ...) through `notify`, debounced, filtered to the files an
//! update would look at, and delivered as batches. Nothing runs while nothing changes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
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
    /// The top-level ignore files' rules, read again whenever one of them changes.
    ignore: Mutex<Gitignore>,
    /// Each path's size and modification time when an event last named it, or when watching
    /// began (`None`: gone). notify reports opens too, so reading a file is an event: an
    /// update's own reads, or a build tool's, would otherwise wake the watcher for a pass that
    /// finds nothing, forever.
    seen: Mutex<HashMap<PathBuf, Option<Stamp>>>,
    index: Option<PathBuf>,
}

/// The ignore files an update honours in every folder.
const IGNORE_FILES: [&str; 2] = [".gitignore", ".ignore"];

/// A file's size and modification time.
type Stamp = (u64, std::time::SystemTime);

/// A path's stamp from its metadata (no open: that would be an event of its own).
fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::symlink_metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?))
}

/// The stamps of what an update would look at under `root` (the walk an update makes: files,
/// their folders, and the ignore files in them). Without them, the first event that names a
/// path counts as a change: the first pass's own reads of every file, or a person opening a
/// file the watcher has not seen yet, would start a pass that finds nothing.
fn stamps_now(root: &Path) -> HashMap<PathBuf, Option<Stamp>> {
    let mut seen = HashMap::new();
    let walker = super::walk::walk_builder(root).build();
    for entry in walker.flatten() {
        let path = entry.path();
        if entry.file_type().is_some_and(|t| t.is_dir()) {
            for name in IGNORE_FILES {
                let rules = path.join(name);
                if let Some(s) = stamp(&rules) {
                    seen.insert(rules, Some(s));
                }
            }
        }
        if let Some(s) = stamp(path) {
            seen.insert(path.to_path_buf(), Some(s));
        }
    }
    seen
}

/// The rules of the ignore files at the top of `root`.
fn top_level_rules(root: &Path) -> Gitignore {
    let mut builder = GitignoreBuilder::new(root);
    for name in IGNORE_FILES {
        let _ = builder.add(root.join(name));
    }
    builder.build().unwrap_or_else(|_| Gitignore::empty())
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
        // itself honours every ignore file, nested ones too; this only saves passes that
        // would find nothing, such as a build writing into `target/`).
        let ignore = Mutex::new(top_level_rules(&root));
        let index = index.map(|i| {
            i.parent()
                .and_then(|d| std::fs::canonicalize(d).ok())
                .zip(i.file_name())
                .map_or_else(|| i.to_path_buf(), |(d, n)| d.join(n))
        });
        // Taken after the watch began: a change made before this stamp was taken is in the
        // files a first pass reads after this returns, and one made after it changes a stamp.
        let seen = Mutex::new(stamps_now(&root));
        Ok(Self {
            rx,
            _debouncer: debouncer,
            root,
            ignore,
            seen,
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

    /// How many paths of a batch changed in a way an update would see. A change to a
    /// top-level ignore file reads its rules again first (reading it is an event too, which
    /// [`stamp_changed`](Self::stamp_changed) then tells from a change).
    fn relevant(&self, batch: DebounceEventResult) -> Result<usize, IndexError> {
        let events = batch.map_err(|e| watch_error(&self.root, e))?;
        let (rules, others): (Vec<&Path>, Vec<&Path>) = events
            .iter()
            .map(|e| e.path.as_path())
            .partition(|p| self.is_top_level_rules(p));
        let rules: Vec<&Path> = rules
            .into_iter()
            .filter(|p| self.stamp_changed(p))
            .collect();
        if !rules.is_empty() {
            *self.ignore.lock().unwrap_or_else(|e| e.into_inner()) = top_level_rules(&self.root);
        }
        let rules_changed = rules.into_iter().filter(|p| self.is_relevant(p)).count();
        let others_changed = others
            .into_iter()
            .filter(|p| self.is_relevant(p) && self.stamp_changed(p))
            .count();
        Ok(rules_changed + others_changed)
    }

    /// Whether `path` is one of the ignore files at the top of the repository.
    fn is_top_level_rules(&self, path: &Path) -> bool {
        path.parent() == Some(self.root.as_path())
            && path
                .file_name()
                .is_some_and(|n| IGNORE_FILES.iter().any(|f| n.to_str() == Some(f)))
    }

    /// Whether `path` changed since an event last named it or watching began: a path not
    /// stamped then (new, or in an ignored folder) counts as changed; an event that left
    /// size and time as they were is a read.
    fn stamp_changed(&self, path: &Path) -> bool {
        let now = stamp(path);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.insert(path.to_path_buf(), now) != Some(now)
    }

    /// Whether a change at `path` can matter to an update: inside the repository, not in a
    /// hidden folder or file (`.git`, `.gguf-embed`) except an ignore file (its rules change
    /// what is indexed), not the index, not ignored at the top.
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
        let names: Vec<_> = rel.components().map(|c| c.as_os_str()).collect();
        let hidden = |n: &&std::ffi::OsStr| n.to_string_lossy().starts_with('.');
        match names.split_last() {
            None => return false,
            Some((last, folders)) => {
                if folders.iter().any(hidden)
                    || (hidden(last) && !IGNORE_FILES.iter().any(|f| last.to_str() == Some(f)))
                {
                    return false;
                }
            }
        }
        let is_dir = path.is_dir();
        !self
            .ignore
            .lock()
            .unwrap_or_else(|e| e.into_inner())
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
        assert!(!changes.is_relevant(&changes.root.join(".git/.gitignore")));
        assert!(!changes.is_relevant(&changes.root.join("src/.hidden.rs")));
        assert!(changes.is_relevant(&changes.root.join("src/a.rs")));
        assert!(changes.is_relevant(&changes.root.join("src/.gitignore")));
        assert!(changes.is_relevant(&changes.root.join(".ignore")));
        assert!(!changes.is_relevant(&changes.root.join("target/x.rs")));
    }

    #[test]
    fn the_top_level_rules_are_read_again_when_they_change() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join(".gitignore"), "gen/\n").unwrap();
        let changes = Changes::watch(root, None, Duration::from_millis(100)).unwrap();
        assert!(!changes.is_relevant(&changes.root.join("gen/a.rs")));
        std::fs::write(root.join(".gitignore"), "other/\n").unwrap();
        changes
            .next_batch(Duration::from_millis(300))
            .unwrap()
            .unwrap();
        assert!(changes.is_relevant(&changes.root.join("gen/a.rs")));
        assert!(!changes.is_relevant(&changes.root.join("other/a.rs")));
    }
}
