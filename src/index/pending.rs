//! The new and changed files of an update, read again one at a time as the groups being
//! embedded need them, and the count of source text held in memory. The walk that finds them
//! keeps only their paths and sizes: reading a file twice costs far less than holding the
//! text of a whole repository.

use std::cell::Cell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::SystemTime;

use super::classify::Origin;
use super::update::sha256_hex;
use super::walk::{SkipReason, SourceFile, Unreadable, io_reason, read_source};

/// Source text held at once, in bytes: now and at most.
#[derive(Debug, Clone, Default)]
pub(super) struct Held(Rc<Counts>);

#[derive(Debug, Default)]
struct Counts {
    now: Cell<usize>,
    peak: Cell<usize>,
}

impl Held {
    /// Counts `bytes` as held until the returned guard is dropped.
    pub(super) fn hold(&self, bytes: usize) -> HeldBytes {
        let now = self.0.now.get() + bytes;
        self.0.now.set(now);
        self.0.peak.set(self.0.peak.get().max(now));
        HeldBytes {
            held: self.clone(),
            bytes,
        }
    }

    /// The most bytes held at once so far.
    pub(super) fn peak(&self) -> usize {
        self.0.peak.get()
    }
}

/// Bytes of source text counted as held while this lives: it goes wherever the text (or the
/// chunks cut from it) goes, so that the count follows the text's life.
#[derive(Debug)]
pub(super) struct HeldBytes {
    held: Held,
    bytes: usize,
}

impl Drop for HeldBytes {
    fn drop(&mut self) {
        let counts = &self.held.0;
        counts.now.set(counts.now.get() - self.bytes);
    }
}

/// A file the walk found new or changed.
pub(super) struct Listed {
    /// The path relative to the repository.
    pub rel: String,
    /// The path to read.
    pub path: PathBuf,
    /// Its size when the walk read it.
    pub bytes: usize,
    /// Where its text comes from, as the walk saw it.
    pub origin: Origin,
}

/// A file read again: its text, the text's hash, its origin and modification time, and the
/// count that holds it.
pub(super) struct ReadFile {
    pub file: SourceFile,
    pub sha256: String,
    pub origin: Origin,
    pub modified: Option<SystemTime>,
    pub held: HeldBytes,
}

/// Why a listed file was not indexed after all: between the walk and this read it became
/// something the walk skips (empty, binary, too large), could not be read, or vanished.
pub(super) enum Fault {
    Skipped(String, SkipReason),
    Unreadable(Unreadable),
}

/// The listed files, read in order, one when asked for.
pub(super) struct Reader {
    files: std::iter::Peekable<std::vec::IntoIter<Listed>>,
    max_file_bytes: u64,
    held: Held,
    /// Files that could not be indexed, for the report.
    pub faults: Vec<Fault>,
}

impl Reader {
    pub(super) fn new(files: Vec<Listed>, max_file_bytes: u64, held: Held) -> Self {
        Self {
            files: files.into_iter().peekable(),
            max_file_bytes,
            held,
            faults: Vec::new(),
        }
    }

    /// The size the walk saw of the next file, without reading it.
    pub(super) fn peek_bytes(&mut self) -> Option<usize> {
        self.files.peek().map(|f| f.bytes)
    }
}

impl Iterator for Reader {
    type Item = ReadFile;

    fn next(&mut self) -> Option<ReadFile> {
        loop {
            let listed = self.files.next()?;
            match read_source(&listed.rel, &listed.path, self.max_file_bytes) {
                Ok(Ok(text)) => {
                    return Some(ReadFile {
                        origin: listed.origin,
                        modified: std::fs::metadata(&listed.path)
                            .and_then(|m| m.modified())
                            .ok(),
                        held: self.held.hold(text.len()),
                        // The hash of the text read now: the file may have changed since
                        // the walk, and the stored hash must be that of the stored chunks.
                        sha256: sha256_hex(text.as_bytes()),
                        file: SourceFile {
                            path: listed.rel,
                            text,
                        },
                    });
                }
                Ok(Err(reason)) => self.faults.push(Fault::Skipped(listed.rel, reason)),
                Err(e) => self.faults.push(Fault::Unreadable(Unreadable {
                    reason: io_reason(&e),
                    path: listed.rel,
                    error: e.to_string(),
                })),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_counts_follow_the_guards() {
        let held = Held::default();
        let a = held.hold(10);
        let b = held.hold(5);
        drop(a);
        let c = held.hold(7);
        assert_eq!(held.peak(), 15);
        drop((b, c));
        let _d = held.hold(3);
        assert_eq!(held.peak(), 15);
        assert_eq!(held.0.now.get(), 3);
    }

    #[test]
    fn files_changed_since_the_walk_are_faults_or_read_as_they_are_now() {
        let dir = tempfile::tempdir().unwrap();
        let listed = |rel: &str| Listed {
            rel: rel.into(),
            path: dir.path().join(rel),
            bytes: 4,
            origin: Origin::Own,
        };
        std::fs::write(dir.path().join("a.rs"), "fn a() {}\n").unwrap();
        std::fs::write(dir.path().join("empty.rs"), "\n").unwrap();
        let held = Held::default();
        let mut reader = Reader::new(
            vec![listed("a.rs"), listed("empty.rs"), listed("gone.rs")],
            1 << 20,
            held.clone(),
        );
        let read: Vec<ReadFile> = reader.by_ref().collect();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].file.text, "fn a() {}\n");
        assert_eq!(read[0].sha256, sha256_hex(b"fn a() {}\n"));
        assert_eq!(held.peak(), 10);
        assert!(matches!(
            &reader.faults[..],
            [
                Fault::Skipped(e, SkipReason::Empty),
                Fault::Unreadable(Unreadable { path, reason: SkipReason::Vanished, .. }),
            ] if e == "empty.rs" && path == "gone.rs"
        ));
    }
}
