//! A GGUF reader of our own, over a memory map, that validates a file before llama.cpp sees it.
//!
//! llama.cpp aborts the whole process on some malformed files, so every model passes through
//! [`GgufFile::open`] first. It reads only the header, the metadata and the tensor table (never
//! the tensor data) and checks every length and offset against the file size: magic, version,
//! counts, string and array lengths, value types, alignment, tensor shapes and types, and that
//! every tensor's data lies inside the file. [`ModelInfo`] then checks that the file is a model we
//! can embed with and summarises it.

pub mod dequant;
pub mod f16x16;
mod info;
pub mod prepack;
pub mod q8_0x16;
pub mod repack;
mod types;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

pub use info::{CLS_OUTPUT, ModelInfo, ModelKind, SUPPORTED_ARCHITECTURES};
pub use types::{ArrayRef, TensorInfo, TensorType, Value, ValueType, file_type_name};

/// The first four bytes of every GGUF file.
const MAGIC: &[u8; 4] = b"GGUF";
/// The data alignment when `general.alignment` is absent.
const DEFAULT_ALIGNMENT: u64 = 32;
/// Arrays may nest, but no real file nests deeper than this; deeper is treated as malformed.
const MAX_ARRAY_DEPTH: u32 = 4;
/// ggml tensors have at most four dimensions.
const MAX_DIMS: u32 = 4;

/// What is wrong with a GGUF file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GgufError {
    /// The file could not be opened or mapped.
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    /// The file does not start with the GGUF magic.
    #[error("not a GGUF file (it starts with {found}, a GGUF file starts with \"GGUF\")")]
    NotGguf {
        /// The first bytes found, shown as text or hex.
        found: String,
    },
    /// A GGUF version we cannot read.
    #[error("unsupported GGUF version {0} (versions 2 and 3 are supported)")]
    UnsupportedVersion(u32),
    /// The file ends before a structure it announces.
    #[error(
        "the file is truncated: {what} at byte {offset} needs {needed} bytes but the file has \
         {file_size} bytes; it was probably cut off during a download: download it again"
    )]
    Truncated {
        /// What was being read.
        what: String,
        /// Where it starts.
        offset: u64,
        /// How many bytes it needs.
        needed: u64,
        /// The file's size.
        file_size: u64,
    },
    /// A structural error: an impossible count, type, shape or offset.
    #[error("malformed GGUF file: {0}")]
    Malformed(String),
    /// The model's architecture is not one we can embed with.
    #[error(
        "unsupported model architecture {found:?}: gguf-embed embeds with Qwen3-Embedding models \
         (architecture \"qwen3\")"
    )]
    UnsupportedArchitecture {
        /// The architecture the file declares.
        found: String,
    },
    /// A metadata key the model needs is absent.
    #[error("the model file lacks the metadata key {0:?}; it is not a complete model")]
    MissingKey(String),
    /// A metadata key has the wrong type or an impossible value.
    #[error("the metadata key {key:?} is invalid: {reason}")]
    InvalidKey {
        /// The key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A tensor the model needs is absent or has the wrong shape.
    #[error("the model file lacks a valid tensor {0:?}; it is not a complete model")]
    MissingTensor(String),
    /// A reranker's "yes" and "no" output rows cannot be found or read.
    #[error("cannot score with this file: {0}")]
    NoRerankHead(String),
}

/// A validated GGUF file: its header, metadata and tensor table, over a memory map.
#[derive(Debug)]
pub struct GgufFile {
    path: PathBuf,
    map: Mmap,
    version: u32,
    metadata: Vec<(String, Value)>,
    index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    data_offset: u64,
    tensor_table_offset: u64,
    /// Where the tensor table ends (the data section starts at the next aligned offset).
    tensor_table_end: u64,
    /// `general.alignment`, or the default.
    alignment: u64,
    /// Where each metadata value starts in the file (same order as `metadata`).
    value_offsets: Vec<usize>,
    /// Where each tensor's type tag is in the file (same order as `tensors`).
    type_tag_offsets: Vec<usize>,
}

impl GgufFile {
    /// Maps and validates a GGUF file. Reads the header, metadata and tensor table only.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, GgufError> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path)?;
        // SAFETY: the map is read-only. Like every reader of memory-mapped model files we rely
        // on nobody truncating the file while it is open; our own cache never does (files are
        // written elsewhere and renamed into place).
        let map = unsafe { Mmap::map(&file)? };
        let parsed = Parser::new(&map).parse()?;
        Ok(Self {
            path,
            version: parsed.version,
            index: parsed
                .metadata
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (k.clone(), i))
                .collect(),
            metadata: parsed.metadata,
            tensors: parsed.tensors,
            data_offset: parsed.data_offset,
            tensor_table_offset: parsed.tensor_table_offset,
            tensor_table_end: parsed.tensor_table_end,
            alignment: parsed.alignment,
            value_offsets: parsed.value_offsets,
            type_tag_offsets: parsed.type_tag_offsets,
            map,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's size in bytes.
    pub fn file_size(&self) -> u64 {
        self.map.len() as u64
    }

    /// The GGUF format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// All metadata entries, in file order.
    pub fn metadata(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.metadata.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// One metadata value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.index.get(key).map(|&i| &self.metadata[i].1)
    }

    /// A string metadata value.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// An integer metadata value of any width, if non-negative.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(Value::as_u64)
    }

    /// The tensor table.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// One tensor's description.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The bytes of the file that hold a tensor's data.
    pub fn tensor_file_range(&self, name: &str) -> Option<std::ops::Range<u64>> {
        let t = self.tensor(name)?;
        let start = self.data_offset + t.offset;
        Some(start..start + t.size)
    }

    /// The bytes of a tensor's data (bounds were checked on open).
    pub fn tensor_data(&self, name: &str) -> Option<&[u8]> {
        let range = self.tensor_file_range(name)?;
        Some(&self.map[range.start as usize..range.end as usize])
    }

    /// Rows of a 2-D tensor, dequantised to f32 (row `i` is `dims[0]` values, as ggml stores
    /// them). Reads only those rows' bytes. Fails for a tensor that is absent, not 2-D, of a
    /// type [`dequant`] does not read, or asked for a row it does not have.
    pub fn dequantize_rows(&self, name: &str, rows: &[u64]) -> Result<Vec<Vec<f32>>, GgufError> {
        let t = self
            .tensor(name)
            .ok_or_else(|| GgufError::MissingTensor(name.into()))?;
        let invalid = |reason: String| GgufError::InvalidKey {
            key: format!("tensor {name}"),
            reason,
        };
        if t.dims.len() != 2 {
            return Err(invalid(format!(
                "expected a matrix, found dimensions {:?}",
                t.dims
            )));
        }
        if !dequant::can_dequantize(t.tensor_type) {
            return Err(invalid(format!(
                "its type {} cannot be read outside llama.cpp (gguf-embed reads {})",
                t.tensor_type.name,
                dequant::DEQUANTIZABLE.join(", ")
            )));
        }
        let data = self.tensor_data(name).expect("the tensor exists");
        let row_bytes = (t.dims[0] / t.tensor_type.block_size * t.tensor_type.type_size) as usize;
        rows.iter()
            .map(|&row| {
                if row >= t.dims[1] {
                    return Err(invalid(format!(
                        "it has no row {row} (it has {})",
                        t.dims[1]
                    )));
                }
                let start = row as usize * row_bytes;
                Ok(
                    dequant::dequantize_row(t.tensor_type, &data[start..start + row_bytes])
                        .expect("whole blocks of a readable type"),
                )
            })
            .collect()
    }

    /// Offset of the tensor table from the start of the file: the metadata ends there.
    pub fn tensor_table_offset(&self) -> u64 {
        self.tensor_table_offset
    }

    /// Offset of the tensor data section from the start of the file.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// Where the tensor table ends; the data section starts at the next multiple of
    /// [`alignment`](Self::alignment).
    pub fn tensor_table_end(&self) -> u64 {
        self.tensor_table_end
    }

    /// The data alignment (`general.alignment`, 32 when absent).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// The elements of a string array, as raw bytes (GGUF strings should be UTF-8 but token
    /// pieces of byte-level vocabularies need not be). Lengths were validated on open.
    pub fn array_strings<'a>(&'a self, array: &ArrayRef) -> Option<impl Iterator<Item = &'a [u8]>> {
        if array.element_type != ValueType::String {
            return None;
        }
        let mut pos = array.offset;
        let bytes: &'a [u8] = &self.map;
        Some((0..array.len).map(move |_| {
            let len = read_u64(bytes, pos) as usize;
            let start = pos + 8;
            pos = start + len;
            &bytes[start..pos]
        }))
    }

    /// The elements of an integer array, widened to `i64`.
    pub fn array_integers<'a>(
        &'a self,
        array: &ArrayRef,
    ) -> Option<impl Iterator<Item = i64> + 'a> {
        let size = array.element_type.fixed_size()?;
        let kind = array.element_type;
        if matches!(kind, ValueType::F32 | ValueType::F64 | ValueType::Bool) {
            return None;
        }
        let bytes: &'a [u8] = &self.map;
        let base = array.offset;
        Some((0..array.len as usize).map(move |i| {
            let p = base + i * size;
            match kind {
                ValueType::U8 => bytes[p].into(),
                ValueType::I8 => (bytes[p] as i8).into(),
                ValueType::U16 => u16::from_le_bytes([bytes[p], bytes[p + 1]]).into(),
                ValueType::I16 => i16::from_le_bytes([bytes[p], bytes[p + 1]]).into(),
                ValueType::U32 => read_u32(bytes, p).into(),
                ValueType::I32 => (read_u32(bytes, p) as i32).into(),
                ValueType::U64 => read_u64(bytes, p) as i64,
                _ => read_u64(bytes, p) as i64,
            }
        }))
    }
}

/// Metadata entries in file order.
type Metadata = Vec<(String, Value)>;

/// What the parser produces.
struct Parsed {
    version: u32,
    metadata: Vec<(String, Value)>,
    tensors: Vec<TensorInfo>,
    data_offset: u64,
    tensor_table_offset: u64,
    tensor_table_end: u64,
    alignment: u64,
    value_offsets: Vec<usize>,
    type_tag_offsets: Vec<usize>,
}

/// A bounds-checked cursor over the file's bytes.
struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

fn read_u32(bytes: &[u8], pos: usize) -> u32 {
    u32::from_le_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes"))
}

fn read_u64(bytes: &[u8], pos: usize) -> u64 {
    u64::from_le_bytes(bytes[pos..pos + 8].try_into().expect("8 bytes"))
}

impl<'a> Parser<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    fn parse(mut self) -> Result<Parsed, GgufError> {
        self.check_magic()?;
        let version = self.u32("the version")?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::UnsupportedVersion(version));
        }
        let n_tensors = self.u64("the tensor count")?;
        let n_kv = self.u64("the metadata count")?;
        // Every entry takes at least 12 bytes (an empty key and a type tag), every tensor at
        // least 24: counts that cannot fit in the file are corrupt, whatever follows.
        self.check_count(n_kv, 12, "metadata entries")?;
        self.check_count(n_tensors, 24, "tensors")?;

        let (metadata, value_offsets) = self.metadata(n_kv)?;
        let alignment = alignment(&metadata)?;
        let tensor_table_offset = self.pos as u64;
        let (tensors, type_tag_offsets) = self.tensor_infos(n_tensors)?;
        let tensor_table_end = self.pos as u64;
        let data_offset = tensor_table_end.next_multiple_of(alignment);
        self.check_tensor_data(&tensors, data_offset, alignment)?;
        Ok(Parsed {
            version,
            metadata,
            tensors,
            data_offset,
            tensor_table_offset,
            tensor_table_end,
            alignment,
            value_offsets,
            type_tag_offsets,
        })
    }

    fn file_size(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn check_magic(&mut self) -> Result<(), GgufError> {
        let head = &self.bytes[..self.bytes.len().min(4)];
        if head == MAGIC {
            self.pos = 4;
            return Ok(());
        }
        let found = if head.is_empty() {
            "nothing: the file is empty".to_string()
        } else if head.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
            format!("{:?}", String::from_utf8_lossy(head))
        } else {
            let hex: Vec<String> = head.iter().map(|b| format!("{b:02x}")).collect();
            format!("bytes {}", hex.join(" "))
        };
        Err(GgufError::NotGguf { found })
    }

    fn check_count(&self, count: u64, min_size: u64, what: &str) -> Result<(), GgufError> {
        let room = self.file_size().saturating_sub(self.pos as u64);
        if count.saturating_mul(min_size) > room {
            return Err(GgufError::Malformed(format!(
                "the header announces {count} {what}, more than the file's {} bytes can hold; \
                 the file is truncated or corrupt: download it again",
                self.file_size()
            )));
        }
        Ok(())
    }

    /// Takes `n` bytes, or reports what was being read when the file ends first.
    fn take(&mut self, n: u64, what: impl FnOnce() -> String) -> Result<&'a [u8], GgufError> {
        let end = (self.pos as u64).checked_add(n);
        match end {
            Some(end) if end <= self.file_size() => {
                let slice = &self.bytes[self.pos..end as usize];
                self.pos = end as usize;
                Ok(slice)
            }
            _ => Err(GgufError::Truncated {
                what: what(),
                offset: self.pos as u64,
                needed: n,
                file_size: self.file_size(),
            }),
        }
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        let b = self.take(4, || what.to_string())?;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }

    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        let b = self.take(8, || what.to_string())?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    /// A length-prefixed string. `what` names it in errors only: a vocabulary has hundreds of
    /// thousands of strings, and formatting a name for each was a tenth of a model's load.
    fn string_bytes(&mut self, what: &dyn Fn() -> String) -> Result<&'a [u8], GgufError> {
        let b = self.take(8, || format!("the length of {}", what()))?;
        let len = u64::from_le_bytes(b.try_into().expect("8 bytes"));
        self.take(len, || format!("{} ({len} bytes)", what()))
    }

    /// The metadata entries, and where each value starts.
    fn metadata(&mut self, n_kv: u64) -> Result<(Metadata, Vec<usize>), GgufError> {
        let mut seen = HashMap::new();
        let mut entries = Vec::with_capacity(n_kv as usize);
        let mut offsets = Vec::with_capacity(n_kv as usize);
        for i in 0..n_kv {
            let key_bytes = self.string_bytes(&|| format!("metadata key #{i}"))?;
            let key = std::str::from_utf8(key_bytes)
                .map_err(|_| GgufError::Malformed(format!("metadata key #{i} is not UTF-8")))?
                .to_string();
            if seen.insert(key.clone(), i).is_some() {
                return Err(GgufError::Malformed(format!(
                    "the metadata key {key:?} appears twice"
                )));
            }
            let tag = self.u32(&format!("the type of metadata key {key:?}"))?;
            let value_type = ValueType::from_tag(tag).ok_or_else(|| {
                GgufError::Malformed(format!("metadata key {key:?} has unknown value type {tag}"))
            })?;
            offsets.push(self.pos);
            let value = self.value(value_type, &key, 0)?;
            entries.push((key, value));
        }
        Ok((entries, offsets))
    }

    fn value(&mut self, value_type: ValueType, key: &str, depth: u32) -> Result<Value, GgufError> {
        let what = || format!("the value of {key:?}");
        Ok(match value_type {
            ValueType::String => {
                Value::String(String::from_utf8_lossy(self.string_bytes(&what)?).into_owned())
            }
            ValueType::Array => Value::Array(self.array(key, depth)?),
            fixed => {
                let size = fixed.fixed_size().expect("fixed-size type");
                let b = self.take(size as u64, what)?;
                decode_scalar(fixed, b, key)?
            }
        })
    }

    /// Validates an array's extent without decoding it, and returns where it lives.
    fn array(&mut self, key: &str, depth: u32) -> Result<ArrayRef, GgufError> {
        if depth >= MAX_ARRAY_DEPTH {
            return Err(GgufError::Malformed(format!(
                "the array {key:?} nests deeper than {MAX_ARRAY_DEPTH} levels"
            )));
        }
        let tag = self.u32(&format!("the element type of array {key:?}"))?;
        let element_type = ValueType::from_tag(tag).ok_or_else(|| {
            GgufError::Malformed(format!("array {key:?} has unknown element type {tag}"))
        })?;
        let len = self.u64(&format!("the length of array {key:?}"))?;
        let offset = self.pos;
        match element_type.fixed_size() {
            Some(size) => {
                let bytes = len.checked_mul(size as u64).ok_or_else(|| {
                    GgufError::Malformed(format!("array {key:?} has an impossible length {len}"))
                })?;
                self.take(bytes, || format!("array {key:?} ({len} elements)"))?;
            }
            None => {
                // Strings and nested arrays take at least 8 bytes each.
                self.check_count(len, 8, &format!("elements in array {key:?}"))?;
                for i in 0..len {
                    match element_type {
                        ValueType::String => {
                            self.string_bytes(&|| format!("element {i} of array {key:?}"))?;
                        }
                        _ => {
                            self.array(key, depth + 1)?;
                        }
                    }
                }
            }
        }
        Ok(ArrayRef {
            element_type,
            len,
            offset,
        })
    }

    /// The tensor table, and where each tensor's type tag is.
    fn tensor_infos(&mut self, n_tensors: u64) -> Result<(Vec<TensorInfo>, Vec<usize>), GgufError> {
        let mut names = HashMap::new();
        let mut tensors = Vec::with_capacity(n_tensors as usize);
        let mut tag_offsets = Vec::with_capacity(n_tensors as usize);
        for i in 0..n_tensors {
            let name_bytes = self.string_bytes(&|| format!("the name of tensor #{i}"))?;
            let name = String::from_utf8_lossy(name_bytes).into_owned();
            if names.insert(name.clone(), i).is_some() {
                return Err(GgufError::Malformed(format!(
                    "the tensor {name:?} appears twice"
                )));
            }
            let n_dims = self.u32(&format!("the dimension count of tensor {name:?}"))?;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(GgufError::Malformed(format!(
                    "tensor {name:?} has {n_dims} dimensions (1 to {MAX_DIMS} allowed)"
                )));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for d in 0..n_dims {
                dims.push(self.u64(&format!("dimension {d} of tensor {name:?}"))?);
            }
            tag_offsets.push(self.pos);
            let tag = self.u32(&format!("the type of tensor {name:?}"))?;
            let tensor_type = TensorType::from_tag(tag).ok_or_else(|| {
                GgufError::Malformed(format!("tensor {name:?} has unknown type {tag}"))
            })?;
            let offset = self.u64(&format!("the data offset of tensor {name:?}"))?;
            let size = tensor_size(&name, &dims, tensor_type)?;
            tensors.push(TensorInfo {
                name,
                dims,
                tensor_type,
                offset,
                size,
            });
        }
        Ok((tensors, tag_offsets))
    }

    fn check_tensor_data(
        &self,
        tensors: &[TensorInfo],
        data_offset: u64,
        alignment: u64,
    ) -> Result<(), GgufError> {
        for t in tensors {
            if !t.offset.is_multiple_of(alignment) {
                return Err(GgufError::Malformed(format!(
                    "tensor {:?} starts at offset {}, not a multiple of the alignment {alignment}",
                    t.name, t.offset
                )));
            }
            let start = data_offset.checked_add(t.offset);
            let end = start.and_then(|s| s.checked_add(t.size));
            match end {
                Some(end) if end <= self.file_size() => {}
                _ => {
                    return Err(GgufError::Truncated {
                        what: format!("the data of tensor {:?}", t.name),
                        offset: start.unwrap_or(u64::MAX),
                        needed: t.size,
                        file_size: self.file_size(),
                    });
                }
            }
        }
        Ok(())
    }
}

fn decode_scalar(value_type: ValueType, b: &[u8], key: &str) -> Result<Value, GgufError> {
    Ok(match value_type {
        ValueType::U8 => Value::U8(b[0]),
        ValueType::I8 => Value::I8(b[0] as i8),
        ValueType::U16 => Value::U16(u16::from_le_bytes([b[0], b[1]])),
        ValueType::I16 => Value::I16(i16::from_le_bytes([b[0], b[1]])),
        ValueType::U32 => Value::U32(read_u32(b, 0)),
        ValueType::I32 => Value::I32(read_u32(b, 0) as i32),
        ValueType::F32 => Value::F32(f32::from_bits(read_u32(b, 0))),
        ValueType::U64 => Value::U64(read_u64(b, 0)),
        ValueType::I64 => Value::I64(read_u64(b, 0) as i64),
        ValueType::F64 => Value::F64(f64::from_bits(read_u64(b, 0))),
        ValueType::Bool => match b[0] {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            other => {
                return Err(GgufError::Malformed(format!(
                    "metadata key {key:?} holds the boolean byte {other} (0 or 1 expected)"
                )));
            }
        },
        ValueType::String | ValueType::Array => unreachable!("not a scalar"),
    })
}

/// `general.alignment`: a power of two, 32 when absent.
fn alignment(metadata: &[(String, Value)]) -> Result<u64, GgufError> {
    let Some((_, value)) = metadata.iter().find(|(k, _)| k == "general.alignment") else {
        return Ok(DEFAULT_ALIGNMENT);
    };
    match value {
        Value::U32(a) if a.is_power_of_two() => Ok((*a).into()),
        other => Err(GgufError::InvalidKey {
            key: "general.alignment".into(),
            reason: format!("{other} is not a power of two stored as u32"),
        }),
    }
}

/// A tensor's data size, checking that its shape is possible for its type.
fn tensor_size(name: &str, dims: &[u64], t: TensorType) -> Result<u64, GgufError> {
    let malformed = |why: String| GgufError::Malformed(format!("tensor {name:?} {why}"));
    if dims.contains(&0) {
        return Err(malformed(format!("has an empty dimension {dims:?}")));
    }
    if !dims[0].is_multiple_of(t.block_size) {
        return Err(malformed(format!(
            "has a row of {} elements, not a multiple of the {} block size {}",
            dims[0], t.name, t.block_size
        )));
    }
    let row_bytes = (dims[0] / t.block_size)
        .checked_mul(t.type_size)
        .ok_or_else(|| malformed(format!("has impossible dimensions {dims:?}")))?;
    dims[1..]
        .iter()
        .try_fold(row_bytes, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| malformed(format!("has impossible dimensions {dims:?}")))
}

#[cfg(test)]
mod tests;
