//! Turning the model options into a local file (downloading it if needed) and an embedder.

use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{Context, Result};
use gguf_embed::hub::{DownloadEvent, Hub, HubConfig, ModelSpec};
use gguf_embed::{Embedder, EmbedderOptions, KvCache, OutputMode};
use indicatif::ProgressBar;

use super::args::{GlobalArgs, ModelArgs, SourceArgs};
use super::progress;

/// The spec the options name: `--model`, or the official file of `--size` and `--quant`.
pub fn spec(model: Option<&str>, size: &str, quant: &str) -> Result<ModelSpec> {
    Ok(match model {
        Some(spec) => ModelSpec::parse(spec, quant)?,
        None => ModelSpec::official(size, quant)?,
    })
}

/// A hub client for the environment, offline if asked, drawing a download bar on a terminal.
pub fn hub(offline: bool, global: &GlobalArgs) -> Hub {
    let config = HubConfig::from_env();
    let offline = offline || config.offline;
    let hub = Hub::new(config.with_offline(offline));
    let show = progress::enabled(global.quiet);
    let bar: Mutex<Option<ProgressBar>> = Mutex::new(None);
    hub.with_progress(move |event| {
        let Ok(mut bar) = bar.lock() else { return };
        match event {
            DownloadEvent::Waiting { file } => {
                tracing::info!("waiting for another process that is downloading {file}");
            }
            DownloadEvent::Started {
                file,
                total,
                resumed_from,
            } => {
                if *resumed_from > 0 {
                    tracing::info!("resuming the download of {file} at byte {resumed_from}");
                }
                let b = progress::download(show, file, *total);
                b.set_position(*resumed_from);
                *bar = Some(b);
            }
            DownloadEvent::Progress { downloaded, .. } => {
                if let Some(b) = bar.as_ref() {
                    b.set_position(*downloaded);
                }
            }
            DownloadEvent::Verifying { file } => {
                if let Some(b) = bar.as_ref() {
                    b.set_message(format!("{file}: checking sha256"));
                }
            }
            DownloadEvent::Finished { file } => {
                if let Some(b) = bar.take() {
                    b.finish_and_clear();
                }
                tracing::info!("downloaded and verified {file}");
            }
            _ => {}
        }
    })
}

/// The local model file for the options, downloaded and verified if needed.
pub fn resolve(source: &SourceArgs, global: &GlobalArgs) -> Result<PathBuf> {
    let o = &source.official;
    let spec = spec(source.model.as_deref(), &o.size, &o.quant)?;
    let path = hub(o.offline, global).resolve(&spec)?;
    tracing::info!("model {spec} at {}", path.display());
    Ok(path)
}

/// Finds the model file and loads it.
pub fn load(args: &ModelArgs, global: &GlobalArgs) -> Result<Embedder> {
    let path = resolve(&args.source, global)?;
    Embedder::new(&path, embedder_options(args)).context("cannot load the model")
}

/// The engine options the flags ask for.
pub fn embedder_options(args: &ModelArgs) -> EmbedderOptions {
    let mut options = EmbedderOptions::default()
        .with_device(args.device)
        .with_flash_attention(args.flash_attn.into())
        .with_bf16_weights(args.bf16.into())
        .with_prepacked_weights(args.prepack.into())
        .with_sort_by_length(!args.no_sort)
        .with_batch_invariant(!args.batch_variant);
    if args.kv_per_sequence {
        options = options.with_kv_cache(KvCache::PerSequence);
    }
    if args.llama_embedding_mode {
        options = options.with_output_mode(OutputMode::LlamaEmbeddings);
    }
    if let Some(threads) = args.threads {
        options = options.with_threads(threads);
    }
    if let Some(tokens) = args.batch_tokens {
        options = options.with_batch_tokens(tokens);
    }
    if let Some(sequences) = args.batch_sequences {
        options = options.with_batch_sequences(sequences);
    }
    if let Some(delay) = test_decode_delay() {
        options = options.with_decode_observer(move |_| std::thread::sleep(delay));
    }
    options
}

/// For tests only: `GGUF_EMBED_TEST_DECODE_DELAY_MS` makes the engine thread sleep that long
/// after every decode, so that a test can observe an index while it is being embedded with
/// the tiny fixture model (whose decodes are nearly free) without timing anything.
fn test_decode_delay() -> Option<std::time::Duration> {
    let ms: u64 = std::env::var("GGUF_EMBED_TEST_DECODE_DELAY_MS")
        .ok()?
        .parse()
        .ok()?;
    Some(std::time::Duration::from_millis(ms))
}
