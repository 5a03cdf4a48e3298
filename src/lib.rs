//! # gguf-embed
//!
//! Local text embeddings with [Qwen3-Embedding](https://huggingface.co/Qwen/Qwen3-Embedding-0.6B)
//! GGUF models, run by llama.cpp, with every model fact handled for you: the `<|endoftext|>`
//! token appended to each input, last-token pooling, L2 normalisation, Qwen's query
//! instructions, NFC normalisation, and Matryoshka output sizes.
//!
//! ```no_run
//! use gguf_embed::{EmbedOptions, Embedder, EmbedderOptions, Task};
//!
//! let embedder = Embedder::new("Qwen3-Embedding-0.6B-Q8_0.gguf", EmbedderOptions::default())?;
//!
//! // Documents are embedded as they are; queries with a task instruction.
//! let docs = embedder.embed(
//!     &["fn parse(s: &str) -> Json { ... }", "The capital of France is Paris."],
//!     &EmbedOptions::documents(),
//! )?;
//! let query = embedder.embed(
//!     &["json parser"],
//!     &EmbedOptions::default().with_task(Task::CodeSearch).with_dimensions(256),
//! )?;
//! println!("{} dimensions, {} tokens", query[0].vector.len(), query[0].tokens);
//! # Ok::<(), gguf_embed::Error>(())
//! ```
//!
//! The pipeline, one module each: [`hub`] finds or downloads the model file into the Hugging
//! Face cache, [`gguf`] validates and describes model files, [`prompt`]
//! formats instructions, [`batch`] decides what shares a decode, the engine runs llama.cpp,
//! [`vector`] truncates and normalises, and [`Embedder`] ties them together behind a
//! thread-safe handle. [`Reranker`] runs Qwen3-Reranker on the same engine: it scores how well
//! documents answer a query (the second stage of retrieval).

#![warn(missing_docs)]

pub mod batch;
mod embedder;
mod engine;
mod error;
pub mod gguf;
pub mod hub;
#[cfg(feature = "index")]
pub mod index;
pub mod prompt;
mod rerank;
#[cfg(feature = "server")]
pub mod server;
pub mod vector;

pub use embedder::{
    Bf16Weights, Canceller, DEFAULT_MAX_TOKENS, DecodeObserver, DecodeStats, DecodeTurns,
    EmbedOptions, Embedder, EmbedderOptions, Embedding, MIN_DIMENSIONS, PendingEmbeddings,
    PrepackedWeights, Priority, Token, Tokenized, Truncation, default_threads, inspect,
};
pub use engine::{
    Device, DeviceInfo, DeviceKind, FlashAttention, KvCache, LoadProgress, OutputMode, devices,
};
pub use error::{Error, Result};
pub use gguf::{GgufError, ModelInfo, ModelKind};
pub use prompt::{Instruction, Task};
pub use rerank::{
    DEFAULT_RERANK_TASK, PendingRerank, RerankOptions, RerankScore, Reranker, SYSTEM_PROMPT,
};

/// The README's Rust examples, compiled by `cargo test --doc` so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;

#[cfg(test)]
mod tests {
    /// Desktop apps share one embedder across threads: it must stay `Send + Sync` (and cheap to
    /// clone).
    #[test]
    fn handles_are_thread_safe() {
        fn assert_send_sync_clone<T: Send + Sync + Clone>() {}
        assert_send_sync_clone::<crate::Embedder>();
        assert_send_sync_clone::<crate::Reranker>();
        assert_send_sync_clone::<crate::hub::Hub>();
        fn assert_send<T: Send>() {}
        assert_send::<crate::PendingEmbeddings>();
        assert_send::<crate::PendingRerank>();
    }
}
