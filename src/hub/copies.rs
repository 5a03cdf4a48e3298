//! Derived copies of model files, kept in gguf-embed's cache folder: the lossless BF16 copy of
//! an F16 model ([`crate::gguf::repack`]) and the copy of a Q8_0 or F16 model with its weights
//! in the CPU kernels' interleaved layouts ([`crate::gguf::prepack`]).
//!
//! A copy is named after its source's canonical path and its [stamp](super::file_stamp)
//! (device, inode, size, modification and status-change times), so a changed or replaced
//! source gets a new copy (and the old one is removed), even one replaced by `cp -p` with a
//! file of the same size and time. The name and, for the CPU layouts, the header carry
//! [`LAYOUT_VERSION`]: a copy written by a release with other layouts is never used, and is
//! removed. Each copy has a checksum file beside it (`NAME.json`: its sha256, its source and
//! version), written before the copy is renamed into place; loading trusts the stamp (hashing
//! 600 MB at every start would cost a second), and `gguf-embed models verify` re-hashes the
//! copies ([`verify_copies`]), rebuilding or removing a damaged one. A copy is used only when
//! it is complete: it is renamed into place after it and its checksum were written and synced.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{file_stamp, hex, human_bytes};
pub use crate::gguf::prepack::LAYOUT_VERSION;
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

    /// Every kind.
    pub const ALL: [CopyKind; 3] = [CopyKind::Bf16, CopyKind::Q8_0x16, CopyKind::F16x16];

    /// The kind whose copies end with this file name's suffix.
    fn of_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| name.ends_with(k.names().1))
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

/// The copy of `kind` of the model `file` (opened from `path`) in `dir`: [`bf16_copy`] or
/// [`prepacked_copy`].
pub fn copy(
    kind: CopyKind,
    path: &Path,
    file: &GgufFile,
    dir: &Path,
) -> Result<Option<PathBuf>, GgufError> {
    match kind {
        CopyKind::Bf16 => bf16_copy(path, file, dir),
        CopyKind::Q8_0x16 | CopyKind::F16x16 => prepacked_copy(path, file, dir),
    }
}

/// What the checksum file beside a copy (`NAME.json`) holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Seal {
    /// The copy's sha256.
    sha256: String,
    /// The canonical path of the model file it was made from.
    source: PathBuf,
    /// The source's stamp when the copy was made.
    stamp: String,
    /// [`LAYOUT_VERSION`] of the release that wrote it.
    version: u32,
}

/// The checksum file of a copy.
fn seal_path(copy: &Path) -> PathBuf {
    let mut name = copy.file_name().unwrap_or_default().to_os_string();
    name.push(".json");
    copy.with_file_name(name)
}

fn read_seal(copy: &Path) -> Option<Seal> {
    serde_json::from_slice(&fs::read(seal_path(copy)).ok()?).ok()
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
    let state = SourceState::of(kind, path)?;
    let dest = dir.join(&state.name);
    if is_complete_copy(kind, &dest, kind.copy_size(file)) {
        return Ok(Some(dest));
    }
    fs::create_dir_all(dir)?;
    remove_abandoned_partials(dir, &state.prefix);
    let started = Instant::now();
    // The copy is written (atomically, by `write`) under a partial name, hashed, sealed, and
    // only then renamed to its own name: a copy under its name always has its checksum.
    let unsealed = dir.join(format!(
        "{}.partial-{}-unsealed",
        state.name,
        std::process::id()
    ));
    let written = write(&unsealed).and_then(|what| {
        let Some(what) = what else {
            return Ok(None);
        };
        let seal = Seal {
            sha256: super::download::sha256_of(&unsealed)?,
            source: state.real.clone(),
            stamp: state.stamp.clone(),
            version: LAYOUT_VERSION,
        };
        write_synced(
            &seal_path(&dest),
            &serde_json::to_vec_pretty(&seal).expect("plain data"),
        )?;
        fs::rename(&unsealed, &dest)?;
        Ok(Some(what))
    });
    let what = match written {
        Ok(Some(what)) => what,
        other => {
            let _ = fs::remove_file(&unsealed);
            return other.map(|_| None);
        }
    };
    tracing::info!(
        "wrote a {} copy of {} ({what}, {}) in {:.1} s: {}",
        kind.describe(),
        path.display(),
        human_bytes(file.file_size()),
        started.elapsed().as_secs_f64(),
        dest.display()
    );
    // Copies of this file as it was before, and copies any file got from an older release.
    remove_matching(dir, kind, |n| {
        (n.starts_with(&state.prefix) && n != state.name) || !is_current_version(n)
    });
    Ok(Some(dest))
}

/// Writes a small file whole (beside it first, then renamed) and synced.
fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut partial = path.as_os_str().to_os_string();
    partial.push(format!(".partial-{}", std::process::id()));
    let partial = PathBuf::from(partial);
    let result = fs::File::create(&partial).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    let result = result.and_then(|()| fs::rename(&partial, path));
    if result.is_err() {
        let _ = fs::remove_file(&partial);
    }
    result
}

/// Removes every copy of any kind of the model file `path` from the default folders; returns
/// the bytes freed.
pub fn remove_copies(path: &Path) -> u64 {
    let Ok(prefix) = fs::canonicalize(path).map(|real| name_prefix(path, &real)) else {
        return 0;
    };
    CopyKind::ALL
        .into_iter()
        .map(|kind| remove_matching(&default_dir(kind), kind, |n| n.starts_with(&prefix)))
        .sum()
}

/// A source file as it is now, and the name its copy of one kind has.
struct SourceState {
    real: PathBuf,
    stamp: String,
    /// `<stem>.<path hash>-`: names every copy of this path.
    prefix: String,
    /// The prefix, the hash of the stamp, the layout version and the kind's suffix: the name
    /// of the copy of the file as it is now.
    name: String,
}

impl SourceState {
    fn of(kind: CopyKind, path: &Path) -> std::io::Result<Self> {
        let real = fs::canonicalize(path)?;
        let stamp = file_stamp(&real).ok_or_else(|| {
            std::io::Error::other(format!(
                "cannot read the modification time of {}",
                real.display()
            ))
        })?;
        let prefix = name_prefix(path, &real);
        let name = format!(
            "{prefix}{}.v{LAYOUT_VERSION}{}",
            short_hash(stamp.as_bytes()),
            kind.names().1
        );
        Ok(Self {
            real,
            stamp,
            prefix,
            name,
        })
    }
}

fn short_hash(s: &[u8]) -> String {
    hex(&Sha256::digest(s))[..12].to_string()
}

/// `<stem>.<hash of the canonical path>-`.
fn name_prefix(path: &Path, real: &Path) -> String {
    let stem = path
        .file_name()
        .map(|n| n.to_string_lossy().trim_end_matches(".gguf").to_string())
        .unwrap_or_default();
    format!(
        "{stem}.{}-",
        short_hash(real.as_os_str().as_encoded_bytes())
    )
}

/// Whether a copy's name carries this release's [`LAYOUT_VERSION`].
fn is_current_version(name: &str) -> bool {
    CopyKind::of_name(name).is_some_and(|kind| {
        name.trim_end_matches(kind.names().1)
            .ends_with(&format!(".v{LAYOUT_VERSION}"))
    })
}

/// A copy is used only if it is there whole and of this release: the size a copy has, a valid
/// GGUF with this [`LAYOUT_VERSION`] in its header (CPU layouts), and a checksum file of this
/// version beside it. Its bytes are not hashed here (see [`verify_copies`]).
fn is_complete_copy(kind: CopyKind, dest: &Path, size: u64) -> bool {
    let same_size = fs::metadata(dest).is_ok_and(|m| m.len() == size);
    same_size
        && read_seal(dest).is_some_and(|seal| seal.version == LAYOUT_VERSION)
        && GgufFile::open(dest).is_ok_and(|file| {
            kind == CopyKind::Bf16
                || prepack::layout_version(&file) == Some(u64::from(LAYOUT_VERSION))
        })
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

/// Deletes the copies in `dir` whose names match, with their checksum files; returns the bytes
/// freed.
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
            let _ = fs::remove_file(seal_path(&entry.path()));
        }
    }
    freed
}

/// What [`verify_copies`] found for one copy.
#[derive(Debug, Clone, Serialize)]
pub struct CopyCheck {
    /// The copy.
    pub path: PathBuf,
    /// Its kind, as [`CopyKind::describe`] says it.
    pub kind: &'static str,
    /// The model file it was made from, when its checksum file says.
    pub source: Option<PathBuf>,
    /// The outcome (`status`, and `reason` unless it is `ok`).
    #[serde(flatten)]
    pub outcome: CopyOutcome,
}

/// The outcome of checking one copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CopyOutcome {
    /// Its bytes match its checksum.
    Ok,
    /// It was damaged (or had no checksum) and was written again from its source.
    Rebuilt {
        /// What was wrong.
        reason: String,
    },
    /// It was damaged, of another release, or its source is gone or changed: removed (it is
    /// written again when a model needs it).
    Removed {
        /// Why.
        reason: String,
    },
}

impl CopyOutcome {
    /// Whether the copy was found damaged (rebuilt or removed for its bytes, not its age).
    pub fn was_damaged(&self) -> bool {
        matches!(self, Self::Rebuilt { .. })
            || matches!(self, Self::Removed { reason } if reason.starts_with("damaged"))
    }
}

/// Re-hashes every copy in the default folders ([`default_dir`]), or only the copies of the
/// model files in `sources` when given: a copy whose bytes no longer match its checksum (or
/// that has none) is written again from its source when the source is unchanged, and removed
/// otherwise; copies of another [`LAYOUT_VERSION`] are removed. Partial copies being written
/// are left alone.
pub fn verify_copies(sources: Option<&[PathBuf]>) -> Vec<CopyCheck> {
    let prefixes: Option<Vec<String>> = sources.map(|sources| {
        sources
            .iter()
            .filter_map(|p| fs::canonicalize(p).ok().map(|real| name_prefix(p, &real)))
            .collect()
    });
    let mut checks = Vec::new();
    for kind in CopyKind::ALL {
        let dir = default_dir(kind);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(kind.names().1) && !n.contains(".partial-"))
            .filter(|n| {
                prefixes
                    .as_ref()
                    .is_none_or(|p| p.iter().any(|p| n.starts_with(p)))
            })
            .collect();
        names.sort();
        for name in names {
            checks.push(check_copy(kind, &dir.join(&name)));
        }
    }
    checks
}

fn check_copy(kind: CopyKind, path: &Path) -> CopyCheck {
    let seal = read_seal(path);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let check = |outcome| CopyCheck {
        path: path.to_path_buf(),
        kind: kind.describe(),
        source: seal.as_ref().map(|s| s.source.clone()),
        outcome,
    };
    let remove = |reason: String| {
        let _ = fs::remove_file(path);
        let _ = fs::remove_file(seal_path(path));
        check(CopyOutcome::Removed { reason })
    };
    if !is_current_version(&name) || seal.as_ref().is_some_and(|s| s.version != LAYOUT_VERSION) {
        return remove(format!(
            "written by a release with other layouts (this one writes version {LAYOUT_VERSION})"
        ));
    }
    let damage = match &seal {
        None => Some("damaged: it has no checksum file".to_string()),
        Some(seal) => match super::download::sha256_of(path) {
            Ok(actual) if actual == seal.sha256 => None,
            Ok(actual) => Some(format!(
                "damaged: its sha256 is {actual}, its checksum file says {}",
                seal.sha256
            )),
            Err(e) => Some(format!("damaged: cannot read it: {e}")),
        },
    };
    let Some(damage) = damage else {
        return check(CopyOutcome::Ok);
    };
    // Rebuild it when its source is still the file it was made from.
    let Some(seal) = &seal else {
        return remove(damage);
    };
    let unchanged = SourceState::of(kind, &seal.source)
        .is_ok_and(|state| state.stamp == seal.stamp && state.name == name);
    if !unchanged {
        return remove(format!(
            "{damage}; its source {} is gone or changed",
            seal.source.display()
        ));
    }
    let _ = fs::remove_file(path);
    let _ = fs::remove_file(seal_path(path));
    let dir = path.parent().unwrap_or(Path::new("."));
    let rebuilt = GgufFile::open(&seal.source)
        .and_then(|file| copy(kind, &seal.source, &file, dir))
        .map_err(|e| e.to_string())
        .and_then(|p| {
            p.filter(|p| p == path)
                .ok_or_else(|| "nothing to copy".into())
        });
    match rebuilt {
        Ok(_) => check(CopyOutcome::Rebuilt { reason: damage }),
        Err(e) => check(CopyOutcome::Removed {
            reason: format!("{damage}; writing it again failed: {e}"),
        }),
    }
}
