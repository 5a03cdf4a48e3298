//! Options for loading an embedder and for each embedding call.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::engine::{Device, FlashAttention, KvCache, LoadProgress, OutputMode};

/// Whether an F16 model runs on the CPU's BF16 kernels, from a lossless BF16 copy of its file.
///
/// Qwen3-Embedding's weights are bfloat16 values, which its F16 file holds exactly; stored as
/// BF16 they are the same numbers, and CPUs with AVX512-BF16 multiply them about 1.3x faster
/// than F16 (docs/BENCHMARKS.md). The copy is written once (the model's size, in
/// [`hub::copies::default_dir`](crate::hub::copies::default_dir) unless
/// [`EmbedderOptions::bf16_dir`] says otherwise). What changes is the rounding of activations
/// before each matrix product (bfloat16's 8 significant bits instead of f16's 11): vectors
/// move by about 1e-5 in cosine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
///
/// The library writes no such file unless asked: the default is [`Never`](Self::Never). (The
/// `gguf-embed` CLI asks for [`Auto`](Self::Auto) and says so in its help.)
pub enum Bf16Weights {
    /// When the model runs on a CPU with native BF16 dot products (AVX512-BF16).
    Auto,
    /// Whenever the model runs on the CPU, even without native BF16 instructions (ggml's
    /// portable BF16 code; its speed there is unmeasured: for tests).
    Always,
    /// Never: F16 kernels, and no copy written. The default.
    #[default]
    Never,
}

/// Whether a Q8_0 or F16 model runs from a copy of its file whose weights are stored already
/// in the CPU kernels' interleaved layouts ([`gguf::prepack`](crate::gguf::prepack):
/// `q8_0x16` for Q8_0 matrices, `f16x16` for F16 ones).
///
/// On x86 CPUs with AVX2, Q8_0 and F16 weights are repacked at load into the interleaved
/// layouts of our kernels, which takes a fresh buffer the size of the weights (446 MiB for the
/// 0.6B Q8_0 model, 881 MB for the F16 one); where that memory is not backed yet, faulting it
/// in is most of the load. The copy holds the same values in those layouts and is
/// memory-mapped like the model itself: no repack, no fresh memory, and the vectors are bit for
/// bit the same. It is written once (the model's size, in
/// [`hub::copies::default_dir`](crate::hub::copies::default_dir) unless
/// [`EmbedderOptions::prepack_dir`] says otherwise). An F16 model that runs from its BF16 copy
/// ([`Bf16Weights`]) does not use this one.
///
/// The library writes no such file unless asked: the default is [`Never`](Self::Never). (The
/// `gguf-embed` CLI asks for [`Auto`](Self::Auto) and says so in its help.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrepackedWeights {
    /// When a Q8_0 or F16 model runs on a CPU with the interleaved kernels (x86 with AVX2).
    Auto,
    /// Never: repack at every load, and no copy written. The default.
    #[default]
    Never,
}

/// What one decode did, for observers (metrics, logs).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct DecodeStats {
    /// Sequences decoded together.
    pub sequences: usize,
    /// Their tokens.
    pub tokens: usize,
    /// How many separate requests (`embed`/`submit` calls) they came from.
    pub requests: usize,
    /// Wall time of the decode, in seconds.
    pub seconds: f64,
}

/// A callback told about every decode.
pub type DecodeObserver = dyn Fn(&DecodeStats) + Send + Sync;

/// Makes engines take turns: models loaded with clones of one `DecodeTurns` never decode at
/// the same time. Each engine runs its decodes on all the threads it was given, so two models
/// in one process (an [`Embedder`](crate::Embedder) and a [`Reranker`](crate::Reranker) in
/// one server) decoding at once would fight over the same cores; taking turns, each decode
/// gets them all.
#[derive(Debug, Clone, Default)]
pub struct DecodeTurns(pub(crate) Arc<std::sync::Mutex<()>>);

impl DecodeTurns {
    /// A new set of turns, shared by the engines given clones of it.
    pub fn new() -> Self {
        Self::default()
    }
}
use crate::prompt::{Instruction, Task};

/// The smallest Matryoshka output size Qwen3-Embedding was trained for.
pub const MIN_DIMENSIONS: usize = 32;

/// The default limit on tokens per text (instruction and end-of-text token included).
/// Qwen3-Embedding handles 32768; this default keeps memory modest on laptops.
pub const DEFAULT_MAX_TOKENS: usize = 8192;

/// How to load and run the model. Build it with the `with_*` methods.
#[derive(Clone)]
#[non_exhaustive]
pub struct EmbedderOptions {
    /// Where to run: the first GPU if any (default), the CPU, or a given GPU.
    pub device: Device,
    /// CPU threads for llama.cpp; `None` uses the physical cores.
    pub threads: Option<usize>,
    /// Tokens packed into one decode (and the KV cache size); `None` picks the measured best
    /// for the device (CPU 512, GPU 2048). Longer single texts get a temporary larger context.
    pub batch_tokens: Option<usize>,
    /// Sequences packed into one decode (at most 256); `None`: CPU 32, GPU 64.
    pub batch_sequences: Option<usize>,
    /// The default limit on tokens per text, used when a call does not set its own.
    pub max_tokens: usize,
    /// Flash attention.
    pub flash_attention: FlashAttention,
    /// How hidden states are read from llama.cpp (the default is the fast path).
    pub output_mode: OutputMode,
    /// The KV cache layout (unified by default; per-sequence for measurements).
    pub kv_cache: KvCache,
    /// Give every text the same vector, bit for bit, whatever it is batched with (default
    /// true; caches keyed by text, exact deduplication and reproducible indexes rely on it).
    /// On x86 CPUs (with AVX2) with flash attention (the default) and Q8_0, F16 or Q5_0
    /// weights this costs nothing and changes nothing: those kernels give a text the same
    /// result packed with others as alone (our ggml patches: vendor/PATCHES.md, 1, 6 and 7),
    /// so texts are packed into shared decodes either way. Everywhere else on the CPU (flash
    /// attention off; BF16, F32 or K-quant weights, such as the 4B and 8B models' Q4_K_M,
    /// Q5_K_M and Q6_K files; other CPUs), ggml's kernels round a text's sums
    /// differently alone and beside others, so each text gets a decode of its own, which is
    /// slower than packing (docs/BENCHMARKS.md, "The same vector whatever the batch");
    /// `false`, or setting `batch_sequences`, packs texts there too. Never applied on GPUs,
    /// whose vectors are not batch-invariant.
    pub batch_invariant: bool,
    /// Whether an F16 model runs on BF16 kernels from a copy of its file (never, by default:
    /// the copy is as large as the model).
    pub bf16_weights: Bf16Weights,
    /// Where BF16 copies of F16 models are kept; `None`: the default cache folder.
    pub bf16_dir: Option<PathBuf>,
    /// Whether a Q8_0 or F16 model runs from a copy with its weights in the CPU layout (never,
    /// by default: the copy is as large as the model).
    pub prepacked_weights: PrepackedWeights,
    /// Where those copies are kept; `None`: the default cache folder.
    pub prepack_dir: Option<PathBuf>,
    /// Decode each request's longest texts first (default): long texts then share one
    /// enlarged context. Off keeps input order (for measurements).
    pub sort_by_length: bool,
    /// Called with the load progress (0.0 to 1.0); returning `false` cancels loading.
    pub load_progress: Option<Arc<LoadProgress>>,
    /// The most inputs that may wait or run at once; a request that would exceed it fails
    /// at once with [`Error::Busy`](crate::Error::Busy) instead of queueing. `None`: no limit.
    pub max_queued: Option<usize>,
    /// Called after every decode (on the engine thread: keep it cheap).
    pub on_decode: Option<Arc<DecodeObserver>>,
    /// Decode only in turn with the other engines that share these turns.
    pub decode_turns: Option<DecodeTurns>,
}

impl Default for EmbedderOptions {
    fn default() -> Self {
        Self {
            device: Device::Auto,
            threads: None,
            batch_tokens: None,
            batch_sequences: None,
            max_tokens: DEFAULT_MAX_TOKENS,
            flash_attention: FlashAttention::Auto,
            output_mode: OutputMode::LastToken,
            kv_cache: KvCache::Unified,
            batch_invariant: true,
            bf16_weights: Bf16Weights::Never,
            bf16_dir: None,
            prepacked_weights: PrepackedWeights::Never,
            prepack_dir: None,
            sort_by_length: true,
            load_progress: None,
            max_queued: None,
            on_decode: None,
            decode_turns: None,
        }
    }
}

impl fmt::Debug for EmbedderOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbedderOptions")
            .field("device", &self.device)
            .field("threads", &self.threads)
            .field("batch_tokens", &self.batch_tokens)
            .field("batch_sequences", &self.batch_sequences)
            .field("max_tokens", &self.max_tokens)
            .field("flash_attention", &self.flash_attention)
            .field("output_mode", &self.output_mode)
            .field("kv_cache", &self.kv_cache)
            .field("batch_invariant", &self.batch_invariant)
            .field("bf16_weights", &self.bf16_weights)
            .field("bf16_dir", &self.bf16_dir)
            .field("prepacked_weights", &self.prepacked_weights)
            .field("prepack_dir", &self.prepack_dir)
            .field("sort_by_length", &self.sort_by_length)
            .field("load_progress", &self.load_progress.is_some())
            .field("max_queued", &self.max_queued)
            .field("on_decode", &self.on_decode.is_some())
            .field("decode_turns", &self.decode_turns.is_some())
            .finish()
    }
}

impl EmbedderOptions {
    /// Sets the number of CPU threads.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads);
        self
    }

    /// Chooses the device.
    pub fn with_device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// Sets the tokens packed into one decode.
    pub fn with_batch_tokens(mut self, tokens: usize) -> Self {
        self.batch_tokens = Some(tokens);
        self
    }

    /// Sets the sequences packed into one decode.
    pub fn with_batch_sequences(mut self, sequences: usize) -> Self {
        self.batch_sequences = Some(sequences);
        self
    }

    /// Sets the default token limit per text.
    pub fn with_max_tokens(mut self, max_tokens: usize) -> Self {
        self.max_tokens = max_tokens;
        self
    }

    /// Forces flash attention on or off.
    pub fn with_flash_attention(mut self, flash_attention: FlashAttention) -> Self {
        self.flash_attention = flash_attention;
        self
    }

    /// Chooses how hidden states are read from llama.cpp.
    pub fn with_output_mode(mut self, mode: OutputMode) -> Self {
        self.output_mode = mode;
        self
    }

    /// Chooses the KV cache layout.
    pub fn with_kv_cache(mut self, kv_cache: KvCache) -> Self {
        self.kv_cache = kv_cache;
        self
    }

    /// Turns batch-invariant vectors on (the default) or off.
    pub fn with_batch_invariant(mut self, invariant: bool) -> Self {
        self.batch_invariant = invariant;
        self
    }

    /// Chooses when an F16 model runs on BF16 kernels.
    pub fn with_bf16_weights(mut self, when: Bf16Weights) -> Self {
        self.bf16_weights = when;
        self
    }

    /// Keeps BF16 copies of F16 models in `dir`.
    pub fn with_bf16_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.bf16_dir = Some(dir.into());
        self
    }

    /// Chooses when a Q8_0 or F16 model runs from a copy with its weights in the CPU layout.
    pub fn with_prepacked_weights(mut self, when: PrepackedWeights) -> Self {
        self.prepacked_weights = when;
        self
    }

    /// Keeps the CPU-layout copies of Q8_0 and F16 models in `dir`.
    pub fn with_prepack_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.prepack_dir = Some(dir.into());
        self
    }

    /// Turns longest-first decoding on or off.
    pub fn with_sort_by_length(mut self, sort: bool) -> Self {
        self.sort_by_length = sort;
        self
    }

    /// Bounds the inputs waiting or running at once.
    pub fn with_max_queued(mut self, max: usize) -> Self {
        self.max_queued = Some(max);
        self
    }

    /// Observes every decode (sequences, tokens, requests merged, time).
    pub fn with_decode_observer(
        mut self,
        observer: impl Fn(&DecodeStats) + Send + Sync + 'static,
    ) -> Self {
        self.on_decode = Some(Arc::new(observer));
        self
    }

    /// Decodes only in turn with the other engines given clones of `turns`.
    pub fn with_decode_turns(mut self, turns: &DecodeTurns) -> Self {
        self.decode_turns = Some(turns.clone());
        self
    }

    /// Reports load progress; the callback returns `false` to cancel loading.
    pub fn with_load_progress(
        mut self,
        progress: impl Fn(f32) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.load_progress = Some(Arc::new(progress));
        self
    }
}

/// What to do with a text longer than the token limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Truncation {
    /// Keep the start, cut the end (and log a warning). The default.
    #[default]
    End,
    /// Keep the end, cut the start (and log a warning).
    Start,
    /// Fail with [`Error::TooLong`](crate::Error::TooLong).
    Error,
}

/// Which queued texts the engine decodes first. Texts of a higher priority are decoded before
/// any queued text of a lower one, and a decode that starts with [`Query`](Self::Query) texts
/// holds query texts only, so that a query waits at most for the decode in progress, however
/// many documents are queued. Within one priority, requests run in the order they came.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Priority {
    /// Background work (indexing documents): decoded when nothing else waits.
    Background,
    /// Ordinary requests (the default).
    #[default]
    Normal,
    /// Interactive queries: decoded before everything else, in decodes of their own.
    Query,
}

/// Options for one embedding call. Build it with the `with_*` methods.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EmbedOptions {
    /// Document side (no instruction, the default) or query side with an instruction.
    pub instruction: Instruction,
    /// Matryoshka output size (`MIN_DIMENSIONS..=n_embd`): truncate, then renormalise.
    pub dimensions: Option<usize>,
    /// L2-normalise the vectors (default true).
    pub normalize: bool,
    /// Token limit per text; `None` uses the embedder's default.
    pub max_tokens: Option<usize>,
    /// What to do with texts over the limit.
    pub truncation: Truncation,
    /// Log a warning when texts were truncated (default true; callers that report
    /// truncation themselves, like the repository index, turn it off).
    pub warn_on_truncation: bool,
    /// Which queued texts the engine decodes first (see [`Priority`]).
    pub priority: Priority,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        Self {
            instruction: Instruction::None,
            dimensions: None,
            normalize: true,
            max_tokens: None,
            truncation: Truncation::End,
            warn_on_truncation: true,
            priority: Priority::Normal,
        }
    }
}

impl EmbedOptions {
    /// Options for documents: no instruction.
    pub fn documents() -> Self {
        Self::default()
    }

    /// Options for queries with the default retrieval task.
    pub fn queries() -> Self {
        Self::default().with_task(Task::WebSearch)
    }

    /// Embeds as queries with one of Qwen's tasks.
    pub fn with_task(mut self, task: Task) -> Self {
        self.instruction = Instruction::Task(task);
        self
    }

    /// Sets the instruction: a [`Task`], an [`Instruction`], or a string of your own.
    pub fn with_instruction(mut self, instruction: impl Into<Instruction>) -> Self {
        self.instruction = instruction.into();
        self
    }

    /// Sets the Matryoshka output size.
    pub fn with_dimensions(mut self, dimensions: usize) -> Self {
        self.dimensions = Some(dimensions);
        self
    }

    /// Turns L2 normalisation on or off.
    pub fn with_normalize(mut self, normalize: bool) -> Self {
        self.normalize = normalize;
        self
    }

    /// Sets the token limit per text.
    pub fn with_max_tokens(mut self, max_tokens: usize) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    /// Sets what happens to texts over the limit.
    pub fn with_truncation(mut self, truncation: Truncation) -> Self {
        self.truncation = truncation;
        self
    }

    /// Turns the truncation warning on or off.
    pub fn with_truncation_warning(mut self, warn: bool) -> Self {
        self.warn_on_truncation = warn;
        self
    }

    /// Sets the priority of these texts in the engine's queue.
    pub fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }
}
