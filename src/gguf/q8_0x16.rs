//! The `q8_0x16` layout of Q8_0 weights, in which the x86 kernels multiply them.
//!
//! On x86 our patched ggml (vendor/PATCHES.md, patch 1) multiplies Q8_0 weights in an
//! interleaved layout: groups of 16 rows, 4 values of each row at a time. This module says which
//! tensors the CPU backend repacks that way and permutes a tensor's bytes into the layout
//! exactly as the backend does at load; [`prepack`](super::prepack) writes the copies of
//! models with their weights stored in it, marked by [`KEY`].

use super::TensorInfo;

/// The metadata key naming the tensors stored in the interleaved layout.
pub const KEY: &str = "gguf_embed.q8_0x16";

/// ggml's tensor type tag for Q8_0.
const Q8_0: u32 = 8;
/// Values per Q8_0 block, and the block's bytes (an f16 scale and 32 signed bytes).
const QK: usize = 32;
const BLOCK_BYTES: usize = 34;
/// Weight rows per interleaved group.
const ROWS: usize = 16;

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
pub(super) fn ggml_n_dims(dims: &[u64]) -> usize {
    dims.iter().rposition(|&d| d > 1).map_or(1, |i| i + 1)
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
