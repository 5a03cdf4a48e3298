//! The option structs C callers fill in, and their translation into the library's options.

use std::ffi::{CStr, c_char};

use gguf_embed::{
    DEFAULT_MAX_TOKENS, EmbedOptions, EmbedderOptions, Instruction, Task, Truncation,
};

use crate::status::{Failure, GgufEmbedStatus};

/// `GgufEmbedOptions::task`: embed as a document, without an instruction.
pub const GGUF_EMBED_TASK_DOCUMENT: i32 = 0;
/// A web-search query ("Given a web search query, retrieve relevant passages...").
pub const GGUF_EMBED_TASK_WEB_SEARCH: i32 = 1;
/// Semantic similarity (embed both sides with it).
pub const GGUF_EMBED_TASK_SIMILARITY: i32 = 2;
/// Parallel sentences in another language.
pub const GGUF_EMBED_TASK_BITEXT: i32 = 3;
/// A code-search query.
pub const GGUF_EMBED_TASK_CODE_SEARCH: i32 = 4;

/// `GgufEmbedderOptions::truncate`: keep the start of a text over the limit (the default).
pub const GGUF_EMBED_TRUNCATE_END: i32 = 0;
/// Keep the end of a text over the limit.
pub const GGUF_EMBED_TRUNCATE_START: i32 = 1;
/// Fail with `GGUF_EMBED_STATUS_TOO_LONG` when a text is over the limit.
pub const GGUF_EMBED_TRUNCATE_ERROR: i32 = 2;

/// How to load a model. Fill it with `gguf_embed_embedder_options_default`, then change
/// fields; strings are NUL-terminated UTF-8 and are copied during the call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct GgufEmbedderOptions {
    /// The quantization for catalog names such as "Qwen/Qwen3-Embedding-0.6B": "Q8_0"
    /// (NULL), "F16", ...; ignored for file paths.
    pub quant: *const c_char,
    /// "auto" (NULL), "cpu", "gpu" or "gpu:N".
    pub device: *const c_char,
    /// CPU threads; 0: the physical cores.
    pub threads: u32,
    /// Tokens per text, instruction included; 0: 8192.
    pub max_tokens: u32,
    /// What to do with longer texts: `GGUF_EMBED_TRUNCATE_END`, `_START` or `_ERROR`.
    pub truncate: i32,
    /// Nonzero: never use the network (the model must be cached). `HF_HUB_OFFLINE=1` does
    /// the same.
    pub offline: i32,
}

impl Default for GgufEmbedderOptions {
    fn default() -> Self {
        Self {
            quant: std::ptr::null(),
            device: std::ptr::null(),
            threads: 0,
            max_tokens: 0,
            truncate: GGUF_EMBED_TRUNCATE_END,
            offline: 0,
        }
    }
}

/// How to embed one call's texts. Fill it with `gguf_embed_options_default`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct GgufEmbedOptions {
    /// `GGUF_EMBED_TASK_DOCUMENT` (the default) or a query task.
    pub task: i32,
    /// A query instruction of your own (NUL-terminated UTF-8); overrides `task` when not
    /// NULL.
    pub instruction: *const c_char,
    /// Matryoshka output size (32 up to the model's dimensions); 0: all dimensions.
    pub dimensions: u32,
    /// Nonzero (the default): L2-normalise the vectors.
    pub normalize: i32,
}

impl Default for GgufEmbedOptions {
    fn default() -> Self {
        Self {
            task: GGUF_EMBED_TASK_DOCUMENT,
            instruction: std::ptr::null(),
            dimensions: 0,
            normalize: 1,
        }
    }
}

/// The loader's settings, read from the caller's struct.
pub(crate) struct LoadSettings {
    pub quant: String,
    pub offline: bool,
    pub engine: EmbedderOptions,
    pub truncation: Truncation,
}

/// An optional C string argument as UTF-8.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that stays valid during the call.
pub(crate) unsafe fn opt_str<'a>(
    ptr: *const c_char,
    what: &str,
) -> Result<Option<&'a str>, Failure> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: not NULL, and the caller promises a NUL-terminated string alive for the call.
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    std::str::from_utf8(bytes).map(Some).map_err(|e| {
        Failure::new(
            GgufEmbedStatus::InvalidUtf8,
            format!("{what} is not valid UTF-8: {e}"),
        )
    })
}

impl GgufEmbedderOptions {
    /// Checks the fields and builds the library's options.
    ///
    /// # Safety
    /// The string fields are NULL or NUL-terminated strings valid during the call.
    pub(crate) unsafe fn settings(&self) -> Result<LoadSettings, Failure> {
        // SAFETY: forwarded from this function's contract.
        let quant = unsafe { opt_str(self.quant, "options.quant") }?.unwrap_or("Q8_0");
        // SAFETY: as above.
        let device = unsafe { opt_str(self.device, "options.device") }?.unwrap_or("auto");
        let device = device.parse().map_err(Failure::invalid)?;
        let mut engine = EmbedderOptions::default()
            .with_device(device)
            .with_max_tokens(match self.max_tokens {
                0 => DEFAULT_MAX_TOKENS,
                n => n as usize,
            });
        if self.threads > 0 {
            engine = engine.with_threads(self.threads as usize);
        }
        let truncation = match self.truncate {
            GGUF_EMBED_TRUNCATE_END => Truncation::End,
            GGUF_EMBED_TRUNCATE_START => Truncation::Start,
            GGUF_EMBED_TRUNCATE_ERROR => Truncation::Error,
            other => {
                return Err(Failure::invalid(format!(
                    "options.truncate is {other}; use GGUF_EMBED_TRUNCATE_END, _START or _ERROR"
                )));
            }
        };
        Ok(LoadSettings {
            quant: quant.to_string(),
            offline: self.offline != 0,
            engine,
            truncation,
        })
    }
}

impl GgufEmbedOptions {
    /// Checks the fields and builds the library's per-call options.
    ///
    /// # Safety
    /// `instruction` is NULL or a NUL-terminated string valid during the call.
    pub(crate) unsafe fn embed_options(
        &self,
        truncation: Truncation,
    ) -> Result<EmbedOptions, Failure> {
        // SAFETY: forwarded from this function's contract.
        let custom = unsafe { opt_str(self.instruction, "options.instruction") }?;
        let instruction = match (custom, self.task) {
            (Some(text), _) => Instruction::Custom(text.to_string()),
            (None, GGUF_EMBED_TASK_DOCUMENT) => Instruction::None,
            (None, GGUF_EMBED_TASK_WEB_SEARCH) => Instruction::Task(Task::WebSearch),
            (None, GGUF_EMBED_TASK_SIMILARITY) => Instruction::Task(Task::Similarity),
            (None, GGUF_EMBED_TASK_BITEXT) => Instruction::Task(Task::Bitext),
            (None, GGUF_EMBED_TASK_CODE_SEARCH) => Instruction::Task(Task::CodeSearch),
            (None, other) => {
                return Err(Failure::invalid(format!(
                    "options.task is {other}; use one of the GGUF_EMBED_TASK_ constants"
                )));
            }
        };
        let mut options = EmbedOptions::default()
            .with_instruction(instruction)
            .with_normalize(self.normalize != 0)
            .with_truncation(truncation);
        if self.dimensions > 0 {
            options = options.with_dimensions(self.dimensions as usize);
        }
        Ok(options)
    }
}
