//! Copies of models with their weights already in the CPU kernels' interleaved layouts.
//!
//! On x86 our patched ggml (vendor/PATCHES.md, patches 1 and 6) multiplies 2-D Q8_0 and F16
//! weights in interleaved layouts of 16 rows: [`q8_0x16`](super::q8_0x16) and
//! [`f16x16`](super::f16x16). Repacking at load needs a fresh buffer the size of the weights
//! (446 MiB for the 0.6B Q8_0 model, 881 MB for the F16 one), and on a machine where that
//! memory is not yet backed, the kernel zeroing those pages is the largest part of the start
//! (docs/BENCHMARKS.md, "Start-up"). A copy of the file whose weights are stored already in
//! those layouts is used where it is memory-mapped, like any model file: no copy, no fresh
//! memory, and the page cache is shared between processes.
//!
//! The copy is the original file with one metadata key added per layout it uses,
//! [`q8_0x16::KEY`](super::q8_0x16::KEY) and [`f16x16::KEY`](super::f16x16::KEY): the names of
//! the tensors stored in that layout (each key names tensors of its own type only, so a file
//! with both Q8_0 and F16 matrices gets both keys). The values are the file's own, in another
//! order, so the vectors are bit for bit those of the in-memory repack. llama.cpp's loader (our
//! patch 3) checks that each named tensor has its key's type, that exactly the named tensors
//! were placed in the repack buffer, and that this build's CPU backend would itself repack each
//! of them in that layout; it refuses to load the copy otherwise.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use super::repack::write_atomically;
use super::{GgufError, GgufFile, TensorInfo, f16x16, q8_0x16};

/// The metadata key holding [`LAYOUT_VERSION`] in every copy.
pub const VERSION_KEY: &str = "gguf_embed.layout_version";

/// The version of the interleaved layouts and of the copy's format. Bumped whenever either
/// changes, so that a copy written by another release (whose kernels may read its bytes in
/// another order) is never used: it is in the copy's name and in its header
/// ([`VERSION_KEY`]), and [`layout_version`] reads it back. Version 1 had no key.
pub const LAYOUT_VERSION: u32 = 2;

/// GGUF metadata value types used by the keys.
const GGUF_U32: u32 = 4;
const GGUF_STRING: u32 = 8;
const GGUF_ARRAY: u32 = 9;

/// An interleaved layout of the CPU kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// 2-D Q8_0 weights, 16 rows interleaved 4 bytes at a time ([`q8_0x16`]).
    Q8_0x16,
    /// 2-D F16 weights, 16 rows interleaved one value at a time ([`f16x16`]).
    F16x16,
}

impl Layout {
    /// Every layout, in the order their keys are written.
    pub const ALL: [Layout; 2] = [Layout::Q8_0x16, Layout::F16x16];

    /// The layout the CPU backend repacks this tensor into, if any (the rule of
    /// `ggml_repack_get_optimal_repack_type` in the patched `repack.cpp`).
    pub fn of(t: &TensorInfo) -> Option<Layout> {
        if q8_0x16::is_repacked(t) {
            Some(Layout::Q8_0x16)
        } else if f16x16::is_repacked(t) {
            Some(Layout::F16x16)
        } else {
            None
        }
    }

    /// The metadata key naming the tensors stored in this layout.
    pub fn key(self) -> &'static str {
        match self {
            Layout::Q8_0x16 => q8_0x16::KEY,
            Layout::F16x16 => f16x16::KEY,
        }
    }

    /// The layout's name, as in its key.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Q8_0x16 => "q8_0x16",
            Layout::F16x16 => "f16x16",
        }
    }

    /// Permutes one tensor's bytes (`rows` rows of `k` values) into this layout.
    fn repack(self, src: &[u8], dst: &mut [u8], rows: usize, k: usize) {
        match self {
            Layout::Q8_0x16 => q8_0x16::repack(src, dst, rows, k),
            Layout::F16x16 => f16x16::repack(src, dst, rows, k),
        }
    }
}

/// Whether this machine's CPU runs the interleaved kernels of both layouts (x86 with AVX2, FMA
/// and F16C, as ggml-cpu requires for them).
pub fn cpu_runs_interleaved_kernels() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the CPU backend repacks this tensor, in either layout.
pub fn is_repacked(t: &TensorInfo) -> bool {
    Layout::of(t).is_some()
}

/// The layout version a copy was written with ([`VERSION_KEY`]); `None` for a file without
/// the key (an original model, or a copy from before version 2).
pub fn layout_version(file: &GgufFile) -> Option<u64> {
    file.get_u64(VERSION_KEY)
}

/// Whether the file already is a copy with prepacked weights (it has a layout's key).
pub fn is_prepacked(file: &GgufFile) -> bool {
    Layout::ALL.iter().any(|l| file.get(l.key()).is_some())
}

/// How many tensors of each layout a copy of `source` stores prepacked (layouts with none
/// left out), in [`Layout::ALL`] order.
pub fn packed_counts(source: &GgufFile) -> Vec<(Layout, usize)> {
    packed_names(source)
        .into_iter()
        .map(|(layout, names)| (layout, names.len()))
        .collect()
}

/// The size of the copy [`write_prepacked_copy`] writes of `source`, for checking that a copy
/// on disk is whole.
pub fn copy_size(source: &GgufFile) -> u64 {
    let keys: usize = packed_names(source)
        .iter()
        .map(|(layout, names)| key_bytes(layout.key(), names).len())
        .sum::<usize>()
        + version_bytes().len();
    let table_end = source.tensor_table_end() + keys as u64;
    let data_offset = table_end.next_multiple_of(source.alignment());
    data_offset + (source.file_size() - source.data_offset())
}

/// Writes the copy of `source` with every tensor the CPU backend repacks stored in its
/// interleaved layout, at `dest` (atomically: see [`write_atomically`]). Returns how many
/// tensors it stored in each layout (see [`packed_counts`]), or `None` (and writes nothing)
/// when there is none to repack or the file already is such a copy.
pub fn write_prepacked_copy(
    source: &GgufFile,
    dest: &Path,
) -> Result<Option<Vec<(Layout, usize)>>, GgufError> {
    let names = packed_names(source);
    if names.is_empty() || is_prepacked(source) {
        return Ok(None);
    }
    let outcome = write_atomically(dest, |partial| {
        write_copy(source, &names, partial)?;
        Ok(None)
    })?;
    debug_assert!(outcome.is_none());
    Ok(Some(packed_counts(source)))
}

/// The tensors the CPU backend repacks, by layout (layouts with none left out), each in file
/// order.
fn packed_names(source: &GgufFile) -> Vec<(Layout, Vec<&str>)> {
    Layout::ALL
        .iter()
        .map(|&layout| {
            let names = source
                .tensors()
                .iter()
                .filter(|t| Layout::of(t) == Some(layout))
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>();
            (layout, names)
        })
        .filter(|(_, names)| !names.is_empty())
        .collect()
}

/// The metadata entry holding [`LAYOUT_VERSION`], as GGUF bytes.
fn version_bytes() -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(VERSION_KEY.len() as u64).to_le_bytes());
    out.extend_from_slice(VERSION_KEY.as_bytes());
    out.extend_from_slice(&GGUF_U32.to_le_bytes());
    out.extend_from_slice(&LAYOUT_VERSION.to_le_bytes());
    out
}

/// A metadata entry naming the packed tensors of one layout, as GGUF bytes.
fn key_bytes(key: &str, names: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    let string = |out: &mut Vec<u8>, s: &str| {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    };
    string(&mut out, key);
    out.extend_from_slice(&GGUF_ARRAY.to_le_bytes());
    out.extend_from_slice(&GGUF_STRING.to_le_bytes());
    out.extend_from_slice(&(names.len() as u64).to_le_bytes());
    for name in names {
        string(&mut out, name);
    }
    out
}

/// Writes the copy: the header with one more metadata entry per layout (the data section moves
/// by the entries' size, rounded to the alignment; tensor offsets are relative to it and stay),
/// then the data with the packed tensors permuted.
fn write_copy(
    source: &GgufFile,
    names: &[(Layout, Vec<&str>)],
    path: &Path,
) -> std::io::Result<()> {
    let bytes: &[u8] = &source.map;
    let mut out = AlignedWriter::new(File::create(path)?);
    // Magic, version and tensor count; then the metadata count, one more per layout and one
    // for the layout version.
    out.write_all(&bytes[..16])?;
    let n_kv = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
    out.write_all(&(n_kv + names.len() as u64 + 1).to_le_bytes())?;
    let metadata_end = source.tensor_table_offset() as usize;
    out.write_all(&bytes[24..metadata_end])?;
    let version = version_bytes();
    out.write_all(&version)?;
    let mut keys_len = version.len();
    for (layout, names) in names {
        let key = key_bytes(layout.key(), names);
        out.write_all(&key)?;
        keys_len += key.len();
    }
    let table_end = source.tensor_table_end() as usize;
    out.write_all(&bytes[metadata_end..table_end])?;
    let moved_end = (table_end + keys_len) as u64;
    let padding = moved_end.next_multiple_of(source.alignment()) - moved_end;
    out.write_all(&vec![0; padding as usize])?;

    let data = source.data_offset() as usize;
    let mut tensors: Vec<&TensorInfo> = source.tensors().iter().collect();
    tensors.sort_by_key(|t| t.offset);
    let mut cursor = data;
    let mut packed = Vec::new();
    for t in tensors {
        let start = data + t.offset as usize;
        let end = start + t.size as usize;
        out.write_all(&bytes[cursor..start])?; // alignment padding between tensors
        match Layout::of(t) {
            Some(layout) => {
                packed.resize(end - start, 0);
                let rows = (t.n_elements() / t.dims[0]) as usize;
                layout.repack(&bytes[start..end], &mut packed, rows, t.dims[0] as usize);
                out.write_all(&packed)?;
            }
            None => out.write_all(&bytes[start..end])?,
        }
        cursor = end;
    }
    out.write_all(&bytes[cursor..])?;
    out.finish()?.sync_all()
}

/// Huge pages (2 MiB) of the page cache, which the copy is read from.
const HUGE_PAGE: usize = 2 << 20;
/// How much [`AlignedWriter`] buffers before it writes.
const PIECE: usize = 4 * HUGE_PAGE;

/// Writes a file in large pieces that end at multiples of [`HUGE_PAGE`], so that the page
/// cache holds the copy in huge folios, which the kernel maps with one TLB entry each. Written
/// in pieces ending anywhere, about 40% of the 0.6B Q8_0 copy was mapped in 4 KiB pages, and
/// the kernels ran about 10% slower than on the huge-page buffer of a repack at load.
struct AlignedWriter {
    file: File,
    buf: Vec<u8>,
    /// File position of `buf[0]`.
    pos: usize,
}

impl AlignedWriter {
    fn new(file: File) -> Self {
        Self {
            file,
            buf: Vec::with_capacity(PIECE + HUGE_PAGE),
            pos: 0,
        }
    }

    /// Writes what is buffered and returns the file.
    fn finish(mut self) -> std::io::Result<File> {
        self.file.write_all(&self.buf)?;
        Ok(self.file)
    }
}

impl Write for AlignedWriter {
    /// Buffers at most [`PIECE`] bytes (and less than one huge page more): an untouched
    /// tensor is passed through in pieces, never copied whole (the F16 vocabulary matrix alone
    /// is 311 MB, which would add to the peak memory of the run that writes the copy).
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let mut rest = data;
        while !rest.is_empty() {
            let take = rest.len().min(PIECE.saturating_sub(self.buf.len()).max(1));
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buf.len() >= PIECE {
                let end = (self.pos + self.buf.len()) / HUGE_PAGE * HUGE_PAGE;
                let n = end - self.pos;
                self.file.write_all(&self.buf[..n])?;
                self.buf.drain(..n);
                self.pos = end;
            }
        }
        Ok(data.len())
    }

    /// Buffered bytes are written by [`finish`](Self::finish) only, to keep the pieces
    /// aligned.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_aligned_writer_writes_every_byte_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let mut expected = Vec::new();
        let mut out = AlignedWriter::new(File::create(&path).unwrap());
        // Small pieces, one of several huge pages (an untouched tensor), odd lengths.
        for (i, len) in [3, HUGE_PAGE - 1, 5 * PIECE + 7, 0, 12345, PIECE, 1]
            .iter()
            .enumerate()
        {
            let piece: Vec<u8> = (0..*len).map(|j| (i * 31 + j * 7) as u8).collect();
            out.write_all(&piece).unwrap();
            assert!(out.buf.len() < PIECE, "{} bytes buffered", out.buf.len());
            assert_eq!(out.pos % HUGE_PAGE, 0, "a piece ended off a huge page");
            expected.extend_from_slice(&piece);
        }
        out.finish().unwrap();
        assert!(std::fs::read(&path).unwrap() == expected);
    }
}
