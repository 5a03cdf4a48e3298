//! Downloading one file into the cache: locked against other processes, resumable, hashed
//! while it streams, verified before it becomes visible, and never half-written.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::cache::RepoCache;
use super::http::{Client, FileMetadata};
use super::{DownloadEvent, HubError, HubFile};

/// Attempts per download when the connection drops (each resumes where the last stopped).
const ATTEMPTS: u32 = 4;
/// Read and write granularity.
const BUFFER: usize = 1 << 20;

/// Makes sure the blob for `meta` is in the cache and linked from the file's snapshot, then
/// returns the snapshot path.
pub fn fetch(
    client: &Client,
    cache: &RepoCache,
    file: &HubFile,
    meta: &FileMetadata,
    progress: &dyn Fn(&DownloadEvent) -> bool,
) -> Result<std::path::PathBuf, HubError> {
    let expected = expected_sha256(file, meta)?;
    let blob = cache.blob_path(&meta.etag);
    if !usable_blob(&blob, meta.size) {
        let lock_path = cache.lock_path(&meta.etag);
        let _lock = lock(&lock_path, file, progress)?;
        // Another process may have finished the download while we waited for the lock.
        if !usable_blob(&blob, meta.size) {
            download(client, cache, file, meta, expected, progress)?;
        }
    }
    let path = cache.link(&meta.commit, &file.file, &meta.etag)?;
    cache.write_ref(&file.revision, &meta.commit)?;
    Ok(path)
}

/// The hash a download must have: the catalog's pin, else the Hub's sha256 etag. A pin that
/// disagrees with the Hub stops the download before it starts.
fn expected_sha256(file: &HubFile, meta: &FileMetadata) -> Result<Option<String>, HubError> {
    match (file.pinned_sha256(), meta.sha256()) {
        (Some(pin), Some(hub)) if pin != hub => Err(HubError::PinMismatch {
            file: file.to_string(),
            pinned: pin.to_string(),
            hub: hub.to_string(),
        }),
        (Some(pin), _) => Ok(Some(pin.to_string())),
        (None, Some(hub)) => Ok(Some(hub.to_string())),
        (None, None) => {
            tracing::warn!(
                "the Hub reports no sha256 for {file} (etag {}); it cannot be verified",
                meta.etag
            );
            Ok(None)
        }
    }
}

fn usable_blob(blob: &Path, size: u64) -> bool {
    fs::metadata(blob).is_ok_and(|m| m.is_file() && m.len() == size)
}

/// Takes the download lock, waiting (and saying so) while another process holds it.
fn lock(
    path: &Path,
    file: &HubFile,
    progress: &dyn Fn(&DownloadEvent) -> bool,
) -> Result<File, HubError> {
    let dir = path.parent().expect("lock files have a parent");
    fs::create_dir_all(dir).map_err(|e| HubError::cache_io(dir, e))?;
    let handle = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| HubError::cache_io(path, e))?;
    match handle.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let go_on = progress(&DownloadEvent::Waiting {
                file: file.to_string(),
            });
            if !go_on {
                return Err(cancelled(file, 0));
            }
            handle.lock().map_err(|e| HubError::cache_io(path, e))?;
        }
        Err(fs::TryLockError::Error(e)) => return Err(HubError::cache_io(path, e)),
    }
    Ok(handle)
}

fn download(
    client: &Client,
    cache: &RepoCache,
    file: &HubFile,
    meta: &FileMetadata,
    expected: Option<String>,
    progress: &dyn Fn(&DownloadEvent) -> bool,
) -> Result<(), HubError> {
    let partial_path = cache.incomplete_path(&meta.etag);
    let dir = partial_path.parent().expect("blobs have a parent");
    fs::create_dir_all(dir).map_err(|e| HubError::cache_io(dir, e))?;
    let mut partial = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&partial_path)
        .map_err(|e| HubError::cache_io(&partial_path, e))?;

    let mut hasher = Sha256::new();
    let mut done = resume_point(&mut partial, &mut hasher, meta.size)
        .map_err(|e| HubError::cache_io(&partial_path, e))?;
    check_space(dir, meta.size - done)?;
    let go_on = progress(&DownloadEvent::Started {
        file: file.to_string(),
        total: meta.size,
        resumed_from: done,
    });
    if !go_on {
        return Err(cancelled(file, done));
    }

    let mut attempt = 0;
    while done < meta.size {
        attempt += 1;
        match receive(
            client,
            file,
            meta.size,
            &mut partial,
            &mut hasher,
            &mut done,
            progress,
        ) {
            Ok(()) => {}
            Err(Failure::Disk(e)) => return Err(disk_error(&partial_path, e)),
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Network(e)) if attempt >= ATTEMPTS => {
                return Err(gave_up(file, e, done, meta.size));
            }
            Err(Failure::Network(e)) => {
                tracing::warn!("{e}; resuming at byte {done} (attempt {})", attempt + 1);
                std::thread::sleep(Duration::from_millis(250 * u64::from(attempt)));
            }
        }
    }
    partial
        .sync_all()
        .map_err(|e| disk_error(&partial_path, e))?;
    drop(partial);

    progress(&DownloadEvent::Verifying {
        file: file.to_string(),
    });
    let actual = hex(&hasher.finalize());
    if let Some(expected) = &expected
        && *expected != actual
    {
        let _ = fs::remove_file(&partial_path);
        return Err(HubError::HashMismatch {
            file: file.to_string(),
            expected: expected.clone(),
            actual,
        });
    }
    let blob = cache.blob_path(&meta.etag);
    fs::rename(&partial_path, &blob).map_err(|e| HubError::cache_io(&blob, e))?;
    if expected.is_some() {
        cache.mark_verified(&meta.etag, &actual);
    }
    progress(&DownloadEvent::Finished {
        file: file.to_string(),
    });
    Ok(())
}

/// Feeds an existing partial download to the hasher and returns its length, or empties it
/// when it cannot be a prefix of the file.
fn resume_point(partial: &mut File, hasher: &mut Sha256, size: u64) -> io::Result<u64> {
    let len = partial.metadata()?.len();
    if len > size {
        partial.set_len(0)?;
        return Ok(0);
    }
    partial.seek(SeekFrom::Start(0))?;
    let copied = io::copy(&mut (&mut *partial).take(len), hasher)?;
    Ok(copied)
}

/// Why one attempt stopped.
enum Failure {
    /// The connection failed or ended early: worth resuming.
    Network(HubError),
    /// Writing to the cache failed.
    Disk(io::Error),
    /// Retrying cannot help.
    Fatal(HubError),
}

/// Streams the rest of the file from byte `done` into `partial`, hashing as it goes.
fn receive(
    client: &Client,
    file: &HubFile,
    size: u64,
    partial: &mut File,
    hasher: &mut Sha256,
    done: &mut u64,
    progress: &dyn Fn(&DownloadEvent) -> bool,
) -> Result<(), Failure> {
    let (ranged, mut body) = client.get_from(file, *done).map_err(|e| match e {
        HubError::Network(_) => Failure::Network(e),
        other => Failure::Fatal(other),
    })?;
    if *done > 0 && !ranged {
        // The server ignored the range and sends the whole file: start over.
        partial.set_len(0).map_err(Failure::Disk)?;
        *hasher = Sha256::new();
        *done = 0;
    }
    partial
        .seek(SeekFrom::Start(*done))
        .map_err(Failure::Disk)?;
    let mut buf = vec![0u8; BUFFER];
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Failure::Network(HubError::Network(format!(
                    "the download of {file} broke off after {done} of {size} bytes: {e}"
                ))));
            }
        };
        if *done + n as u64 > size {
            return Err(Failure::Fatal(HubError::Protocol(format!(
                "the Hub sent more than the {size} bytes it announced for {file}"
            ))));
        }
        partial.write_all(&buf[..n]).map_err(Failure::Disk)?;
        hasher.update(&buf[..n]);
        *done += n as u64;
        let go_on = progress(&DownloadEvent::Progress {
            downloaded: *done,
            total: size,
        });
        if !go_on {
            // What arrived stays in the partial file: the next download resumes from it.
            return Err(Failure::Fatal(cancelled(file, *done)));
        }
    }
    if *done < size {
        return Err(Failure::Network(HubError::Network(format!(
            "the connection closed after {done} of {size} bytes of {file}"
        ))));
    }
    Ok(())
}

/// The connection kept failing: what happened, what was kept, and what to do.
fn gave_up(file: &HubFile, last: HubError, done: u64, size: u64) -> HubError {
    HubError::Network(format!(
        "the download of {file} was interrupted and did not resume after {ATTEMPTS} \
         attempts ({last}); the {done} of {size} bytes received are kept in the cache and the \
         next download resumes from them: check the network connection and try again"
    ))
}

/// The caller's progress callback asked to stop.
fn cancelled(file: &HubFile, downloaded: u64) -> HubError {
    HubError::Cancelled {
        file: file.to_string(),
        downloaded,
    }
}

/// Fails early when the disk cannot hold what is left to download.
fn check_space(dir: &Path, needed: u64) -> Result<(), HubError> {
    match fs4::available_space(dir) {
        Ok(available) if available < needed => Err(HubError::DiskFull {
            dir: dir.to_path_buf(),
            needed,
            available,
        }),
        _ => Ok(()),
    }
}

fn disk_error(path: &Path, e: io::Error) -> HubError {
    if e.kind() == io::ErrorKind::StorageFull || e.kind() == io::ErrorKind::QuotaExceeded {
        let dir = path.parent().unwrap_or(path).to_path_buf();
        let available = fs4::available_space(&dir).unwrap_or(0);
        HubError::DiskFull {
            dir,
            needed: 0,
            available,
        }
    } else {
        HubError::cache_io(path, e)
    }
}

/// Hashes a whole file.
pub(crate) fn sha256_of(path: &Path) -> io::Result<String> {
    let mut hasher = Sha256::new();
    io::copy(&mut File::open(path)?, &mut hasher)?;
    Ok(hex(&hasher.finalize()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_download_larger_than_the_free_space_stops_before_it_starts() {
        let dir = tempfile::tempdir().unwrap();
        let err = check_space(dir.path(), u64::MAX).unwrap_err();
        assert!(matches!(err, HubError::DiskFull { .. }));
        let msg = err.to_string();
        assert!(
            msg.contains("not enough disk space") && msg.contains("HF_HUB_CACHE"),
            "{msg}"
        );
        assert!(check_space(dir.path(), 1).is_ok());
    }

    #[test]
    fn a_full_disk_while_writing_is_reported_as_such() {
        let err = disk_error(
            Path::new("/tmp/x.incomplete"),
            io::ErrorKind::StorageFull.into(),
        );
        assert!(matches!(err, HubError::DiskFull { .. }), "{err}");
        let err = disk_error(Path::new("/tmp/x"), io::ErrorKind::PermissionDenied.into());
        assert!(
            err.to_string().contains("cannot use the model cache"),
            "{err}"
        );
    }

    #[test]
    fn partial_files_longer_than_the_file_start_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        std::fs::write(&path, b"0123456789").unwrap();
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let mut h = Sha256::new();
        assert_eq!(resume_point(&mut f, &mut h, 4).unwrap(), 0);
        std::fs::write(&path, b"0123").unwrap();
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let mut h = Sha256::new();
        assert_eq!(resume_point(&mut f, &mut h, 10).unwrap(), 4);
        assert_eq!(hex(&h.finalize()), sha256_of(&path).unwrap());
    }
}
