//! [`Embedder`]: load a model once, embed texts from any thread.

mod invariance;
mod options;
mod tokens;
mod worker;

use std::future::Future;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::thread::JoinHandle;

pub use options::{
    Bf16Weights, DEFAULT_MAX_TOKENS, DecodeObserver, DecodeStats, DecodeTurns, EmbedOptions,
    EmbedderOptions, MIN_DIMENSIONS, PrepackedWeights, Priority, Truncation,
};
pub use tokens::{Token, Tokenized};

use crate::engine::{self, ContextParams, FlashAttention, LoadParams, Model};
use crate::error::{Error, Result};
use crate::gguf::{GgufFile, ModelInfo, ModelKind, prepack};
use crate::hub::copies::{self, CopyKind};
use crate::prompt::Instruction;
use crate::vector;
use worker::{Job, Shared, WorkerConfig};

/// llama.cpp's limit on sequences in one context.
const MAX_SEQUENCES: usize = 256;

/// One text's embedding.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Embedding {
    /// The vector (normalised unless the call asked otherwise).
    pub vector: Vec<f32>,
    /// Tokens the model saw, instruction and end-of-text token included.
    pub tokens: usize,
    /// Whether the text was cut to the token limit.
    pub truncated: bool,
}

/// A Qwen3-Embedding model loaded from a GGUF file, ready to embed.
///
/// `Embedder` is cheap to clone and `Send + Sync`: every clone shares one model (memory-mapped)
/// and one engine thread that owns the llama.cpp context. Calls from many threads are queued
/// and packed into shared decodes, so concurrent callers get batching for free.
///
/// ```no_run
/// use gguf_embed::{EmbedOptions, Embedder, EmbedderOptions};
///
/// let embedder = Embedder::new("Qwen3-Embedding-0.6B-Q8_0.gguf", EmbedderOptions::default())?;
/// let docs = embedder.embed(&["The capital of France is Paris."], &EmbedOptions::documents())?;
/// let query = embedder.embed(&["capital of france"], &EmbedOptions::queries())?;
/// let score = gguf_embed::vector::dot(&docs[0].vector, &query[0].vector);
/// assert!(score > 0.0);
/// # Ok::<(), gguf_embed::Error>(())
/// ```
#[derive(Clone)]
pub struct Embedder {
    inner: Arc<Inner>,
}

struct Inner {
    model: Arc<Model>,
    info: ModelInfo,
    weights: PathBuf,
    default_max_tokens: usize,
    max_queued: Option<usize>,
    queued: Arc<AtomicUsize>,
    jobs: Mutex<Option<Sender<Job>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the worker's loop; then wait for it to free the context.
        drop(self.jobs.lock().map(|mut j| j.take()));
        if let Some(handle) = self.worker.lock().ok().and_then(|mut w| w.take()) {
            let _ = handle.join();
        }
    }
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("model", &self.inner.info.path)
            .finish_non_exhaustive()
    }
}

impl Embedder {
    /// Loads a GGUF model: validates the file with our own reader, memory-maps it through
    /// llama.cpp and starts the engine thread.
    ///
    /// A reranker's file (Qwen3-Reranker) is refused: its last hidden state is not an
    /// embedding. Load it with [`Reranker`](crate::Reranker).
    pub fn new(path: impl AsRef<Path>, options: EmbedderOptions) -> Result<Self> {
        let path = path.as_ref();
        let opened = open_model_file(path)?;
        refuse_kind(&opened.1, ModelKind::Reranker)?;
        Self::start(path, opened, options)
    }

    /// Loads a model file already opened and checked, and starts the engine thread: the
    /// engine an [`Embedder`] and a [`Reranker`](crate::Reranker) share.
    pub(crate) fn start(
        path: &Path,
        opened: OpenedModel,
        options: EmbedderOptions,
    ) -> Result<Self> {
        let (file, info, mut sparse) = opened;
        let placement = engine::place(options.device)?;
        let packs_invariantly =
            invariance::packing_is_batch_invariant(&file, options.flash_attention);
        let mut weights = weights_file(path, file, &info, &options, &placement);
        // A copy may hold other types (BF16 for F16): decide by the file llama.cpp will load.
        let packs_invariantly = if weights == path {
            packs_invariantly
        } else {
            GgufFile::open(&weights).is_ok_and(|copy| {
                invariance::packing_is_batch_invariant(&copy, options.flash_attention)
            })
        };
        let config = worker_config(&info, &options, placement.gpu.is_some(), packs_invariantly)?;
        let progress = options.load_progress.as_deref();
        let params = |sparse: SparseWeights| LoadParams {
            progress,
            sparse_ranges: sparse.ranges,
            token_embd_offset: sparse.token_embd_offset,
            gpu_layers: if placement.gpu.is_some() { -1 } else { 0 },
            devices: placement.gpu_handle().into_iter().collect(),
        };
        let loaded = if weights == path {
            Model::load(&weights, &params(sparse))
        } else {
            // The copy has its own layout: the page release needs its offsets.
            sparse = open_model_file(&weights)?.2;
            Model::load(&weights, &params(sparse)).or_else(|e| {
                // A copy this build cannot run (llama.cpp refuses prepacked weights its CPU
                // backend would not repack the same way) costs a warning, never the load.
                if matches!(e, Error::Cancelled) {
                    return Err(e);
                }
                tracing::warn!(
                    "cannot run the copy {} ({e}); loading {} itself",
                    weights.display(),
                    path.display()
                );
                weights = path.to_path_buf();
                Model::load(path, &params(open_model_file(path)?.2))
            })
        };
        let model = Arc::new(loaded?);
        let (jobs, job_rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let worker_model = Arc::clone(&model);
        let queued = Arc::new(AtomicUsize::new(0));
        let shared = Shared {
            queued: Arc::clone(&queued),
            observer: options.on_decode.clone(),
            turns: options.decode_turns.clone(),
        };
        let worker = std::thread::Builder::new()
            .name("gguf-embed-engine".into())
            .spawn(move || worker::run(worker_model, config, shared, job_rx, ready_tx))
            .map_err(Error::EngineStart)?;
        if let Err(e) = ready_rx.recv().unwrap_or(Err(Error::EngineStopped)) {
            let _ = worker.join();
            return Err(e);
        }
        tracing::debug!(path = %weights.display(), ?config, "model loaded");
        Ok(Self {
            inner: Arc::new(Inner {
                model,
                info,
                weights,
                default_max_tokens: options.max_tokens,
                max_queued: options.max_queued,
                queued,
                jobs: Mutex::new(Some(jobs)),
                worker: Mutex::new(Some(worker)),
            }),
        })
    }

    /// What the model file says about itself.
    pub fn info(&self) -> &ModelInfo {
        &self.inner.info
    }

    /// The file llama.cpp runs: the model file, its lossless BF16 copy (see [`Bf16Weights`]),
    /// or its copy in the CPU layout (see [`PrepackedWeights`]).
    pub fn weights_file(&self) -> &Path {
        &self.inner.weights
    }

    /// Inputs waiting or being embedded right now (the queue depth).
    pub fn queued(&self) -> usize {
        self.inner.queued.load(Ordering::Relaxed)
    }

    /// The full output dimension (the model's hidden size).
    pub fn dimensions(&self) -> usize {
        self.inner.model.n_embd()
    }

    /// Embeds texts, blocking this thread; results come back in input order.
    pub fn embed<S: AsRef<str>>(
        &self,
        texts: &[S],
        options: &EmbedOptions,
    ) -> Result<Vec<Embedding>> {
        self.submit(texts, options)?.wait()
    }

    /// Embeds texts without blocking: the returned future resolves to the vectors, in input
    /// order. It needs no particular async runtime (tokio, async-std, a GUI's executor: any
    /// will do), and dropping it before it resolves cancels the request. Tokenization runs on
    /// the thread that first polls it; use [`submit`](Self::submit) to tokenize eagerly.
    pub async fn embed_async<S: AsRef<str>>(
        &self,
        texts: &[S],
        options: &EmbedOptions,
    ) -> Result<Vec<Embedding>> {
        self.submit(texts, options)?.await
    }

    /// Embeds documents (no instruction) with default options and returns the vectors.
    pub fn embed_documents<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>> {
        Ok(into_vectors(self.embed(texts, &EmbedOptions::documents())?))
    }

    /// Embeds one query with the default retrieval instruction and returns its vector.
    pub fn embed_query(&self, query: &str) -> Result<Vec<f32>> {
        let mut out = self.embed(&[query], &EmbedOptions::queries())?;
        Ok(out.remove(0).vector)
    }

    /// Queues texts for embedding and returns at once: tokenization happens here, on the
    /// calling thread, and the decode on the engine thread, so a caller can prepare the next
    /// batch while this one runs. The handle is waited on ([`PendingEmbeddings::wait`]) or
    /// awaited (it is a [`Future`]); dropping it cancels what has not run yet.
    pub fn submit<S: AsRef<str>>(
        &self,
        texts: &[S],
        options: &EmbedOptions,
    ) -> Result<PendingEmbeddings> {
        self.submit_with_canceller(texts, options, &Canceller::new())
    }

    /// [`submit`](Self::submit) with a canceller made beforehand: a caller that can be told to
    /// cancel on another thread while this call is still queueing (a JavaScript `AbortSignal`,
    /// say) cancels through `canceller` with no window in which the request is queued but not
    /// yet cancellable. A canceller cancelled before the call makes its texts never run.
    pub fn submit_with_canceller<S: AsRef<str>>(
        &self,
        texts: &[S],
        options: &EmbedOptions,
        canceller: &Canceller,
    ) -> Result<PendingEmbeddings> {
        let sequences = texts
            .iter()
            .enumerate()
            .map(|(index, t)| {
                self.tokenize(t.as_ref(), &options.instruction)
                    .map_err(|e| match e {
                        Error::InputTooLarge { bytes, .. } => Error::InputTooLarge { index, bytes },
                        other => other,
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        self.submit_sequences(sequences, options, Arc::clone(&canceller.0))
    }

    /// Embeds pre-tokenized inputs (token ids of this model's vocabulary, as the OpenAI API
    /// allows). `<|endoftext|>` is appended to any sequence that does not end with it.
    pub fn embed_tokens(
        &self,
        inputs: &[Vec<u32>],
        options: &EmbedOptions,
    ) -> Result<Vec<Embedding>> {
        self.submit_tokens(inputs, options)?.wait()
    }

    /// [`embed_tokens`](Self::embed_tokens) without waiting, like [`submit`](Self::submit).
    pub fn submit_tokens(
        &self,
        inputs: &[Vec<u32>],
        options: &EmbedOptions,
    ) -> Result<PendingEmbeddings> {
        let eot = self.inner.info.end_of_text_id as i32;
        let vocab = self.inner.info.vocab_size;
        let mut sequences = Vec::with_capacity(inputs.len());
        for (index, input) in inputs.iter().enumerate() {
            let mut seq = Vec::with_capacity(input.len() + 1);
            for &token in input {
                if u64::from(token) >= vocab {
                    return Err(Error::InvalidToken {
                        index,
                        token: token.into(),
                        vocab_size: vocab,
                    });
                }
                seq.push(token as i32);
            }
            if seq.last() != Some(&eot) {
                seq.push(eot);
            }
            sequences.push(seq);
        }
        self.submit_sequences(sequences, options, Arc::default())
    }

    /// The token ids the model sees for `text` with `instruction`: the NFC-normalised prompt,
    /// tokenized without parsing special tokens, then `<|endoftext|>`. No truncation.
    pub fn token_ids(&self, text: &str, instruction: &Instruction) -> Result<Vec<u32>> {
        Ok(self
            .tokenize(text, instruction)?
            .into_iter()
            .map(|t| t as u32)
            .collect())
    }

    /// Counts the tokens of `text` as embedded with `instruction` (end-of-text included).
    pub fn count_tokens(&self, text: &str, instruction: &Instruction) -> Result<usize> {
        Ok(self.tokenize(text, instruction)?.len())
    }

    fn tokenize(&self, text: &str, instruction: &Instruction) -> Result<Vec<i32>> {
        let prompt = instruction.format(text);
        let mut tokens = self
            .inner
            .model
            .tokenize(&prompt)
            .ok_or(Error::InputTooLarge {
                index: 0,
                bytes: prompt.len(),
            })?;
        tokens.push(self.inner.info.end_of_text_id as i32);
        Ok(tokens)
    }

    /// The loaded model (its tokenizer), for the reranker's prompts.
    pub(crate) fn model(&self) -> &Model {
        &self.inner.model
    }

    /// Queues token sequences already cut to size for their final hidden states, as they are
    /// (no normalisation): the reranker's path into the shared engine.
    pub(crate) fn submit_hidden(
        &self,
        sequences: Vec<Vec<i32>>,
        truncated: Vec<bool>,
    ) -> Result<PendingEmbeddings> {
        self.enqueue(
            sequences,
            truncated,
            None,
            false,
            Priority::Normal,
            Arc::new(AtomicBool::new(false)),
        )
    }

    fn submit_sequences(
        &self,
        mut sequences: Vec<Vec<i32>>,
        options: &EmbedOptions,
        cancelled: Arc<AtomicBool>,
    ) -> Result<PendingEmbeddings> {
        let checked = self.check_options(options)?;
        let mut truncated = Vec::with_capacity(sequences.len());
        for (index, seq) in sequences.iter_mut().enumerate() {
            truncated.push(truncate(
                seq,
                index,
                checked.max_tokens,
                options.truncation,
            )?);
        }
        let n_truncated = truncated.iter().filter(|&&t| t).count();
        if n_truncated > 0 && options.warn_on_truncation {
            tracing::warn!(
                "{n_truncated} of {} inputs were longer than {} tokens and were truncated",
                sequences.len(),
                checked.max_tokens
            );
        }
        self.enqueue(
            sequences,
            truncated,
            options.dimensions,
            options.normalize,
            options.priority,
            cancelled,
        )
    }

    /// Sends sequences to the engine thread and returns the handle that receives their rows.
    fn enqueue(
        &self,
        sequences: Vec<Vec<i32>>,
        truncated: Vec<bool>,
        dimensions: Option<usize>,
        normalize: bool,
        priority: Priority,
        cancelled: Arc<AtomicBool>,
    ) -> Result<PendingEmbeddings> {
        let tokens = sequences.iter().map(Vec::len).collect();
        let (reply, result) = oneshot::channel();
        let n = sequences.len();
        if n > 0 {
            self.reserve(n)?;
            let job = Job {
                seqs: sequences,
                reply,
                cancelled: Arc::clone(&cancelled),
                priority,
            };
            let sent = self
                .inner
                .jobs
                .lock()
                .ok()
                .and_then(|jobs| jobs.as_ref().map(|j| j.send(job).is_ok()))
                .unwrap_or(false);
            if !sent {
                self.inner.queued.fetch_sub(n, Ordering::Relaxed);
                return Err(Error::EngineStopped);
            }
        }
        Ok(PendingEmbeddings {
            result: (n > 0).then_some(result),
            cancelled,
            n_embd: self.dimensions(),
            dimensions,
            normalize,
            tokens,
            truncated,
        })
    }

    /// Counts `n` more inputs in the queue, or refuses them when that would pass the limit.
    fn reserve(&self, n: usize) -> Result<()> {
        let queued = &self.inner.queued;
        let Some(limit) = self.inner.max_queued else {
            queued.fetch_add(n, Ordering::Relaxed);
            return Ok(());
        };
        queued
            // A request larger than the whole limit still runs when nothing else waits.
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q == 0 || q + n <= limit).then_some(q + n)
            })
            .map(|_| ())
            .map_err(|q| Error::Busy { queued: q, limit })
    }

    fn check_options(&self, options: &EmbedOptions) -> Result<CheckedOptions> {
        let n_embd = self.dimensions();
        if let Some(d) = options.dimensions {
            let min = MIN_DIMENSIONS.min(n_embd);
            if !(min..=n_embd).contains(&d) {
                return Err(Error::InvalidOption(format!(
                    "dimensions must be between {min} and {n_embd} for this model, not {d}"
                )));
            }
        }
        let max_tokens = options.max_tokens.unwrap_or(self.inner.default_max_tokens);
        check_max_tokens(max_tokens, &self.inner.info)?;
        Ok(CheckedOptions { max_tokens })
    }
}

/// Options after validation.
struct CheckedOptions {
    max_tokens: usize,
}

/// Embeddings being computed by the engine thread: wait for them ([`wait`](Self::wait)) or
/// await them (the handle is a runtime-agnostic [`Future`]).
///
/// Dropping it before the result came cancels the request: its sequences leave the queue, and
/// those already in a decode are dropped after it. [`canceller`](Self::canceller) cancels from
/// elsewhere; the waiter then gets [`Error::Cancelled`].
#[derive(Debug)]
pub struct PendingEmbeddings {
    result: Option<oneshot::Receiver<Result<Vec<f32>>>>,
    cancelled: Arc<AtomicBool>,
    n_embd: usize,
    dimensions: Option<usize>,
    normalize: bool,
    tokens: Vec<usize>,
    truncated: Vec<bool>,
}

/// Cancels a pending request from any thread (see [`PendingEmbeddings::canceller`] and
/// [`Embedder::submit_with_canceller`]).
#[derive(Debug, Clone, Default)]
pub struct Canceller(Arc<AtomicBool>);

impl Canceller {
    /// A canceller for a request not submitted yet ([`Embedder::submit_with_canceller`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels the request: its sequences not yet decoded never run, and its waiter gets
    /// [`Error::Cancelled`] (unless the vectors were already sent).
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl PendingEmbeddings {
    /// Waits for the vectors, in input order, blocking this thread.
    pub fn wait(mut self) -> Result<Vec<Embedding>> {
        let Some(result) = self.result.take() else {
            return Ok(Vec::new());
        };
        let rows = result.recv().map_err(|_| Error::EngineStopped)??;
        Ok(self.finish(rows))
    }

    /// A handle that cancels this request from another thread or task.
    pub fn canceller(&self) -> Canceller {
        Canceller(Arc::clone(&self.cancelled))
    }

    /// The number of inputs.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether there are no inputs.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    fn finish(&mut self, rows: Vec<f32>) -> Vec<Embedding> {
        let tokens = std::mem::take(&mut self.tokens);
        let truncated = std::mem::take(&mut self.truncated);
        rows.chunks_exact(self.n_embd)
            .zip(tokens.into_iter().zip(truncated))
            .map(|(row, (tokens, truncated))| Embedding {
                vector: vector::finish(row, self.dimensions, self.normalize),
                tokens,
                truncated,
            })
            .collect()
    }
}

/// Resolves to what [`wait`](PendingEmbeddings::wait) returns. Polling it again after that
/// gives an empty list.
impl Future for PendingEmbeddings {
    type Output = Result<Vec<Embedding>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let Some(result) = self.result.as_mut() else {
            return Poll::Ready(Ok(Vec::new()));
        };
        let outcome = std::task::ready!(Pin::new(result).poll(cx));
        self.result = None;
        Poll::Ready(match outcome {
            Ok(Ok(rows)) => Ok(self.finish(rows)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::EngineStopped),
        })
    }
}

impl Drop for PendingEmbeddings {
    fn drop(&mut self) {
        if self.result.is_some() {
            self.cancelled.store(true, Ordering::Relaxed);
        }
    }
}

/// Cuts a sequence to `max` tokens by the policy, keeping the end-of-text token last.
/// Returns whether it was cut.
fn truncate(seq: &mut Vec<i32>, index: usize, max: usize, policy: Truncation) -> Result<bool> {
    if seq.len() <= max {
        return Ok(false);
    }
    let eot = *seq.last().expect("sequences end with end-of-text");
    match policy {
        Truncation::Error => {
            return Err(Error::TooLong {
                index,
                tokens: seq.len(),
                max,
            });
        }
        Truncation::End => seq.truncate(max - 1),
        Truncation::Start => {
            let cut = seq.len() - max;
            seq.drain(..cut);
            seq.pop();
        }
    }
    seq.push(eot);
    Ok(true)
}

/// Refuses a model file of the kind `refused`, saying what the file is and what to do.
pub(crate) fn refuse_kind(info: &ModelInfo, refused: ModelKind) -> Result<()> {
    if info.kind != refused {
        return Ok(());
    }
    Err(Error::WrongModelKind {
        path: info.path.clone(),
        kind: info.kind,
        evidence: info.kind_evidence.clone().unwrap_or_default(),
    })
}

pub(crate) fn check_max_tokens(max_tokens: usize, info: &ModelInfo) -> Result<()> {
    let limit = info.context_length as usize;
    if max_tokens == 0 || max_tokens > limit {
        return Err(Error::InvalidOption(format!(
            "the token limit must be between 1 and the model's context length {limit}, not \
             {max_tokens}"
        )));
    }
    Ok(())
}

/// Validates a model file and summarises it, without loading it.
pub fn inspect(path: impl AsRef<Path>) -> Result<ModelInfo> {
    open_model_file(path.as_ref()).map(|(_, info, _)| info)
}

/// A model file opened and validated: the file, its summary, and where its sparsely read
/// weights lie.
pub(crate) type OpenedModel = (GgufFile, ModelInfo, SparseWeights);

/// The weights our path reads only sparsely, by their place in a model file.
pub(crate) struct SparseWeights {
    /// File ranges of the token embeddings and of an untied LM head.
    ranges: Vec<Range<u64>>,
    /// Where the token embeddings start.
    token_embd_offset: Option<u64>,
}

/// Validates a model file; returns its summary and where the weights our path reads only
/// sparsely (the token embeddings, and an untied LM head) lie in it.
pub(crate) fn open_model_file(path: &Path) -> Result<OpenedModel> {
    let model_error = |error| Error::Model {
        path: path.to_path_buf(),
        error,
    };
    let file = GgufFile::open(path).map_err(model_error)?;
    let info = ModelInfo::from_gguf(&file).map_err(model_error)?;
    let sparse = SparseWeights {
        ranges: ["token_embd.weight", "output.weight"]
            .iter()
            .filter_map(|name| file.tensor_file_range(name))
            .collect(),
        token_embd_offset: file.tensor_file_range("token_embd.weight").map(|r| r.start),
    };
    Ok((file, info, sparse))
}

/// The file llama.cpp should load: the model, or a copy of it (see [`hub::copies`]). On the
/// CPU, an F16 model runs from its lossless BF16 copy when asked ([`Bf16Weights`]: when the CPU
/// has BF16 kernels, or `Always`) and every weight is a bfloat16 value; otherwise a Q8_0 or F16
/// model on a CPU with the interleaved kernels runs from its copy in their layouts, when asked
/// ([`PrepackedWeights`]). A file that already is a copy with prepacked weights runs as it is.
/// Any trouble writing a copy falls back to the next choice (at last the model itself), with a
/// warning.
fn weights_file(
    path: &Path,
    file: GgufFile,
    info: &ModelInfo,
    options: &EmbedderOptions,
    placement: &engine::Placement,
) -> PathBuf {
    if placement.gpu.is_some() || prepack::is_prepacked(&file) {
        return path.to_path_buf();
    }
    let bf16 = match options.bf16_weights {
        Bf16Weights::Never => false,
        Bf16Weights::Always => true,
        Bf16Weights::Auto => placement.cpu_bf16,
    } && info.file_type.as_deref() == Some("F16");
    let prepacked = match options.prepacked_weights {
        PrepackedWeights::Auto if prepack::cpu_runs_interleaved_kernels() => {
            CopyKind::prepacked(&file)
        }
        _ => None,
    };
    let choices = bf16
        .then_some((
            CopyKind::Bf16,
            &options.bf16_dir,
            "F16 weights run on BF16 kernels",
        ))
        .into_iter()
        .chain(prepacked.map(|kind| {
            (
                kind,
                &options.prepack_dir,
                "weights are mapped in the CPU layout",
            )
        }));
    for (kind, dir, what) in choices {
        let dir = dir.clone().unwrap_or_else(|| copies::default_dir(kind));
        match copies::copy(kind, path, &file, &dir) {
            Ok(Some(copy)) => {
                tracing::info!("{what} from {}", copy.display());
                return copy;
            }
            Ok(None) => {}
            Err(e) => {
                let (instead, flag) = match kind {
                    CopyKind::Bf16 => ("running F16 kernels", "--bf16 never"),
                    CopyKind::Q8_0x16 | CopyKind::F16x16 => {
                        ("repacking the weights at load", "--prepack never")
                    }
                };
                tracing::warn!(
                    "cannot write a {} copy of the model in {}: {e}; {instead} (set the folder \
                     with GGUF_EMBED_CACHE, or {flag})",
                    kind.describe(),
                    dir.display()
                );
            }
        }
    }
    path.to_path_buf()
}

/// Batch sizes measured best on the CPU (docs/BENCHMARKS.md: 512 tokens, 32 sequences).
const CPU_BATCH: (usize, usize) = (512, 32);
/// Batch sizes for GPUs (the brief's H100 figures favour 2048-token decodes; bench/gpu
/// re-measures them).
const GPU_BATCH: (usize, usize) = (2048, 64);

/// The engine's settings. `packs_invariantly`: whether packed texts get, on the CPU, the
/// vectors they get alone with this model file and these options (see `invariance`).
fn worker_config(
    info: &ModelInfo,
    options: &EmbedderOptions,
    gpu: bool,
    packs_invariantly: bool,
) -> Result<WorkerConfig> {
    check_max_tokens(options.max_tokens, info)?;
    let (default_tokens, default_sequences) = if gpu { GPU_BATCH } else { CPU_BATCH };
    let batch_tokens = options.batch_tokens.unwrap_or(default_tokens);
    // Batch invariance on the CPU. Where packing several texts into one decode keeps each
    // text's vector bit for bit (x86 with flash attention and Q8_0, F16 or Q5_0 weights; our
    // ggml patches 1, 6 and 7: vendor/PATCHES.md), texts are packed. Elsewhere (flash
    // attention off, BF16, F32 and K-quant weights, CPUs without our kernels)
    // `batch_invariant` decodes one text per decode, which costs throughput
    // (docs/BENCHMARKS.md). Not applied on GPUs, or when the caller sets `batch_sequences`.
    let invariant =
        options.batch_invariant && !packs_invariantly && !gpu && options.batch_sequences.is_none();
    // An F32 model asks for full precision, which llama.cpp's defaults do not give: its F16
    // KV cache rounds every key and value to 11 bits, and ggml's CPU flash attention rounds
    // to F16 inside too. Each moved the reranker fixture's F32 log-odds by 4e-4 to 1e-3,
    // against 1e-6 without them (tests/rerank.rs). So F32 files get an F32 cache (twice its
    // memory, for these files only) and, unless asked otherwise, no flash attention.
    let full_precision = info.file_type.as_deref() == Some("F32");
    let flash_attention = match options.flash_attention {
        FlashAttention::Auto if full_precision => FlashAttention::Off,
        chosen => chosen,
    };
    let batch_sequences = if invariant {
        1
    } else {
        options.batch_sequences.unwrap_or(default_sequences)
    };
    if batch_tokens == 0 {
        return Err(Error::InvalidOption("batch_tokens must be positive".into()));
    }
    if !(1..=MAX_SEQUENCES).contains(&batch_sequences) {
        return Err(Error::InvalidOption(format!(
            "batch_sequences must be between 1 and {MAX_SEQUENCES}, not {batch_sequences}"
        )));
    }
    let threads = options.threads.unwrap_or_else(default_threads);
    if threads == 0 {
        return Err(Error::InvalidOption("threads must be positive".into()));
    }
    let n_ctx = batch_tokens.next_multiple_of(256);
    Ok(WorkerConfig {
        base: ContextParams {
            n_ctx: u32::try_from(n_ctx)
                .map_err(|_| Error::InvalidOption("batch_tokens is too large".into()))?,
            n_seq_max: batch_sequences as u32,
            n_threads: i32::try_from(threads)
                .map_err(|_| Error::InvalidOption("too many threads".into()))?,
            flash_attention,
            mode: options.output_mode,
            kv_cache: options.kv_cache,
            kv_f32: full_precision,
        },
        max_context: info.context_length as usize,
        sort_by_length: options.sort_by_length,
        probe_token: info.end_of_text_id as i32,
    })
}

/// The physical cores available to this process: llama.cpp gains nothing from SMT siblings.
pub fn default_threads() -> usize {
    let available = std::thread::available_parallelism().map_or(1, |n| n.get());
    num_cpus::get_physical().clamp(1, available)
}

fn into_vectors(embeddings: Vec<Embedding>) -> Vec<Vec<f32>> {
    embeddings.into_iter().map(|e| e.vector).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probe at load finds the token embeddings on the CPU, so their pages are released
    /// before the first request rather than after it (peak RSS: the first decode's buffers
    /// would otherwise sit on top of the whole mapped vocabulary matrix).
    #[cfg(target_os = "linux")]
    #[test]
    fn loading_locates_the_token_embeddings_before_any_request() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny-qwen3-embedding-q8_0.gguf");
        let embedder = Embedder::new(&path, EmbedderOptions::default().with_threads(1)).unwrap();
        let model = &embedder.inner.model;
        assert!(!model.wants_token_embd_address());
        assert!(model.release_sparse_pages() > 0);
    }
}
