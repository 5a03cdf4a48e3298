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
    /// What the file is for, as far as it says: an embedding model or a reranker.
    pub kind: ModelKind,
    /// What in the file decided [`kind`](Self::kind), for messages (`None` when unknown).
    pub kind_evidence: Option<String>,
}

/// What a model file is for. Qwen3-Embedding and Qwen3-Reranker share one architecture
/// (`qwen3`), so only the metadata and the tensors tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ModelKind {
    /// An embedding model (Qwen3-Embedding): pooling type LAST, or a name that says so.
    Embedding,
    /// A reranker (Qwen3-Reranker): pooling type RANK, a `cls.output.weight` head, a `rerank`
    /// chat template, or a name that says so.
    Reranker,
    /// Nothing in the file says (a plain causal-LM conversion, or an old file without a
    /// pooling type): both [`Embedder`](crate::Embedder) and [`Reranker`](crate::Reranker)
    /// accept it.
    Unknown,
}

impl ModelKind {
    /// `embedding`, `reranker` or `unknown`.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Embedding => "embedding",
            ModelKind::Reranker => "reranker",
            ModelKind::Unknown => "unknown",
        }
    }
}

/// The tensor llama.cpp's converter writes a reranker's classifier head to.
pub const CLS_OUTPUT: &str = "cls.output.weight";

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
            kind: ModelKind::Unknown,
            kind_evidence: None,
            architecture,
        };
        info.with_vocabulary(file)?
            .check_tensors(file)?
            .with_kind(file)
    }

    /// Decides what the file is for, from the strongest evidence it holds.
    fn with_kind(mut self, file: &GgufFile) -> Result<Self, GgufError> {
        let name = self.name.as_deref().unwrap_or("").to_ascii_lowercase();
        let (kind, evidence) = if file.tensor(CLS_OUTPUT).is_some() {
            (
                ModelKind::Reranker,
                format!("it has a classifier head ({CLS_OUTPUT})"),
            )
        } else if self.pooling.as_deref() == Some("rank") {
            (ModelKind::Reranker, "its pooling type is RANK".into())
        } else if file.get("tokenizer.chat_template.rerank").is_some() {
            (
                ModelKind::Reranker,
                "it has a rerank prompt template".into(),
            )
        } else if self.pooling.as_deref() == Some("last") {
            (ModelKind::Embedding, "its pooling type is LAST".into())
        } else if name.contains("rerank") {
            (
                ModelKind::Reranker,
                format!("its name is {:?}", self.name.as_deref().unwrap_or("")),
            )
        } else if name.contains("embedding") {
            (
                ModelKind::Embedding,
                format!("its name is {:?}", self.name.as_deref().unwrap_or("")),
            )
        } else {
            return Ok(self);
        };
        self.kind = kind;
        self.kind_evidence = Some(evidence);
        Ok(self)
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
        if file.tensor(CLS_OUTPUT).is_some() {
            // llama.cpp expects one row per classifier label (one without labels) and throws
            // on any other shape: say so before it sees the file.
            let labels = self.classifier_labels(file)?.map_or(1, |l| l.len() as u64);
            expect(CLS_OUTPUT, &[n_embd, labels])?;
        }
        Ok(self)
    }

    /// `{arch}.classifier.output_labels`: the names of a classifier head's rows, if the file
    /// has them.
    pub fn classifier_labels(&self, file: &GgufFile) -> Result<Option<Vec<String>>, GgufError> {
        let key = format!("{}.classifier.output_labels", self.architecture);
        match file.get(&key) {
            None => Ok(None),
            Some(Value::Array(a)) if a.element_type == ValueType::String => Ok(Some(
                file.array_strings(a)
                    .expect("a string array")
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect(),
            )),
            Some(_) => Err(GgufError::InvalidKey {
                key,
                reason: "not an array of strings".into(),
            }),
        }
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
