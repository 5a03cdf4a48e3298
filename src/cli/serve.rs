//! `gguf-embed serve`: the OpenAI, Ollama and TEI embedding APIs over HTTP.

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, Result};
use clap::Args;
use gguf_embed::server::{self, ServerConfig};
use gguf_embed::{Embedder, ModelInfo};

use super::args::{GlobalArgs, ModelArgs};
use super::model;

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Address to listen on (a non-loopback address exposes the server to the network)
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to listen on (0 picks a free one)
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Require `Authorization: Bearer KEY` on every route except /health
    #[arg(
        long,
        value_name = "KEY",
        env = "GGUF_EMBED_API_KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,
    /// Token limit per input; longer inputs are truncated or refused as each request asks
    #[arg(long, value_name = "N", default_value_t = gguf_embed::DEFAULT_MAX_TOKENS)]
    pub max_tokens: usize,
    /// The most inputs in one request
    #[arg(long, value_name = "N", default_value_t = 2048)]
    pub max_inputs: usize,
    /// The most inputs waiting across all requests; beyond it requests get HTTP 503
    #[arg(long, value_name = "N", default_value_t = 8192)]
    pub max_queued: usize,
    /// The largest request body in bytes
    #[arg(long, value_name = "BYTES", default_value_t = 16 << 20)]
    pub max_body: usize,
    /// The model name the APIs report [default: the model file's name]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Accept token ids as inputs (/v1/embeddings, /embed), read as this model's own (Qwen3)
    /// ids. Off by default: some clients send another tokenizer's ids unasked (LangChain's
    /// OpenAIEmbeddings sends tiktoken ids), which would embed unrelated text
    #[arg(long)]
    pub allow_token_input: bool,
}

/// Runs the server until SIGINT or SIGTERM, then finishes the requests in flight.
pub fn run(args: ServeArgs, global: &GlobalArgs) -> Result<()> {
    let path = model::resolve(&args.model.source, global)?;
    let options = model::embedder_options(&args.model)
        .with_max_tokens(args.max_tokens)
        .with_max_queued(args.max_queued);
    let (options, metrics) = server::instrument(options);
    let embedder = Embedder::new(&path, options).context("cannot load the model")?;
    let mut config = ServerConfig::default();
    config.addr = SocketAddr::new(args.host, args.port);
    config.api_key = args.api_key.clone();
    config.max_body_bytes = args.max_body;
    config.max_inputs = args.max_inputs;
    config.max_queued = args.max_queued;
    config.allow_token_input = args.allow_token_input;
    config.model_name = args
        .name
        .clone()
        .unwrap_or_else(|| model_name(embedder.info()));
    if !args.host.is_loopback() && args.api_key.is_none() {
        tracing::warn!(
            "listening on {} without --api-key: anyone who can reach this address can use the \
             server",
            args.host
        );
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = server::listen(config.addr)
            .await
            .with_context(|| format!("cannot listen on {}", config.addr))?;
        let addr = listener.local_addr()?;
        super::log::say(&format!(
            "serving {} on http://{addr} (OpenAI /v1/embeddings, Ollama /api/embed and \
             /api/embeddings, TEI / and /embed, /metrics); Ctrl-C stops",
            config.model_name
        ));
        let shutdown = shutdown_signal(embedder.clone());
        server::serve_on(listener, embedder, metrics, config, shutdown).await?;
        super::log::say("stopped");
        Ok(())
    })
}

/// The model's name for the APIs: its file name without `.gguf`.
fn model_name(info: &ModelInfo) -> String {
    info.path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "qwen3-embedding".into())
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM, and says how much work is still in flight.
async fn shutdown_signal(embedder: Embedder) {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    super::log::say(&format!(
        "shutting down after the requests in flight ({} inputs queued or running)",
        embedder.queued()
    ));
}
