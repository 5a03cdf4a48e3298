//! Unit tests of the GGUF reader over small files built byte by byte.

use super::*;

/// Builds GGUF files for tests.
struct Builder {
    version: u32,
    kv: Vec<u8>,
    n_kv: u64,
    tensors: Vec<u8>,
    n_tensors: u64,
    data: Vec<u8>,
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s);
}

impl Builder {
    fn new() -> Self {
        Self {
            version: 3,
            kv: Vec::new(),
            n_kv: 0,
            tensors: Vec::new(),
            n_tensors: 0,
            data: Vec::new(),
        }
    }

    fn raw_kv(mut self, key: &str, tag: u32, payload: &[u8]) -> Self {
        string(&mut self.kv, key.as_bytes());
        self.kv.extend_from_slice(&tag.to_le_bytes());
        self.kv.extend_from_slice(payload);
        self.n_kv += 1;
        self
    }

    fn kv_str(self, key: &str, value: &str) -> Self {
        let mut p = Vec::new();
        string(&mut p, value.as_bytes());
        self.raw_kv(key, 8, &p)
    }

    fn kv_u32(self, key: &str, value: u32) -> Self {
        self.raw_kv(key, 4, &value.to_le_bytes())
    }

    fn kv_strings(self, key: &str, values: &[&str]) -> Self {
        let mut p = Vec::new();
        p.extend_from_slice(&8u32.to_le_bytes());
        p.extend_from_slice(&(values.len() as u64).to_le_bytes());
        for v in values {
            string(&mut p, v.as_bytes());
        }
        self.raw_kv(key, 9, &p)
    }

    /// An F32 tensor with the given dims, its data appended (32-byte aligned).
    fn tensor_f32(mut self, name: &str, dims: &[u64]) -> Self {
        string(&mut self.tensors, name.as_bytes());
        self.tensors
            .extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in dims {
            self.tensors.extend_from_slice(&d.to_le_bytes());
        }
        self.tensors.extend_from_slice(&0u32.to_le_bytes());
        self.data.resize(self.data.len().next_multiple_of(32), 0);
        let offset = self.data.len() as u64;
        self.tensors.extend_from_slice(&offset.to_le_bytes());
        let n: u64 = dims.iter().product();
        self.data.resize(self.data.len() + (n as usize) * 4, 0);
        self.n_tensors += 1;
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.n_tensors.to_le_bytes());
        out.extend_from_slice(&self.n_kv.to_le_bytes());
        out.extend_from_slice(&self.kv);
        out.extend_from_slice(&self.tensors);
        out.resize(out.len().next_multiple_of(32), 0);
        out.extend_from_slice(&self.data);
        out
    }

    /// A minimal model that passes every check of [`ModelInfo`].
    fn qwen3() -> Self {
        Self::new()
            .kv_str("general.architecture", "qwen3")
            .kv_u32("qwen3.embedding_length", 4)
            .kv_u32("qwen3.block_count", 1)
            .kv_u32("qwen3.attention.head_count", 2)
            .kv_u32("qwen3.attention.head_count_kv", 1)
            .kv_u32("qwen3.feed_forward_length", 8)
            .kv_u32("qwen3.context_length", 64)
            .kv_u32("qwen3.pooling_type", 3)
            .kv_str("tokenizer.ggml.model", "gpt2")
            .kv_strings("tokenizer.ggml.tokens", &["a", "b", "<|endoftext|>"])
            .tensor_f32("token_embd.weight", &[4, 3])
            .tensor_f32("output_norm.weight", &[4])
            .tensor_f32("blk.0.ffn_norm.weight", &[4])
    }
}

fn open_bytes(bytes: &[u8]) -> Result<GgufFile, GgufError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    std::fs::write(&path, bytes).unwrap();
    GgufFile::open(&path)
}

fn info_of(bytes: &[u8]) -> Result<ModelInfo, GgufError> {
    ModelInfo::from_gguf(&open_bytes(bytes)?)
}

#[test]
fn reads_a_valid_file() {
    let file = open_bytes(&Builder::qwen3().bytes()).unwrap();
    assert_eq!(file.version(), 3);
    assert_eq!(file.get_str("general.architecture"), Some("qwen3"));
    assert_eq!(file.get_u64("qwen3.embedding_length"), Some(4));
    assert_eq!(file.tensors().len(), 3);
    assert_eq!(file.tensor("token_embd.weight").unwrap().size, 48);
    let Some(Value::Array(tokens)) = file.get("tokenizer.ggml.tokens") else {
        panic!("tokens missing")
    };
    let pieces: Vec<&[u8]> = file.array_strings(tokens).unwrap().collect();
    assert_eq!(pieces, [&b"a"[..], b"b", b"<|endoftext|>"]);

    let info = ModelInfo::from_gguf(&file).unwrap();
    assert_eq!(info.architecture, "qwen3");
    assert_eq!(info.end_of_text_id, 2);
    assert_eq!(info.vocab_size, 3);
    assert_eq!(info.pooling.as_deref(), Some("last"));
    assert_eq!(info.parameters, 12 + 4 + 4);
}

#[test]
fn rejects_files_that_are_not_gguf() {
    let err = open_bytes(b"PK\x03\x04 this is a zip").unwrap_err();
    assert!(matches!(err, GgufError::NotGguf { .. }));
    assert!(err.to_string().contains("bytes 50 4b 03 04"), "{err}");

    let err = open_bytes(b"").unwrap_err();
    assert!(err.to_string().contains("the file is empty"), "{err}");

    let err = open_bytes(b"<!DOCTYPE html><html>").unwrap_err();
    assert!(err.to_string().contains("\"<!DO\""), "{err}");
}

#[test]
fn rejects_unsupported_versions() {
    let mut b = Builder::qwen3();
    b.version = 1;
    assert!(matches!(
        open_bytes(&b.bytes()),
        Err(GgufError::UnsupportedVersion(1))
    ));
    b.version = 99;
    assert!(matches!(
        open_bytes(&b.bytes()),
        Err(GgufError::UnsupportedVersion(99))
    ));
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let bytes = Builder::qwen3().bytes();
    for len in 0..bytes.len() {
        let result = open_bytes(&bytes[..len]);
        assert!(
            result.is_err(),
            "a file cut at {len} of {} bytes was accepted",
            bytes.len()
        );
    }
    let err = open_bytes(&bytes[..bytes.len() - 1]).unwrap_err();
    assert!(matches!(err, GgufError::Truncated { .. }), "{err}");
    assert!(err.to_string().contains("download it again"), "{err}");
}

#[test]
fn corrupted_bytes_never_panic() {
    // Flip bytes all over a valid file (deterministically): every outcome must be a value.
    let bytes = Builder::qwen3().bytes();
    let mut state = 0x2545_f491_u32;
    for _ in 0..3000 {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let mut copy = bytes.clone();
        let at = state as usize % copy.len();
        copy[at] ^= (state >> 8) as u8 | 1;
        if let Ok(file) = open_bytes(&copy) {
            let _ = ModelInfo::from_gguf(&file);
        }
    }
}

#[test]
fn rejects_impossible_counts() {
    let mut bytes = Builder::qwen3().bytes();
    bytes[16..24].copy_from_slice(&u64::MAX.to_le_bytes()); // metadata count
    let err = open_bytes(&bytes).unwrap_err();
    assert!(err.to_string().contains("more than the file"), "{err}");
}

#[test]
fn rejects_huge_string_lengths() {
    let mut bytes = Builder::qwen3().bytes();
    // The first key's length field follows the 24-byte header.
    bytes[24..32].copy_from_slice(&(u64::MAX - 3).to_le_bytes());
    assert!(matches!(
        open_bytes(&bytes),
        Err(GgufError::Truncated { .. })
    ));
}

#[test]
fn rejects_unknown_value_types_and_bad_booleans() {
    let err = open_bytes(&Builder::new().raw_kv("x", 77, &[]).bytes()).unwrap_err();
    assert!(err.to_string().contains("unknown value type 77"), "{err}");
    let err = open_bytes(&Builder::new().raw_kv("flag", 7, &[2]).bytes()).unwrap_err();
    assert!(err.to_string().contains("boolean byte 2"), "{err}");
}

#[test]
fn rejects_duplicate_keys_and_tensors() {
    let err = open_bytes(&Builder::new().kv_u32("a", 1).kv_u32("a", 2).bytes()).unwrap_err();
    assert!(err.to_string().contains("appears twice"), "{err}");
    let b = Builder::new().tensor_f32("t", &[4]).tensor_f32("t", &[4]);
    assert!(
        open_bytes(&b.bytes())
            .unwrap_err()
            .to_string()
            .contains("appears twice")
    );
}

#[test]
fn rejects_bad_tensor_tables() {
    let mut b = Builder::new().tensor_f32("t", &[4]);
    // Patch the tensor's type (after name, n_dims, one dim) to an unknown one.
    let type_at = 8 + 1 + 4 + 8;
    b.tensors[type_at..type_at + 4].copy_from_slice(&200u32.to_le_bytes());
    assert!(
        open_bytes(&b.bytes())
            .unwrap_err()
            .to_string()
            .contains("unknown type 200")
    );

    let mut b = Builder::new().tensor_f32("t", &[4]);
    let offset_at = type_at + 4;
    b.tensors[offset_at..offset_at + 8].copy_from_slice(&7u64.to_le_bytes());
    let err = open_bytes(&b.bytes()).unwrap_err();
    assert!(
        err.to_string().contains("not a multiple of the alignment"),
        "{err}"
    );

    let mut b = Builder::new().tensor_f32("t", &[4]);
    b.tensors[offset_at..offset_at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let err = open_bytes(&b.bytes()).unwrap_err();
    assert!(matches!(err, GgufError::Truncated { .. }), "{err}");

    let mut b = Builder::new().tensor_f32("t", &[4]);
    b.tensors[8 + 1..8 + 1 + 4].copy_from_slice(&9u32.to_le_bytes());
    assert!(
        open_bytes(&b.bytes())
            .unwrap_err()
            .to_string()
            .contains("9 dimensions")
    );

    let b = Builder::new().tensor_f32("t", &[4, 0]);
    assert!(
        open_bytes(&b.bytes())
            .unwrap_err()
            .to_string()
            .contains("empty dimension")
    );
}

#[test]
fn rejects_bad_alignment() {
    let b = Builder::new().kv_u32("general.alignment", 24);
    let err = open_bytes(&b.bytes()).unwrap_err();
    assert!(err.to_string().contains("general.alignment"), "{err}");
}

#[test]
fn rejects_other_architectures() {
    let b = Builder::new().kv_str("general.architecture", "llama");
    let err = info_of(&b.bytes()).unwrap_err();
    assert!(matches!(err, GgufError::UnsupportedArchitecture { ref found } if found == "llama"));
    assert!(err.to_string().contains("Qwen3-Embedding"), "{err}");
}

#[test]
fn rejects_incomplete_models() {
    let err = info_of(&Builder::new().bytes()).unwrap_err();
    assert!(matches!(err, GgufError::MissingKey(ref k) if k == "general.architecture"));

    let b = Builder::new().kv_str("general.architecture", "qwen3");
    let err = info_of(&b.bytes()).unwrap_err();
    assert!(matches!(err, GgufError::MissingKey(ref k) if k == "qwen3.embedding_length"));

    let b = Builder::new()
        .kv_str("general.architecture", "qwen3")
        .kv_str("qwen3.embedding_length", "big");
    let err = info_of(&b.bytes()).unwrap_err();
    assert!(err.to_string().contains("positive integer"), "{err}");
}

#[test]
fn rejects_a_vocabulary_without_end_of_text() {
    let mut b = Builder::qwen3();
    // Rebuild with a vocabulary lacking <|endoftext|>.
    b = Builder {
        kv: Vec::new(),
        n_kv: 0,
        ..b
    }
    .kv_str("general.architecture", "qwen3")
    .kv_u32("qwen3.embedding_length", 4)
    .kv_u32("qwen3.block_count", 1)
    .kv_u32("qwen3.attention.head_count", 2)
    .kv_u32("qwen3.feed_forward_length", 8)
    .kv_u32("qwen3.context_length", 64)
    .kv_str("tokenizer.ggml.model", "gpt2")
    .kv_strings("tokenizer.ggml.tokens", &["a", "b", "c"]);
    let err = info_of(&b.bytes()).unwrap_err();
    assert!(err.to_string().contains("<|endoftext|>"), "{err}");
}

#[test]
fn rejects_missing_tensors() {
    let b = Builder {
        tensors: Vec::new(),
        n_tensors: 0,
        data: Vec::new(),
        ..Builder::qwen3()
    };
    let err = info_of(&b.bytes()).unwrap_err();
    assert!(matches!(err, GgufError::MissingTensor(ref t) if t.starts_with("token_embd.weight")));
}
