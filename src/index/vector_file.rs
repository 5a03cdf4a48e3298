//! The vector file: chunk vectors keyed by the sha256 of each chunk's text (the index's
//! `text_hash`), with a header naming everything else a vector depends on (the model file's
//! sha256, the output dimensions and the chunk token budget). A team embeds a repository once
//! and every clone imports the file, embedding only the chunks it does not hold.
//!
//! Layout (little-endian):
//!
//! ```text
//! "gguf-embed vectors\n"        19 bytes
//! header length                 u32
//! header                        JSON (see VectorFileHeader)
//! records                       32 bytes of text sha256, then `dimensions` f32 values each
//! record count                  u64
//! sha256 of everything above    32 bytes
//! ```
//!
//! A file is written to a temporary name next to its destination and renamed when complete,
//! and read only after its checksum is verified: a truncated or damaged file is refused whole.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Fingerprint, IndexError};

const MAGIC: &[u8] = b"gguf-embed vectors\n";
/// The layout version this build writes and reads.
const FORMAT: u32 = 1;
/// The trailer: record count and checksum.
const TRAILER: u64 = 8 + 32;

/// What the vectors of a file were computed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct VectorFileHeader {
    /// The layout version.
    pub format: u32,
    /// The model file's sha256, name and quantization, the vectors' dimensions and the chunk
    /// token budget: the index's fingerprint.
    #[serde(flatten)]
    pub fingerprint: Fingerprint,
    /// The values' type: `f32` (vectors are stored at full precision).
    pub element: String,
    /// The machine's CPU path that computed them (ggml's CPU features): vectors computed on
    /// another path can differ in their last bits (cosine about 0.9999).
    pub computed_on: String,
    /// The gguf-embed version that wrote the file.
    pub written_by: String,
}

impl VectorFileHeader {
    /// A header for vectors of an index with this fingerprint, computed on this machine.
    pub fn new(fingerprint: Fingerprint) -> Self {
        Self {
            format: FORMAT,
            fingerprint,
            element: "f32".into(),
            computed_on: cpu_path(),
            written_by: format!("gguf-embed {}", env!("CARGO_PKG_VERSION")),
        }
    }

    /// Refuses vectors that another index would compute differently.
    pub fn check(&self, index: &Fingerprint, file: &Path) -> Result<(), IndexError> {
        let ours = &self.fingerprint;
        let differs = [
            (
                ours.model_sha256 != index.model_sha256,
                "its vectors come from another model",
            ),
            (
                ours.dimensions != index.dimensions,
                "its vectors have other dimensions",
            ),
            (
                ours.chunk_tokens != index.chunk_tokens,
                "its chunks were embedded with another token budget",
            ),
        ];
        if let Some((_, what)) = differs.iter().find(|(d, _)| *d) {
            return Err(IndexError::VectorFile {
                path: file.to_path_buf(),
                reason: format!(
                    "{what} ({}) than the index ({}); nothing was imported",
                    ours.describe(),
                    index.describe()
                ),
            });
        }
        Ok(())
    }
}

/// The CPU features ggml's CPU backend uses here, as one string.
pub fn cpu_path() -> String {
    let features: Vec<String> = crate::devices()
        .into_iter()
        .find(|d| !d.is_gpu())
        .map(|d| d.features)
        .unwrap_or_default();
    format!("{} {}", std::env::consts::ARCH, features.join(" "))
        .trim()
        .to_string()
}

/// Writes a vector file; nothing is at the destination until [`finish`](Self::finish).
pub struct VectorWriter {
    out: BufWriter<File>,
    hasher: Sha256,
    temp: PathBuf,
    dest: PathBuf,
    dimensions: usize,
    count: u64,
}

impl VectorWriter {
    /// Starts a file at `dest` with this header.
    pub fn create(dest: &Path, header: &VectorFileHeader) -> Result<Self, IndexError> {
        let mut name = dest.as_os_str().to_owned();
        name.push(format!(".tmp-{}", std::process::id()));
        let temp = PathBuf::from(name);
        let file = File::create(&temp).map_err(|e| IndexError::io(&temp, e))?;
        let mut writer = Self {
            out: BufWriter::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
            temp,
            dest: dest.to_path_buf(),
            dimensions: header.fingerprint.dimensions,
            count: 0,
        };
        let json = serde_json::to_vec(header).expect("a header serializes");
        writer.write(MAGIC)?;
        writer.write(&(json.len() as u32).to_le_bytes())?;
        writer.write(&json)?;
        Ok(writer)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), IndexError> {
        self.hasher.update(bytes);
        self.out
            .write_all(bytes)
            .map_err(|e| IndexError::io(&self.temp, e))
    }

    /// Adds the vector of the chunk text whose sha256 is `text_hash` (hex).
    pub fn push(&mut self, text_hash: &str, vector: &[f32]) -> Result<(), IndexError> {
        let hash = hex_to_bytes(text_hash).ok_or_else(|| {
            IndexError::InvalidQuery(format!("{text_hash:?} is not a sha256 in hex"))
        })?;
        if vector.len() != self.dimensions {
            return Err(IndexError::InvalidQuery(format!(
                "a vector of {} values in a file of {}-dimension vectors",
                vector.len(),
                self.dimensions
            )));
        }
        self.write(&hash)?;
        let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.write(&bytes)?;
        self.count += 1;
        Ok(())
    }

    /// Adds a vector stored as little-endian f32 bytes.
    pub(super) fn push_blob(&mut self, text_hash: &str, blob: &[u8]) -> Result<(), IndexError> {
        self.push(text_hash, &super::store::blob_vector(blob))
    }

    /// Writes the trailer and moves the file into place; returns the vectors written.
    pub fn finish(mut self) -> Result<u64, IndexError> {
        let count = self.count.to_le_bytes();
        self.write(&count)?;
        let sum = self.hasher.clone().finalize();
        let io = |e| IndexError::io(&self.temp, e);
        self.out.write_all(&sum).map_err(io)?;
        self.out.flush().map_err(io)?;
        self.out.get_ref().sync_all().map_err(io)?;
        std::fs::rename(&self.temp, &self.dest).map_err(|e| IndexError::io(&self.dest, e))?;
        Ok(self.count)
    }
}

impl Drop for VectorWriter {
    fn drop(&mut self) {
        // Not finished (an error, or dropped early): leave nothing behind.
        let _ = std::fs::remove_file(&self.temp);
    }
}

/// A vector file whose checksum was verified.
pub struct VectorReader {
    input: BufReader<File>,
    path: PathBuf,
    header: VectorFileHeader,
    left: u64,
}

impl VectorReader {
    /// Opens a vector file: checks its magic, header and checksum (reading it once).
    pub fn open(path: &Path) -> Result<Self, IndexError> {
        let bad = |reason: &str| IndexError::VectorFile {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let io = |e| IndexError::io(path, e);
        let mut file = File::open(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        let mut input = BufReader::with_capacity(1 << 20, file.try_clone().map_err(io)?);
        let mut magic = vec![0u8; MAGIC.len()];
        if input.read_exact(&mut magic).is_err() || magic != MAGIC {
            return Err(bad("it is not a gguf-embed vector file"));
        }
        let mut len = [0u8; 4];
        input.read_exact(&mut len).map_err(io)?;
        let len = u32::from_le_bytes(len) as u64;
        let start = MAGIC.len() as u64 + 4 + len;
        if start + TRAILER > size {
            return Err(bad("it is truncated"));
        }
        let mut json = vec![0u8; len as usize];
        input.read_exact(&mut json).map_err(io)?;
        let header: VectorFileHeader = serde_json::from_slice(&json)
            .map_err(|e| bad(&format!("its header cannot be read: {e}")))?;
        if header.format != FORMAT || header.element != "f32" {
            return Err(bad(&format!(
                "it has layout {} with {} values; this gguf-embed reads layout {FORMAT} with f32",
                header.format, header.element
            )));
        }
        let record = 32 + 4 * header.fingerprint.dimensions as u64;
        let body = size - start - TRAILER;
        if header.fingerprint.dimensions == 0 || !body.is_multiple_of(record) {
            return Err(bad("it is truncated or damaged"));
        }
        // The checksum covers everything before it.
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        let mut hasher = Sha256::new();
        let mut whole = BufReader::with_capacity(1 << 20, &mut file).take(size - 32);
        std::io::copy(&mut whole, &mut hasher).map_err(io)?;
        let mut trailer = [0u8; 40];
        file.seek(SeekFrom::Start(size - TRAILER)).map_err(io)?;
        file.read_exact(&mut trailer).map_err(io)?;
        let count = u64::from_le_bytes(trailer[..8].try_into().expect("8 bytes"));
        if hasher.finalize().as_slice() != &trailer[8..] || count != body / record {
            return Err(bad("its checksum does not match: it is damaged"));
        }
        input.seek(SeekFrom::Start(start)).map_err(io)?;
        Ok(Self {
            input,
            path: path.to_path_buf(),
            header,
            left: count,
        })
    }

    /// What the vectors were computed with.
    pub fn header(&self) -> &VectorFileHeader {
        &self.header
    }

    /// The vectors not read yet.
    pub fn len(&self) -> u64 {
        self.left
    }

    /// Whether every vector was read.
    pub fn is_empty(&self) -> bool {
        self.left == 0
    }

    /// The next (text hash in hex, vector as little-endian f32 bytes).
    pub fn next_vector(&mut self) -> Result<Option<(String, Vec<u8>)>, IndexError> {
        if self.left == 0 {
            return Ok(None);
        }
        let io = |e| IndexError::io(&self.path, e);
        let mut hash = [0u8; 32];
        self.input.read_exact(&mut hash).map_err(io)?;
        let mut blob = vec![0u8; 4 * self.header.fingerprint.dimensions];
        self.input.read_exact(&mut blob).map_err(io)?;
        self.left -= 1;
        Ok(Some((crate::hub::hex(&hash), blob)))
    }
}

fn hex_to_bytes(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint(dimensions: usize) -> Fingerprint {
        Fingerprint {
            model_sha256: "ab".repeat(32),
            model_file: "m.gguf".into(),
            quant: "Q8_0".into(),
            dimensions,
            chunk_tokens: 256,
        }
    }

    fn hash(i: u8) -> String {
        crate::hub::hex(&Sha256::digest([i]))
    }

    #[test]
    fn a_written_file_reads_back_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.bin");
        let header = VectorFileHeader::new(fingerprint(3));
        let mut w = VectorWriter::create(&path, &header).unwrap();
        assert!(!path.exists(), "nothing in place before finish");
        for i in 0..5u8 {
            w.push(&hash(i), &[f32::from(i), 0.5, -1.0]).unwrap();
        }
        assert!(w.push("zz", &[0.0; 3]).is_err());
        assert!(w.push(&hash(9), &[0.0; 2]).is_err());
        assert_eq!(w.finish().unwrap(), 5);
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file left");

        let mut r = VectorReader::open(&path).unwrap();
        assert_eq!(r.header(), &header);
        assert_eq!(r.len(), 5);
        let mut seen = Vec::new();
        while let Some((h, blob)) = r.next_vector().unwrap() {
            seen.push((h, crate::index::store::blob_vector(&blob)));
        }
        assert_eq!(seen.len(), 5);
        assert_eq!(seen[3], (hash(3), vec![3.0, 0.5, -1.0]));

        // One byte changed anywhere, or the end cut off: refused whole.
        let bytes = std::fs::read(&path).unwrap();
        for at in [5, 40, bytes.len() - 50, bytes.len() - 1] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 1;
            std::fs::write(&path, &damaged).unwrap();
            assert!(VectorReader::open(&path).is_err(), "byte {at}");
        }
        std::fs::write(&path, &bytes[..bytes.len() - 7]).unwrap();
        assert!(VectorReader::open(&path).is_err());
        std::fs::write(&path, b"not a vector file at all, just some text").unwrap();
        let e = VectorReader::open(&path).err().unwrap().to_string();
        assert!(e.contains("not a gguf-embed vector file"), "{e}");
    }

    #[test]
    fn vectors_of_another_model_size_or_budget_are_refused() {
        let file = Path::new("v.bin");
        let header = VectorFileHeader::new(fingerprint(64));
        assert!(header.check(&fingerprint(64), file).is_ok());
        let mut other = fingerprint(64);
        other.model_file = "renamed.gguf".into();
        assert!(
            header.check(&other, file).is_ok(),
            "the name is not the model"
        );
        let e = header
            .check(&fingerprint(32), file)
            .unwrap_err()
            .to_string();
        assert!(e.contains("other dimensions"), "{e}");
        let mut other = fingerprint(64);
        other.chunk_tokens = 128;
        assert!(
            header
                .check(&other, file)
                .unwrap_err()
                .to_string()
                .contains("budget")
        );
        let mut other = fingerprint(64);
        other.model_sha256 = "cd".repeat(32);
        assert!(
            header
                .check(&other, file)
                .unwrap_err()
                .to_string()
                .contains("model")
        );
    }
}
