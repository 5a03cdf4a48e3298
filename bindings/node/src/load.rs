//! Loading a model on a thread of its own: finding or downloading the file (the Hugging Face
//! cache, as the CLI does), then loading it, with progress told to JavaScript and an
//! `AbortSignal` that stops either step.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use gguf_embed::hub::{DownloadEvent, Hub, HubConfig, ModelSpec};
use gguf_embed::{EmbedderOptions, Truncation};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Status, bindgen_prelude::Unknown};

use crate::options::LoadProgress;

/// What to load and how, checked on the JavaScript thread.
pub struct LoadRequest {
    pub spec: String,
    pub quant: String,
    pub offline: bool,
    pub cache_dir: Option<PathBuf>,
    pub options: EmbedderOptions,
    /// Told about every decode.
    pub stats: Arc<crate::stats::Stats>,
    pub threads: usize,
    pub max_tokens: usize,
    pub truncation: Truncation,
}

/// A loaded model, with what the JavaScript object reports about it.
pub struct Loaded {
    pub embedder: gguf_embed::Embedder,
    pub request: LoadRequest,
}

/// The JavaScript progress callback, called without waiting for it.
pub type ProgressCallback =
    ThreadsafeFunction<LoadProgress, Unknown<'static>, LoadProgress, Status, false>;

/// Finds (or downloads) and loads the model; `cancelled` stops the download between chunks
/// and the load between tensors.
pub fn load(
    request: LoadRequest,
    progress: Option<ProgressCallback>,
    cancelled: Arc<AtomicBool>,
) -> gguf_embed::Result<Loaded> {
    let progress = Arc::new(Reporter::new(progress));
    let spec = ModelSpec::parse(&request.spec, &request.quant)?;
    let mut config = HubConfig::from_env();
    config.offline |= request.offline;
    if let Some(dir) = &request.cache_dir {
        config = config.with_cache_dir(dir);
    }
    let hub = {
        let (progress, cancelled) = (Arc::clone(&progress), Arc::clone(&cancelled));
        Hub::new(config).with_cancellable_progress(move |event| {
            progress.download(event);
            !cancelled.load(Ordering::Relaxed)
        })
    };
    let path = hub.resolve(&spec)?;
    let options = {
        let progress = Arc::clone(&progress);
        request.options.clone().with_load_progress(move |fraction| {
            progress.report("loading", None, None, None, fraction as f64);
            !cancelled.load(Ordering::Relaxed)
        })
    };
    let embedder = gguf_embed::Embedder::new(&path, options)?;
    Ok(Loaded { embedder, request })
}

/// Turns download events and load fractions into `LoadProgress` calls, at most one per 0.1%
/// of a phase (a download reports every chunk it receives).
struct Reporter {
    callback: Option<ProgressCallback>,
    /// The phase and fraction last reported, and the file being downloaded.
    last: Mutex<(&'static str, f64, Option<String>)>,
}

impl Reporter {
    fn new(callback: Option<ProgressCallback>) -> Self {
        Self {
            callback,
            last: Mutex::new(("", -1.0, None)),
        }
    }

    fn download(&self, event: &DownloadEvent) {
        let file = |f: &str| Some(f.to_string());
        let fraction = |done: u64, total: u64| {
            if total == 0 {
                0.0
            } else {
                done as f64 / total as f64
            }
        };
        match event {
            DownloadEvent::Waiting { file: f } => self.report("waiting", file(f), None, None, 0.0),
            DownloadEvent::Started {
                file: f,
                total,
                resumed_from,
            } => self.report(
                "downloading",
                file(f),
                Some(*resumed_from),
                Some(*total),
                fraction(*resumed_from, *total),
            ),
            DownloadEvent::Progress { downloaded, total } => self.report(
                "downloading",
                None,
                Some(*downloaded),
                Some(*total),
                fraction(*downloaded, *total),
            ),
            DownloadEvent::Verifying { file: f } => {
                self.report("verifying", file(f), None, None, 0.0)
            }
            DownloadEvent::Finished { file: f } => {
                self.report("verifying", file(f), None, None, 1.0)
            }
            _ => {}
        }
    }

    fn report(
        &self,
        phase: &'static str,
        file: Option<String>,
        downloaded: Option<u64>,
        total: Option<u64>,
        fraction: f64,
    ) {
        let Some(callback) = &self.callback else {
            return;
        };
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        let (last_phase, last_fraction, last_file) = &mut *last;
        if file.is_some() {
            *last_file = file;
        }
        let same_phase = *last_phase == phase;
        if same_phase && fraction < 1.0 && fraction - *last_fraction < 0.001 {
            return;
        }
        if same_phase && fraction == *last_fraction {
            return;
        }
        *last_phase = phase;
        *last_fraction = fraction;
        let event = LoadProgress {
            phase: phase.to_string(),
            // The file being downloaded; loading reads the file in the cache.
            file: last_file.clone().filter(|_| phase != "loading"),
            downloaded: downloaded.map(|b| b as f64),
            total: total.map(|b| b as f64),
            fraction,
        };
        callback.call(event, ThreadsafeFunctionCallMode::NonBlocking);
    }
}
