//! Derived copies of model files, kept in gguf-embed's cache folder: the lossless BF16 copy of
//! an F16 model ([`crate::gguf::repack`]) and the copy of a Q8_0 or F16 model with its weights
//! in the CPU kernels' interleaved layouts ([`crate::gguf::prepack`]).
//!
//! A copy is named after its source's canonical path and its size and modification time, so a
//! changed or replaced source gets a new copy (and the old one is removed), and a copy is used
//! only when it is complete: it is renamed into place after it was written and synced.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::{file_stamp, hex, human_bytes};
use crate::gguf::prepack::{self, Layout};
use crate::gguf::repack::{Repack, write_bf16_copy};
use crate::gguf::{GgufError, GgufFile};

/// The kinds of copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyKind {
    /// F16 weights stored as BF16 (the same numbers) for CPUs with BF16 dot products.
    Bf16,
    /// Weights stored in the interleaved layouts of the x86 kernels, in a copy of a model with
    /// Q8_0 matrices (any F16 matrices it has are stored as `f16x16`).
    Q8_0x16,
    /// Weights stored in the interleaved layout of the x86 kernels, in a copy of a model whose
    /// repacked matrices are all F16.
    F16x16,
}

impl CopyKind {
    /// The subfolder of the cache and the file-name suffix of this kind.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Self::Bf16 => ("bf16", ".bf16.gguf"),
            Self::Q8_0x16 => ("q8_0x16", ".q8_0x16.gguf"),
            Self::F16x16 => ("f16x16", ".f16x16.gguf"),
        }
    }

    /// What the copy is, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Bf16 => "lossless BF16",
            Self::Q8_0x16 => "CPU-layout (q8_0x16)",
            Self::F16x16 => "CPU-layout (f16x16)",
        }
    }

    /// The size a whole copy of `source` has.
    fn copy_size(self, source: &GgufFile) -> u64 {
        match self {
            Self::Bf16 => source.file_size(),
            Self::Q8_0x16 | Self::F16x16 => prepack::copy_size(source),
        }
    }

    /// The kind of the CPU-layout copy of `file`: named after its Q8_0 layout when it has
    /// Q8_0 weights to repack, else after its F16 one; `None` when the CPU backend repacks
    /// none of its weights (or the file already is such a copy).
    pub fn prepacked(file: &GgufFile) -> Option<Self> {
        if prepack::is_prepacked(file) {
            return None;
        }
        let layouts = prepack::packed_counts(file);
        if layouts.iter().any(|&(l, _)| l == Layout::Q8_0x16) {
            Some(Self::Q8_0x16)
        } else if layouts.iter().any(|&(l, _)| l == Layout::F16x16) {
            Some(Self::F16x16)
        } else {
            None
        }
    }
}

/// gguf-embed's cache folder: `$GGUF_EMBED_CACHE`, else `$XDG_CACHE_HOME/gguf-embed`, else
/// `~/.cache/gguf-embed`.
pub fn cache_root() -> PathBuf {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    var("GGUF_EMBED_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| var("HOME").map(|h| Path::new(&h).join(".cache")))
                .unwrap_or_else(|| PathBuf::from(".cache"))
                .join("gguf-embed")
        })
}

/// Where copies of a kind are kept by default: `bf16`, `q8_0x16` or `f16x16` in
/// [`cache_root`].
pub fn default_dir(kind: CopyKind) -> PathBuf {
    cache_root().join(kind.names().0)
}

/// The BF16 copy of the F16 model `file` (opened from `path`) in `dir`, written now if there is
/// none for the file as it is. `None` when the file has no F16 tensor or a weight that
/// bfloat16 cannot hold exactly.
pub fn bf16_copy(path: &Path, file: &GgufFile, dir: &Path) -> Result<Option<PathBuf>, GgufError> {
    copy_of(CopyKind::Bf16, path, file, dir, |dest| {
        Ok(match write_bf16_copy(file, dest)? {
            Repack::Written { tensors } => Some(format!("{tensors} tensors as BF16")),
            Repack::NoF16Tensors => None,
            Repack::NotBfloat16 { tensor } => {
                tracing::info!(
                    "{} keeps its F16 kernels: tensor {tensor} holds values bfloat16 cannot \
                     hold exactly",
                    path.display()
                );
                None
            }
        })
    })
}

/// The copy of the Q8_0 or F16 model `file` (opened from `path`) with its weights in the CPU
/// kernels' interleaved layouts, in `dir`, written now if there is none for the file as it is.
/// `None` when the file has no weight the CPU backend repacks, or already is such a copy.
pub fn prepacked_copy(
    path: &Path,
    file: &GgufFile,
    dir: &Path,
) -> Result<Option<PathBuf>, GgufError> {
    let Some(kind) = CopyKind::prepacked(file) else {
        return Ok(None);
    };
    copy_of(kind, path, file, dir, |dest| {
        Ok(prepack::write_prepacked_copy(file, dest)?.map(|counts| {
            let counts: Vec<String> = counts
                .iter()
                .map(|(layout, n)| format!("{n} tensors as {}", layout.name()))
                .collect();
            counts.join(", ")
        }))
    })
}

/// The copy of `kind` in `dir`, or a new one from `write` (which returns what it wrote, or
/// `None` when there is nothing to copy).
fn copy_of(
    kind: CopyKind,
    path: &Path,
    file: &GgufFile,
    dir: &Path,
    write: impl FnOnce(&Path) -> Result<Option<String>, GgufError>,
) -> Result<Option<PathBuf>, GgufError> {
    let (prefix, name) = copy_name(kind, path)?;
    let dest = dir.join(&name);
    if is_complete_copy(&dest, kind.copy_size(file)) {
        return Ok(Some(dest));
    }
    fs::create_dir_all(dir)?;
    remove_abandoned_partials(dir, &prefix);
    let started = Instant::now();
    let Some(what) = write(&dest)? else {
        return Ok(None);
    };
    tracing::info!(
        "wrote a {} copy of {} ({what}, {}) in {:.1} s: {}",
        kind.describe(),
        path.display(),
        human_bytes(file.file_size()),
        started.elapsed().as_secs_f64(),
        dest.display()
    );
    remove_matching(dir, kind, |n| n.starts_with(&prefix) && n != name);
    Ok(Some(dest))
}

/// Removes every copy of any kind of the model file `path` from the default folders; returns
/// the bytes freed.
pub fn remove_copies(path: &Path) -> u64 {
    [CopyKind::Bf16, CopyKind::Q8_0x16, CopyKind::F16x16]
        .into_iter()
        .map(|kind| match copy_name(kind, path) {
            Ok((prefix, _)) => {
                remove_matching(&default_dir(kind), kind, |n| n.starts_with(&prefix))
            }
            Err(_) => 0,
        })
        .sum()
}

/// `(prefix, name)`: `<stem>.<path hash>-` names every copy of this path, and the state hash
/// completes the name of the copy of the file as it is now.
fn copy_name(kind: CopyKind, path: &Path) -> Result<(String, String), GgufError> {
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
    let name = format!("{prefix}{}{}", short_hash(stamp.as_bytes()), kind.names().1);
    Ok((prefix, name))
}

/// A copy is used only if it is there whole: the size a copy has, and a valid GGUF.
fn is_complete_copy(dest: &Path, size: u64) -> bool {
    let same_size = fs::metadata(dest).is_ok_and(|m| m.len() == size);
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
fn remove_matching(dir: &Path, kind: CopyKind, matches: impl Fn(&str) -> bool) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut freed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(kind.names().1) && matches(&name) {
            let size = entry.metadata().map_or(0, |m| m.len());
            if fs::remove_file(entry.path()).is_ok() {
                freed += size;
            }
        }
    }
    freed
}
