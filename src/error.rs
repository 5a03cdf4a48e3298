//! The library's error type.

use std::path::PathBuf;

use crate::gguf::{GgufError, ModelKind};
use crate::hub::HubError;

/// Everything that can go wrong in gguf-embed. Messages say what happened and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The model file is missing, unreadable, malformed, or not a model we can embed with.
    // The message includes the cause, so it is not also exposed as `source()`: printing the
    // error chain would repeat it.
    #[error("{}: {error}", path.display())]
    Model {
        /// The model file.
        path: PathBuf,
        /// What is wrong with it.
        error: GgufError,
    },
    /// The model file is of the other kind: a reranker given to the embedder, or an
    /// embedding model given to the reranker.
    #[error("{}", wrong_kind_message(path, *kind, evidence))]
    WrongModelKind {
        /// The model file.
        path: PathBuf,
        /// What the file is.
        kind: ModelKind,
        /// What in the file says so.
        evidence: String,
    },
    /// The reranker's query and instruction alone leave no room for a document within the
    /// token limit.
    #[error(
        "the query and instruction take {tokens} tokens of the reranker's prompt, which leaves \
         no room for a document within the limit of {max} tokens; shorten the query or raise \
         the limit"
    )]
    QueryTooLong {
        /// Tokens of the prompt without the document.
        tokens: usize,
        /// The limit.
        max: usize,
    },
    /// Finding or downloading the model failed.
    #[error(transparent)]
    Hub(#[from] HubError),
    /// llama.cpp refused to load a file that passed our checks.
    #[error("llama.cpp could not load {}: {reason}", path.display())]
    Load {
        /// The model file.
        path: PathBuf,
        /// Why, as far as we know (llama.cpp's own log has details: run with `-v`).
        reason: String,
    },
    /// The caller's progress callback asked to stop loading.
    #[error("loading the model was cancelled")]
    LoadCancelled,
    /// An option is out of range or contradicts another.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// A text is longer than the token limit and the truncation policy is to fail.
    #[error(
        "input {index} has {tokens} tokens, more than the limit of {max}; shorten it, raise the \
         limit, or allow truncation"
    )]
    TooLong {
        /// The input's position.
        index: usize,
        /// How many tokens it has (instruction and end-of-text token included).
        tokens: usize,
        /// The limit.
        max: usize,
    },
    /// A token id is outside the model's vocabulary.
    #[error("input {index} holds token id {token}, outside the vocabulary of {vocab_size} tokens")]
    InvalidToken {
        /// The input's position.
        index: usize,
        /// The offending id.
        token: i64,
        /// The vocabulary size.
        vocab_size: u64,
    },
    /// A text is too large for llama.cpp's tokenizer (more than 2 GiB).
    #[error("input {index} is {bytes} bytes long, too large to tokenize")]
    InputTooLarge {
        /// The input's position.
        index: usize,
        /// Its length in bytes.
        bytes: usize,
    },
    /// llama.cpp could not create a context of this size: its KV cache and compute buffers
    /// did not fit in the device's memory, or the device cannot run the model with these
    /// settings. Smaller batches (`batch_tokens`, `batch_sequences`) or a lower token limit
    /// need less.
    #[error(
        "llama.cpp could not create a context for {tokens} tokens in {sequences} sequences (out \
         of memory, or settings the device does not support); lower batch_tokens, \
         batch_sequences or max_tokens"
    )]
    ContextAlloc {
        /// Tokens the context was sized for.
        tokens: u32,
        /// Sequences it was sized for.
        sequences: u32,
    },
    /// A decode failed inside llama.cpp; the requests in that decode fail, later ones run.
    #[error("llama.cpp failed to decode a batch: {}", decode_reason(*.status))]
    Decode {
        /// `llama_decode`'s status code.
        status: i32,
    },
    /// The engine thread could not be started (the OS refused a new thread).
    #[error("cannot start the engine thread: {0}")]
    EngineStart(#[source] std::io::Error),
    /// llama.cpp produced something the engine did not expect (a bug here or there).
    #[error("llama.cpp failed to compute embeddings: {0}")]
    Compute(String),
    /// Too many inputs are already waiting; try again shortly.
    #[error("the embedder is busy: {queued} inputs are waiting (limit {limit}); try again shortly")]
    Busy {
        /// Inputs waiting or running.
        queued: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The request was cancelled before it finished.
    #[error("the embedding request was cancelled")]
    Cancelled,
    /// The engine's worker thread is gone (it panicked or the embedder is shutting down).
    #[error("the embedding engine stopped unexpectedly")]
    EngineStopped,
    /// An I/O error with the path it concerns.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
}

/// Says what a refused file is and where it belongs.
fn wrong_kind_message(path: &std::path::Path, kind: ModelKind, evidence: &str) -> String {
    let (is, not, instead) = match kind {
        ModelKind::Reranker => (
            "a reranker",
            "an embedding model",
            "score query-document pairs with it through the reranker (`gguf-embed rerank`, \
             `gguf_embed::Reranker`), and embed with a Qwen3-Embedding file",
        ),
        _ => (
            "an embedding model",
            "a reranker",
            "embed with it, and rerank with a Qwen3-Reranker file (the default is \
             ggml-org/Qwen3-Reranker-0.6B-Q8_0-GGUF)",
        ),
    };
    format!(
        "{} is {is} ({evidence}), not {not}: {instead}",
        path.display()
    )
}

/// What `llama_decode`'s status codes mean (llama.h).
fn decode_reason(status: i32) -> String {
    match status {
        1 => "no room in the KV cache for the batch (status 1)".into(),
        2 => "the decode was aborted (status 2)".into(),
        -1 => "llama.cpp rejected the batch as invalid (status -1)".into(),
        _ => format!("status {status} (out of memory or a backend failure)"),
    }
}

impl Error {
    /// The same error for another request that shared the failed decode.
    pub(crate) fn for_another_request(&self) -> Self {
        match self {
            Self::ContextAlloc { tokens, sequences } => Self::ContextAlloc {
                tokens: *tokens,
                sequences: *sequences,
            },
            Self::Decode { status } => Self::Decode { status: *status },
            other => Self::Compute(other.to_string()),
        }
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
