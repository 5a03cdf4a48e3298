//! Which files of a repository get indexed, in a deterministic order. A file or folder that
//! cannot be read (permission denied, deleted while the walk runs, a symlink loop, an I/O
//! error) is reported and skipped: one bad file never stops the others from being indexed.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Files larger than this are skipped by default (1 MiB): they are data, logs or generated.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 1 << 20;

/// Why a file was left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Larger than the size cap.
    TooLarge,
    /// Contains NUL bytes or is not UTF-8.
    Binary,
    /// A lock file, minified bundle, source map or snapshot. (Other generated files, marked
    /// by `@generated`, `linguist-generated` or their name, are indexed for lexical search
    /// only: see `classify`.)
    Generated,
    /// Empty or only whitespace.
    Empty,
    /// Beyond `--limit`.
    OverLimit,
    /// Could not be read: permission denied, an I/O error, a loop of links.
    Unreadable,
    /// Deleted (or moved away) between being listed and being read.
    Vanished,
}

/// A file or folder that could not be read, and the error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    /// The path relative to the repository root, `/`-separated.
    pub path: String,
    /// [`SkipReason::Unreadable`] or [`SkipReason::Vanished`].
    pub reason: SkipReason,
    /// What the operating system said.
    pub error: String,
}

/// A file to index: its path relative to the repository (with `/`) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// The path relative to the repository root, `/`-separated.
    pub path: String,
    /// The file's text.
    pub text: String,
}

/// The outcome of walking a repository.
#[derive(Debug, Default)]
pub struct Walk {
    /// Files to index, in path order.
    pub files: Vec<SourceFile>,
    /// Files left out, with why (the unreadable ones too).
    pub skipped: Vec<(String, SkipReason)>,
    /// Files and folders that could not be read, with the error. An indexed file under one
    /// of these paths is kept as it was, not removed: it may be readable again next time.
    pub unreadable: Vec<Unreadable>,
}

/// File names that are generated even though they look like source.
const GENERATED_NAMES: &[&str] = &[
    "Cargo.lock",
    "package-lock.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "poetry.lock",
    "Pipfile.lock",
    "composer.lock",
    "Gemfile.lock",
    "go.sum",
    "uv.lock",
];

/// Suffixes of generated files that are not worth searching at all.
const GENERATED_SUFFIXES: &[&str] = &[".min.js", ".min.css", ".map", ".lock", ".snap"];

/// Lists the files to index under `root`: what git would track (`.gitignore`, `.ignore`,
/// `.git/info/exclude` and global excludes are honoured; hidden files and folders are skipped),
/// minus binary, lock, minified, empty and oversized files, sorted by path. With `limit`, only the
/// first `limit` files of that order are kept. `exclude` (e.g. the index's own folder) is
/// never entered. Only an unreadable `root` is an error; any other file or folder that cannot
/// be read is listed in [`Walk::unreadable`] and skipped.
///
/// This holds every file's text at once; an index update uses a walk that hands each file
/// on and keeps none, so that its memory does not grow with the repository.
pub fn walk(
    root: &Path,
    max_file_bytes: u64,
    limit: Option<usize>,
    exclude: Option<&Path>,
) -> std::io::Result<Walk> {
    let mut files = Vec::new();
    let mut walk = walk_each(root, max_file_bytes, limit, exclude, &mut |file, _| {
        files.push(file)
    })?;
    walk.files = files;
    Ok(walk)
}

/// The walk of [`walk`], in the same order, that hands each file to `each` (with its full
/// path) as soon as it is read instead of keeping it: the result's `files` is empty.
pub(super) fn walk_each(
    root: &Path,
    max_file_bytes: u64,
    limit: Option<usize>,
    exclude: Option<&Path>,
    each: &mut dyn FnMut(SourceFile, &Path),
) -> std::io::Result<Walk> {
    // Without this, an unreadable or missing root would look like an empty repository, and
    // the update would remove every indexed file.
    std::fs::read_dir(root)?;
    let mut candidates: Vec<(String, PathBuf)> = Vec::new();
    let mut unreadable = Vec::new();
    let exclude = exclude.and_then(|e| e.canonicalize().ok());
    let walker = walk_builder(root)
        .filter_entry(move |e| {
            exclude
                .as_ref()
                .is_none_or(|x| e.path().canonicalize().ok().as_ref() != Some(x))
        })
        .build();
    for entry in walker {
        match entry {
            Ok(entry) => {
                if entry.file_type().is_some_and(|t| t.is_file()) {
                    candidates.push((relative(root, entry.path()), entry.into_path()));
                }
            }
            Err(e) => unreadable.push(walk_error(root, &e)),
        }
    }
    candidates.sort();

    let mut walk = Walk {
        unreadable,
        ..Walk::default()
    };
    let mut kept = 0;
    for (rel, path) in candidates {
        if limit.is_some_and(|l| kept >= l) {
            walk.skipped.push((rel, SkipReason::OverLimit));
            continue;
        }
        match read_source(&rel, &path, max_file_bytes) {
            Ok(Ok(text)) => {
                kept += 1;
                each(SourceFile { path: rel, text }, &path);
            }
            Ok(Err(reason)) => walk.skipped.push((rel, reason)),
            Err(e) => walk.unreadable.push(Unreadable {
                reason: io_reason(&e),
                path: rel,
                error: e.to_string(),
            }),
        }
    }
    for u in &walk.unreadable {
        walk.skipped.push((u.path.clone(), u.reason));
    }
    Ok(walk)
}

/// `path` relative to `root`, `/`-separated.
fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

/// Vanished for a path that is gone, unreadable for anything else.
pub(super) fn io_reason(e: &std::io::Error) -> SkipReason {
    if e.kind() == std::io::ErrorKind::NotFound {
        SkipReason::Vanished
    } else {
        SkipReason::Unreadable
    }
}

/// A walker's error as an unreadable path: the folder it could not list, the link that
/// loops, or the ignore file it could not read.
fn walk_error(root: &Path, e: &ignore::Error) -> Unreadable {
    fn path_and_io(e: &ignore::Error) -> (Option<&Path>, Option<&std::io::Error>) {
        match e {
            ignore::Error::WithPath { path, err } => (Some(path), path_and_io(err).1),
            ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
                path_and_io(err)
            }
            ignore::Error::Loop { child, .. } => (Some(child), None),
            ignore::Error::Partial(errs) => errs.first().map_or((None, None), path_and_io),
            ignore::Error::Io(io) => (None, Some(io)),
            _ => (None, None),
        }
    }
    let (path, io) = path_and_io(e);
    Unreadable {
        path: path.map_or_else(String::new, |p| relative(root, p)),
        reason: io.map_or(SkipReason::Unreadable, io_reason),
        error: e.to_string(),
    }
}

/// A file's bytes, or `None` when it holds more than `max` bytes. It reads at most one byte
/// past the cap, so a file that grew after its size was taken is never read whole.
fn read_capped(path: &Path, max: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(max.saturating_add(1))
        .read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= max).then_some(bytes))
}

/// Reads a file (`rel` is its path in the repository), or says why it is not indexed.
pub(super) fn read_source(
    rel: &str,
    path: &Path,
    max_file_bytes: u64,
) -> std::io::Result<Result<String, SkipReason>> {
    let size = std::fs::metadata(path)?.len();
    if size > max_file_bytes {
        return Ok(Err(SkipReason::TooLarge));
    }
    let name = rel.rsplit('/').next().unwrap_or(rel);
    if GENERATED_NAMES.contains(&name) || GENERATED_SUFFIXES.iter().any(|s| name.ends_with(s)) {
        return Ok(Err(SkipReason::Generated));
    }
    let Some(bytes) = read_capped(path, max_file_bytes)? else {
        return Ok(Err(SkipReason::TooLarge));
    };
    if bytes[..bytes.len().min(8192)].contains(&0) {
        return Ok(Err(SkipReason::Binary));
    }
    let Ok(text) = String::from_utf8(bytes) else {
        return Ok(Err(SkipReason::Binary));
    };
    if text.trim().is_empty() {
        return Ok(Err(SkipReason::Empty));
    }
    Ok(Ok(text))
}

/// The walk's rules, one place for every walker of a repository (the index's walk and the
/// watcher's stamps must see the same files): hidden files skipped, every kind of ignore file
/// honoured with or without git, links not followed.
pub(crate) fn walk_builder(root: &Path) -> ignore::WalkBuilder {
    let mut builder = ignore::WalkBuilder::new(root);
    builder
        .hidden(true)
        .git_ignore(true)
        .git_exclude(true)
        .git_global(true)
        .require_git(false)
        .follow_links(false);
    builder
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_gone_before_it_is_read_is_vanished_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone.rs");
        let e = read_source("gone.rs", &gone, 1 << 20).unwrap_err();
        assert_eq!(io_reason(&e), SkipReason::Vanished);
        // A folder is no file: reading it fails, and that is unreadable.
        let e = read_source("d", dir.path(), 1 << 20).unwrap_err();
        assert_eq!(io_reason(&e), SkipReason::Unreadable, "{e}");
    }

    #[test]
    fn a_file_is_never_read_past_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("big.txt");
        std::fs::write(&file, "x".repeat(100)).unwrap();
        assert_eq!(read_capped(&file, 99).unwrap(), None);
        assert_eq!(read_capped(&file, 100).unwrap().unwrap().len(), 100);
        assert_eq!(
            read_source("big.txt", &file, 99).unwrap(),
            Err(SkipReason::TooLarge)
        );
    }

    #[test]
    fn a_missing_root_is_an_error_not_an_empty_repository() {
        let dir = tempfile::tempdir().unwrap();
        assert!(walk(&dir.path().join("nope"), 1 << 20, None, None).is_err());
    }
}
