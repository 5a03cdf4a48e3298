//! An embeddings server that speaks the OpenAI (`/v1/embeddings`), Ollama (`/api/embed`) and
//! text-embeddings-inference (`/embed`) APIs from one process, and, given a [`Reranker`], the
//! rerank APIs of llama-server, Jina and Cohere (`/v1/rerank`) and TEI (`/rerank`).
//!
//! Requests from concurrent clients go through one [`Embedder`], whose engine thread packs
//! their inputs into shared decodes (dynamic batching); every response gets exactly its own
//! vectors, in order. The queue is bounded: when full, requests get HTTP 503 with
//! `Retry-After` instead of piling up.
//!
//! ```no_run
//! use gguf_embed::server::{ServerConfig, serve};
//! use gguf_embed::{Embedder, EmbedderOptions};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = ServerConfig::default();
//! let (options, metrics) = gguf_embed::server::instrument(
//!     EmbedderOptions::default().with_max_queued(config.max_queued),
//! );
//! let embedder = Embedder::new("model.gguf", options)?;
//! serve(embedder, metrics, config, std::future::pending()).await?;
//! # Ok(()) }
//! ```

mod admission;
mod error;
mod metrics;
mod ollama;
mod rerank;
mod routes;
mod tei;
mod warnings;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

pub use admission::{Admission, Permit};
pub use error::{Api, ApiError};
pub use metrics::Metrics;
pub use routes::router;
pub use warnings::{WARNING_INTERVAL, Warnings};

use crate::{Embedder, EmbedderOptions, Reranker};

/// How the server listens and what it accepts.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Where to listen (loopback by default).
    pub addr: SocketAddr,
    /// Require `Authorization: Bearer <key>` on every route but `/health`.
    pub api_key: Option<String>,
    /// The largest request body, in bytes.
    pub max_body_bytes: usize,
    /// The most inputs in one request.
    pub max_inputs: usize,
    /// The most inputs admitted at once across all requests (waiting, tokenizing or
    /// running); a request that would pass it gets 503 with `Retry-After` before it takes a
    /// thread. The embedder may have its own bound ([`EmbedderOptions::with_max_queued`]).
    pub max_queued: usize,
    /// The model name reported by the APIs.
    pub model_name: String,
    /// Accept token-id inputs (`/v1/embeddings`, `/embed`), read as the model's own token ids.
    /// Off by default: see the README's server section on clients that send another
    /// tokenizer's ids.
    pub allow_token_input: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            api_key: None,
            max_body_bytes: 16 << 20,
            max_inputs: 2048,
            max_queued: 8192,
            model_name: "qwen3-embedding".into(),
            allow_token_input: false,
        }
    }
}

/// Everything the handlers share.
pub struct AppState {
    /// The embedding model, if the server has one (a server may serve a reranker alone).
    pub embedder: Option<Embedder>,
    /// The reranker, if the server has one.
    pub reranker: Option<Reranker>,
    /// The name reported as the reranker's `model`.
    pub reranker_name: String,
    /// The limits.
    pub config: ServerConfig,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// The name reported as `model`.
    pub model_name: String,
    /// The queue bound, applied before any work (see [`Admission`]).
    pub admission: Arc<Admission>,
    /// Bounds the large requests tokenized at once on blocking threads (one per core).
    pub tokenizers: tokio::sync::Semaphore,
    /// Server-error warnings, at most one per kind per interval (a flood logs a few lines).
    pub warnings: Warnings,
    /// The model file's sha256, once asked for (see [`AppState::model_digest`]).
    pub digest: tokio::sync::OnceCell<String>,
}

impl AppState {
    /// The state for serving `embedder` with `config`.
    pub fn new(embedder: Embedder, metrics: Arc<Metrics>, config: ServerConfig) -> Self {
        Self::serving(Some(embedder), None, metrics, config)
    }

    /// The state for serving a reranker alone; `config.model_name` names it.
    pub fn reranker_only(reranker: Reranker, metrics: Arc<Metrics>, config: ServerConfig) -> Self {
        Self::serving(None, Some(reranker), metrics, config)
    }

    /// Serves `reranker` beside the embedder, under `name`. For both models to take turns on
    /// the cores instead of decoding at once, load them with one
    /// [`DecodeTurns`](crate::DecodeTurns).
    pub fn with_reranker(mut self, reranker: Reranker, name: impl Into<String>) -> Self {
        self.reranker = Some(reranker);
        self.reranker_name = name.into();
        self
    }

    fn serving(
        embedder: Option<Embedder>,
        reranker: Option<Reranker>,
        metrics: Arc<Metrics>,
        config: ServerConfig,
    ) -> Self {
        Self {
            model_name: config.model_name.clone(),
            reranker_name: config.model_name.clone(),
            admission: Admission::new(config.max_queued),
            tokenizers: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(1, |n| n.get()),
            ),
            warnings: Warnings::default(),
            digest: tokio::sync::OnceCell::new(),
            embedder,
            reranker,
            config,
            metrics,
        }
    }

    /// The embedding model, or the 404 a reranker-only server answers embedding requests with.
    pub(crate) fn embedder(&self) -> Result<&Embedder, ApiError> {
        self.embedder.as_ref().ok_or_else(|| {
            ApiError::not_found(format!(
                "this server serves the reranker {} and no embedding model; start one with \
                 `gguf-embed serve --model EMBEDDING_MODEL --reranker {}`",
                self.reranker_name, self.reranker_name
            ))
        })
    }

    /// The engine of the model this server is named after: the embedding model, else the
    /// reranker (a reranker-only server). Its file, tokenizer and limits answer the discovery
    /// routes (/api/tags, /api/show, TEI's /info, /tokenize, /decode).
    pub(crate) fn model(&self) -> &Embedder {
        match (&self.embedder, &self.reranker) {
            (Some(embedder), _) => embedder,
            (None, Some(reranker)) => reranker.engine(),
            // Both constructors (`new`, `reranker_only`) store a model.
            (None, None) => unreachable!("a server state always holds a model"),
        }
    }

    /// Inputs waiting or running in both models' engines.
    pub fn queued(&self) -> usize {
        self.embedder.as_ref().map_or(0, Embedder::queued)
            + self.reranker.as_ref().map_or(0, Reranker::queued)
    }
}

impl AppState {
    /// The model file's digest as Ollama writes one (`sha256:<hex>`): free for a file in the
    /// Hugging Face cache (its blob is named by it), hashed once on a blocking thread otherwise
    /// (about a second for 600 MB); empty when the file cannot be read.
    pub async fn model_digest(&self) -> String {
        let path = self.model().info().path.clone();
        self.digest
            .get_or_init(|| async move {
                let hashed = tokio::task::spawn_blocking(move || {
                    let real = std::fs::canonicalize(&path)?;
                    match real.file_name().and_then(|n| n.to_str()) {
                        Some(name) if crate::hub::is_sha256(name) => Ok(name.to_string()),
                        _ => crate::hub::sha256_of(&real),
                    }
                })
                .await;
                match hashed {
                    Ok(Ok(sha)) => format!("sha256:{sha}"),
                    _ => String::new(),
                }
            })
            .await
            .clone()
    }
}

/// Adds a metrics observer to embedder options; pass the returned metrics to [`serve`].
pub fn instrument(options: EmbedderOptions) -> (EmbedderOptions, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let observer = Arc::clone(&metrics);
    let options = options.with_decode_observer(move |stats| observer.observe_decode(stats));
    (options, metrics)
}

/// The listen backlog asked for. The kernel caps it at `net.core.somaxconn` (4096 by default
/// since Linux 5.4). tokio's and std's `bind` ask for 1024 or 128: under a flood of a thousand
/// connects, half-open connections then overflow the queue, the kernel falls back to SYN cookies
/// and resets some of them, so clients get a reset instead of an answer or a 503.
const LISTEN_BACKLOG: u32 = 65_535;

/// Binds `addr` with a backlog deep enough for a flood of connections (see [`LISTEN_BACKLOG`]).
pub async fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As std and tokio do: a restarted server can bind while old connections sit in TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves until `shutdown` completes, then stops accepting connections and finishes the
/// requests in flight.
pub async fn serve(
    embedder: Embedder,
    metrics: Arc<Metrics>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = listen(config.addr).await?;
    serve_on(listener, embedder, metrics, config, shutdown).await
}

/// [`serve`] on a listener the caller bound (port 0 for tests; [`listen`] binds one with a
/// deep backlog).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    embedder: Embedder,
    metrics: Arc<Metrics>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_state(listener, AppState::new(embedder, metrics, config), shutdown).await
}

/// [`serve_on`] with state built by the caller: an embedder and a reranker
/// ([`AppState::with_reranker`]), or a reranker alone ([`AppState::reranker_only`]).
pub async fn serve_state(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(Arc::new(state)))
        .with_graceful_shutdown(shutdown)
        .await
}
