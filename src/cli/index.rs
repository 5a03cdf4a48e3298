//! `gguf-embed index` and `gguf-embed search`: semantic search over a source repository.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use gguf_embed::index::{
    Changes, Coverage, DEFAULT_CHUNK_TOKENS, DEFAULT_DEBOUNCE, DEFAULT_INDEX_PATH,
    DEFAULT_MAX_FILE_BYTES, DEFAULT_RRF_K, Hit, Holder, Index, IndexError, IndexOptions,
    IndexStats, KeepControl, KeepEvent, SearchMode, SearchOptions, SearchResults, UpdateEvent,
    UpdateReport, WriterLock,
};
use gguf_embed::{Embedder, Instruction, Task};
use indicatif::{ProgressBar, ProgressStyle};

use super::args::{GlobalArgs, InfoFormat, ModelArgs};
use super::{model, progress};

/// Where the repository and its index are.
#[derive(Debug, Clone, Args)]
pub struct Location {
    /// The repository to index or search
    #[arg(long, value_name = "PATH", default_value = ".")]
    pub repo: PathBuf,
    /// The index file [default: REPO/.gguf-embed/index.sqlite]
    #[arg(long, value_name = "PATH")]
    pub index: Option<PathBuf>,
}

impl Location {
    /// The index file.
    pub fn index_path(&self) -> PathBuf {
        self.index
            .clone()
            .unwrap_or_else(|| self.repo.join(DEFAULT_INDEX_PATH))
    }
}

#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct IndexArgs {
    /// Share vectors between clones: export them to a file, or import one
    #[command(subcommand)]
    pub action: Option<IndexAction>,
    #[command(flatten)]
    pub location: Location,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Index at most N files: the first N indexable files in path order (byte-wise, `/`
    /// separators)
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Token budget of a chunk (chunks never cut a line)
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CHUNK_TOKENS)]
    pub chunk_tokens: usize,
    /// Skip files larger than this many bytes
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_FILE_BYTES)]
    pub max_file_size: u64,
    /// Store Matryoshka vectors of this size (smaller index, slightly less precise)
    #[arg(long, value_name = "N")]
    pub dim: Option<usize>,
    /// Start over: drop everything indexed so far (needed after changing the model)
    #[arg(long)]
    pub reindex: bool,
    /// Print what the index holds and exit
    #[arg(long)]
    pub stats: bool,
    /// Keep the index current: after the first pass, wait for file changes and update
    /// (debounced; one pass per burst of changes) until interrupted
    #[arg(long, conflicts_with = "stats")]
    pub watch: bool,
    /// When another process holds the index (a watcher, an MCP server, another `index`),
    /// say who and return at once instead of waiting for its next pass
    #[arg(long, conflicts_with = "stats")]
    pub no_wait: bool,
    /// Embed vendored and generated files too (`linguist-vendored`/`linguist-generated` in
    /// .gitattributes, vendor/ folders, `@generated` files): by default they are searched
    /// lexically only
    #[arg(long)]
    pub embed_vendored: bool,
    /// Output format of --stats and the final report
    #[arg(short, long, value_enum, default_value = "text")]
    pub format: InfoFormat,
}

/// `index export` and `index import`.
#[derive(Debug, Clone, Subcommand)]
pub enum IndexAction {
    /// Write the index's chunk vectors to a file that other clones of the repository can
    /// import (keyed by each chunk's text; the header names the model, dimensions and chunk
    /// budget)
    Export {
        #[command(flatten)]
        location: Location,
        /// The vector file to write
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Output format of the summary
        #[arg(short, long, value_enum, default_value = "text")]
        format: InfoFormat,
    },
    /// Make the vectors of a vector file available to the index (created if absent, for the
    /// file's model): indexing then embeds only the chunks the file does not hold
    Import {
        /// The vector file (written by `index export` or the Ray example)
        #[arg(value_name = "FILE")]
        file: PathBuf,
        #[command(flatten)]
        location: Location,
        /// Output format of the summary
        #[arg(short, long, value_enum, default_value = "text")]
        format: InfoFormat,
    },
}

/// Output of `search`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SearchFormat {
    /// path:lines, score and the first lines of each hit
    Text,
    /// One JSON object: {"results": [hits], "coverage": {...}}
    Json,
    /// One JSON object per hit (the coverage goes to stderr)
    Jsonl,
}

#[derive(Debug, Clone, Args)]
pub struct SearchArgs {
    /// What to look for, in plain language (or code, with --as-document); may start with `-`
    #[arg(allow_hyphen_values = true)]
    pub query: String,
    #[command(flatten)]
    pub location: Location,
    #[command(flatten)]
    pub model: ModelArgs,
    /// How many results
    #[arg(short, default_value_t = 10)]
    pub k: usize,
    /// Embed the query as a document, without instruction: finds code like a given snippet
    #[arg(long, conflicts_with_all = ["task", "instruction"])]
    pub as_document: bool,
    /// Embed the query with another task [default: code-search]
    #[arg(long, value_name = "NAME")]
    pub task: Option<Task>,
    /// Embed the query with an instruction of your own
    #[arg(short, long, value_name = "T", conflicts_with = "task")]
    pub instruction: Option<String>,
    /// hybrid: semantic and lexical results fused by reciprocal rank; semantic: by meaning
    /// only; lexical: words and identifiers as written (BM25; needs no model)
    #[arg(long, value_enum, default_value = "hybrid")]
    pub mode: ModeArg,
    /// The reciprocal-rank-fusion constant of hybrid search: a result at rank r of either
    /// list adds 1/(K + r)
    #[arg(long, value_name = "K", default_value_t = DEFAULT_RRF_K)]
    pub rrf_k: f32,
    /// Only paths matching this glob (relative to the repository; repeatable; `!GLOB`
    /// excludes)
    #[arg(long = "glob", short = 'g', value_name = "GLOB")]
    pub globs: Vec<String>,
    /// Only files of this language (repeatable): rust, python, javascript, typescript, go,
    /// java, c, cpp, markdown, ...
    #[arg(long = "lang", value_name = "NAME")]
    pub languages: Vec<String>,
    /// Only files under this path (relative to the repository)
    #[arg(long = "path", value_name = "PREFIX")]
    pub path_prefix: Option<String>,
    /// Only results at least this similar to the query (cosine, -1..1; semantic and hybrid)
    #[arg(long, value_name = "SIM")]
    pub threshold: Option<f32>,
    /// Show N lines of the file before and after each hit
    #[arg(short = 'C', long = "context", value_name = "N", default_value_t = 0)]
    pub context: usize,
    /// Whole results while their tokens fit this budget (the first is always shown)
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<usize>,
    /// Skip the first N results (paging)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub offset: usize,
    /// Lines of each snippet shown in text output
    #[arg(long, default_value_t = 6)]
    pub lines: usize,
    /// Output format
    #[arg(short, long, value_enum, default_value = "text")]
    pub format: SearchFormat,
}

/// `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Semantic and lexical fused by reciprocal rank
    Hybrid,
    /// By meaning (vectors) only
    Semantic,
    /// Words and identifiers as written (BM25)
    Lexical,
}

impl From<ModeArg> for SearchMode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Hybrid => SearchMode::Hybrid,
            ModeArg::Semantic => SearchMode::Semantic,
            ModeArg::Lexical => SearchMode::Lexical,
        }
    }
}

/// How long a process waiting beside a keeper sleeps between looks at the index.
const WAIT_POLL: Duration = Duration::from_millis(250);

/// `gguf-embed index`.
pub fn run_index(args: IndexArgs, global: &GlobalArgs) -> Result<()> {
    if let Some(action) = &args.action {
        return run_action(action);
    }
    let index_path = args.location.index_path();
    if args.stats {
        let stats = Index::open_read_only(&index_path)?.stats()?;
        return print_stats(&stats, args.format);
    }
    if !args.location.repo.is_dir() {
        bail!("{} is not a directory", args.location.repo.display());
    }
    let Some(mut lock) = writer_lock(&index_path, &args)? else {
        return Ok(());
    };
    let command = if args.watch {
        "gguf-embed index --watch"
    } else {
        "gguf-embed index"
    };
    lock.announce(&Holder::this_process(command, args.watch))?;
    let embedder = model::load(&args.model, global)?;
    let mut options = IndexOptions::default()
        .with_chunk_tokens(args.chunk_tokens)
        .with_max_file_bytes(args.max_file_size)
        .with_embed_vendored(args.embed_vendored);
    if let Some(limit) = args.limit {
        options = options.with_limit(limit);
    }
    if let Some(dim) = args.dim {
        options = options.with_dimensions(dim);
    }
    let mut index = Index::open_or_create(&index_path, &embedder, &options, args.reindex)?;
    index.hold_writer(lock);
    if !args.watch {
        let bars = Bars::new(progress::enabled(global.quiet));
        let report = index.update(&args.location.repo, &embedder, &options, &|e| bars.show(e))?;
        bars.finish();
        return print_report(&report, &args, index.path());
    }
    // Watching starts before the first pass, so that nothing changed during it is missed.
    let changes = Changes::watch(&args.location.repo, Some(&index_path), DEFAULT_DEBOUNCE)?;
    let control = KeepControl::default();
    let on = |event: KeepEvent<'_>| match event {
        KeepEvent::Started(batch) if batch.changed > 0 => {
            tracing::info!("{} paths changed; updating", batch.changed);
        }
        KeepEvent::Started(_) => tracing::info!("a pass was asked for; updating"),
        KeepEvent::Written(report) => tracing::info!(
            "{} files written; {} chunks to embed",
            report.embedded_files,
            report.pending_chunks
        ),
        KeepEvent::Passed(report) => {
            if let Err(e) = print_report(report, &args, index_path.as_path()) {
                tracing::warn!("cannot print the report: {e:#}");
            }
        }
        // A failed pass (a full disk, an engine error) is reported; the next change tries
        // again.
        KeepEvent::Failed(e) => tracing::warn!("update failed: {e:#}"),
        _ => {}
    };
    tracing::info!("watching {} for changes", args.location.repo.display());
    index.keep_current(
        &args.location.repo,
        &embedder,
        &options,
        &changes,
        &control,
        &on,
    )?;
    Ok(())
}

/// `index export` and `index import`.
fn run_action(action: &IndexAction) -> Result<()> {
    match action {
        IndexAction::Export {
            location,
            output,
            format,
        } => {
            let index = Index::open_read_only(location.index_path())?;
            let vectors = index.export_vectors(output)?;
            let bytes = std::fs::metadata(output).map_or(0, |m| m.len());
            match format {
                InfoFormat::Json => outln!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "file": output,
                        "vectors": vectors,
                        "bytes": bytes,
                    }))?
                )?,
                InfoFormat::Text => outln!(
                    "exported {vectors} vectors ({}) to {}",
                    gguf_embed::hub::human_bytes(bytes),
                    output.display()
                )?,
            }
        }
        IndexAction::Import {
            file,
            location,
            format,
        } => {
            let index = location.index_path();
            let report = Index::import_vectors(&index, file)?;
            match format {
                InfoFormat::Json => outln!("{}", serde_json::to_string_pretty(&report)?)?,
                InfoFormat::Text => {
                    outln!(
                        "imported {} vectors ({} new to the index) from {}; {} chunks took theirs{}",
                        report.vectors,
                        report.new_vectors,
                        file.display(),
                        report.filled_chunks,
                        if report.created {
                            " (index created)"
                        } else {
                            ""
                        }
                    )?;
                    outln!("index: {}", index.display())?;
                }
            }
        }
    }
    Ok(())
}

/// Prints an update's report: pretty JSON, or one JSON line per pass when watching.
fn print_report(report: &UpdateReport, args: &IndexArgs, index: &Path) -> Result<()> {
    match args.format {
        InfoFormat::Json if args.watch => outln!("{}", serde_json::to_string(report)?)?,
        InfoFormat::Json => outln!("{}", serde_json::to_string_pretty(report)?)?,
        InfoFormat::Text => {
            let mut skipped: Vec<String> = report
                .skipped
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect();
            skipped.sort();
            outln!(
                "indexed {} files ({} written, {} unchanged, {} removed): {} chunks embedded, {} reused, {} tokens in {:.1} s{}; lexical search was complete after {:.1} s",
                report.files,
                report.embedded_files,
                report.unchanged_files,
                report.removed_files,
                report.chunks,
                report.reused_chunks,
                report.tokens,
                report.seconds,
                if report.seconds > 0.0 && report.tokens > 0 {
                    format!(" ({:.0} tokens/s)", report.tokens as f64 / report.seconds)
                } else {
                    String::new()
                },
                report.lexical_seconds,
            )?;
            if report.pending_chunks > 0 {
                outln!(
                    "{} chunks wait for their vectors (files changed meanwhile were written first)",
                    report.pending_chunks
                )?;
            }
            if report.lexical_only_files > 0 {
                outln!(
                    "{} vendored or generated files are searched lexically only (--embed-vendored embeds them)",
                    report.lexical_only_files
                )?;
            }
            if !skipped.is_empty() {
                outln!("skipped: {}", skipped.join(", "))?;
            }
            // The first few are enough to act on; every one is in the JSON report and the log.
            const SHOWN: usize = 10;
            for u in report.unreadable.iter().take(SHOWN) {
                outln!("  not read: {}: {}", u.path, u.error)?;
            }
            if report.unreadable.len() > SHOWN {
                outln!("  and {} more not read", report.unreadable.len() - SHOWN)?;
            }
            if report.truncated_chunks > 0 {
                outln!(
                    "{} chunks are single lines longer than {} tokens; their start was embedded",
                    report.truncated_chunks,
                    args.chunk_tokens
                )?;
            }
            outln!("index: {}", index.display())?;
        }
    }
    Ok(())
}

/// The index's writer lock. When another process holds it: with `--no-wait`, say who and
/// return `None`; else wait, saying so, until the holder lets go (then this run updates the
/// index itself) or, for a holder that keeps the index current, until it finished a pass that
/// started after this run began (asked for through the request file): then the index is
/// current and `None` is returned too.
fn writer_lock(index: &Path, args: &IndexArgs) -> Result<Option<WriterLock>> {
    if let Some(lock) = WriterLock::acquire(index, false)? {
        return Ok(Some(lock));
    }
    let holder = WriterLock::holder(index);
    let who = match &holder {
        Some(h) => format!("`{}` (pid {})", h.command, h.pid),
        None => "another gguf-embed process".to_string(),
    };
    let keeper = holder.as_ref().is_some_and(|h| h.keeps_current);
    if args.no_wait {
        let doing = if keeper {
            "keeps it current"
        } else {
            "is updating it"
        };
        tracing::warn!("{who} {doing}; not waiting (--no-wait)");
        print_beside(index, holder.as_ref(), false, args.format)?;
        return Ok(None);
    }
    let passes = |index: &Path| -> Result<(u64, u64)> {
        match Index::open_read_only(index) {
            Ok(i) => Ok(i.passes()?),
            Err(IndexError::Missing(_)) => Ok((0, 0)),
            Err(e) => Err(e.into()),
        }
    };
    let started_before = passes(index)?.0;
    if keeper {
        WriterLock::request_pass(index)?;
        tracing::warn!(
            "{who} keeps the index at {} current; waiting for a pass that started after this              one to finish (--no-wait returns at once)",
            index.display()
        );
    } else {
        tracing::warn!(
            "another gguf-embed process is updating {} ({who}); waiting for it to finish",
            index.display()
        );
    }
    loop {
        if let Some(lock) = WriterLock::acquire(index, false)? {
            return Ok(Some(lock));
        }
        if keeper && passes(index)?.1 > started_before {
            print_beside(index, holder.as_ref(), true, args.format)?;
            return Ok(None);
        }
        std::thread::sleep(WAIT_POLL);
    }
}

/// What a run that found the index held by another process prints: who holds it, whether
/// this run waited for its pass, and the coverage now.
fn print_beside(
    index: &Path,
    holder: Option<&Holder>,
    waited: bool,
    format: InfoFormat,
) -> Result<()> {
    let coverage = match Index::open_read_only(index) {
        Ok(i) => Some(i.coverage()?),
        Err(IndexError::Missing(_)) => None,
        Err(e) => return Err(e.into()),
    };
    match format {
        InfoFormat::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "index": index,
                "held_by": holder,
                "waited": waited,
                "coverage": coverage,
            }))?
        )?,
        InfoFormat::Text => {
            let who = holder.map_or("another gguf-embed process".to_string(), |h| {
                format!("`{}` (pid {})", h.command, h.pid)
            });
            if waited {
                outln!("{who} finished a pass that started after this run: the index is current")?;
            } else if holder.is_some_and(|h| h.keeps_current) {
                outln!("{who} keeps the index current; not waiting")?;
            } else {
                outln!("{who} is updating the index; not waiting")?;
            }
            if let Some(c) = coverage {
                outln!("{}", coverage_line(&c))?;
            }
            outln!("index: {}", index.display())?;
        }
    }
    Ok(())
}

/// The progress bars of a one-shot update: files written by the lexical pass, then chunks
/// embedded.
struct Bars {
    bar: ProgressBar,
}

impl Bars {
    fn new(enabled: bool) -> Self {
        Self {
            bar: index_bar(enabled),
        }
    }

    fn show(&self, event: &UpdateEvent) {
        let bar = &self.bar;
        match event {
            UpdateEvent::Planned { files } => {
                bar.set_prefix("files");
                bar.set_length(*files as u64);
            }
            UpdateEvent::Written { files, chunks } => {
                bar.set_position(*files as u64);
                bar.set_message(format!("{chunks} chunks written (searchable)"));
            }
            UpdateEvent::Embedded {
                embedded,
                total,
                tokens,
            } => {
                if bar.prefix() != "embedded" {
                    bar.set_prefix("embedded");
                    bar.reset_elapsed();
                }
                bar.set_length(*total as u64);
                bar.set_position(*embedded as u64);
                let secs = bar.elapsed().as_secs_f64().max(1e-9);
                bar.set_message(format!("chunks, {:.0} tokens/s", *tokens as f64 / secs));
            }
            _ => {}
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

fn index_bar(enabled: bool) -> ProgressBar {
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {prefix} {pos}/{len} {msg} (ETA {eta})",
        )
        .expect("valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    if !enabled {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar
}

/// `gguf-embed search`.
pub fn run_search(args: SearchArgs, global: &GlobalArgs) -> Result<()> {
    let index_path = args.location.index_path();
    let index = Index::open_read_only(&index_path)?;
    let mode = SearchMode::from(args.mode);
    let embedder = if mode.needs_model() {
        Some(search_embedder(&index, &args.model, global)?)
    } else {
        None
    };
    let instruction = if args.as_document {
        Instruction::None
    } else if let Some(text) = &args.instruction {
        Instruction::Custom(text.clone())
    } else {
        Instruction::Task(args.task.unwrap_or(Task::CodeSearch))
    };
    let mut options = SearchOptions::default();
    options.k = args.k;
    options.instruction = instruction;
    options.mode = mode;
    options.rrf_k = args.rrf_k;
    options.globs = args.globs;
    options.languages = args.languages;
    options.path_prefix = args.path_prefix;
    options.threshold = args.threshold;
    options.context_lines = args.context;
    options.max_tokens = args.max_tokens;
    options.offset = args.offset;
    let found = index.search(embedder.as_ref(), &args.query, &options)?;
    match args.format {
        SearchFormat::Json => outln!("{}", serde_json::to_string_pretty(&found)?)?,
        SearchFormat::Jsonl => {
            for hit in &found.hits {
                outln!("{}", serde_json::to_string(hit)?)?;
            }
            eprintln!("{}", serde_json::json!({ "coverage": found.coverage }));
        }
        SearchFormat::Text => print_hits(&found, args.lines)?,
    }
    Ok(())
}

/// One line on how much of the index was searched semantically.
pub fn coverage_line(c: &Coverage) -> String {
    let mut line = if c.is_complete() {
        format!("every chunk is embedded ({})", c.total)
    } else {
        let eta = match c.eta_seconds {
            Some(s) if s >= 90.0 => format!(", about {:.0} min to go", s / 60.0),
            Some(s) => format!(", about {s:.0} s to go"),
            None => String::new(),
        };
        format!(
            "semantic search covered {} of {} chunks ({:.0}%{eta}); lexical search covered all",
            c.embedded,
            c.total,
            100.0 * c.embedded as f64 / c.total.max(1) as f64
        )
    };
    if c.lexical_only > 0 {
        line.push_str(&format!(
            "; {} chunks of vendored or generated files are searched lexically only",
            c.lexical_only
        ));
    }
    line
}

/// The model for a search: the one given, or else the one the index was last built with.
pub fn search_embedder(index: &Index, args: &ModelArgs, global: &GlobalArgs) -> Result<Embedder> {
    if args.source.model.is_none()
        && let Some(path) = index.stats()?.model_path
        && Path::new(&path).is_file()
    {
        tracing::info!("using the index's model {path}");
        return Embedder::new(&path, model::embedder_options(args))
            .context("cannot load the model");
    }
    model::load(args, global)
}

fn print_hits(found: &SearchResults, lines: usize) -> Result<()> {
    let hits: &[Hit] = &found.hits;
    let c = &found.coverage;
    if hits.is_empty() {
        if c.total == 0 && c.lexical_only == 0 {
            outln!("no results: the index is empty (run `gguf-embed index`)")?;
        } else {
            outln!("no results")?;
        }
    }
    let bold = std::io::stdout().is_terminal();
    for hit in hits {
        let mut location = format!("{}:{}-{}", hit.path, hit.start_line, hit.end_line);
        if bold {
            location = format!("\x1b[1m{location}\x1b[0m");
        }
        match (&hit.kind, &hit.symbol) {
            (Some(kind), Some(symbol)) => outln!("{location}  {kind} {symbol}  {:.3}", hit.score)?,
            _ => outln!("{location}  {:.3}", hit.score)?,
        }
        let context = |text: &Option<String>| -> Result<()> {
            for line in text.iter().flat_map(|t| t.lines()) {
                outln!("  | {line}")?;
            }
            Ok(())
        };
        context(&hit.context_before)?;
        let snippet: Vec<&str> = hit.snippet.lines().take(lines).collect();
        for line in &snippet {
            outln!("    {line}")?;
        }
        if hit.snippet.lines().count() > snippet.len() {
            outln!("    …")?;
        }
        context(&hit.context_after)?;
        outln!()?;
    }
    if !c.is_complete() {
        outln!("({})", coverage_line(c))?;
    }
    Ok(())
}

/// How long ago a Unix time was, for people.
fn age(unix: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let secs = now.saturating_sub(unix);
    match secs {
        0..=89 => format!("{secs} s ago"),
        90..=5399 => format!("{} min ago", secs / 60),
        5400..=172_799 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}

fn print_stats(stats: &IndexStats, format: InfoFormat) -> Result<()> {
    if format == InfoFormat::Json {
        outln!("{}", serde_json::to_string_pretty(stats)?)?;
        return Ok(());
    }
    outln!("index      {}", stats.path.display())?;
    outln!("files      {}", stats.files)?;
    outln!("chunks     {}", stats.chunks)?;
    let c = &stats.coverage;
    outln!(
        "embedded   {} of {}{}",
        c.embedded,
        c.total,
        match c.eta_seconds {
            Some(s) => format!(" (about {:.0} min to go)", (s / 60.0).ceil()),
            None if c.is_complete() => String::new(),
            None => " (no indexer is running)".to_string(),
        }
    )?;
    if stats.vendored_files + stats.generated_files > 0 {
        outln!(
            "lexical    {} vendored and {} generated files ({} chunks) are searched lexically only",
            stats.vendored_files,
            stats.generated_files,
            c.lexical_only
        )?;
    }
    if let Some(f) = &stats.fingerprint {
        outln!(
            "model      {} ({}, sha256 {}…), {} dimensions",
            f.model_file,
            f.quant,
            &f.model_sha256[..f.model_sha256.len().min(12)],
            f.dimensions
        )?;
        outln!("chunking   up to {} tokens per chunk", f.chunk_tokens)?;
    }
    outln!(
        "on disk    {}",
        gguf_embed::hub::human_bytes(stats.bytes_on_disk)
    )?;
    if let Some(run) = &stats.last_run {
        outln!(
            "last run   {}: {} files ({} embedded, {} removed), {} chunks in {:.1} s",
            age(run["finished_at"].as_u64().unwrap_or(0)),
            run["files"],
            run["embedded_files"],
            run["removed_files"],
            run["chunks"],
            run["seconds"].as_f64().unwrap_or(0.0)
        )?;
    }
    Ok(())
}
