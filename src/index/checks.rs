//! What an index is tied to (the model file and the settings that shape its vectors), and
//! the check that a run uses the same.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::store::Store;
use super::{IndexError, IndexOptions};
use crate::Embedder;

/// What an index is tied to: the model file and the settings that shape its vectors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// The model file's sha256.
    pub model_sha256: String,
    /// The model file's name.
    pub model_file: String,
    /// Its quantization.
    pub quant: String,
    /// Stored vector size.
    pub dimensions: usize,
    /// Chunk token budget.
    pub chunk_tokens: usize,
}

impl Fingerprint {
    /// For error messages.
    pub(super) fn describe(&self) -> String {
        format!(
            "{} (sha256 {}…, {}), {} dimensions, chunks of {} tokens",
            self.model_file,
            &self.model_sha256[..self.model_sha256.len().min(12)],
            self.quant,
            self.dimensions,
            self.chunk_tokens
        )
    }

    const KEYS: [&'static str; 5] = [
        "model_sha256",
        "model_file",
        "quant",
        "dimensions",
        "chunk_tokens",
    ];

    fn values(&self) -> [String; 5] {
        [
            self.model_sha256.clone(),
            self.model_file.clone(),
            self.quant.clone(),
            self.dimensions.to_string(),
            self.chunk_tokens.to_string(),
        ]
    }

    /// The fingerprint recorded in `store` (`None` for a new, empty index).
    pub(super) fn read(store: &Store) -> Result<Option<Self>, IndexError> {
        let mut values = Vec::new();
        for key in Self::KEYS {
            match store.meta(key)? {
                Some(v) => values.push(v),
                None => return Ok(None),
            }
        }
        Ok(Some(Self {
            model_sha256: values[0].clone(),
            model_file: values[1].clone(),
            quant: values[2].clone(),
            dimensions: values[3].parse().unwrap_or(0),
            chunk_tokens: values[4].parse().unwrap_or(0),
        }))
    }

    /// Records this fingerprint in `store`.
    pub(crate) fn write(&self, store: &Store) -> Result<(), IndexError> {
        for (key, value) in Self::KEYS.iter().zip(self.values()) {
            store.set_meta(key, &value)?;
        }
        Ok(())
    }

    /// The fingerprint `embedder` and `options` give, reusing the model hash recorded in
    /// `store` while the model file is unchanged (hashing 600 MB costs a second). The hash is
    /// remembered when the store can be written (a read-only index just hashes again).
    pub(super) fn of(
        store: &Store,
        embedder: &Embedder,
        options: &IndexOptions,
    ) -> Result<Self, IndexError> {
        let known = store.meta("model_hash_cache")?.and_then(|v| {
            v.rsplit_once(' ')
                .map(|(stamp, sha)| (stamp.to_string(), sha.to_string()))
        });
        let info = embedder.info();
        let stamp = file_stamp(&info.path);
        let sha = match known {
            Some((known_stamp, sha)) if stamp.as_ref() == Some(&known_stamp) => sha,
            _ => {
                let sha = model_sha256(&info.path)?;
                if let Some(stamp) = &stamp
                    && let Err(e) = store.set_meta("model_hash_cache", &format!("{stamp} {sha}"))
                {
                    tracing::debug!("cannot remember the model's hash: {e}");
                }
                sha
            }
        };
        Ok(Self {
            model_sha256: sha,
            model_file: info
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            quant: info.file_type.clone().unwrap_or_else(|| "unknown".into()),
            dimensions: options.dimensions.unwrap_or(embedder.dimensions()),
            chunk_tokens: options.chunk_tokens,
        })
    }

    /// Checks that `embedder` gives the vectors this index holds.
    pub(super) fn check_embedder(
        &self,
        store: &Store,
        embedder: &Embedder,
        index: &Path,
    ) -> Result<(), IndexError> {
        let options = IndexOptions {
            chunk_tokens: self.chunk_tokens,
            dimensions: Some(self.dimensions),
            ..IndexOptions::default()
        };
        let now = Self::of(store, embedder, &options)?;
        if &now != self {
            return Err(IndexError::ModelMismatch {
                path: index.to_path_buf(),
                built: self.describe(),
                now: now.describe(),
            });
        }
        Ok(())
    }
}

/// The canonical path, size and modification time of a file: enough to tell it is unchanged.
fn file_stamp(path: &Path) -> Option<String> {
    let real = std::fs::canonicalize(path).ok()?;
    Some(format!(
        "{}|{}",
        real.display(),
        crate::hub::file_stamp(&real)?
    ))
}

/// The model file's sha256: free for files in the Hugging Face cache (their blob is named by
/// it), computed otherwise.
fn model_sha256(path: &Path) -> Result<String, IndexError> {
    let real = std::fs::canonicalize(path).map_err(|e| IndexError::io(path, e))?;
    if let Some(name) = real.file_name().and_then(|n| n.to_str())
        && crate::hub::is_sha256(name)
    {
        return Ok(name.to_string());
    }
    crate::hub::sha256_of(&real).map_err(|e| IndexError::io(&real, e))
}
