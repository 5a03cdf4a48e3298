//! `gguf-embed rerank`: score documents against a query with Qwen3-Reranker and print them
//! best first.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use gguf_embed::hub::ModelSpec;
use gguf_embed::{
    EmbedderOptions, Instruction, ModelKind, RerankOptions, RerankScore, Reranker, Task,
};
use serde_json::Value;

use super::UsageError;
use super::args::{GlobalArgs, ModelArgs, TruncateArg};
use super::input::{self, InputFormat, Record};
use super::{model, progress};

const EXAMPLES: &str = "\
Examples:
  gguf-embed rerank --query \"capital of france\" -- \"Paris is in France.\" \"Bread recipes\"
  gguf-embed rerank --query \"retry uploads\" --task code-search --input hits.jsonl -f jsonl
  gguf-embed rerank -m hf:OWNER/REPO/Qwen3-Reranker-4B-Q4_K_M.gguf --query ... -- DOC...

Scores are P(yes) in [0, 1] (the model's probability that the document meets the query);
`log_odds` orders documents whose scores both saturate at 1.";

/// The `rerank` command.
#[derive(Debug, Clone, Args)]
#[command(
    after_help = EXAMPLES,
    mut_arg("model", |a| a
        .env("GGUF_EMBED_RERANKER")
        .help("The reranker: a .gguf path, hf:OWNER/REPO/FILE.gguf[@REV], or a catalog name \
               [default: ggml-org/Qwen3-Reranker-0.6B-Q8_0-GGUF]")),
    mut_arg("quant", |a| a.help("Quantization of the catalog's reranker (Q8_0)")),
    mut_arg("size", |a| a.help("Size of the catalog's reranker (0.6B)")),
)]
pub struct RerankArgs {
    /// Documents to score; with none, read --input (stdin by default)
    #[arg(value_name = "DOC")]
    pub documents: Vec<String>,
    /// The query the documents are scored against
    #[arg(long, value_name = "TEXT")]
    pub query: String,
    #[command(flatten)]
    pub model: ModelArgs,
    /// The instruction that says what a relevant document is [default: the web-search task's]
    #[arg(short, long, value_name = "T", conflicts_with = "task")]
    pub instruction: Option<String>,
    /// A named task's instruction: web-search, similarity, bitext, code-search
    #[arg(long, value_name = "NAME")]
    pub task: Option<Task>,
    /// Print only the best K documents
    #[arg(long, value_name = "K")]
    pub top_n: Option<usize>,
    /// Token limit per query-document pair, prompt included [default: 8192]
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<usize>,
    /// Pairs over --max-tokens: cut the document's end (yes), its start, or fail; the query is
    /// never cut
    #[arg(
        long,
        value_enum,
        value_name = "yes|start|error",
        default_value = "yes"
    )]
    pub truncate: TruncateArg,
    /// Read documents from FILE, or stdin with -
    #[arg(long, value_name = "FILE|-")]
    pub input: Option<PathBuf>,
    /// lines (one document per line) or jsonl ({"text":..,"id":..}) [default: jsonl for
    /// *.jsonl]
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub input_format: Option<InputFormat>,
    /// Output: json (one array, best first) or jsonl (one object per document, best first)
    #[arg(short, long, value_enum, default_value = "json")]
    pub format: RerankFormat,
}

/// The output format of `rerank`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RerankFormat {
    /// One JSON array of {"index", "score", "log_odds"[, "id"]} objects, best first.
    Json,
    /// The same objects, one per line.
    Jsonl,
}

/// One printed result.
#[derive(serde::Serialize)]
struct Line<'a> {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a Value>,
    score: f32,
    log_odds: f32,
}

/// Runs the rerank command.
pub fn run(args: RerankArgs, global: &GlobalArgs) -> Result<()> {
    let records = documents(&args)?;
    let options = rerank_options(&args);
    let bar = progress::counter(
        progress::enabled(global.quiet) && !records.is_empty(),
        records.len() as u64,
        "pairs",
    );
    let counted = bar.clone();
    let engine = model::embedder_options(&args.model)
        .with_decode_observer(move |stats| counted.inc(stats.sequences as u64));
    let reranker = load(&args.model, engine, global)?;
    let texts: Vec<&str> = records.iter().map(|r| r.text.as_str()).collect();
    let ranked = reranker.rerank(&args.query, &texts, &options)?;
    bar.finish_and_clear();
    let truncated = ranked.iter().filter(|r| r.truncated).count();
    if truncated > 0 {
        tracing::warn!(
            "{truncated} documents were longer than the token limit and were cut (--max-tokens, \
             --truncate)"
        );
    }
    print(&ranked, &records, args.format)?;
    // As the embed command: the process exits next, and freeing the model is the kernel's job.
    std::mem::forget(reranker);
    Ok(())
}

/// The catalog's reranker, or the file `--model` names, loaded as a reranker.
pub fn load(args: &ModelArgs, options: EmbedderOptions, global: &GlobalArgs) -> Result<Reranker> {
    let path = resolve(args, global)?;
    Reranker::new(&path, options).context("cannot load the reranker")
}

/// The local reranker file the options name, downloaded and verified if needed.
pub fn resolve(args: &ModelArgs, global: &GlobalArgs) -> Result<PathBuf> {
    let o = &args.source.official;
    let spec = match args.source.model.as_deref() {
        Some(spec) => ModelSpec::parse(spec, &o.quant)?,
        None => ModelSpec::official_of(ModelKind::Reranker, &o.size, &o.quant)?,
    };
    let path = model::hub(o.offline, global).resolve(&spec)?;
    tracing::info!("reranker {spec} at {}", path.display());
    Ok(path)
}

fn rerank_options(args: &RerankArgs) -> RerankOptions {
    let instruction = match (&args.instruction, args.task) {
        (Some(text), _) => Instruction::Custom(text.clone()),
        (None, Some(task)) => Instruction::Task(task),
        (None, None) => Instruction::None,
    };
    let mut options = RerankOptions::default()
        .with_instruction(instruction)
        .with_truncation(args.truncate.into());
    if let Some(n) = args.top_n {
        options = options.with_top_n(n);
    }
    if let Some(max) = args.max_tokens {
        options = options.with_max_tokens(max);
    }
    options
}

/// The documents: the arguments, or every record of the input.
fn documents(args: &RerankArgs) -> Result<Vec<Record>> {
    if !args.documents.is_empty() {
        if args.input.is_some() {
            return Err(
                UsageError("give documents as arguments or with --input, not both".into()).into(),
            );
        }
        return Ok(args
            .documents
            .iter()
            .map(|text| Record {
                text: text.clone(),
                id: None,
            })
            .collect());
    }
    let (mut reader, _) = input::open(args.input.as_deref(), args.input_format, "documents")?;
    reader.next_chunk(usize::MAX)
}

fn print(ranked: &[RerankScore], records: &[Record], format: RerankFormat) -> Result<()> {
    let lines: Vec<Line> = ranked
        .iter()
        .map(|r| Line {
            index: r.index,
            id: records[r.index].id.as_ref(),
            score: r.score,
            log_odds: r.log_odds,
        })
        .collect();
    match format {
        RerankFormat::Json => outln!("{}", serde_json::to_string_pretty(&lines)?)?,
        RerankFormat::Jsonl => {
            for line in &lines {
                outln!("{}", serde_json::to_string(line)?)?;
            }
        }
    }
    Ok(())
}
