//! `gguf-embed serve`: the OpenAI, Ollama and TEI embedding APIs over HTTP, and the rerank
//! APIs when the server has a reranker (`--reranker`, or `--model` a reranker).

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, Result};
use clap::Args;
use gguf_embed::server::{self, AppState, ServerConfig};
use gguf_embed::{DecodeTurns, Embedder, ModelInfo, ModelKind, Reranker};

use super::UsageError;
use super::args::{GlobalArgs, ModelArgs, SourceArgs};
use super::{model, rerank};

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
    /// Also serve a reranker (/v1/rerank, /rerank): a .gguf path, hf:OWNER/REPO/FILE.gguf or a
    /// catalog name; bare, the catalog's (ggml-org/Qwen3-Reranker-0.6B-Q8_0-GGUF). Both models
    /// take turns on the cores. A --model that is itself a reranker is served alone
    #[arg(
        long,
        value_name = "SPEC",
        num_args = 0..=1,
        default_missing_value = "Qwen3-Reranker-0.6B"
    )]
    pub reranker: Option<String>,
}

/// Runs the server until SIGINT or SIGTERM, then finishes the requests in flight.
pub fn run(args: ServeArgs, global: &GlobalArgs) -> Result<()> {
    let path = model::resolve(&args.model.source, global)?;
    let turns = DecodeTurns::new();
    let options = model::embedder_options(&args.model)
        .with_max_tokens(args.max_tokens)
        .with_max_queued(args.max_queued)
        .with_decode_turns(&turns);
    let (options, metrics) = server::instrument(options);
    let reranker_alone = gguf_embed::inspect(&path)?.kind == ModelKind::Reranker;
    let mut config = ServerConfig::default();
    config.addr = SocketAddr::new(args.host, args.port);
    config.api_key = args.api_key.clone();
    config.max_body_bytes = args.max_body;
    config.max_inputs = args.max_inputs;
    config.max_queued = args.max_queued;
    config.allow_token_input = args.allow_token_input;
    let state = if reranker_alone {
        if args.reranker.is_some() {
            return Err(UsageError(format!(
                "{} is a reranker: serve it alone with --model, or give an embedding model to \
                 --model and the reranker to --reranker",
                path.display()
            ))
            .into());
        }
        let reranker = Reranker::new(&path, options).context("cannot load the reranker")?;
        config.model_name = args
            .name
            .clone()
            .unwrap_or_else(|| model_name(reranker.info()));
        AppState::reranker_only(reranker, metrics, config)
    } else {
        let embedder = Embedder::new(&path, options.clone()).context("cannot load the model")?;
        config.model_name = args
            .name
            .clone()
            .unwrap_or_else(|| model_name(embedder.info()));
        let state = AppState::new(embedder, metrics, config);
        match &args.reranker {
            None => state,
            Some(spec) => {
                let source = ModelArgs {
                    source: SourceArgs {
                        model: Some(spec.clone()),
                        ..args.model.source.clone()
                    },
                    ..args.model.clone()
                };
                let reranker = rerank::load(&source, options, global)?;
                let name = model_name(reranker.info());
                state.with_reranker(reranker, name)
            }
        }
    };
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
        let addr_wanted = state.config.addr;
        let listener = server::listen(addr_wanted)
            .await
            .with_context(|| format!("cannot listen on {addr_wanted}"))?;
        let addr = listener.local_addr()?;
        super::log::say(&format!(
            "serving {} on http://{addr} ({}); Ctrl-C stops",
            served(&state),
            routes(&state)
        ));
        let shutdown = shutdown_signal(state.embedder.clone(), state.reranker.clone());
        server::serve_state(listener, state, shutdown).await?;
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

/// What the server serves, for its first line.
fn served(state: &AppState) -> String {
    match (&state.embedder, &state.reranker) {
        (Some(_), Some(_)) => format!(
            "{} and the reranker {}",
            state.model_name, state.reranker_name
        ),
        (None, Some(_)) => format!("the reranker {}", state.reranker_name),
        _ => state.model_name.clone(),
    }
}

/// The routes the server answers, for its first line.
fn routes(state: &AppState) -> &'static str {
    match (&state.embedder, &state.reranker) {
        (Some(_), Some(_)) => {
            "OpenAI /v1/embeddings, Ollama /api/embed and /api/embeddings, TEI / and /embed, \
             rerank /v1/rerank and /rerank, /metrics"
        }
        (None, Some(_)) => {
            "rerank /v1/rerank, /rerank and TEI's / (llama-server, Jina, Cohere and TEI shapes), \
             /metrics"
        }
        _ => {
            "OpenAI /v1/embeddings, Ollama /api/embed and /api/embeddings, TEI / and /embed, \
             /metrics"
        }
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM, and says how much work is still in flight.
async fn shutdown_signal(embedder: Option<Embedder>, reranker: Option<Reranker>) {
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
        embedder.as_ref().map_or(0, Embedder::queued)
            + reranker.as_ref().map_or(0, Reranker::queued)
    ));
}
