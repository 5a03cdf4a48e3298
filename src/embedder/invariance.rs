//! Whether texts packed into one CPU decode get, bit for bit, the vectors they get alone.
//!
//! That depends on every kernel a decode runs, so it is decided per model file and setting
//! (each case is tested in `tests/batch_invariance.rs`):
//!
//! - Attention: ggml's CPU flash attention is batch-invariant on x86 with our vendor patch 7
//!   (vendor/PATCHES.md). With flash attention off, llama.cpp multiplies, softmaxes and
//!   multiplies again over the whole shared KV cache, and those sums run in SIMD lanes counted
//!   from cell 0, so a text packed at another cell is summed in another order (an F16 model:
//!   every component of a 100-token text moved).
//! - Matrix products: Q8_0 and F16 weights run on our interleaved kernels (patches 1 and 6),
//!   which compute every output as one FP32 FMA chain whatever the number of rows. Q5_0 runs
//!   on llamafile's tinyBLAS from 2 rows and on `vec_dot` for one, which compute each output
//!   alike (8 float lanes, one FMA per 32-value block, the same horizontal sum). ggml's other
//!   paths pick kernels that round differently by the number of rows a product has, and a
//!   text alone has one row in the last layer (only its last token is read): tinyBLAS for F32
//!   and BF16 sums 16 lanes, `vec_dot` 64 in four chains; K-quants take a tiled kernel from 8
//!   rows and `vec_dot` below.
//!
//! Where packing is not invariant, the embedder decodes one text per decode by default
//! (`EmbedderOptions::batch_invariant`); what that costs is measured in docs/BENCHMARKS.md
//! ("The same vector whatever the batch").

use crate::engine::FlashAttention;
use crate::gguf::{GgufFile, TensorInfo, prepack};

/// Whether a decode that packs several texts gives each the vector it gets alone, on this CPU,
/// for the weights in `weights` (the file llama.cpp loads) and this flash-attention setting.
pub(crate) fn packing_is_batch_invariant(
    weights: &GgufFile,
    flash_attention: FlashAttention,
) -> bool {
    cfg!(target_arch = "x86_64")
        && flash_attention != FlashAttention::Off
        && prepack::cpu_runs_interleaved_kernels()
        && weights
            .tensors()
            .iter()
            .filter(|t| multiplied(t))
            .all(row_count_invariant)
}

/// Whether a decode multiplies activations by this tensor: every matrix but the vocabulary
/// ones (the token embeddings are looked up, and the LM head is never computed for LAST
/// pooling's vectors).
fn multiplied(t: &TensorInfo) -> bool {
    t.dims.len() >= 2
        && t.dims[1..].iter().product::<u64>() > 1
        && !matches!(t.name.as_str(), "token_embd.weight" | "output.weight")
}

/// Matrices whose products give each output the same value whatever the number of rows (on
/// x86 with AVX2, FMA and F16C): Q8_0 and F16 on our q8_0x16 and f16x16 kernels, Q5_0 on
/// tinyBLAS and `vec_dot` alike.
fn row_count_invariant(t: &TensorInfo) -> bool {
    matches!(t.tensor_type.name, "q8_0" | "f16" | "q5_0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::TensorType;

    fn tensor(name: &str, dims: &[u64], type_name: &str) -> TensorInfo {
        let tensor_type = (0..64)
            .filter_map(TensorType::from_tag)
            .find(|t| t.name == type_name)
            .unwrap();
        TensorInfo {
            name: name.to_string(),
            dims: dims.to_vec(),
            tensor_type,
            offset: 0,
            size: 0,
        }
    }

    #[test]
    fn only_q8_0_f16_and_q5_0_products_are_row_count_invariant() {
        for invariant in ["q8_0", "f16", "q5_0"] {
            let t = tensor("blk.0.attn_q.weight", &[256, 256], invariant);
            assert!(row_count_invariant(&t), "{invariant}");
        }
        for other in ["f32", "bf16", "q4_K", "q5_K", "q6_K", "q4_0"] {
            let t = tensor("blk.0.ffn_up.weight", &[256, 512], other);
            assert!(!row_count_invariant(&t), "{other}");
        }
    }

    #[test]
    fn vocabulary_matrices_and_vectors_are_not_multiplied() {
        assert!(!multiplied(&tensor(
            "token_embd.weight",
            &[64, 151669],
            "q6_K"
        )));
        assert!(!multiplied(&tensor("output.weight", &[64, 151669], "q6_K")));
        assert!(!multiplied(&tensor("blk.0.attn_norm.weight", &[64], "f32")));
        assert!(multiplied(&tensor(
            "blk.0.ffn_down.weight",
            &[128, 64],
            "q6_K"
        )));
    }
}
