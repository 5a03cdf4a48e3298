//! The `f16x16` layout of F16 weights, in which the x86 kernels multiply them.
//!
//! On x86 our patched ggml (vendor/PATCHES.md, patch 6) multiplies F16 weights by F32
//! activations in an interleaved layout (`ggml-cpu/arch/x86/f16x16.h`): the rows are taken in
//! groups of 16, the last group holding the `r <= 16` rows left; group `g` starts at element
//! `16 g K` (`K` values per row) and holds, for `k = 0 .. K-1` in order, value `k` of each of its
//! `r` rows, row by row. The tensor keeps its size and its values; only their order changes.
//! This module says which tensors the CPU backend repacks that way and permutes a tensor's
//! bytes exactly as the backend does at load; [`prepack`](super::prepack) writes the copies of
//! models with their weights stored in it, marked by [`KEY`].

use super::TensorInfo;
use super::q8_0x16::ggml_n_dims;

/// The metadata key naming the tensors stored in the interleaved layout.
pub const KEY: &str = "gguf_embed.f16x16";

/// ggml's tensor type tag for F16.
const F16: u32 = 1;
/// Weight rows per interleaved group.
const ROWS: usize = 16;

/// Whether the CPU backend repacks this tensor as `f16x16`: a 2-D F16 weight other than the
/// vocabulary matrices (which gguf-embed never multiplies; see vendor/PATCHES.md). The same
/// rule as `ggml_repack_get_optimal_repack_type` in the patched `repack.cpp`.
pub fn is_repacked(t: &TensorInfo) -> bool {
    t.tensor_type.tag == F16
        && ggml_n_dims(&t.dims) == 2
        && t.name != "token_embd.weight"
        && t.name != "output.weight"
}

/// Repacks `rows` F16 rows of `k` values from the file's layout (`src`, little-endian bytes)
/// into the interleaved one (`dst`, the same size): in each group of 16 rows starting at row
/// `g0` (the last may hold fewer, `r`), value `j` of the group's row `i` goes to element
/// `g0 k + j r + i`. The same permutation as `f16x16::repack` in ggml-cpu.
pub fn repack(src: &[u8], dst: &mut [u8], rows: usize, k: usize) {
    assert_eq!(src.len(), rows * k * 2);
    assert_eq!(dst.len(), src.len());
    for g0 in (0..rows).step_by(ROWS) {
        let r = (rows - g0).min(ROWS);
        let group = &src[g0 * k * 2..(g0 + r) * k * 2];
        let out = &mut dst[g0 * k * 2..(g0 + r) * k * 2];
        for (i, row) in group.chunks_exact(k * 2).enumerate() {
            for (j, value) in row.chunks_exact(2).enumerate() {
                let at = 2 * (j * r + i);
                out[at..at + 2].copy_from_slice(value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `rows` rows of `k` values where every value says where it came from: row and column.
    fn tagged(rows: usize, k: usize) -> Vec<u8> {
        (0..rows)
            .flat_map(|i| (0..k).map(move |j| ((i << 8) | j) as u16))
            .flat_map(u16::to_le_bytes)
            .collect()
    }

    fn at(bytes: &[u8], element: usize) -> u16 {
        u16::from_le_bytes([bytes[2 * element], bytes[2 * element + 1]])
    }

    #[test]
    fn repack_is_the_documented_permutation() {
        // Full groups, a tail group of 1, 3 and 15 rows, fewer rows than a group, odd K.
        for (rows, k) in [(16, 8), (32, 64), (17, 5), (35, 7), (3, 9), (31, 1), (1, 3)] {
            let src = tagged(rows, k);
            let mut dst = vec![0u8; src.len()];
            repack(&src, &mut dst, rows, k);
            // Walk the layout as documented: group by group, value by value, row by row.
            let mut element = 0;
            for g0 in (0..rows).step_by(16) {
                let r = (rows - g0).min(16);
                for j in 0..k {
                    for i in 0..r {
                        let want = (((g0 + i) << 8) | j) as u16;
                        assert_eq!(
                            at(&dst, element),
                            want,
                            "{rows}x{k}: row {}, value {j}",
                            g0 + i
                        );
                        element += 1;
                    }
                }
            }
            assert_eq!(element, rows * k);
        }
    }

    #[test]
    fn only_2d_f16_matrices_outside_the_vocabulary_are_repacked() {
        use crate::gguf::TensorType;
        let tensor = |name: &str, tag: u32, dims: &[u64]| TensorInfo {
            name: name.into(),
            dims: dims.to_vec(),
            tensor_type: TensorType::from_tag(tag).unwrap(),
            offset: 0,
            size: 0,
        };
        assert!(is_repacked(&tensor(
            "blk.0.ffn_up.weight",
            F16,
            &[1024, 3072]
        )));
        assert!(is_repacked(&tensor(
            "blk.0.attn_k.weight",
            F16,
            &[1024, 8, 1, 1]
        )));
        assert!(!is_repacked(&tensor(
            "token_embd.weight",
            F16,
            &[1024, 151669]
        )));
        assert!(!is_repacked(&tensor("output.weight", F16, &[1024, 151669])));
        assert!(!is_repacked(&tensor(
            "blk.0.attn_norm.weight",
            F16,
            &[1024]
        )));
        assert!(!is_repacked(&tensor(
            "blk.0.ffn_up.weight",
            0,
            &[1024, 3072]
        )));
        assert!(!is_repacked(&tensor(
            "blk.0.ffn_up.weight",
            8,
            &[1024, 3072]
        )));
        assert!(!is_repacked(&tensor("blk.0.experts", F16, &[64, 32, 8])));
    }
}
