//! `gguf-embed bench`: this engine's speed and memory on a corpus, measured in-process.
//!
//! The cross-engine comparison (llama-cpp-python, transformers) lives in `bench/run.py`, which
//! calls this command for the in-process figures and times whole `gguf-embed` processes.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use gguf_embed::{EmbedOptions, Embedder};
use serde::Serialize;

use super::args::{GlobalArgs, InfoFormat, ModelArgs};
use super::input::{InputFormat, Reader};
use super::model;

/// The committed benchmark corpus (bench/corpus.jsonl, made by bench/corpus.py).
const DEFAULT_CORPUS: &str = include_str!("../../bench/corpus.jsonl");

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Texts to embed (one per line, or JSON Lines with "text") [default: the built-in corpus
    /// of 48 multilingual and code texts, 8107 tokens]
    #[arg(long, value_name = "FILE")]
    pub corpus: Option<PathBuf>,
    /// Passes over the corpus (the best is reported with the first)
    #[arg(long, default_value_t = 1)]
    pub passes: usize,
    /// Single-text requests timed for the latency percentiles
    #[arg(long, default_value_t = 30)]
    pub latency_runs: usize,
    /// Output format
    #[arg(short, long, value_enum, default_value = "text")]
    pub format: InfoFormat,
}

/// What `bench` measured.
#[derive(Debug, Serialize)]
struct Report {
    model: PathBuf,
    /// The file llama.cpp ran: the model, or a copy of it (BF16, CPU layout).
    weights: PathBuf,
    threads: Option<usize>,
    device: String,
    batch_tokens: Option<usize>,
    batch_sequences: Option<usize>,
    flash_attn: String,
    llama_embedding_mode: bool,
    kv_per_sequence: bool,
    batch_invariant: bool,
    texts: usize,
    tokens: usize,
    load_seconds: f64,
    first_pass_seconds: f64,
    best_pass_seconds: f64,
    tokens_per_second: f64,
    texts_per_second: f64,
    latency_text_tokens: usize,
    latency_p50_ms: f64,
    latency_p95_ms: f64,
    peak_rss_mb: Option<f64>,
}

/// Runs the benchmark.
pub fn run(args: BenchArgs, global: &GlobalArgs) -> Result<()> {
    let texts = corpus(args.corpus.as_ref())?;
    let path = model::resolve(&args.model.source, global)?;
    let started = Instant::now();
    let embedder = Embedder::new(&path, model::embedder_options(&args.model))?;
    let load = started.elapsed();

    let options = EmbedOptions::documents();
    let mut passes = Vec::new();
    let mut tokens = 0;
    for _ in 0..args.passes.max(1) {
        let t = Instant::now();
        let out = embedder.embed(&texts, &options)?;
        passes.push(t.elapsed());
        tokens = out.iter().map(|e| e.tokens).sum();
    }
    let best = passes.iter().min().copied().unwrap_or_default();
    let (latency_tokens, p50, p95) = latency(&embedder, &texts, args.latency_runs)?;
    let report = Report {
        weights: embedder.weights_file().to_path_buf(),
        model: path,
        threads: args.model.threads,
        device: args.model.device.to_string(),
        batch_tokens: args.model.batch_tokens,
        batch_sequences: args.model.batch_sequences,
        flash_attn: format!("{:?}", args.model.flash_attn).to_lowercase(),
        llama_embedding_mode: args.model.llama_embedding_mode,
        kv_per_sequence: args.model.kv_per_sequence,
        batch_invariant: !args.model.batch_variant,
        texts: texts.len(),
        tokens,
        load_seconds: load.as_secs_f64(),
        first_pass_seconds: passes[0].as_secs_f64(),
        best_pass_seconds: best.as_secs_f64(),
        tokens_per_second: tokens as f64 / best.as_secs_f64(),
        texts_per_second: texts.len() as f64 / best.as_secs_f64(),
        latency_text_tokens: latency_tokens,
        latency_p50_ms: p50.as_secs_f64() * 1e3,
        latency_p95_ms: p95.as_secs_f64() * 1e3,
        peak_rss_mb: peak_rss_mb(),
    };
    match args.format {
        InfoFormat::Json => outln!("{}", serde_json::to_string_pretty(&report)?)?,
        InfoFormat::Text => print_text(&report)?,
    }
    Ok(())
}

fn corpus(path: Option<&PathBuf>) -> Result<Vec<String>> {
    let records = match path {
        None => {
            Reader::new(DEFAULT_CORPUS.as_bytes(), InputFormat::Jsonl).next_chunk(usize::MAX)?
        }
        Some(path) => {
            let file =
                File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            let format = if path.extension().is_some_and(|e| e == "jsonl") {
                InputFormat::Jsonl
            } else {
                InputFormat::Lines
            };
            Reader::new(BufReader::new(file), format).next_chunk(usize::MAX)?
        }
    };
    Ok(records.into_iter().map(|r| r.text).collect())
}

/// Times single short texts (the shortest fifth of the corpus, in turn) one request at a time.
fn latency(
    embedder: &Embedder,
    texts: &[String],
    runs: usize,
) -> Result<(usize, Duration, Duration)> {
    let mut by_length: Vec<&String> = texts.iter().collect();
    by_length.sort_by_key(|t| t.len());
    let short = &by_length[..by_length.len().div_ceil(5).max(1)];
    let options = EmbedOptions::queries();
    let mut times = Vec::with_capacity(runs);
    let mut tokens = 0;
    for i in 0..runs.max(1) {
        let text = short[i % short.len()];
        let t = Instant::now();
        let out = embedder.embed(&[text], &options)?;
        times.push(t.elapsed());
        tokens += out[0].tokens;
    }
    times.sort();
    let pick = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    Ok((tokens / times.len(), pick(0.5), pick(0.95)))
}

/// The process's peak resident memory, from /proc (Linux).
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn print_text(r: &Report) -> Result<()> {
    outln!("model            {}", r.model.display())?;
    if r.weights != r.model {
        outln!("weights          copy {}", r.weights.display())?;
    }
    let or_default = |v: Option<usize>| v.map_or_else(|| "default".to_string(), |v| v.to_string());
    outln!(
        "policy           device {}, {} tokens / {} sequences per decode, flash attention {}{}",
        r.device,
        or_default(r.batch_tokens),
        or_default(r.batch_sequences),
        r.flash_attn,
        match (r.llama_embedding_mode, r.kv_per_sequence) {
            (true, true) => ", llama.cpp embedding mode, per-sequence KV",
            (true, false) => ", llama.cpp embedding mode",
            (false, true) => ", per-sequence KV",
            (false, false) => "",
        }
    )?;
    outln!("corpus           {} texts, {} tokens", r.texts, r.tokens)?;
    outln!("load             {:.2} s", r.load_seconds)?;
    outln!(
        "throughput       {:.1} tokens/s, {:.2} texts/s (best pass {:.2} s, first {:.2} s)",
        r.tokens_per_second,
        r.texts_per_second,
        r.best_pass_seconds,
        r.first_pass_seconds
    )?;
    outln!(
        "latency          p50 {:.1} ms, p95 {:.1} ms (one query of ~{} tokens at a time)",
        r.latency_p50_ms,
        r.latency_p95_ms,
        r.latency_text_tokens
    )?;
    if let Some(rss) = r.peak_rss_mb {
        outln!("peak RSS         {rss:.0} MB")?;
    }
    Ok(())
}
