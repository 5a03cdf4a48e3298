//! `gguf-embed mcp`: code search for coding agents over the Model Context Protocol (stdio),
//! with the official Rust SDK (`rmcp`).
//!
//! Tools: `search_code`, `index_status` and `update_index`. When it can take the index's
//! writer lock, the server keeps the index current for its whole life on a thread of its own
//! ([`Index::keep_current`]): a lexical pass at start and after every burst of file changes
//! (every chunk searchable lexically within seconds), and between passes the embedding queue,
//! the files of the agent's searches first. When another process holds the lock (another
//! agent's server, an `index --watch`), this one only searches, and takes over once that
//! process is gone. Searches never wait for indexing: they read one state of the index, and
//! their query is decoded before any queued document. Only protocol goes to stdout; logs go to
//! stderr.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use anyhow::{Context, Result};
use clap::Args;
use gguf_embed::Embedder;
use gguf_embed::index::{
    Changes, Coverage, DEFAULT_DEBOUNCE, Hit, Holder, Index, IndexError, IndexOptions, KeepControl,
    KeepEvent, Requester, SearchMode, SearchOptions, UpdateEvent, UpdateReport, WriterLock,
};
use rmcp::handler::server::{router::tool::ToolRouter, wrapper::Parameters};
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::{ErrorData, ServerHandler, ServiceExt, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::args::{GlobalArgs, ModelArgs};
use super::index::{Location, coverage_line, search_embedder};
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

/// What the server knows about the indexing it does.
#[derive(Debug, Clone, Default, Serialize)]
struct Indexing {
    /// A pass runs in this server (its lexical step, or the embedding after it).
    in_progress: bool,
    /// `lexical`, `embedding` or `idle`.
    phase: &'static str,
    /// Passes started by this server.
    passes: u64,
    /// New or changed files to write in the running lexical step.
    planned_files: usize,
    /// Files written so far in it.
    done_files: usize,
    /// Chunks written so far in it.
    chunks: usize,
    /// Chunks embedded, of the chunks to embed, as the embedding last reported.
    embedded: usize,
    total: usize,
    /// The last lexical step's report.
    last_report: Option<UpdateReport>,
    /// The last error.
    last_error: Option<String>,
    /// The number of the last pass whose lexical step finished, or failed.
    #[serde(skip)]
    written_pass: u64,
    #[serde(skip)]
    failed_pass: u64,
}

/// The thread that keeps the index current, once started.
struct Keeper {
    requester: Requester,
    control: Arc<KeepControl>,
}

/// The server's shared state.
struct State {
    repo: PathBuf,
    index: PathBuf,
    embedder: Embedder,
    indexing: Mutex<Indexing>,
    /// Told whenever `indexing` changes.
    changed: Condvar,
    /// Whether this server holds the writer lock (and keeps the index current).
    writer: Mutex<bool>,
    keeper: Mutex<Option<Keeper>>,
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
        description = "Search the repository's code. Finds definitions by meaning (\"where do we retry uploads\"), by identifier, path fragment or error message. Returns whole chunks with path, line range, symbol and score, and the index's coverage (while it is being embedded, every chunk is searched lexically and the embedded ones semantically; the files of your hits are embedded first); page with offset."
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
        let found = match searched {
            Ok(found) => found,
            Err(IndexError::InvalidQuery(msg)) => return Err(ErrorData::invalid_params(msg, None)),
            Err(e) => return Ok(tool_error(&e)),
        };
        let next_offset = offset + found.hits.len();
        let text = render_hits(&found.hits, &found.coverage, next_offset);
        let structured = json!({
            "results": found.hits,
            "coverage": found.coverage,
            "next_offset": next_offset,
        });
        Ok(with_structure(text, structured))
    }

    /// The index's files, chunks, coverage, model, last update and any pass in progress.
    #[tool(
        name = "index_status",
        description = "Files and chunks in the index, how many are embedded (coverage, with an estimate of the time left), its model, the last update, and whether a pass is in progress (with counts)."
    )]
    async fn index_status(
        &self,
        Parameters(_): Parameters<NoParams>,
    ) -> Result<CallToolResult, ErrorData> {
        // The server's state first, the index after: a pass reported over has written
        // everything the index then shows.
        let indexing = self.state.indexing.lock().expect("not poisoned").clone();
        let writer = *self.state.writer.lock().expect("not poisoned");
        let state = self.state.clone();
        let stats = tokio::task::spawn_blocking(move || {
            Index::open_read_only(&state.index).and_then(|i| i.stats())
        })
        .await
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        let (files, chunks, coverage, fingerprint, last_run) = match &stats {
            Ok(s) => (
                s.files,
                s.chunks,
                s.coverage,
                s.fingerprint.clone(),
                s.last_run.clone(),
            ),
            Err(IndexError::Missing(_)) => (0, 0, Coverage::default(), None, None),
            Err(e) => return Ok(tool_error(e)),
        };
        let value = json!({
            "repo": self.state.repo,
            "index": self.state.index,
            "files": files,
            "chunks": chunks,
            "coverage": coverage,
            "model": fingerprint,
            "last_update": last_run,
            "indexing": indexing,
            "writer": writer,
        });
        let mut text = format!(
            "{files} files, {chunks} chunks; {}",
            coverage_line(&coverage)
        );
        if indexing.in_progress {
            text.push_str(&format!(
                "; {}: {}/{} files written, {} chunks",
                indexing.phase, indexing.done_files, indexing.planned_files, indexing.chunks
            ));
        }
        if !writer {
            text.push_str("; another process keeps this index up to date");
        }
        Ok(with_structure(text, value))
    }

    /// Runs a pass now and returns once its lexical step is done.
    #[tool(
        name = "update_index",
        description = "Bring the index up to date now: changed files are written (searchable lexically) before this returns, and embedded in the background (only new and changed chunks); reindex: true rebuilds it from scratch."
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
            Ok((report, coverage)) => {
                let text = format!(
                    "{} files: {} written, {} unchanged, {} removed; {} chunks reused; {}",
                    report.files,
                    report.embedded_files,
                    report.unchanged_files,
                    report.removed_files,
                    report.reused_chunks,
                    coverage_line(&coverage)
                );
                let mut value = serde_json::to_value(&report)
                    .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
                value["coverage"] = json!(coverage);
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

fn render_hits(hits: &[Hit], coverage: &Coverage, next_offset: usize) -> String {
    let mut out = String::new();
    if hits.is_empty() {
        out.push_str("no results\n");
    }
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
    if !coverage.is_complete() {
        out.push_str(&format!("({})\n", coverage_line(coverage)));
    }
    if !hits.is_empty() {
        out.push_str(&format!("(next_offset: {next_offset})\n"));
    }
    out
}

/// `update_index`: starts the keeper if it is not running, asks it for a pass (emptying the
/// index first with `reindex`), and waits for that pass's lexical step.
fn update(state: &Arc<State>, reindex: bool) -> Result<(UpdateReport, Coverage)> {
    let (requester, control) = {
        let mut keeper = state.keeper.lock().expect("not poisoned");
        if keeper.is_none() {
            *keeper = Some(start_keeper(state)?);
        }
        let k = keeper.as_ref().expect("set above");
        (k.requester.clone(), k.control.clone())
    };
    if !*state.writer.lock().expect("not poisoned") {
        return Err(IndexError::Busy(state.index.clone()).into());
    }
    let mut indexing = state.indexing.lock().expect("not poisoned");
    let before = indexing.passes;
    if reindex {
        control.request_reindex();
    }
    anyhow::ensure!(requester.request(), "the indexing thread stopped");
    while indexing.written_pass <= before && indexing.failed_pass <= before {
        indexing = state.changed.wait(indexing).expect("not poisoned");
    }
    if indexing.failed_pass > before {
        anyhow::bail!(
            "{}",
            indexing
                .last_error
                .clone()
                .unwrap_or_else(|| "the update failed".into())
        );
    }
    let report = indexing
        .last_report
        .clone()
        .expect("a written pass has its report");
    drop(indexing);
    let coverage = Index::open_read_only(&state.index)?.coverage()?;
    Ok((report, coverage))
}

/// Starts the thread that keeps the index current, when this server can take the writer lock
/// (now or, if another process has it, once that process is gone).
fn start_keeper(state: &Arc<State>) -> Result<Keeper> {
    // Watching starts first, so that nothing changed during the first pass is missed.
    let changes = match Changes::watch(&state.repo, Some(&state.index), DEFAULT_DEBOUNCE) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("not watching for changes: {e:#}");
            Changes::requests_only(&state.repo)
        }
    };
    // Taken here, so that the caller knows at once whether this server is the writer.
    let lock = take_lock(state)?;
    let keeper = Keeper {
        requester: changes.requester(),
        control: Arc::new(KeepControl::default()),
    };
    let control = keeper.control.clone();
    let state = state.clone();
    std::thread::Builder::new()
        .name("gguf-embed-keeper".into())
        .spawn(move || keep_fresh(&state, changes, &control, lock))
        .context("cannot start the indexing thread")?;
    Ok(keeper)
}

/// The writer lock, announced as this server's, if no other process has it.
fn take_lock(state: &State) -> Result<Option<WriterLock>> {
    let lock = WriterLock::acquire(&state.index, false)?;
    let mut writer = state.writer.lock().expect("not poisoned");
    *writer = lock.is_some();
    match lock {
        Some(mut lock) => {
            lock.announce(&Holder::this_process("gguf-embed mcp", true))?;
            Ok(Some(lock))
        }
        None => {
            let who = WriterLock::holder(&state.index)
                .map_or("another gguf-embed process".into(), |h| {
                    format!("`{}` (pid {})", h.command, h.pid)
                });
            tracing::info!("{who} keeps the index current; this server only searches");
            Ok(None)
        }
    }
}

/// Keeps the index current for the server's life. Without the writer lock, waits for file
/// changes or requests and tries again: once the process that has it is gone, this server
/// becomes the writer.
fn keep_fresh(state: &State, changes: Changes, control: &KeepControl, lock: Option<WriterLock>) {
    let mut lock = lock;
    loop {
        if let Some(lock) = lock.take() {
            if let Err(e) = keep(state, &changes, control, lock) {
                record_failure(state, &e);
                tracing::warn!("not keeping the index current: {e:#}");
            }
            *state.writer.lock().expect("not poisoned") = false;
        }
        match changes.next_batch(DEFAULT_DEBOUNCE) {
            Ok(Some(batch)) => match take_lock(state) {
                Ok(Some(l)) => lock = Some(l),
                // Whoever asked for this pass learns that it is not this server's to run.
                Ok(None) if batch.requested => {
                    record_failure(state, &IndexError::Busy(state.index.clone()).into());
                }
                Ok(None) => {}
                Err(e) => record_failure(state, &e),
            },
            Ok(None) => return,
            Err(e) => tracing::warn!("watching for changes: {e:#}"),
        }
    }
}

/// Notes a failed pass (or a pass this server cannot run) for `update_index` and the status.
fn record_failure(state: &State, e: &anyhow::Error) {
    let mut indexing = state.indexing.lock().expect("not poisoned");
    indexing.passes += 1;
    indexing.failed_pass = indexing.passes;
    indexing.in_progress = false;
    indexing.phase = "idle";
    indexing.last_error = Some(format!("{e:#}"));
    state.changed.notify_all();
}

/// The keeper itself, with the writer lock.
fn keep(state: &State, changes: &Changes, control: &KeepControl, lock: WriterLock) -> Result<()> {
    let options = match Index::open_read_only(&state.index)
        .ok()
        .and_then(|i| i.fingerprint().ok().flatten())
    {
        // Keep the index's own settings, so that the server never trips on a mismatch.
        Some(f) => IndexOptions::default()
            .with_chunk_tokens(f.chunk_tokens)
            .with_dimensions(f.dimensions),
        None => IndexOptions::default(),
    };
    let mut index = Index::open_or_create(&state.index, &state.embedder, &options, false)?;
    index.hold_writer(lock);
    let on = |event: KeepEvent<'_>| {
        let mut indexing = state.indexing.lock().expect("not poisoned");
        match event {
            KeepEvent::Started(_) => {
                indexing.passes += 1;
                indexing.in_progress = true;
                indexing.phase = "lexical";
                indexing.planned_files = 0;
                indexing.done_files = 0;
                indexing.chunks = 0;
            }
            KeepEvent::Progress(UpdateEvent::Planned { files }) => indexing.planned_files = *files,
            KeepEvent::Progress(UpdateEvent::Written { files, chunks }) => {
                indexing.done_files = *files;
                indexing.chunks = *chunks;
            }
            KeepEvent::Progress(UpdateEvent::Embedded {
                embedded, total, ..
            }) => {
                indexing.embedded = *embedded;
                indexing.total = *total;
            }
            KeepEvent::Written(report) => {
                indexing.phase = "embedding";
                indexing.last_report = Some(report.clone());
                indexing.last_error = None;
                indexing.written_pass = indexing.passes;
            }
            KeepEvent::Passed(report) => {
                indexing.in_progress = false;
                indexing.phase = "idle";
                tracing::info!(
                    "index up to date: {} files, {} chunks embedded, {} reused, {} waiting",
                    report.files,
                    report.chunks,
                    report.reused_chunks,
                    report.pending_chunks
                );
            }
            KeepEvent::Failed(e) => {
                indexing.in_progress = false;
                indexing.phase = "idle";
                indexing.last_error = Some(e.to_string());
                indexing.failed_pass = indexing.passes;
                tracing::info!("the update failed: {e:#}");
            }
            _ => {}
        }
        state.changed.notify_all();
    };
    index.keep_current(
        &state.repo,
        &state.embedder,
        &options,
        changes,
        control,
        &on,
    )?;
    Ok(())
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
        indexing: Mutex::new(Indexing {
            phase: "idle",
            ..Indexing::default()
        }),
        changed: Condvar::new(),
        writer: Mutex::new(false),
        keeper: Mutex::new(None),
    });
    if !args.no_update {
        let keeper = start_keeper(&state)?;
        *state.keeper.lock().expect("not poisoned") = Some(keeper);
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
