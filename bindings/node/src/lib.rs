//! The native addon of the `gguf-embed` npm package: Qwen3-Embedding vectors for Node.js and
//! Electron from the `gguf_embed` library, without blocking the app.
//!
//! `Embedder` is the whole API. Its methods check their arguments on the JavaScript thread and
//! return a promise; the work runs on threads of the embedder's own (`load`, `dispatcher`, and
//! the library's engine thread), and results come back through Node-API thread-safe functions
//! (`settle`), copied once into `Float32Array`s that V8 owns. Every embedding rule lives in
//! the `gguf_embed` crate; TypeScript types are generated from the `#[napi]` items here.

mod abort;
mod calls;
mod dispatcher;
mod embedder;
mod errors;
mod load;
mod options;
mod settle;
mod stats;

use napi_derive::napi;

pub use embedder::{Embedder, EmbedderInfo};
pub use options::{EmbedCallOptions, LoadOptions, LoadProgress, TokenOptions};

/// The engine threads a model gets unless `threads` says otherwise: the physical cores less
/// one (the app's own thread keeps a core), at least 1.
#[napi]
pub fn default_threads() -> u32 {
    gguf_embed::default_threads().saturating_sub(1).max(1) as u32
}
