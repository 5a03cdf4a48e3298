//! `gguf-embed mcp`: code search for coding agents over the Model Context Protocol (stdio),
//! with the official Rust SDK (`rmcp`).
//!
//! Tools: `search_code`, `index_status` and `update_index`. The server brings the index up to
//! date in the background at start and after every burst of file changes (watch mode) when it
//! can take the index's writer lock; when another process holds it (another agent's server,
//! an `index --watch`), this one only searches. Searches
//! never wait for indexing (SQLite's write-ahead log). Only protocol goes to stdout; logs go
//! to stderr.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use clap::Args;
use gguf_embed::Embedder;
use gguf_embed::index::{
    Changes, DEFAULT_DEBOUNCE, Hit, Index, IndexError, IndexOptions, SearchMode, SearchOptions,
    UpdateEvent, UpdateReport, WriterLock,
};
use rmcp::handler::server::{router::tool::ToolRouter, wrapper::Parameters};
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::{ErrorData, ServerHandler, ServiceExt, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::args::{GlobalArgs, ModelArgs};
use super::index::{Location, search_embedder};
use super::model;

#[derive(Debug, Clone, Args)]
pub struct McpArgs {
    #[command(flatten)]
    pub location: Location,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Do not update the index at start (searches and `update_index` still work)
    #[arg(long)]
    pub no_update: bool,
}

/// What the server knows about indexing in progress.
#[derive(Debug, Clone, Default, Serialize)]
struct Indexing {
    /// An update is running in this server.
    in_progress: bool,
    /// Files to embed in the running update.
    planned_files: usize,
    /// Files embedded so far.
    done_files: usize,
    /// Chunks written so far.
    chunks: usize,
    /// The last update's report.
    last_report: Option<UpdateReport>,
    /// The last update's error.
    last_error: Option<String>,
}

/// The server's shared state.
struct State {
    repo: PathBuf,
    index: PathBuf,
    embedder: Embedder,
    indexing: Mutex<Indexing>,
    /// The writer lock, once this server has it; kept for the server's life, so that other
    /// servers on the same index stay readers.
    writer: Mutex<Option<WriterLock>>,
}

#[derive(Clone)]
struct CodeSearch {
    state: Arc<State>,
    tool_router: ToolRouter<Self>,
}

/// How a query is matched.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Mode {
    /// Semantic and lexical results fused by reciprocal rank (the default).
    Hybrid,
    /// By meaning only.
    Semantic,
    /// Words and identifiers as written (BM25).
    Lexical,
}

/// `search_code`'s arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SearchParams {
    /// What to look for: plain language, an identifier, a path fragment or an error message
    /// (searched as text, never as query syntax).
    query: String,
    /// hybrid (default), semantic or lexical.
    mode: Option<Mode>,
    /// Results per page (default 10).
    limit: Option<usize>,
    /// Glob patterns on paths relative to the repository; `!GLOB` excludes.
    glob: Option<Vec<String>>,
    /// Languages: rust, python, javascript, typescript, go, java, c, cpp, markdown, ...
    lang: Option<Vec<String>>,
    /// Only files under this path.
    path: Option<String>,
    /// Minimum cosine similarity to the query (semantic and hybrid).
    threshold: Option<f32>,
    /// Lines of the file to show before and after each hit.
    context_lines: Option<usize>,
    /// Return whole results while their tokens fit this budget.
    max_tokens: Option<usize>,
    /// Results to skip (paging: pass the previous call's next_offset).
    offset: Option<usize>,
}

/// `update_index`'s arguments.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct UpdateParams {
    /// Drop everything and index from scratch.
    #[serde(default)]
    reindex: bool,
}

/// `index_status` takes no arguments.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoParams {}

#[tool_router]
impl CodeSearch {
    fn new(state: Arc<State>) -> Self {
        Self {
            state,
            tool_router: Self::tool_router(),
        }
    }

    /// Searches the repository's code: hybrid (lexical + semantic) by default.
    #[tool(
        name = "search_code",
        description = "Search the repository's code. Finds definitions by meaning (\"where do we retry uploads\"), by identifier, path fragment or error message. Returns whole chunks with path, line range, symbol and score; page with offset."
    )]
    async fn search_code(
        &self,
        Parameters(p): Parameters<SearchParams>,
    ) -> Result<CallToolResult, ErrorData> {
        if p.query.trim().is_empty() {
            return Err(ErrorData::invalid_params("query is empty", None));
        }
        if p.limit == Some(0) {
            return Err(ErrorData::invalid_params("limit must be at least 1", None));
        }
        let mut options = SearchOptions::default();
        options.mode = match p.mode.unwrap_or(Mode::Hybrid) {
            Mode::Hybrid => SearchMode::Hybrid,
            Mode::Semantic => SearchMode::Semantic,
            Mode::Lexical => SearchMode::Lexical,
        };
        options.k = p.limit.unwrap_or(10);
        options.globs = p.glob.unwrap_or_default();
        options.languages = p.lang.unwrap_or_default();
        options.path_prefix = p.path;
        options.threshold = p.threshold;
        options.context_lines = p.context_lines.unwrap_or(0);
        options.max_tokens = p.max_tokens;
        options.offset = p.offset.unwrap_or(0);
        let state = self.state.clone();
        let query = p.query;
        let offset = options.offset;
        let searched = tokio::task::spawn_blocking(move || {
            let index = Index::open_read_only(&state.index)?;
            index.search(Some(&state.embedder), &query, &options)
        })
        .await
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        let hits = match searched {
            Ok(hits) => hits,
            Err(IndexError::InvalidQuery(msg)) => return Err(ErrorData::invalid_params(msg, None)),
            Err(e) => return Ok(tool_error(&e)),
        };
        let next_offset = offset + hits.len();
        let text = render_hits(&hits, next_offset);
        let structured = json!({ "results": hits, "next_offset": next_offset });
        Ok(with_structure(text, structured))
    }

    /// The index's files, chunks, model, last update and any update in progress.
    #[tool(
        name = "index_status",
        description = "Files and chunks in the index, its model, the last update, and whether an update is in progress (with counts)."
    )]
    async fn index_status(
        &self,
        Parameters(_): Parameters<NoParams>,
    ) -> Result<CallToolResult, ErrorData> {
        let state = self.state.clone();
        let stats = tokio::task::spawn_blocking(move || {
            Index::open_read_only(&state.index).and_then(|i| i.stats())
        })
        .await
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        let indexing = self.state.indexing.lock().expect("not poisoned").clone();
        // During a pass this server's lock is lent to it.
        let writer =
            self.state.writer.lock().expect("not poisoned").is_some() || indexing.in_progress;
        let (files, chunks, fingerprint, last_run) = match &stats {
            Ok(s) => (s.files, s.chunks, s.fingerprint.clone(), s.last_run.clone()),
            Err(IndexError::Missing(_)) => (0, 0, None, None),
            Err(e) => return Ok(tool_error(e)),
        };
        let value = json!({
            "repo": self.state.repo,
            "index": self.state.index,
            "files": files,
            "chunks": chunks,
            "model": fingerprint,
            "last_update": last_run,
            "indexing": indexing,
            "writer": writer,
        });
        let text = format!(
            "{files} files, {chunks} chunks{}{}",
            if indexing.in_progress {
                format!(
                    "; indexing: {}/{} files, {} chunks",
                    indexing.done_files, indexing.planned_files, indexing.chunks
                )
            } else {
                String::new()
            },
            if writer {
                ""
            } else {
                "; another process keeps this index up to date"
            }
        );
        Ok(with_structure(text, value))
    }

    /// Runs an incremental update now.
    #[tool(
        name = "update_index",
        description = "Bring the index up to date now (only new and changed chunks are embedded); reindex: true rebuilds it from scratch."
    )]
    async fn update_index(
        &self,
        Parameters(p): Parameters<UpdateParams>,
    ) -> Result<CallToolResult, ErrorData> {
        let state = self.state.clone();
        let result = tokio::task::spawn_blocking(move || update(&state, p.reindex))
            .await
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        match result {
            Ok(report) => {
                let text = format!(
                    "{} files: {} embedded, {} unchanged, {} removed; {} chunks embedded, {} reused",
                    report.files,
                    report.embedded_files,
                    report.unchanged_files,
                    report.removed_files,
                    report.chunks,
                    report.reused_chunks
                );
                let value = serde_json::to_value(&report)
                    .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
                Ok(with_structure(text, value))
            }
            Err(e) => Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                "{e:#}"
            ))])),
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for CodeSearch {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_instructions(
            "Code search over this repository. Use search_code for definitions, identifiers, \
             paths and error messages; index_status to see what is indexed.",
        )
    }
}

/// A tool result with readable text and the same as structured content.
fn with_structure(text: String, value: Value) -> CallToolResult {
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(value);
    result
}

/// A failed tool call (the server keeps serving).
fn tool_error(e: &IndexError) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(e.to_string())])
}

fn render_hits(hits: &[Hit], next_offset: usize) -> String {
    if hits.is_empty() {
        return "no results".into();
    }
    let mut out = String::new();
    for hit in hits {
        let symbol = match (&hit.kind, &hit.symbol) {
            (Some(k), Some(s)) => format!("  {k} {s}"),
            _ => String::new(),
        };
        out.push_str(&format!(
            "{}:{}-{}{symbol}  {:.3}\n",
            hit.path, hit.start_line, hit.end_line, hit.score
        ));
        for part in [
            &hit.context_before,
            &Some(hit.snippet.clone()),
            &hit.context_after,
        ]
        .into_iter()
        .flatten()
        {
            out.push_str(part);
            if !part.ends_with('\n') {
                out.push('\n');
            }
        }
        out.push('\n');
    }
    out.push_str(&format!("(next_offset: {next_offset})\n"));
    out
}

/// One update pass, holding the writer lock (taken now if this server does not have it yet).
fn update(state: &State, reindex: bool) -> Result<UpdateReport> {
    let lock = {
        let mut writer = state.writer.lock().expect("not poisoned");
        if writer.is_none() {
            *writer = WriterLock::acquire(&state.index, false)?;
        }
        if writer.is_none() {
            return Err(IndexError::Busy(state.index.clone()).into());
        }
        // The lock stays with the server; the pass borrows it by taking it out and putting
        // it back, so that two update calls never run at once.
        writer.take().expect("checked above")
    };
    {
        let mut indexing = state.indexing.lock().expect("not poisoned");
        *indexing = Indexing {
            in_progress: true,
            ..Indexing::default()
        };
    }
    let result = run_update(state, lock, reindex);
    let mut indexing = state.indexing.lock().expect("not poisoned");
    indexing.in_progress = false;
    match result {
        Ok((report, lock)) => {
            *state.writer.lock().expect("not poisoned") = Some(lock);
            indexing.last_report = Some(report.clone());
            indexing.last_error = None;
            Ok(report)
        }
        Err((e, lock)) => {
            *state.writer.lock().expect("not poisoned") = lock;
            indexing.last_error = Some(format!("{e:#}"));
            Err(e)
        }
    }
}

/// The update itself; gives the lock back either way.
#[allow(clippy::type_complexity)]
fn run_update(
    state: &State,
    lock: WriterLock,
    reindex: bool,
) -> Result<(UpdateReport, WriterLock), (anyhow::Error, Option<WriterLock>)> {
    let options = match Index::open_read_only(&state.index)
        .ok()
        .and_then(|i| i.fingerprint().ok().flatten())
    {
        // Keep the index's own settings, so that the server never trips on a mismatch.
        Some(f) if !reindex => IndexOptions::default()
            .with_chunk_tokens(f.chunk_tokens)
            .with_dimensions(f.dimensions),
        _ => IndexOptions::default(),
    };
    let mut index = match Index::open_or_create(&state.index, &state.embedder, &options, reindex) {
        Ok(i) => i,
        Err(e) => return Err((e.into(), Some(lock))),
    };
    index.hold_writer(lock);
    let progress = |event: &UpdateEvent| {
        let mut indexing = state.indexing.lock().expect("not poisoned");
        match event {
            UpdateEvent::Planned { files } => indexing.planned_files = *files,
            UpdateEvent::Progress { files, chunks, .. } => {
                indexing.done_files = *files;
                indexing.chunks = *chunks;
            }
            _ => {}
        }
    };
    let report = index.update(&state.repo, &state.embedder, &options, &progress);
    let lock = index.release_writer();
    match (report, lock) {
        (Ok(r), Some(lock)) => Ok((r, lock)),
        (Ok(_), None) => Err((anyhow::anyhow!("the writer lock was lost"), None)),
        (Err(e), lock) => Err((e.into(), lock)),
    }
}

/// Updates the index now and after every burst of file changes, for the server's life. When
/// another process holds the writer lock, the passes are refused and this server only
/// searches; once that process is gone, the next change makes this server the writer.
fn keep_fresh(state: &State) {
    // Watching starts first, so that nothing changed during the first pass is missed.
    let changes = match Changes::watch(&state.repo, Some(&state.index), DEFAULT_DEBOUNCE) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!("not watching for changes: {e:#}");
            None
        }
    };
    let pass = || match update(state, false) {
        Ok(r) => tracing::info!(
            "index up to date: {} files, {} chunks embedded, {} reused",
            r.files,
            r.chunks,
            r.reused_chunks
        ),
        Err(e) => tracing::info!("not updating the index: {e:#}"),
    };
    pass();
    let Some(changes) = changes else { return };
    loop {
        match changes.next_batch(DEFAULT_DEBOUNCE) {
            Ok(Some(_)) => pass(),
            Ok(None) => return,
            Err(e) => tracing::warn!("watching for changes: {e:#}"),
        }
    }
}

/// The model: the one given, else the one the index was built with, else the default.
fn load_model(args: &McpArgs, global: &GlobalArgs, index: &Path) -> Result<Embedder> {
    if args.model.source.model.is_none()
        && let Ok(existing) = Index::open_read_only(index)
    {
        return search_embedder(&existing, &args.model, global);
    }
    model::load(&args.model, global)
}

/// `gguf-embed mcp`.
pub fn run(args: McpArgs, global: &GlobalArgs) -> Result<()> {
    let repo = args.location.repo.clone();
    if !repo.is_dir() {
        anyhow::bail!("{} is not a directory", repo.display());
    }
    let index = args.location.index_path();
    let embedder = load_model(&args, global, &index)?;
    let state = Arc::new(State {
        repo,
        index,
        embedder,
        indexing: Mutex::new(Indexing::default()),
        writer: Mutex::new(None),
    });
    if !args.no_update {
        let state = state.clone();
        std::thread::spawn(move || keep_fresh(&state));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let service = CodeSearch::new(state)
            .serve(rmcp::transport::stdio())
            .await
            .context("MCP handshake failed")?;
        service.waiting().await.context("MCP server")?;
        Ok(())
    })
}
