//! The Hugging Face cache layout, shared with Python's `huggingface_hub` and other tools:
//!
//! ```text
//! $HF_HUB_CACHE/models--OWNER--NAME/
//!     blobs/<etag>                    file contents, named by their hash
//!     blobs/<etag>.incomplete         a download in progress (resumable)
//!     snapshots/<commit>/<file>       relative symlinks into blobs/
//!     refs/<revision>                 the commit a branch or tag pointed to
//!     .gguf-embed/verified/<etag>     ours: when we last checked the blob's sha256
//! $HF_HUB_CACHE/.locks/models--OWNER--NAME/<etag>.lock
//! ```

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use hf_hub::{Cache, Repo};

use super::HubError;
use super::spec::HubFile;

/// One repository's folder in the cache.
pub struct RepoCache {
    cache_dir: PathBuf,
    folder: String,
    repo: String,
}

impl RepoCache {
    /// The cache folder of `repo` (`owner/name`) under `cache_dir`.
    pub fn new(cache_dir: &Path, repo: &str) -> Self {
        Self {
            cache_dir: cache_dir.to_path_buf(),
            folder: Repo::model(repo.to_string()).folder_name(),
            repo: repo.to_string(),
        }
    }

    fn hf(&self, revision: &str) -> hf_hub::CacheRepo {
        Cache::new(self.cache_dir.clone()).repo(Repo::with_revision(
            self.repo.clone(),
            hf_hub::RepoType::Model,
            revision.to_string(),
        ))
    }

    /// The repository's folder.
    pub fn root(&self) -> PathBuf {
        self.cache_dir.join(&self.folder)
    }

    /// Where a blob lives (hf-hub's layout; its own `blob_path` comes only with its HTTP
    /// clients, which we do not use).
    pub fn blob_path(&self, etag: &str) -> PathBuf {
        self.root().join("blobs").join(etag)
    }

    /// Where a download of a blob accumulates (the name Python uses, so either tool resumes
    /// the other's partial download).
    pub fn incomplete_path(&self, etag: &str) -> PathBuf {
        self.root().join("blobs").join(format!("{etag}.incomplete"))
    }

    /// The lock file serialising downloads of a blob (Python's location too).
    pub fn lock_path(&self, etag: &str) -> PathBuf {
        self.cache_dir
            .join(".locks")
            .join(&self.folder)
            .join(format!("{etag}.lock"))
    }

    /// The snapshot entry of `file` at `commit`.
    pub fn snapshot_path(&self, commit: &str, file: &str) -> PathBuf {
        self.hf("main").pointer_path(commit).join(file)
    }

    /// The commit a revision points to in the cache: the revision itself when it is a commit
    /// id, else what `refs/<revision>` records.
    pub fn commit_of(&self, revision: &str) -> Option<String> {
        if revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Some(revision.to_ascii_lowercase());
        }
        let commit = fs::read_to_string(self.root().join("refs").join(revision)).ok()?;
        Some(commit.trim().to_string()).filter(|c| !c.is_empty())
    }

    /// The cached copy of a file at its revision, if complete.
    pub fn cached(&self, file: &HubFile) -> Option<PathBuf> {
        let commit = self.commit_of(&file.revision)?;
        self.cached_at(&commit, &file.file)
    }

    /// The cached copy of a file at a commit, if its snapshot entry leads to a blob.
    pub fn cached_at(&self, commit: &str, file: &str) -> Option<PathBuf> {
        let path = self.snapshot_path(commit, file);
        path.is_file().then_some(path)
    }

    /// Records that `revision` points to `commit` (branches and tags only).
    pub fn write_ref(&self, revision: &str, commit: &str) -> Result<(), HubError> {
        if revision.eq_ignore_ascii_case(commit) {
            return Ok(());
        }
        self.hf(revision)
            .create_ref(commit)
            .map_err(|e| HubError::cache_io(&self.root().join("refs"), e))
    }

    /// Makes `snapshots/<commit>/<file>` a relative symlink to `blobs/<etag>`, replacing any
    /// existing entry atomically.
    pub fn link(&self, commit: &str, file: &str, etag: &str) -> Result<PathBuf, HubError> {
        let pointer = self.snapshot_path(commit, file);
        let parent = pointer.parent().expect("snapshot entries have a parent");
        fs::create_dir_all(parent).map_err(|e| HubError::cache_io(parent, e))?;
        // From snapshots/<commit>/<dirs...>/<name> up to the repository folder.
        let depth = 2 + file.matches('/').count();
        let target: PathBuf = std::iter::repeat_n("..", depth)
            .collect::<PathBuf>()
            .join("blobs")
            .join(etag);
        let temp = parent.join(format!(".{}.gguf-embed-link", std::process::id()));
        let _ = fs::remove_file(&temp);
        symlink(&target, &temp).map_err(|e| HubError::cache_io(&temp, e))?;
        fs::rename(&temp, &pointer).map_err(|e| HubError::cache_io(&pointer, e))?;
        Ok(pointer)
    }

    fn marker_path(&self, etag: &str) -> PathBuf {
        self.root().join(".gguf-embed").join("verified").join(etag)
    }

    /// Notes that the blob `etag` was hashed and matched `sha256`.
    pub fn mark_verified(&self, etag: &str, sha256: &str) {
        let blob = self.blob_path(etag);
        let Some(stamp) = file_stamp(&blob) else {
            return;
        };
        let marker = self.marker_path(etag);
        let write = fs::create_dir_all(marker.parent().expect("has a parent"))
            .and_then(|()| fs::write(&marker, format!("{sha256} {stamp}\n")));
        if let Err(e) = write {
            tracing::debug!("cannot record the verification of {}: {e}", blob.display());
        }
    }

    /// The sha256 recorded for a blob, if the blob is unchanged since it was verified.
    pub fn verified_sha256(&self, etag: &str) -> Option<String> {
        let marker = fs::read_to_string(self.marker_path(etag)).ok()?;
        let (sha, stamp) = marker.trim().split_once(' ')?;
        (file_stamp(&self.blob_path(etag))? == stamp).then(|| sha.to_string())
    }

    /// Forgets a blob's verification.
    pub fn forget_verified(&self, etag: &str) {
        let _ = fs::remove_file(self.marker_path(etag));
    }

    /// Every snapshot entry in this repository: (commit, file path in the repo, entry path).
    pub fn snapshot_entries(&self) -> Vec<(String, String, PathBuf)> {
        let mut out = Vec::new();
        let Ok(commits) = fs::read_dir(self.root().join("snapshots")) else {
            return out;
        };
        for commit in commits.flatten() {
            let commit_name = commit.file_name().to_string_lossy().into_owned();
            walk(&commit.path(), &mut |path| {
                let rel = path
                    .strip_prefix(commit.path())
                    .expect("walked under the commit folder");
                let rel = rel.to_string_lossy().replace('\\', "/");
                out.push((commit_name.clone(), rel, path.to_path_buf()));
            });
        }
        out.sort();
        out
    }

    /// The blob a snapshot entry points to.
    pub fn blob_of(&self, entry: &Path) -> Option<(String, PathBuf)> {
        let target = fs::canonicalize(entry).ok()?;
        let etag = target.file_name()?.to_string_lossy().into_owned();
        Some((etag, target))
    }
}

/// What tells whether a file changed since we last read it, without reading it: on Unix its
/// device, inode, size, and modification and status-change times to the nanosecond.
///
/// Size and modification time alone are not enough: `cp -p`, `rsync -t` and build systems
/// replace a file with another of the same size and set its modification time, and a model
/// keyed that way would be served from the copy (or the recorded hash) of the file it replaced.
/// No tool can set the status-change time (the kernel sets it on every write, rename or
/// `utimes`), and a replaced file usually gets a new inode as well.
pub(crate) fn file_stamp(path: &Path) -> Option<String> {
    let meta = fs::metadata(path).ok()?;
    let mtime = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some(format!(
            "{}:{}:{}:{}:{}.{:09}",
            meta.dev(),
            meta.ino(),
            meta.len(),
            mtime.as_nanos(),
            meta.ctime(),
            meta.ctime_nsec()
        ))
    }
    #[cfg(not(unix))]
    {
        // Windows has no status-change time; the creation time changes when a file is replaced.
        let created = meta
            .created()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        Some(format!("{}:{}:{created}", meta.len(), mtime.as_nanos()))
    }
}

fn walk(dir: &Path, found: &mut dyn FnMut(&Path)) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(&path, found),
            Ok(_) if !entry.file_name().to_string_lossy().starts_with('.') => found(&path),
            _ => {}
        }
    }
}

/// Every repository folder of models in the cache: (`owner/name`, folder).
pub fn cached_repos(cache_dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = fs::read_dir(cache_dir) else {
        return Vec::new();
    };
    let mut repos: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let repo = name.strip_prefix("models--")?.replacen("--", "/", 1);
            Some((repo, e.path()))
        })
        .collect();
    repos.sort();
    repos
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(windows)]
fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    std::os::windows::fs::symlink_file(target, link)
}
