//! [`Reranker`]: score how well documents answer a query with Qwen3-Reranker, on the
//! embedder's engine.
//!
//! Qwen3-Reranker is a Qwen3 causal LM asked, in a fixed prompt, whether a document meets a
//! query's requirements; the score is P("yes") at the prompt's last token. The engine already
//! computes the last token's final normed hidden state for embeddings, and the LM head's "yes"
//! and "no" rows turn it into the two logits (see `head`), so a reranker is an embedder's engine
//! (its worker thread, batching, cancellation and batch invariance) with another prompt and
//! two dot products after it.

mod head;
mod prompt;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

pub use prompt::SYSTEM_PROMPT;

use crate::embedder::{self, Canceller, Embedder, EmbedderOptions, PendingEmbeddings, Truncation};
use crate::error::{Error, Result};
use crate::gguf::{ModelInfo, ModelKind};
use crate::prompt::{Instruction, Task};
use head::Head;
use prompt::Template;

/// The instruction a reranker uses when a call gives none: Qwen's default, web search.
pub const DEFAULT_RERANK_TASK: Task = Task::WebSearch;

/// Options for one rerank call. Build it with the `with_*` methods.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RerankOptions {
    /// The task instruction (`<Instruct>:` in the prompt). Qwen3-Reranker always sees one:
    /// [`Instruction::None`] (the default) means [`DEFAULT_RERANK_TASK`]'s.
    pub instruction: Instruction,
    /// Return only the best `top_n` documents; `None` returns them all.
    pub top_n: Option<usize>,
    /// Token limit per pair, prompt included; `None` uses the reranker's default.
    pub max_tokens: Option<usize>,
    /// What to do with a pair over the limit: cut the document's end ([`Truncation::End`],
    /// the default) or start, or fail. The query and instruction are never cut.
    pub truncation: Truncation,
}

impl Default for RerankOptions {
    fn default() -> Self {
        Self {
            instruction: Instruction::None,
            top_n: None,
            max_tokens: None,
            truncation: Truncation::End,
        }
    }
}

impl RerankOptions {
    /// Ranks with one of Qwen's tasks' instructions.
    pub fn with_task(mut self, task: Task) -> Self {
        self.instruction = Instruction::Task(task);
        self
    }

    /// Sets the instruction: a [`Task`], an [`Instruction`], or a string of your own (one
    /// English sentence that says what a relevant document is).
    pub fn with_instruction(mut self, instruction: impl Into<Instruction>) -> Self {
        self.instruction = instruction.into();
        self
    }

    /// Keeps only the best `n` documents.
    pub fn with_top_n(mut self, n: usize) -> Self {
        self.top_n = Some(n);
        self
    }

    /// Sets the token limit per pair.
    pub fn with_max_tokens(mut self, max_tokens: usize) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    /// Sets what happens to documents over the limit.
    pub fn with_truncation(mut self, truncation: Truncation) -> Self {
        self.truncation = truncation;
        self
    }

    /// The instruction text the prompt gets.
    pub fn instruction_text(&self) -> &str {
        self.instruction
            .text()
            .unwrap_or(DEFAULT_RERANK_TASK.instruction())
    }
}

/// One document's score.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct RerankScore {
    /// The document's position in the call's input.
    pub index: usize,
    /// P("yes"): the model's probability that the document meets the query, in [0, 1]. Strong
    /// matches saturate to 1.0 in f32; [`log_odds`](Self::log_odds) still orders them.
    pub score: f32,
    /// logit("yes") - logit("no"): the ranking key (TEI's `raw_scores`).
    pub log_odds: f32,
    /// Tokens of the pair's prompt.
    pub tokens: usize,
    /// Whether the document was cut to the token limit.
    pub truncated: bool,
}

/// A Qwen3-Reranker model loaded from a GGUF file, ready to score query-document pairs.
///
/// Like [`Embedder`], it is cheap to clone and `Send + Sync`: every clone shares one model and
/// one engine thread, and pairs from concurrent calls share decodes. A pair's score does not
/// depend on what it is batched with (bit for bit on the CPU, as the embedder's vectors).
///
/// ```no_run
/// use gguf_embed::{EmbedderOptions, RerankOptions, Reranker};
///
/// let reranker = Reranker::new("qwen3-reranker-0.6b-q8_0.gguf", EmbedderOptions::default())?;
/// let ranked = reranker.rerank(
///     "capital of france",
///     &["Paris is the capital of France.", "Berlin is in Germany."],
///     &RerankOptions::default().with_top_n(1),
/// )?;
/// assert_eq!(ranked[0].index, 0);
/// # Ok::<(), gguf_embed::Error>(())
/// ```
#[derive(Clone)]
pub struct Reranker {
    engine: Embedder,
    head: Arc<Head>,
    template: Arc<Template>,
    default_max_tokens: usize,
}

impl std::fmt::Debug for Reranker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reranker")
            .field("model", &self.info().path)
            .field("head", &self.head.source())
            .finish_non_exhaustive()
    }
}

impl Reranker {
    /// Loads a reranker: validates the file with our own reader, reads its "yes" and "no"
    /// rows, memory-maps it through llama.cpp and starts the engine thread. The options are
    /// the embedder's (device, threads, batching, token limit, ...).
    ///
    /// An embedding model's file is refused, and so is a file whose "yes" and "no" rows cannot
    /// be found (the error says what is missing).
    pub fn new(path: impl AsRef<Path>, options: EmbedderOptions) -> Result<Self> {
        let path = path.as_ref();
        let opened = embedder::open_model_file(path)?;
        embedder::refuse_kind(&opened.1, ModelKind::Embedding)?;
        let head = Head::read(&opened.0, &opened.1).map_err(|error| Error::Model {
            path: path.to_path_buf(),
            error,
        })?;
        let default_max_tokens = options.max_tokens;
        let engine = Embedder::start(path, opened, options)?;
        let template = Template::new(engine.model())?;
        tracing::debug!(head = head.source(), "reranker loaded");
        Ok(Self {
            engine,
            head: Arc::new(head),
            template: Arc::new(template),
            default_max_tokens,
        })
    }

    /// What the model file says about itself.
    pub fn info(&self) -> &ModelInfo {
        self.engine.info()
    }

    /// The embedder-shaped engine the reranker runs on (its tokenizer, its limits).
    pub(crate) fn engine(&self) -> &Embedder {
        &self.engine
    }

    /// The file llama.cpp runs (see [`Embedder::weights_file`]).
    pub fn weights_file(&self) -> &Path {
        self.engine.weights_file()
    }

    /// Where the "yes" and "no" rows were read from: `cls.output.weight` (llama.cpp's
    /// converter), `output.weight` or `token_embd.weight` (files without the converter's head).
    pub fn head_source(&self) -> &str {
        self.head.source()
    }

    /// Pairs waiting or being scored right now.
    pub fn queued(&self) -> usize {
        self.engine.queued()
    }

    /// Scores every document against the query and returns them best first (by log-odds; ties
    /// keep input order), the best `top_n` if the options say so. Blocks this thread.
    pub fn rerank<S: AsRef<str>>(
        &self,
        query: &str,
        documents: &[S],
        options: &RerankOptions,
    ) -> Result<Vec<RerankScore>> {
        self.submit(query, documents, options)?.wait()
    }

    /// [`rerank`](Self::rerank) without blocking: the future needs no particular runtime, and
    /// dropping it cancels the request.
    pub async fn rerank_async<S: AsRef<str>>(
        &self,
        query: &str,
        documents: &[S],
        options: &RerankOptions,
    ) -> Result<Vec<RerankScore>> {
        self.submit(query, documents, options)?.await
    }

    /// Tokenizes the pairs here, queues them on the engine thread and returns at once; the
    /// handle is waited on or awaited, and dropping it cancels what has not run yet.
    pub fn submit<S: AsRef<str>>(
        &self,
        query: &str,
        documents: &[S],
        options: &RerankOptions,
    ) -> Result<PendingRerank> {
        let max = options.max_tokens.unwrap_or(self.default_max_tokens);
        embedder::check_max_tokens(max, self.info())?;
        let instruction = options.instruction_text();
        let mut sequences = Vec::with_capacity(documents.len());
        let mut truncated = Vec::with_capacity(documents.len());
        for (index, document) in documents.iter().enumerate() {
            let pair = self.template.pair(
                self.engine.model(),
                (instruction, query, document.as_ref()),
                max,
                options.truncation,
                index,
            )?;
            sequences.push(pair.ids);
            truncated.push(pair.truncated);
        }
        let n_truncated = truncated.iter().filter(|&&t| t).count();
        if n_truncated > 0 {
            tracing::debug!("{n_truncated} documents were cut to {max} tokens");
        }
        Ok(PendingRerank {
            hidden: self.engine.submit_hidden(sequences, truncated)?,
            head: Arc::clone(&self.head),
            top_n: options.top_n,
        })
    }

    /// The token ids the model sees for a pair with these options: the whole prompt, the
    /// document cut to the token limit as [`rerank`](Self::rerank) would cut it.
    pub fn token_ids(
        &self,
        query: &str,
        document: &str,
        options: &RerankOptions,
    ) -> Result<Vec<u32>> {
        let max = options.max_tokens.unwrap_or(self.default_max_tokens);
        let pair = self.template.pair(
            self.engine.model(),
            (options.instruction_text(), query, document),
            max,
            options.truncation,
            0,
        )?;
        Ok(pair.ids.into_iter().map(|t| t as u32).collect())
    }
}

/// Scores being computed by the engine thread: wait for them ([`wait`](Self::wait)) or await
/// them. Dropping the handle before the result came cancels the request.
#[derive(Debug)]
pub struct PendingRerank {
    hidden: PendingEmbeddings,
    head: Arc<Head>,
    top_n: Option<usize>,
}

impl PendingRerank {
    /// Waits for the scores, best first, blocking this thread.
    pub fn wait(self) -> Result<Vec<RerankScore>> {
        let Self {
            hidden,
            head,
            top_n,
        } = self;
        Ok(rank(&head, hidden.wait()?, top_n))
    }

    /// A handle that cancels this request from another thread or task.
    pub fn canceller(&self) -> Canceller {
        self.hidden.canceller()
    }

    /// The number of documents.
    pub fn len(&self) -> usize {
        self.hidden.len()
    }

    /// Whether there are no documents.
    pub fn is_empty(&self) -> bool {
        self.hidden.is_empty()
    }
}

/// Resolves to what [`wait`](PendingRerank::wait) returns.
impl Future for PendingRerank {
    type Output = Result<Vec<RerankScore>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let hidden = std::task::ready!(Pin::new(&mut self.hidden).poll(cx));
        Poll::Ready(hidden.map(|h| rank(&self.head, h, self.top_n)))
    }
}

/// Scores each hidden state and sorts best first.
fn rank(head: &Head, hidden: Vec<crate::Embedding>, top_n: Option<usize>) -> Vec<RerankScore> {
    let mut scores: Vec<(f64, RerankScore)> = hidden
        .into_iter()
        .enumerate()
        .map(|(index, h)| {
            let log_odds = head.log_odds(&h.vector);
            let score = RerankScore {
                index,
                score: head::probability(log_odds) as f32,
                log_odds: log_odds as f32,
                tokens: h.tokens,
                truncated: h.truncated,
            };
            (log_odds, score)
        })
        .collect();
    // Stable: equal log-odds keep input order.
    scores.sort_by(|a, b| b.0.total_cmp(&a.0));
    scores.truncate(top_n.unwrap_or(usize::MAX));
    scores.into_iter().map(|(_, s)| s).collect()
}
