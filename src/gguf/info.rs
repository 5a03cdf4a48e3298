//! What a validated GGUF file says about the model, and whether we can embed with it.

use std::path::PathBuf;

use serde::Serialize;

use super::{GgufError, GgufFile, Value, ValueType, file_type_name};

/// Architectures gguf-embed can embed with (the Qwen3-Embedding family).
pub const SUPPORTED_ARCHITECTURES: &[&str] = &["qwen3"];

/// The token every input must end with; its final hidden state is the embedding.
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// A summary of a model file: what `gguf-embed inspect` prints and what the engine relies on.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ModelInfo {
    /// Where the file is.
    pub path: PathBuf,
    /// Its size in bytes.
    pub file_size: u64,
    /// The GGUF format version.
    pub gguf_version: u32,
    /// `general.architecture`, e.g. `qwen3`.
    pub architecture: String,
    /// `general.name`, if present.
    pub name: Option<String>,
    /// The quantization named by `general.file_type`, e.g. `Q8_0`.
    pub file_type: Option<String>,
    /// The number of weights, summed over all tensors.
    pub parameters: u64,
    /// The number of tensors.
    pub tensor_count: usize,
    /// The hidden size: the full embedding dimension.
    pub embedding_length: u32,
    /// The number of transformer blocks.
    pub block_count: u32,
    /// The number of attention heads.
    pub head_count: u32,
    /// The number of key/value heads.
    pub head_count_kv: u32,
    /// The feed-forward width.
    pub feed_forward_length: u32,
    /// The context length the model was trained for.
    pub context_length: u32,
    /// The pooling the file declares (we always pool the last token, whatever it says).
    pub pooling: Option<String>,
    /// `tokenizer.ggml.model`, e.g. `gpt2` (byte-level BPE).
    pub tokenizer_model: String,
    /// `tokenizer.ggml.pre`, e.g. `qwen2`.
    pub tokenizer_pre: Option<String>,
    /// The number of tokens in the vocabulary.
    pub vocab_size: u64,
    /// `tokenizer.ggml.add_bos_token`.
    pub add_bos_token: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`: older official files lack it or say false.
    pub add_eos_token: Option<bool>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos_token_id: Option<u64>,
    /// The id of `<|endoftext|>`, which we append to every input.
    pub end_of_text_id: u32,
}

impl ModelInfo {
    /// Checks that a GGUF file is a model we can embed with, and summarises it.
    pub fn from_gguf(file: &GgufFile) -> Result<Self, GgufError> {
        let architecture = required_str(file, "general.architecture")?.to_string();
        if !SUPPORTED_ARCHITECTURES.contains(&architecture.as_str()) {
            return Err(GgufError::UnsupportedArchitecture {
                found: architecture,
            });
        }
        let arch_u32 = |name: &str| required_u32(file, &format!("{architecture}.{name}"));
        let embedding_length = arch_u32("embedding_length")?;
        let block_count = arch_u32("block_count")?;
        let head_count = arch_u32("attention.head_count")?;
        let head_count_kv = match file.get(&format!("{architecture}.attention.head_count_kv")) {
            Some(_) => arch_u32("attention.head_count_kv")?,
            None => head_count,
        };
        if head_count % head_count_kv != 0 {
            return Err(GgufError::InvalidKey {
                key: format!("{architecture}.attention.head_count_kv"),
                reason: format!("{head_count_kv} does not divide the {head_count} query heads"),
            });
        }
        let info = Self {
            path: file.path().to_path_buf(),
            file_size: file.file_size(),
            gguf_version: file.version(),
            name: file.get_str("general.name").map(str::to_string),
            file_type: file.get_u64("general.file_type").map(|t| {
                file_type_name(t).map_or_else(|| format!("unknown ({t})"), str::to_string)
            }),
            parameters: file.tensors().iter().map(|t| t.n_elements()).sum(),
            tensor_count: file.tensors().len(),
            embedding_length,
            block_count,
            head_count,
            head_count_kv,
            feed_forward_length: arch_u32("feed_forward_length")?,
            context_length: arch_u32("context_length")?,
            pooling: file
                .get_u64(&format!("{architecture}.pooling_type"))
                .map(pooling_name),
            tokenizer_model: required_str(file, "tokenizer.ggml.model")?.to_string(),
            tokenizer_pre: file.get_str("tokenizer.ggml.pre").map(str::to_string),
            vocab_size: 0,
            add_bos_token: file
                .get("tokenizer.ggml.add_bos_token")
                .and_then(Value::as_bool),
            add_eos_token: file
                .get("tokenizer.ggml.add_eos_token")
                .and_then(Value::as_bool),
            eos_token_id: file.get_u64("tokenizer.ggml.eos_token_id"),
            end_of_text_id: 0,
            architecture,
        };
        info.with_vocabulary(file)?.check_tensors(file)
    }

    /// Reads the vocabulary size and finds `<|endoftext|>` in it.
    fn with_vocabulary(mut self, file: &GgufFile) -> Result<Self, GgufError> {
        const KEY: &str = "tokenizer.ggml.tokens";
        let array = match file.get(KEY) {
            Some(Value::Array(a)) if a.element_type == ValueType::String => *a,
            Some(_) => {
                return Err(GgufError::InvalidKey {
                    key: KEY.into(),
                    reason: "not an array of strings".into(),
                });
            }
            None => return Err(GgufError::MissingKey(KEY.into())),
        };
        let tokens = file.array_strings(&array).expect("a string array");
        let eot = tokens
            .enumerate()
            .find(|(_, t)| *t == END_OF_TEXT.as_bytes())
            .map(|(i, _)| i);
        self.vocab_size = array.len;
        self.end_of_text_id = match eot {
            Some(id) => u32::try_from(id).expect("vocabulary index fits u32"),
            None => {
                return Err(GgufError::InvalidKey {
                    key: KEY.into(),
                    reason: format!(
                        "the vocabulary has no {END_OF_TEXT} token, so this is not a \
                         Qwen3-Embedding tokenizer"
                    ),
                });
            }
        };
        Ok(self)
    }

    /// Checks the tensors the embedding path reads, with the shapes the metadata implies.
    fn check_tensors(self, file: &GgufFile) -> Result<Self, GgufError> {
        let expect = |name: &str, dims: &[u64]| match file.tensor(name) {
            Some(t) if t.dims == dims => Ok(()),
            _ => Err(GgufError::MissingTensor(format!(
                "{name} with shape {dims:?}"
            ))),
        };
        let n_embd = u64::from(self.embedding_length);
        expect("token_embd.weight", &[n_embd, self.vocab_size])?;
        expect("output_norm.weight", &[n_embd])?;
        let last = self.block_count - 1;
        expect(&format!("blk.{last}.ffn_norm.weight"), &[n_embd])?;
        Ok(self)
    }

    /// The model's quantization as the catalog names it (`Q8_0`, `F16`, ...), when known.
    pub fn quantization(&self) -> Option<&str> {
        self.file_type.as_deref()
    }
}

fn pooling_name(code: u64) -> String {
    match code {
        0 => "none".into(),
        1 => "mean".into(),
        2 => "cls".into(),
        3 => "last".into(),
        4 => "rank".into(),
        other => format!("unknown ({other})"),
    }
}

fn required_str<'a>(file: &'a GgufFile, key: &str) -> Result<&'a str, GgufError> {
    match file.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(GgufError::InvalidKey {
            key: key.into(),
            reason: format!("expected a string, found {}", other.value_type().name()),
        }),
        None => Err(GgufError::MissingKey(key.into())),
    }
}

fn required_u32(file: &GgufFile, key: &str) -> Result<u32, GgufError> {
    let value = file
        .get(key)
        .ok_or_else(|| GgufError::MissingKey(key.into()))?;
    value
        .as_u64()
        .and_then(|v| u32::try_from(v).ok())
        .filter(|&v| v > 0)
        .ok_or_else(|| GgufError::InvalidKey {
            key: key.into(),
            reason: format!("expected a positive integer, found {value}"),
        })
}
