//! Copies of Q8_0 models with their weights already in the CPU kernels' layout (`q8_0x16`).
//!
//! On x86 our patched ggml (vendor/PATCHES.md) multiplies Q8_0 weights in an interleaved
//! layout: groups of 16 rows, 4 values of each row at a time. Repacking at load needs a fresh
//! buffer the size of the weights (446 MiB for the 0.6B model), and on a machine where that
//! memory is not yet backed, the kernel zeroing those pages is the largest part of the start
//! (docs/BENCHMARKS.md, "Start-up": `perf` and `bench/startup.sh`). A copy of the file whose
//! weights are stored already in that layout is used where it is memory-mapped, like any
//! model file: no copy, no fresh memory, and the page cache is shared between processes.
//!
//! The copy is the original file with one metadata key added, `gguf_embed.q8_0x16`: the names
//! of the tensors stored in the layout. The values and scales are the file's own, in another
//! order, so the vectors are bit for bit those of the in-memory repack. llama.cpp's loader (our
//! patch) uses those tensors only where this build's CPU backend would itself repack them as
//! `q8_0x16`, and refuses to load the copy otherwise.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use super::repack::write_atomically;
use super::{GgufError, GgufFile, TensorInfo};

/// The metadata key naming the tensors stored in the interleaved layout.
pub const KEY: &str = "gguf_embed.q8_0x16";

/// ggml's tensor type tag for Q8_0.
const Q8_0: u32 = 8;
/// Values per Q8_0 block, and the block's bytes (an f16 scale and 32 signed bytes).
const QK: usize = 32;
const BLOCK_BYTES: usize = 34;
/// Weight rows per interleaved group.
const ROWS: usize = 16;
/// GGUF metadata value types used by the key.
const GGUF_STRING: u32 = 8;
const GGUF_ARRAY: u32 = 9;

/// Whether the CPU backend repacks this tensor as `q8_0x16`: a 2-D Q8_0 weight other than the
/// vocabulary matrices (which gguf-embed never multiplies; see vendor/PATCHES.md). The same
/// rule as `ggml_repack_get_optimal_repack_type` in the patched `repack.cpp`.
pub fn is_repacked(t: &TensorInfo) -> bool {
    t.tensor_type.tag == Q8_0
        && ggml_n_dims(&t.dims) == 2
        && t.name != "token_embd.weight"
        && t.name != "output.weight"
}

/// ggml's `ggml_n_dims`: dimensions up to the last one larger than 1 (at least 1).
fn ggml_n_dims(dims: &[u64]) -> usize {
    dims.iter().rposition(|&d| d > 1).map_or(1, |i| i + 1)
}

/// Whether this machine's CPU runs the `q8_0x16` kernels (x86 with AVX2, FMA and F16C, as
/// ggml-cpu requires for them).
pub fn cpu_runs_q8_0x16() -> bool {
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

/// Repacks `rows` Q8_0 rows of `k` values from the file's layout (`src`) into the interleaved
/// one (`dst`, the same size): for each group of 16 rows (the last may hold fewer, `r`), for
/// each block, the `r` f16 scales, then 8 steps of `r` x 4 bytes (values 4s..4s+3 of each
/// row), every value stored as `q XOR 0x80`.
pub fn repack(src: &[u8], dst: &mut [u8], rows: usize, k: usize) {
    let nb = k / QK;
    assert_eq!(src.len(), rows * nb * BLOCK_BYTES);
    assert_eq!(dst.len(), src.len());
    let mut out = 0;
    for g0 in (0..rows).step_by(ROWS) {
        let r = (rows - g0).min(ROWS);
        for b in 0..nb {
            let block = |i: usize| (g0 + i) * nb * BLOCK_BYTES + b * BLOCK_BYTES;
            for i in 0..r {
                dst[out..out + 2].copy_from_slice(&src[block(i)..block(i) + 2]);
                out += 2;
            }
            for s in 0..QK / 4 {
                for i in 0..r {
                    let at = block(i) + 2 + 4 * s;
                    for j in 0..4 {
                        dst[out + j] = src[at + j] ^ 0x80;
                    }
                    out += 4;
                }
            }
        }
    }
}

/// The size of the copy [`write_q8_0x16_copy`] writes of `source`, for checking that a copy
/// on disk is whole.
pub fn copy_size(source: &GgufFile) -> u64 {
    let names = packed_names(source);
    let table_end = source.tensor_table_end() + key_bytes(&names).len() as u64;
    let data_offset = table_end.next_multiple_of(source.alignment());
    data_offset + (source.file_size() - source.data_offset())
}

/// Writes the copy of `source` with its repacked tensors in the `q8_0x16` layout at `dest`
/// (atomically: see [`write_atomically`]). Returns how many tensors it repacked, or `None`
/// (and writes nothing) when there is none to repack or the file already is such a copy.
pub fn write_q8_0x16_copy(source: &GgufFile, dest: &Path) -> Result<Option<usize>, GgufError> {
    let names = packed_names(source);
    if names.is_empty() || source.get(KEY).is_some() {
        return Ok(None);
    }
    let outcome = write_atomically(dest, |partial| {
        write_copy(source, &names, partial)?;
        Ok(None)
    })?;
    debug_assert!(outcome.is_none());
    Ok(Some(names.len()))
}

/// The tensors the CPU backend repacks, in file order.
fn packed_names(source: &GgufFile) -> Vec<&str> {
    source
        .tensors()
        .iter()
        .filter(|t| is_repacked(t))
        .map(|t| t.name.as_str())
        .collect()
}

/// The metadata entry naming the packed tensors, as GGUF bytes.
fn key_bytes(names: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    let string = |out: &mut Vec<u8>, s: &str| {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    };
    string(&mut out, KEY);
    out.extend_from_slice(&GGUF_ARRAY.to_le_bytes());
    out.extend_from_slice(&GGUF_STRING.to_le_bytes());
    out.extend_from_slice(&(names.len() as u64).to_le_bytes());
    for name in names {
        string(&mut out, name);
    }
    out
}

/// Writes the copy: the header with one more metadata entry (the data section moves by the
/// entry's size, rounded to the alignment; tensor offsets are relative to it and stay), then
/// the data with the packed tensors permuted.
fn write_copy(source: &GgufFile, names: &[&str], path: &Path) -> std::io::Result<()> {
    let bytes: &[u8] = &source.map;
    let mut out = AlignedWriter::new(File::create(path)?);
    // Magic, version and tensor count; then the metadata count, one more.
    out.write_all(&bytes[..16])?;
    let n_kv = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
    out.write_all(&(n_kv + 1).to_le_bytes())?;
    let metadata_end = source.tensor_table_offset() as usize;
    out.write_all(&bytes[24..metadata_end])?;
    let key = key_bytes(names);
    out.write_all(&key)?;
    let table_end = source.tensor_table_end() as usize;
    out.write_all(&bytes[metadata_end..table_end])?;
    let moved_end = (table_end + key.len()) as u64;
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
        if is_repacked(t) {
            packed.resize(end - start, 0);
            let rows = (t.n_elements() / t.dims[0]) as usize;
            repack(&bytes[start..end], &mut packed, rows, t.dims[0] as usize);
            out.write_all(&packed)?;
        } else {
            out.write_all(&bytes[start..end])?;
        }
        cursor = end;
    }
    out.write_all(&bytes[cursor..])?;
    out.finish()?.sync_all()
}

/// Huge pages (2 MiB) of the page cache, which the copy is read from.
const HUGE_PAGE: usize = 2 << 20;

/// Writes a file in large pieces that end at multiples of [`HUGE_PAGE`], so that the page
/// cache holds the copy in huge folios, which the kernel maps with one TLB entry each. Written
/// in pieces ending anywhere, about 40% of the 0.6B copy was mapped in 4 KiB pages, and the
/// kernels ran about 10% slower than on the huge-page buffer of a repack at load.
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
            buf: Vec::with_capacity(4 * HUGE_PAGE),
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
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 4 * HUGE_PAGE {
            let end = (self.pos + self.buf.len()) / HUGE_PAGE * HUGE_PAGE;
            let n = end - self.pos;
            self.file.write_all(&self.buf[..n])?;
            self.buf.drain(..n);
            self.pos = end;
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

    /// Builds `rows` Q8_0 rows of `k` values where every byte says where it came from.
    fn rows_of(rows: usize, k: usize) -> Vec<u8> {
        let nb = k / QK;
        let mut src = vec![0u8; rows * nb * BLOCK_BYTES];
        for (i, b) in src.iter_mut().enumerate() {
            *b = (i * 7 + i / 251) as u8;
        }
        src
    }

    #[test]
    fn repack_is_the_documented_permutation() {
        for (rows, k) in [(16, 32), (40, 64), (3, 96), (33, 32)] {
            let src = rows_of(rows, k);
            let mut dst = vec![0u8; src.len()];
            repack(&src, &mut dst, rows, k);
            let nb = k / QK;
            // Walk the layout as documented and check every byte against its source.
            let mut at = 0;
            for g0 in (0..rows).step_by(ROWS) {
                let r = (rows - g0).min(ROWS);
                for b in 0..nb {
                    for i in 0..r {
                        let block = ((g0 + i) * nb + b) * BLOCK_BYTES;
                        assert_eq!(dst[at + 2 * i..at + 2 * i + 2], src[block..block + 2]);
                    }
                    at += 2 * r;
                    for s in 0..8 {
                        for i in 0..r {
                            let block = ((g0 + i) * nb + b) * BLOCK_BYTES;
                            for j in 0..4 {
                                assert_eq!(dst[at + 4 * i + j], src[block + 2 + 4 * s + j] ^ 0x80);
                            }
                        }
                        at += 4 * r;
                    }
                }
            }
            assert_eq!(at, dst.len());
        }
    }

    #[test]
    fn n_dims_follows_ggml() {
        assert_eq!(ggml_n_dims(&[1024, 3072]), 2);
        assert_eq!(ggml_n_dims(&[1024, 1]), 1);
        assert_eq!(ggml_n_dims(&[1024]), 1);
        assert_eq!(ggml_n_dims(&[64, 8, 4]), 3);
        assert_eq!(ggml_n_dims(&[64, 8, 1, 1]), 2);
    }
}
