//! Noticing that a repository changed, so that an index can be kept current: file-system
//! events (inotify, FSEvents, ...) through `notify`, debounced, filtered to the files an
//! update would look at, and delivered as batches; and requests for a pass, from this process
//! ([`Requester`]) or another one (the index's request file, see
//! [`WriterLock::request_pass`](super::WriterLock::request_pass)). Nothing runs while nothing
//! changes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::Duration;

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};

use super::IndexError;

/// How long the repository must be quiet before a batch is delivered by default: a branch
/// switch or a formatter run that touches a thousand files becomes one batch.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(500);

/// What wakes a keeper: file events, or a request for a pass.
enum Signal {
    Events(DebounceEventResult),
    Request,
}

/// What happened since the last batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Batch {
    /// Paths that changed in a way an update would see.
    pub changed: usize,
    /// Whether a pass was asked for (by this process or another one).
    pub requested: bool,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.changed == 0 && !self.requested
    }

    fn merge(&mut self, other: Batch) {
        self.changed += other.changed;
        self.requested |= other.requested;
    }
}

/// Asks the keeper that reads a [`Changes`] for a pass, from any thread.
#[derive(Debug, Clone)]
pub struct Requester(Sender<Signal>);

impl Requester {
    /// Asks for a pass; `false` when the keeper is gone.
    pub fn request(&self) -> bool {
        self.0.send(Signal::Request).is_ok()
    }
}

/// Batches of changed paths under a repository, and requests for passes.
pub struct Changes {
    rx: Receiver<Signal>,
    tx: Sender<Signal>,
    _debouncer: Option<Debouncer<RecommendedWatcher>>,
    /// What arrived while a pass ran (see [`Changes::has_pending`]).
    pending: Mutex<Batch>,
    root: PathBuf,
    /// The top-level ignore files' rules, read again whenever one of them changes.
    ignore: Mutex<Gitignore>,
    /// Each path's size and modification time when an event last named it, or when watching
    /// began (`None`: gone). notify reports opens too, so reading a file is an event: an
    /// update's own reads, or a build tool's, would otherwise wake the watcher for a pass that
    /// finds nothing, forever.
    seen: Mutex<HashMap<PathBuf, Option<Stamp>>>,
    index: Option<PathBuf>,
    /// The index's request file.
    request: Option<PathBuf>,
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
    /// lock) are never reported, so that writing the index does not wake the watcher; a write
    /// to its request file is reported as a request (the index's folder is watched too when
    /// it lies outside the repository).
    pub fn watch(
        repo: &Path,
        index: Option<&Path>,
        debounce: Duration,
    ) -> Result<Self, IndexError> {
        let root = std::fs::canonicalize(repo).map_err(|e| IndexError::io(repo, e))?;
        let (tx, rx) = channel();
        let events = tx.clone();
        let mut debouncer = new_debouncer(debounce, move |r| {
            let _ = events.send(Signal::Events(r));
        })
        .map_err(|e| watch_error(&root, e))?;
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
        let request = index.as_deref().map(super::WriterLock::request_path);
        if let Some(dir) = index.as_deref().and_then(Path::parent)
            && !dir.starts_with(&root)
        {
            debouncer
                .watcher()
                .watch(dir, RecursiveMode::NonRecursive)
                .map_err(|e| watch_error(dir, e))?;
        }
        // Taken after the watch began: a change made before this stamp was taken is in the
        // files a first pass reads after this returns, and one made after it changes a stamp.
        let mut stamps = stamps_now(&root);
        if let Some(r) = &request {
            stamps.insert(r.clone(), stamp(r));
        }
        Ok(Self {
            rx,
            tx,
            _debouncer: Some(debouncer),
            pending: Mutex::new(Batch::default()),
            root,
            ignore,
            seen: Mutex::new(stamps),
            index,
            request,
        })
    }

    /// Changes that only ever report requests (when the repository cannot be watched).
    pub fn requests_only(repo: &Path) -> Self {
        let (tx, rx) = channel();
        Self {
            rx,
            tx,
            _debouncer: None,
            pending: Mutex::new(Batch::default()),
            root: repo.to_path_buf(),
            ignore: Mutex::new(Gitignore::empty()),
            seen: Mutex::new(HashMap::new()),
            index: None,
            request: None,
        }
    }

    /// A handle that asks for a pass from any thread.
    pub fn requester(&self) -> Requester {
        Requester(self.tx.clone())
    }

    /// Blocks until files an update would look at changed, or a pass was asked for, then
    /// returns what happened (after `settle` more of quiet, batches that follow each other are
    /// merged). `Ok(None)` when the watcher stopped.
    pub fn next_batch(&self, settle: Duration) -> Result<Option<Batch>, IndexError> {
        let mut batch =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        loop {
            if batch.is_empty() {
                match self.rx.recv() {
                    Ok(signal) => batch.merge(self.relevant(signal)?),
                    Err(_) => return Ok(None),
                }
                continue;
            }
            loop {
                match self.rx.recv_timeout(settle) {
                    Ok(signal) => batch.merge(self.relevant(signal)?),
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => return Ok(None),
                }
            }
            if !batch.is_empty() {
                return Ok(Some(batch));
            }
        }
    }

    /// Whether something arrived that the next batch will report, without waiting: a keeper
    /// asks between groups of embeddings, so that changes are written (and searchable)
    /// before the rest of the queue is embedded.
    pub fn has_pending(&self) -> Result<bool, IndexError> {
        let mut arrived = Batch::default();
        // Empty or disconnected: nothing more now (a stopped watcher shows at the next batch).
        while let Ok(signal) = self.rx.try_recv() {
            arrived.merge(self.relevant(signal)?);
        }
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.merge(arrived);
        Ok(!pending.is_empty())
    }

    /// What a signal means for an update: how many paths of a batch changed in a way an
    /// update would see, or a request. A change to a top-level ignore file reads its rules
    /// again first (reading it is an event too, which [`stamp_changed`](Self::stamp_changed)
    /// then tells from a change).
    fn relevant(&self, signal: Signal) -> Result<Batch, IndexError> {
        let batch = match signal {
            Signal::Request => {
                return Ok(Batch {
                    changed: 0,
                    requested: true,
                });
            }
            Signal::Events(batch) => batch,
        };
        let events = batch.map_err(|e| watch_error(&self.root, e))?;
        let requested = events.iter().any(|e| {
            self.request.as_deref() == Some(e.path.as_path()) && self.stamp_changed(&e.path)
        });
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
        Ok(Batch {
            changed: rules_changed + others_changed,
            requested,
        })
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
            .unwrap()
            .changed;
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

#[cfg(test)]
mod request_tests {
    use super::*;

    #[test]
    fn requests_from_this_process_and_from_the_request_file_wake_the_keeper() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        std::fs::create_dir_all(&root).unwrap();
        // The index outside the repository: its folder is watched for the request file.
        let index = dir.path().join("elsewhere/index.sqlite");
        std::fs::create_dir_all(index.parent().unwrap()).unwrap();
        let changes = Changes::watch(&root, Some(&index), Duration::from_millis(50)).unwrap();
        assert!(!changes.has_pending().unwrap());
        assert!(changes.requester().request());
        assert!(changes.has_pending().unwrap());
        let batch = changes
            .next_batch(Duration::from_millis(50))
            .unwrap()
            .unwrap();
        assert_eq!((batch.changed, batch.requested), (0, true));
        assert!(!changes.has_pending().unwrap());

        super::super::WriterLock::request_pass(&index).unwrap();
        let batch = changes
            .next_batch(Duration::from_millis(100))
            .unwrap()
            .unwrap();
        assert!(batch.requested);
        assert_eq!(
            batch.changed, 0,
            "the request file is no change of the repository"
        );

        let manual = Changes::requests_only(&root);
        manual.requester().request();
        assert!(
            manual
                .next_batch(Duration::from_millis(10))
                .unwrap()
                .unwrap()
                .requested
        );
    }
}
