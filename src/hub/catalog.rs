//! The official Qwen3-Embedding GGUF files, compiled in from `models/catalog.tsv`.

use serde::Serialize;

/// One official model file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CatalogEntry {
    /// Model size: `0.6B`, `4B` or `8B`.
    pub size: &'static str,
    /// Quantization: `Q8_0`, `F16`, `Q4_K_M`, ...
    pub quant: &'static str,
    /// Output dimensions (the hidden size).
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

/// Every official file, smallest model first.
pub fn catalog() -> &'static [CatalogEntry] {
    CATALOG
}

static CATALOG: &[CatalogEntry] = include!(concat!(env!("OUT_DIR"), "/catalog.rs"));

/// The default model size.
pub const DEFAULT_SIZE: &str = "0.6B";
/// The default quantization.
pub const DEFAULT_QUANT: &str = "Q8_0";

/// Looks up an official file by size and quantization (case-insensitive).
pub fn find(size: &str, quant: &str) -> Option<&'static CatalogEntry> {
    CATALOG
        .iter()
        .find(|e| e.size.eq_ignore_ascii_case(size) && e.quant.eq_ignore_ascii_case(quant))
}

/// The quantizations offered for a size.
pub fn quants_of(size: &str) -> Vec<&'static str> {
    CATALOG
        .iter()
        .filter(|e| e.size.eq_ignore_ascii_case(size))
        .map(|e| e.quant)
        .collect()
}

/// The sizes in the catalog.
pub fn sizes() -> Vec<&'static str> {
    let mut sizes: Vec<&str> = CATALOG.iter().map(|e| e.size).collect();
    sizes.dedup();
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_official_files_are_pinned() {
        let q8 = find("0.6b", "q8_0").unwrap();
        assert_eq!(q8.repo, "Qwen/Qwen3-Embedding-0.6B-GGUF");
        assert_eq!(q8.file, "Qwen3-Embedding-0.6B-Q8_0.gguf");
        assert_eq!(q8.bytes, Some(639_150_592));
        assert_eq!(
            q8.sha256,
            Some("06507c7b42688469c4e7298b0a1e16deff06caf291cf0a5b278c308249c3e439")
        );
        let f16 = find("0.6B", "F16").unwrap();
        assert_eq!(f16.file, "Qwen3-Embedding-0.6B-f16.gguf");
        assert_eq!(quants_of("0.6B"), ["Q8_0", "F16"]);
    }

    #[test]
    fn larger_models_offer_more_quantizations() {
        assert_eq!(sizes(), ["0.6B", "4B", "8B"]);
        let q4 = find("4B", "Q4_K_M").unwrap();
        assert_eq!(q4.file, "Qwen3-Embedding-4B-Q4_K_M.gguf");
        assert_eq!(q4.dimensions, 2560);
        assert_eq!(q4.sha256, None);
        assert_eq!(quants_of("8B").len(), 6);
        assert!(find("0.6B", "Q4_K_M").is_none());
    }
}
