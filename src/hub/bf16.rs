//! The cache of lossless BF16 copies of F16 model files (made by [`crate::gguf::repack`]).
//!
//! A copy is named after its source's canonical path and its size and modification time, so a
//! changed or replaced source gets a new copy (and the old one is removed), and a copy is used
//! only when it is complete: it is renamed into place after it was written and synced.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::{file_stamp, hex, human_bytes};
use crate::gguf::repack::{Repack, write_bf16_copy};
use crate::gguf::{GgufError, GgufFile};

const SUFFIX: &str = ".bf16.gguf";

/// Where BF16 copies are kept: `$GGUF_EMBED_CACHE/bf16`; `GGUF_EMBED_CACHE` defaults to
/// `$XDG_CACHE_HOME/gguf-embed`, else `~/.cache/gguf-embed`.
pub fn default_bf16_dir() -> PathBuf {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    let root = var("GGUF_EMBED_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| var("HOME").map(|h| Path::new(&h).join(".cache")))
                .unwrap_or_else(|| PathBuf::from(".cache"))
                .join("gguf-embed")
        });
    root.join("bf16")
}

/// The BF16 copy of the F16 model `file` (opened from `path`) in `dir`, written now if there is
/// none for the file as it is. `None` when the file has no F16 tensor or a weight that
/// bfloat16 cannot hold exactly.
pub fn bf16_copy(path: &Path, file: &GgufFile, dir: &Path) -> Result<Option<PathBuf>, GgufError> {
    let (prefix, name) = copy_name(path)?;
    let dest = dir.join(&name);
    if is_complete_copy(&dest, file) {
        return Ok(Some(dest));
    }
    fs::create_dir_all(dir)?;
    remove_abandoned_partials(dir, &prefix);
    let started = Instant::now();
    match write_bf16_copy(file, &dest)? {
        Repack::Written { tensors } => {
            tracing::info!(
                "wrote a lossless BF16 copy of {} ({tensors} tensors, {}) in {:.1} s: {}",
                path.display(),
                human_bytes(file.file_size()),
                started.elapsed().as_secs_f64(),
                dest.display()
            );
            remove_matching(dir, |n| n.starts_with(&prefix) && n != name);
            Ok(Some(dest))
        }
        Repack::NoF16Tensors => Ok(None),
        Repack::NotBfloat16 { tensor } => {
            tracing::info!(
                "{} keeps its F16 kernels: tensor {tensor} holds values bfloat16 cannot hold \
                 exactly",
                path.display()
            );
            Ok(None)
        }
    }
}

/// Removes every BF16 copy of the model file `path` from `dir`; returns the bytes freed.
pub fn remove_bf16_copies(path: &Path, dir: &Path) -> u64 {
    match copy_name(path) {
        Ok((prefix, _)) => remove_matching(dir, |n| n.starts_with(&prefix)),
        Err(_) => 0,
    }
}

/// `(prefix, name)`: `<stem>.<path hash>-` names every copy of this path, and the state hash
/// completes the name of the copy of the file as it is now.
fn copy_name(path: &Path) -> Result<(String, String), GgufError> {
    let real = fs::canonicalize(path)?;
    let stamp = file_stamp(&real).ok_or_else(|| {
        std::io::Error::other(format!(
            "cannot read the modification time of {}",
            real.display()
        ))
    })?;
    let short_hash = |s: &[u8]| hex(&Sha256::digest(s))[..12].to_string();
    let stem = path
        .file_name()
        .map(|n| n.to_string_lossy().trim_end_matches(".gguf").to_string())
        .unwrap_or_default();
    let prefix = format!(
        "{stem}.{}-",
        short_hash(real.as_os_str().as_encoded_bytes())
    );
    let name = format!("{prefix}{}{SUFFIX}", short_hash(stamp.as_bytes()));
    Ok((prefix, name))
}

/// A copy is used only if it is there whole: same size as its source, and a valid GGUF.
fn is_complete_copy(dest: &Path, source: &GgufFile) -> bool {
    let same_size = fs::metadata(dest).is_ok_and(|m| m.len() == source.file_size());
    same_size && GgufFile::open(dest).is_ok()
}

/// Deletes partial copies of this path left by killed processes (a copy takes seconds to
/// write; one untouched for ten minutes is abandoned).
fn remove_abandoned_partials(dir: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let abandoned = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() > 600));
        if name.starts_with(prefix) && name.contains(".partial-") && abandoned {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Deletes the copies in `dir` whose names match; returns the bytes freed.
fn remove_matching(dir: &Path, matches: impl Fn(&str) -> bool) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut freed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(SUFFIX) && matches(&name) {
            let size = entry.metadata().map_or(0, |m| m.len());
            if fs::remove_file(entry.path()).is_ok() {
                freed += size;
            }
        }
    }
    freed
}
