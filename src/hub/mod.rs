//! The model cache: resolve a model spec to a verified local GGUF file, downloading it from the
//! Hugging Face Hub into the standard cache when needed.
//!
//! ```no_run
//! use gguf_embed::hub::{Hub, HubConfig, ModelSpec};
//!
//! let hub = Hub::new(HubConfig::from_env());
//! let spec = ModelSpec::parse("Qwen/Qwen3-Embedding-0.6B", "Q8_0")?;
//! let path = hub.resolve(&spec)?; // downloads once, then works offline
//! # Ok::<(), gguf_embed::hub::HubError>(())
//! ```
//!
//! Files land in the same layout Python's `huggingface_hub` uses, so both share downloads.
//! Every download is checked against the catalog's sha256 pin, or else the sha256 the Hub
//! reports, before it becomes visible in the cache; an interrupted download resumes; two
//! processes asking for the same file download it once.

mod cache;
mod catalog;
mod config;
pub mod copies;
mod download;
mod http;
mod spec;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

pub use catalog::{CatalogEntry, DEFAULT_QUANT, DEFAULT_SIZE, catalog, default_reranker, find_of};
pub use config::{DEFAULT_ENDPOINT, HubConfig};
pub use http::{FileMetadata, is_sha256};
pub use spec::{DEFAULT_REVISION, HubFile, ModelSpec};

pub(crate) use cache::file_stamp;
pub(crate) use download::hex;
// The repository index hashes its model the same way (it is off in lean builds: the bindings).
#[cfg(feature = "index")]
pub(crate) use download::sha256_of;

use cache::RepoCache;
use http::Client;

/// What can go wrong while resolving or downloading a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// The progress callback asked to stop; the bytes received stay in the cache and the
    /// next download resumes from them.
    #[error("the download of {file} was cancelled after {downloaded} bytes")]
    Cancelled {
        /// The file.
        file: String,
        /// Bytes kept for resuming.
        downloaded: u64,
    },
    /// The spec is malformed or names nothing.
    #[error("{0}")]
    InvalidSpec(String),
    /// Offline, and the file is not cached.
    #[error(
        "{spec} is not in the model cache ({}) and the network is off (HF_HUB_OFFLINE or \
         --offline); download it first with `gguf-embed models pull {spec}` while online",
        cache_dir.display()
    )]
    NotCached {
        /// The spec.
        spec: String,
        /// The cache that was searched.
        cache_dir: PathBuf,
    },
    /// The Hub has no such repository, file or revision.
    #[error("{0}")]
    NotFound(String),
    /// The Hub refused access.
    #[error("{0}")]
    Denied(String),
    /// The Hub could not be reached or failed.
    #[error("{0}")]
    Network(String),
    /// The server did not behave like the Hub.
    #[error("{0}")]
    Protocol(String),
    /// The catalog pins a different file than the Hub now serves.
    #[error(
        "the Hub now serves a different {file} (sha256 {hub}) than the one gguf-embed pins \
         (sha256 {pinned}); nothing was downloaded. To accept the Hub's file anyway, name it \
         as {file} with an explicit revision, or report this to the gguf-embed maintainers"
    )]
    PinMismatch {
        /// The file.
        file: String,
        /// The catalog's sha256.
        pinned: String,
        /// The Hub's sha256.
        hub: String,
    },
    /// The downloaded bytes do not have the expected hash; they were deleted.
    #[error(
        "the download of {file} is corrupt: expected sha256 {expected}, got {actual}; the bad \
         copy was deleted (any good cached copy is kept): try again"
    )]
    HashMismatch {
        /// The file.
        file: String,
        /// The hash it should have.
        expected: String,
        /// The hash it had.
        actual: String,
    },
    /// Not enough disk space for the download.
    #[error(
        "not enough disk space in {}: {} needed, {} available; free some space or point \
         HF_HUB_CACHE at a larger disk",
        dir.display(), human_bytes(*needed), human_bytes(*available)
    )]
    DiskFull {
        /// The directory being written.
        dir: PathBuf,
        /// Bytes still to write (0 when unknown).
        needed: u64,
        /// Bytes free.
        available: u64,
    },
    /// The cache cannot be written or read.
    #[error(
        "cannot use the model cache at {}: {error}; check its permissions or set HF_HUB_CACHE \
         to a writable directory",
        path.display()
    )]
    Cache {
        /// The path that failed.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

impl HubError {
    fn cache_io(path: &Path, error: std::io::Error) -> Self {
        HubError::Cache {
            path: path.to_path_buf(),
            error,
        }
    }
}

/// Formats a byte count for people (`639.2 MB`).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// What a download is doing, for callers that show their own progress.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DownloadEvent {
    /// Another process is downloading the same file; waiting for it.
    Waiting {
        /// The file.
        file: String,
    },
    /// The download starts (or resumes at `resumed_from`).
    Started {
        /// The file.
        file: String,
        /// Its size.
        total: u64,
        /// Bytes already on disk from an interrupted download.
        resumed_from: u64,
    },
    /// Bytes arrived.
    Progress {
        /// Bytes on disk so far.
        downloaded: u64,
        /// The size.
        total: u64,
    },
    /// The download is complete and being checked.
    Verifying {
        /// The file.
        file: String,
    },
    /// The file is in the cache.
    Finished {
        /// The file.
        file: String,
    },
}

/// A progress callback; it must be cheap (it runs for every chunk received).
pub type Progress = dyn Fn(&DownloadEvent) + Send + Sync;

/// A progress callback that can stop the download: returning `false` cancels it with
/// [`HubError::Cancelled`] (what arrived stays for the next download to resume from).
pub type CancellableProgress = dyn Fn(&DownloadEvent) -> bool + Send + Sync;

/// A GGUF file found in the cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CachedFile {
    /// `owner/name`.
    pub repo: String,
    /// The file's path in the repository.
    pub file: String,
    /// The commit it belongs to.
    pub commit: String,
    /// The snapshot path to load.
    pub path: PathBuf,
    /// Its size in bytes (0 if the blob is missing).
    pub size: u64,
    /// The blob name (the sha256 for LFS files).
    pub etag: String,
    /// Whether we hashed it and it matched (since its last change).
    pub verified: bool,
    /// The catalog entry, for official files.
    pub official: Option<CatalogEntry>,
}

/// The result of re-hashing a cached file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Verification {
    /// The file.
    pub file: CachedFile,
    /// The sha256 it should have (the pin, or its blob name), if known.
    pub expected: Option<String>,
    /// The sha256 it has.
    pub actual: String,
    /// Whether they agree (`false` when nothing is known to compare with).
    pub ok: bool,
}

/// Resolves model specs against the cache and the Hub.
#[derive(Clone)]
pub struct Hub {
    config: HubConfig,
    progress: Option<Arc<CancellableProgress>>,
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub client with this configuration.
    pub fn new(config: HubConfig) -> Self {
        Self {
            config,
            progress: None,
        }
    }

    /// Reports download progress to `callback`.
    pub fn with_progress(
        mut self,
        callback: impl Fn(&DownloadEvent) + Send + Sync + 'static,
    ) -> Self {
        self.progress = Some(Arc::new(move |event: &DownloadEvent| {
            callback(event);
            true
        }));
        self
    }

    /// Reports download progress to `callback`, which returns `false` to cancel the download
    /// (with [`HubError::Cancelled`]; the bytes received are kept, and the next download
    /// resumes from them).
    pub fn with_cancellable_progress(
        mut self,
        callback: impl Fn(&DownloadEvent) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.progress = Some(Arc::new(callback));
        self
    }

    /// The configuration.
    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// Tells the callback; returns whether to go on.
    fn report(&self, event: &DownloadEvent) -> bool {
        self.progress
            .as_ref()
            .is_none_or(|progress| progress(event))
    }

    fn client(&self) -> Client {
        Client::new(&self.config.endpoint, self.config.token.clone())
    }

    /// A local path for the spec: a local file as is; a Hub file from the cache when it is
    /// there (no network), else downloaded and verified (unless offline).
    pub fn resolve(&self, spec: &ModelSpec) -> Result<PathBuf, HubError> {
        let file = match spec {
            ModelSpec::Local(path) => return Ok(path.clone()),
            ModelSpec::Hub(file) => file,
        };
        if let Some(path) = self.cached(file) {
            return Ok(path);
        }
        self.download(file)
    }

    /// Asks the Hub for the file's current version and downloads it if the cache lacks it.
    /// Offline, returns the cached copy if there is one.
    pub fn pull(&self, file: &HubFile) -> Result<PathBuf, HubError> {
        if self.config.offline {
            return self.cached(file).ok_or_else(|| self.not_cached(file));
        }
        self.download(file)
    }

    fn download(&self, file: &HubFile) -> Result<PathBuf, HubError> {
        if self.config.offline {
            return Err(self.not_cached(file));
        }
        let client = self.client();
        let meta = client.metadata(file)?;
        let cache = RepoCache::new(&self.config.cache_dir, &file.repo);
        let progress = |e: &DownloadEvent| self.report(e);
        download::fetch(&client, &cache, file, &meta, &progress)
    }

    fn not_cached(&self, file: &HubFile) -> HubError {
        HubError::NotCached {
            spec: file.to_string(),
            cache_dir: self.config.cache_dir.clone(),
        }
    }

    /// The cached copy of a Hub file, if complete and, for pinned files, the pinned content.
    pub fn cached(&self, file: &HubFile) -> Option<PathBuf> {
        let cache = RepoCache::new(&self.config.cache_dir, &file.repo);
        let path = cache.cached(file)?;
        let entry = file.entry;
        if let Some(pin) = file.pinned_sha256() {
            let (etag, blob) = cache.blob_of(&path)?;
            let size_ok = entry
                .and_then(|e| e.bytes)
                .is_none_or(|b| std::fs::metadata(&blob).is_ok_and(|m| m.len() == b));
            if etag != pin || !size_ok {
                tracing::debug!("{} is cached but is not the pinned file", path.display());
                return None;
            }
        }
        Some(path)
    }

    /// Every GGUF file in the cache.
    pub fn list_cached(&self) -> Vec<CachedFile> {
        let mut files = Vec::new();
        for (repo, _) in cache::cached_repos(&self.config.cache_dir) {
            let cache = RepoCache::new(&self.config.cache_dir, &repo);
            for (commit, file, path) in cache.snapshot_entries() {
                if !file.to_ascii_lowercase().ends_with(".gguf") {
                    continue;
                }
                let (etag, blob) = cache.blob_of(&path).unwrap_or_default();
                let size = std::fs::metadata(&blob).map(|m| m.len()).unwrap_or(0);
                let verified = !etag.is_empty() && cache.verified_sha256(&etag).is_some();
                let official = catalog()
                    .iter()
                    .find(|e| e.repo == repo && e.file == file)
                    .copied();
                files.push(CachedFile {
                    repo: repo.clone(),
                    file,
                    commit,
                    path,
                    size,
                    etag,
                    verified,
                    official,
                });
            }
        }
        files
    }

    /// The cached files a spec names (every cached commit of that file).
    pub fn find_cached(&self, file: &HubFile) -> Vec<CachedFile> {
        self.list_cached()
            .into_iter()
            .filter(|c| c.repo == file.repo && c.file == file.file)
            .collect()
    }

    /// Re-hashes a cached file and records the outcome.
    pub fn verify(&self, cached: &CachedFile) -> Result<Verification, HubError> {
        let cache = RepoCache::new(&self.config.cache_dir, &cached.repo);
        let (etag, blob) = cache
            .blob_of(&cached.path)
            .ok_or_else(|| HubError::cache_io(&cached.path, std::io::ErrorKind::NotFound.into()))?;
        let actual = download::sha256_of(&blob).map_err(|e| HubError::cache_io(&blob, e))?;
        let expected = cached
            .official
            .and_then(|e| e.sha256)
            .map(str::to_string)
            .or_else(|| http::is_sha256(&etag).then(|| etag.clone()));
        let ok = expected.as_deref() == Some(actual.as_str());
        if ok {
            cache.mark_verified(&etag, &actual);
        } else {
            cache.forget_verified(&etag);
        }
        Ok(Verification {
            file: CachedFile {
                verified: ok,
                ..cached.clone()
            },
            expected,
            actual,
            ok,
        })
    }

    /// Removes a cached file: its snapshot entries, its copies in the default folders
    /// ([`copies::default_dir`]), and its blobs once nothing points to them. Returns the
    /// removed entries and the bytes freed.
    pub fn remove(&self, file: &HubFile) -> Result<(Vec<CachedFile>, u64), HubError> {
        let cache = RepoCache::new(&self.config.cache_dir, &file.repo);
        let removed = self.find_cached(file);
        let mut freed = 0;
        for entry in &removed {
            // Its copies (BF16, CPU layout) go too: they would be rewritten if needed again.
            freed += copies::remove_copies(&entry.path);
            std::fs::remove_file(&entry.path).map_err(|e| HubError::cache_io(&entry.path, e))?;
        }
        let still_used: Vec<String> = cache
            .snapshot_entries()
            .iter()
            .filter_map(|(_, _, p)| cache.blob_of(p).map(|(etag, _)| etag))
            .collect();
        let mut etags: Vec<&str> = removed.iter().map(|c| c.etag.as_str()).collect();
        etags.sort_unstable();
        etags.dedup();
        for etag in etags.into_iter().filter(|e| !e.is_empty()) {
            if still_used.iter().any(|u| u == etag) {
                continue;
            }
            let blob = cache.blob_path(etag);
            freed += std::fs::metadata(&blob).map(|m| m.len()).unwrap_or(0);
            std::fs::remove_file(&blob).map_err(|e| HubError::cache_io(&blob, e))?;
            cache.forget_verified(etag);
        }
        Ok((removed, freed))
    }
}
