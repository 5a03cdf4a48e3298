//! The GGUF files gguf-embed knows by name (the official Qwen3-Embedding files and the default
//! Qwen3-Reranker file), compiled in from `models/catalog.tsv`.

use serde::Serialize;

use crate::gguf::ModelKind;

/// One model file of the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CatalogEntry {
    /// What the model is for: [`ModelKind::Embedding`] or [`ModelKind::Reranker`].
    pub kind: ModelKind,
    /// Model size: `0.6B`, `4B` or `8B`.
    pub size: &'static str,
    /// Quantization: `Q8_0`, `F16`, `Q4_K_M`, ...
    pub quant: &'static str,
    /// The hidden size (an embedding model's output dimensions).
    pub dimensions: u32,
    /// The Hugging Face repository.
    pub repo: &'static str,
    /// The file in the repository.
    pub file: &'static str,
    /// The file size, when pinned.
    pub bytes: Option<u64>,
    /// The file's sha256, when pinned; otherwise downloads are checked against the Hub's hash.
    pub sha256: Option<&'static str>,
}

/// Every file, embedding models first, smallest model first.
pub fn catalog() -> &'static [CatalogEntry] {
    CATALOG
}

static CATALOG: &[CatalogEntry] = include!(concat!(env!("OUT_DIR"), "/catalog.rs"));

/// The default model size.
pub const DEFAULT_SIZE: &str = "0.6B";
/// The default quantization.
pub const DEFAULT_QUANT: &str = "Q8_0";

/// Looks up a file of `kind` by size and quantization (case-insensitive).
pub fn find_of(kind: ModelKind, size: &str, quant: &str) -> Option<&'static CatalogEntry> {
    CATALOG.iter().find(|e| {
        e.kind == kind && e.size.eq_ignore_ascii_case(size) && e.quant.eq_ignore_ascii_case(quant)
    })
}

/// The default reranker: the 0.6B Q8_0 file.
pub fn default_reranker() -> &'static CatalogEntry {
    find_of(ModelKind::Reranker, DEFAULT_SIZE, DEFAULT_QUANT)
        .expect("models/catalog.tsv lists the default reranker")
}

/// The quantizations offered for a size of `kind`.
pub fn quants_of_kind(kind: ModelKind, size: &str) -> Vec<&'static str> {
    CATALOG
        .iter()
        .filter(|e| e.kind == kind && e.size.eq_ignore_ascii_case(size))
        .map(|e| e.quant)
        .collect()
}

/// The sizes of `kind` in the catalog.
pub fn sizes_of(kind: ModelKind) -> Vec<&'static str> {
    let mut sizes: Vec<&str> = CATALOG
        .iter()
        .filter(|e| e.kind == kind)
        .map(|e| e.size)
        .collect();
    sizes.dedup();
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_official_files_are_pinned() {
        let q8 = find_of(ModelKind::Embedding, "0.6b", "q8_0").unwrap();
        assert_eq!(q8.repo, "Qwen/Qwen3-Embedding-0.6B-GGUF");
        assert_eq!(q8.file, "Qwen3-Embedding-0.6B-Q8_0.gguf");
        assert_eq!(q8.bytes, Some(639_150_592));
        assert_eq!(
            q8.sha256,
            Some("06507c7b42688469c4e7298b0a1e16deff06caf291cf0a5b278c308249c3e439")
        );
        let f16 = find_of(ModelKind::Embedding, "0.6B", "F16").unwrap();
        assert_eq!(f16.file, "Qwen3-Embedding-0.6B-f16.gguf");
        assert_eq!(
            quants_of_kind(ModelKind::Embedding, "0.6B"),
            ["Q8_0", "F16"]
        );
    }

    #[test]
    fn larger_models_offer_more_quantizations() {
        assert_eq!(sizes_of(ModelKind::Embedding), ["0.6B", "4B", "8B"]);
        let q4 = find_of(ModelKind::Embedding, "4B", "Q4_K_M").unwrap();
        assert_eq!(q4.file, "Qwen3-Embedding-4B-Q4_K_M.gguf");
        assert_eq!(q4.dimensions, 2560);
        assert_eq!(q4.sha256, None);
        assert_eq!(quants_of_kind(ModelKind::Embedding, "8B").len(), 6);
        assert!(find_of(ModelKind::Embedding, "0.6B", "Q4_K_M").is_none());
    }

    #[test]
    fn the_default_reranker_is_llama_cpps_conversion() {
        let r = default_reranker();
        assert_eq!(r.kind, ModelKind::Reranker);
        assert_eq!(r.repo, "ggml-org/Qwen3-Reranker-0.6B-Q8_0-GGUF");
        assert_eq!(r.file, "qwen3-reranker-0.6b-q8_0.gguf");
        // No independent pin: downloads are checked against the sha256 the Hub publishes.
        assert_eq!(r.sha256, None);
        assert_eq!(sizes_of(ModelKind::Reranker), ["0.6B"]);
        // The same size and quantization name another file for each kind.
        let embedding = find_of(ModelKind::Embedding, "0.6B", "Q8_0").unwrap();
        assert_eq!(embedding.repo, "Qwen/Qwen3-Embedding-0.6B-GGUF");
        assert!(find_of(ModelKind::Reranker, "0.6B", "F16").is_none());
        assert!(catalog().iter().all(|e| e.kind != ModelKind::Unknown));
    }
}
