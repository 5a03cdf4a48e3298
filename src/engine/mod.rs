//! The engine: the only module that touches llama.cpp (and the only `unsafe` code besides the
//! memory map in [`crate::gguf`]).
//!
//! It uses llama-cpp-2 for the process-wide backend and device discovery, and its sys crate for
//! the model and context: the safe wrapper does not expose the graph callback that lets us read
//! each sequence's final hidden state without computing the LM head for every token.

mod backend;
mod context;
mod devices;
mod model;
mod pages;

pub(crate) use context::{Context, ContextParams};
pub use context::{FlashAttention, KvCache, OutputMode};
pub use devices::{Device, DeviceInfo, DeviceKind, devices};
pub(crate) use devices::{Placement, place};
pub use model::LoadProgress;
pub(crate) use model::{LoadParams, Model};
