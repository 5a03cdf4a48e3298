//! Turning the model options into a loaded embedder.

use anyhow::{Context, Result};
use gguf_embed::{Embedder, EmbedderOptions};

use super::UsageError;
use super::args::{GlobalArgs, ModelArgs};

/// Finds the model file and loads it.
pub fn load(args: &ModelArgs, _global: &GlobalArgs) -> Result<Embedder> {
    let Some(spec) = &args.model else {
        return Err(UsageError("no model given: use --model FILE.gguf".into()).into());
    };
    let mut options = EmbedderOptions::default().with_batch_tokens(args.batch_tokens);
    if let Some(threads) = args.threads {
        options = options.with_threads(threads);
    }
    Embedder::new(spec, options).context("cannot load the model")
}
