//! The command line, as clap sees it.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use gguf_embed::{
    Bf16Weights, Device, FlashAttention, Instruction, PrepackedWeights, Task, Truncation,
};

use super::input::InputFormat;
use super::output::OutputFormat;

const EXAMPLES: &str = "\
Examples:
  gguf-embed \"The quick brown fox\"                     one vector, as JSON
  gguf-embed --query \"how do I parse json in rust\"     a query (web-search instruction)
  gguf-embed --task code-search \"read a file\"          a query with another task
  cat docs.txt | gguf-embed -f jsonl > vectors.jsonl   one vector per input line
  gguf-embed --input docs.jsonl --dim 256 -f npy -o v.npy
  gguf-embed -m ./model.gguf inspect ./model.gguf      (see `gguf-embed inspect --help`)

A text that is also a command name (like `inspect`) goes after `--`: gguf-embed -- inspect";

/// Local Qwen3-Embedding text embeddings from GGUF models, run by llama.cpp.
///
/// With no command, embeds the TEXT arguments, or else one text per line of --input (stdin by
/// default), and prints the vectors on stdout. Logs and warnings go to stderr.
#[derive(Debug, Parser)]
#[command(
    name = "gguf-embed",
    version = crate::cli::VERSION,
    args_conflicts_with_subcommands = true,
    after_help = EXAMPLES,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub embed: EmbedArgs,
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// More log output on stderr: -v info, -vv debug, -vvv trace (RUST_LOG overrides)
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,
    /// No progress bars; only errors on stderr
    #[arg(long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a GGUF file and print what it says about the model
    Inspect(InspectArgs),
    /// Manage the model cache: list, pull, path, verify, rm
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Score documents against a query with a reranker (Qwen3-Reranker), best first
    Rerank(Box<super::rerank::RerankArgs>),
    /// Serve the OpenAI, Ollama and TEI embedding APIs over HTTP
    #[cfg(feature = "server")]
    Serve(Box<super::serve::ServeArgs>),
    /// Index a source repository for semantic search (incremental)
    #[cfg(feature = "index")]
    Index(Box<super::index::IndexArgs>),
    /// Search an indexed repository in plain language
    #[cfg(feature = "index")]
    Search(Box<super::index::SearchArgs>),
    /// Serve code search to coding agents over MCP (stdio), keeping the index fresh
    #[cfg(feature = "index")]
    Mcp(Box<super::mcp::McpArgs>),
    /// Measure this engine's throughput, latency and memory on a corpus
    Bench(Box<super::bench::BenchArgs>),
    /// List the compute devices (CPU variants, GPUs) and their memory
    Devices {
        /// Output format
        #[arg(short, long, value_enum, default_value = "text")]
        format: InfoFormat,
    },
    /// Print a shell completion script
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// The official file of a size and quantization, and whether the network may be used.
#[derive(Debug, Clone, Args)]
pub struct OfficialArgs {
    /// Quantization of the official file: Q8_0 or F16 (4B and 8B also Q4_K_M, Q5_0, Q5_K_M,
    /// Q6_K: on the CPU the K-quant ones get a decode per text, to keep every vector the same
    /// bit for bit whatever it is batched with); also used for a catalog name without one
    #[arg(short, long, value_name = "Q", default_value = "Q8_0")]
    pub quant: String,
    /// Size of the official model: 0.6B, 4B or 8B
    #[arg(long, value_name = "SIZE", default_value = "0.6B")]
    pub size: String,
    /// Never touch the network: use the cache only (also HF_HUB_OFFLINE=1)
    #[arg(long)]
    pub offline: bool,
}

/// Which model file: a spec, or the official file of a size and quantization.
#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// The model: a .gguf path, hf:OWNER/REPO/FILE.gguf[@REV], or a catalog name such as
    /// Qwen/Qwen3-Embedding-0.6B [default: the official 0.6B file]
    #[arg(short, long, value_name = "SPEC", env = "GGUF_EMBED_MODEL")]
    pub model: Option<String>,
    #[command(flatten)]
    pub official: OfficialArgs,
}

/// Which model to load and how to run it.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// CPU threads [default: the physical cores]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Where to run: auto (a GPU if the build has one), cpu, gpu or gpu:N
    #[arg(long, value_name = "DEVICE", default_value = "auto")]
    pub device: Device,
    /// Tokens packed into one decode (memory grows with it) [default: CPU 512, GPU 2048]
    #[arg(long, value_name = "N", hide_short_help = true)]
    pub batch_tokens: Option<usize>,
    /// Sequences packed into one decode, at most 256 [default: CPU 32, GPU 64]
    #[arg(long, value_name = "N", hide_short_help = true)]
    pub batch_sequences: Option<usize>,
    /// Flash attention. With `off`, texts on the CPU get a decode each, so that every vector
    /// stays the same bit for bit whatever it is batched with (llama.cpp's attention without it
    /// sums over the shared cache in another order for a packed text): about 12% slower
    #[arg(
        long,
        value_enum,
        value_name = "WHEN",
        default_value = "auto",
        hide_short_help = true
    )]
    pub flash_attn: FlashAttnArg,
    /// F16 models on the CPU: run BF16 kernels from a lossless BF16 copy of the file, written
    /// once to $GGUF_EMBED_CACHE/bf16 (default ~/.cache/gguf-embed/bf16). `auto` writes that
    /// copy (the model's size) on CPUs with AVX512-BF16; the default is `never`, because our
    /// F16 kernels measured faster than the BF16 copy (docs/BENCHMARKS.md). On the copy texts
    /// get a decode each, to keep every vector the same bit for bit whatever its batch
    #[arg(
        long,
        value_enum,
        value_name = "WHEN",
        default_value = "never",
        hide_short_help = true
    )]
    pub bf16: Bf16Arg,
    /// Q8_0 and F16 models on x86 CPUs: run from a copy of the file with the weights stored in
    /// the CPU kernels' layout, written once to $GGUF_EMBED_CACHE/q8_0x16 or .../f16x16
    /// (default ~/.cache/gguf-embed/...; the model's size), so that loading maps it instead of
    /// repacking the weights into fresh memory (the first vector about three times sooner for
    /// Q8_0 and twice for F16 in docs/BENCHMARKS.md). The CLI's default is `auto`; the library
    /// writes none unless asked. Same vectors either way
    #[arg(
        long,
        value_enum,
        value_name = "WHEN",
        default_value = "auto",
        hide_short_help = true
    )]
    pub prepack: PrepackArg,
    /// Run llama.cpp's own embedding mode (LM head on every token): slower, for comparison
    #[arg(long, hide_short_help = true)]
    pub llama_embedding_mode: bool,
    /// Decode texts in input order instead of longest first (for measurements)
    #[arg(long, hide = true)]
    pub no_sort: bool,
    /// One KV cache stream per sequence instead of one shared cache (for measurements: slower
    /// here and `sequences` times the cache memory)
    #[arg(long, hide = true)]
    pub kv_per_sequence: bool,
    /// Let a text's vector depend on what it is batched with: pack texts into shared decodes
    /// where that is not exact on the CPU (flash attention off, BF16, F32 and K-quant weights,
    /// CPUs without our kernels; 6-12% faster there), which by default get a decode per text.
    /// Changes nothing where packing is exact (x86, Q8_0, F16 or Q5_0, flash attention on)
    #[arg(long, hide = true)]
    pub batch_variant: bool,
}

/// `--flash-attn` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FlashAttnArg {
    /// llama.cpp decides
    Auto,
    /// Always on
    On,
    /// Always off
    Off,
}

impl From<FlashAttnArg> for FlashAttention {
    fn from(arg: FlashAttnArg) -> Self {
        match arg {
            FlashAttnArg::Auto => FlashAttention::Auto,
            FlashAttnArg::On => FlashAttention::On,
            FlashAttnArg::Off => FlashAttention::Off,
        }
    }
}

/// `--prepack` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PrepackArg {
    /// When the CPU runs the interleaved Q8_0 and F16 kernels (x86 with AVX2)
    Auto,
    /// Never: repack at every load
    Never,
}

impl From<PrepackArg> for PrepackedWeights {
    fn from(arg: PrepackArg) -> Self {
        match arg {
            PrepackArg::Auto => PrepackedWeights::Auto,
            PrepackArg::Never => PrepackedWeights::Never,
        }
    }
}

/// `--bf16` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Bf16Arg {
    /// When the CPU has AVX512-BF16
    Auto,
    /// Whenever the model runs on the CPU, even without AVX512-BF16 (for tests)
    Always,
    /// Never: F16 kernels
    Never,
}

impl From<Bf16Arg> for Bf16Weights {
    fn from(arg: Bf16Arg) -> Self {
        match arg {
            Bf16Arg::Auto => Bf16Weights::Auto,
            Bf16Arg::Always => Bf16Weights::Always,
            Bf16Arg::Never => Bf16Weights::Never,
        }
    }
}

/// How texts become prompts.
#[derive(Debug, Clone, Args)]
#[group(multiple = false)]
pub struct PromptArgs {
    /// Embed as queries with this instruction: "Instruct: T\nQuery:{text}"
    #[arg(short, long, value_name = "T")]
    pub instruction: Option<String>,
    /// Embed as queries with the default retrieval task (web search)
    #[arg(long)]
    pub query: bool,
    /// Embed as queries with a named task: web-search, similarity, bitext, code-search
    #[arg(long, value_name = "NAME")]
    pub task: Option<Task>,
}

impl PromptArgs {
    /// The instruction these flags ask for (documents get none).
    pub fn instruction(&self) -> Instruction {
        if let Some(text) = &self.instruction {
            Instruction::Custom(text.clone())
        } else if let Some(task) = self.task {
            Instruction::Task(task)
        } else if self.query {
            Instruction::query()
        } else {
            Instruction::None
        }
    }
}

/// What to do with texts over --max-tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TruncateArg {
    /// Cut the end and warn
    Yes,
    /// Cut the start and warn
    Start,
    /// Fail
    Error,
}

impl From<TruncateArg> for Truncation {
    fn from(arg: TruncateArg) -> Self {
        match arg {
            TruncateArg::Yes => Truncation::End,
            TruncateArg::Start => Truncation::Start,
            TruncateArg::Error => Truncation::Error,
        }
    }
}

/// The embed command (the default).
#[derive(Debug, Clone, Args)]
pub struct EmbedArgs {
    /// Texts to embed; with none, read --input (stdin by default)
    #[arg(value_name = "TEXT")]
    pub texts: Vec<String>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub prompt: PromptArgs,
    /// Matryoshka output size (32 up to the model's 1024): truncate, then renormalise
    #[arg(long, value_name = "N")]
    pub dim: Option<usize>,
    /// Output the raw last-token hidden state instead of a unit vector
    #[arg(long)]
    pub no_normalize: bool,
    /// Token limit per text, instruction included [default: 8192]
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<usize>,
    /// Texts over --max-tokens: truncate (yes), truncate the start, or fail
    #[arg(
        long,
        value_enum,
        value_name = "yes|start|error",
        default_value = "yes"
    )]
    pub truncate: TruncateArg,
    /// Read texts from FILE, or stdin with -
    #[arg(long, value_name = "FILE|-")]
    pub input: Option<PathBuf>,
    /// lines (one text per line) or jsonl ({"text":..,"id":..}) [default: jsonl for *.jsonl]
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub input_format: Option<InputFormat>,
    /// Output: json (one array), jsonl (one object per input), f32 (raw floats), npy
    #[arg(short, long, value_enum, default_value = "json")]
    pub format: OutputFormat,
    /// Write the output to FILE instead of stdout
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Output of informational commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InfoFormat {
    /// Aligned, readable text
    Text,
    /// JSON
    Json,
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// List the official models and every GGUF file in the cache
    List {
        /// Output format
        #[arg(short, long, value_enum, default_value = "text")]
        format: InfoFormat,
        /// Never touch the network (listing never does; accepted for symmetry)
        #[arg(long, hide = true)]
        offline: bool,
    },
    /// Download a model into the cache (checks the Hub for a newer revision)
    Pull(ModelsSpecArgs),
    /// Print the local path of a cached model (downloads nothing)
    Path(ModelsSpecArgs),
    /// Re-hash cached models and compare with their pinned or published sha256, and re-hash
    /// the models' CPU-layout and BF16 copies (a damaged copy is rebuilt from its model, or
    /// removed)
    Verify {
        /// The model, from the cache or a local file [default: every cached GGUF file and
        /// every copy]
        #[arg(value_name = "SPEC")]
        spec: Option<String>,
        /// Quantization for a catalog name without one
        #[arg(short, long, value_name = "Q", default_value = "Q8_0")]
        quant: String,
        /// Output format
        #[arg(short, long, value_enum, default_value = "text")]
        format: InfoFormat,
    },
    /// Remove a model from the cache
    Rm(ModelsSpecArgs),
}

/// A model named for a `models` command.
#[derive(Debug, Clone, Args)]
pub struct ModelsSpecArgs {
    /// The model: hf:OWNER/REPO/FILE.gguf[@REV] or a catalog name [default: the official file
    /// of --size and --quant]
    #[arg(value_name = "SPEC")]
    pub spec: Option<String>,
    #[command(flatten)]
    pub official: OfficialArgs,
    /// Output format
    #[arg(short, long, value_enum, default_value = "text")]
    pub format: InfoFormat,
}

#[derive(Debug, Clone, Args)]
pub struct InspectArgs {
    /// The GGUF file
    pub file: PathBuf,
    /// Output format
    #[arg(short, long, value_enum, default_value = "text")]
    pub format: InfoFormat,
}
