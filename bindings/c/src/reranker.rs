//! The reranker's C API: `gguf_embed_reranker_new`, `gguf_embed_rerank`,
//! `gguf_embed_reranker_free`, with the embedder's conventions (status codes, the thread's
//! last error, checked buffer lengths, no panic across the boundary).

use std::ffi::c_char;

use gguf_embed::{Instruction, RerankOptions, Reranker, Task, Truncation};

use crate::options::{
    GGUF_EMBED_TASK_BITEXT, GGUF_EMBED_TASK_CODE_SEARCH, GGUF_EMBED_TASK_DOCUMENT,
    GGUF_EMBED_TASK_SIMILARITY, GGUF_EMBED_TASK_WEB_SEARCH, GgufEmbedderOptions, opt_str,
};
use crate::status::{Failure, GgufEmbedStatus, guard};
use crate::{GgufEmbedText, read_texts, resolve};

/// A loaded reranker (Qwen3-Reranker). Opaque: create it with `gguf_embed_reranker_new`,
/// release it with `gguf_embed_reranker_free`.
pub struct GgufEmbedReranker {
    reranker: Reranker,
    truncation: Truncation,
}

/// How to score one call's documents. Fill it with `gguf_embed_rerank_options_default`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct GgufEmbedRerankOptions {
    /// The task whose instruction says what a relevant document is:
    /// `GGUF_EMBED_TASK_DOCUMENT` (0, the default) means the reranker's default, web search;
    /// or `GGUF_EMBED_TASK_WEB_SEARCH`, `_SIMILARITY`, `_BITEXT`, `_CODE_SEARCH`.
    pub task: i32,
    /// An instruction of your own (NUL-terminated UTF-8); overrides `task` when not NULL.
    pub instruction: *const c_char,
}

impl Default for GgufEmbedRerankOptions {
    fn default() -> Self {
        Self {
            task: GGUF_EMBED_TASK_DOCUMENT,
            instruction: std::ptr::null(),
        }
    }
}

impl GgufEmbedRerankOptions {
    /// Checks the fields and builds the library's per-call options.
    ///
    /// # Safety
    /// `instruction` is NULL or a NUL-terminated string valid during the call.
    unsafe fn rerank_options(&self, truncation: Truncation) -> Result<RerankOptions, Failure> {
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
        Ok(RerankOptions::default()
            .with_instruction(instruction)
            .with_truncation(truncation))
    }
}

/// Fills `options` with the defaults (the web-search instruction). Does nothing when
/// `options` is NULL.
///
/// # Safety
/// `options` is NULL or points to writable memory for one `GgufEmbedRerankOptions`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gguf_embed_rerank_options_default(options: *mut GgufEmbedRerankOptions) {
    if !options.is_null() {
        // SAFETY: not NULL, and the caller promises it is writable and aligned.
        unsafe { options.write(GgufEmbedRerankOptions::default()) };
    }
}

/// Loads a reranker and stores it in `*out` (set to NULL on failure).
///
/// `model` is a `.gguf` path, a catalog name ("Qwen3-Reranker-0.6B": the default reranker,
/// ggml-org/Qwen3-Reranker-0.6B-Q8_0-GGUF) or `hf:OWNER/REPO/FILE.gguf[@REVISION]`, found in
/// or downloaded to the Hugging Face cache as `gguf_embed_embedder_new` does. `options` (the
/// embedder's: quantization, device, threads, token limit per pair, truncation of documents,
/// offline) may be NULL for the defaults. An embedding model is refused
/// (`GGUF_EMBED_STATUS_MODEL`).
///
/// # Safety
/// `model` is NULL or a NUL-terminated string; `options` is NULL or points to an initialised
/// `GgufEmbedderOptions`; `out` is NULL or points to writable memory for one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gguf_embed_reranker_new(
    model: *const c_char,
    options: *const GgufEmbedderOptions,
    out: *mut *mut GgufEmbedReranker,
) -> GgufEmbedStatus {
    guard(|| {
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        // SAFETY: not NULL, writable per the contract; cleared first so a failure leaves NULL.
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: forwarded from this function's contract.
        let model = unsafe { opt_str(model, "model") }?.ok_or_else(|| Failure::null("model"))?;
        let defaults = GgufEmbedderOptions::default();
        // SAFETY: NULL or an initialised struct, per the contract.
        let options = unsafe { options.as_ref() }.unwrap_or(&defaults);
        // SAFETY: the struct's strings are NULL or NUL-terminated, per the contract.
        let settings = unsafe { options.settings() }?;
        let path = resolve(model, &settings.quant, settings.offline)?;
        let reranker = Reranker::new(&path, settings.engine)?;
        let handle = Box::new(GgufEmbedReranker {
            reranker,
            truncation: settings.truncation,
        });
        // SAFETY: checked above.
        unsafe { out.write(Box::into_raw(handle)) };
        Ok(())
    })
}

/// Releases a reranker (NULL is allowed). No other thread may be using it.
///
/// # Safety
/// `reranker` is NULL or a pointer from `gguf_embed_reranker_new` not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gguf_embed_reranker_free(reranker: *mut GgufEmbedReranker) {
    if reranker.is_null() {
        return;
    }
    // Dropping joins the engine thread; a panic there must not unwind into C.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: from Box::into_raw in gguf_embed_reranker_new, freed only here, once.
        drop(unsafe { Box::from_raw(reranker) });
    }));
}

/// Scores `n_documents` documents against `query`, in input order: `scores[i]` is P("yes")
/// for document i (the model's probability that it meets the query, in [0, 1]). `scores_len`
/// must be exactly `n_documents`. `log_odds`, when not NULL, receives logit("yes") -
/// logit("no") per document (sort by it: it still orders documents whose scores both round
/// to 1); `tokens`, when not NULL, each pair's prompt length after truncation. `options` may be
/// NULL (the web-search instruction). `n_documents` may be 0. Safe to call from several
/// threads at once.
///
/// # Safety
/// `reranker` is a live reranker; `query.data` has `query.len` readable bytes; `documents`
/// points to `n_documents` `GgufEmbedText`s whose bytes are readable; `scores` points to
/// `scores_len` writable floats; `log_odds` is NULL or points to `n_documents` writable
/// floats; `tokens` is NULL or points to `n_documents` writable `uint32_t`s; `options` is NULL
/// or initialised.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn gguf_embed_rerank(
    reranker: *const GgufEmbedReranker,
    query: GgufEmbedText,
    documents: *const GgufEmbedText,
    n_documents: usize,
    options: *const GgufEmbedRerankOptions,
    scores: *mut f32,
    scores_len: usize,
    log_odds: *mut f32,
    tokens: *mut u32,
) -> GgufEmbedStatus {
    guard(|| {
        // SAFETY: NULL or live, per the contract.
        let handle = unsafe { reranker.as_ref() }.ok_or_else(|| Failure::null("reranker"))?;
        // SAFETY: one text, readable per the contract.
        let query = unsafe { read_texts(&query, 1) }?.remove(0);
        // SAFETY: forwarded from this function's contract.
        let documents = unsafe { read_texts(documents, n_documents) }?;
        let defaults = GgufEmbedRerankOptions::default();
        // SAFETY: NULL or initialised, per the contract.
        let options = unsafe { options.as_ref() }.unwrap_or(&defaults);
        // SAFETY: its instruction is NULL or NUL-terminated, per the contract.
        let options = unsafe { options.rerank_options(handle.truncation) }?;
        if scores.is_null() && n_documents > 0 {
            return Err(Failure::null("scores"));
        }
        if scores_len != n_documents {
            return Err(Failure::new(
                GgufEmbedStatus::BufferSize,
                format!("scores holds {scores_len} floats but there are {n_documents} documents"),
            ));
        }
        let ranked = handle.reranker.rerank(query, &documents, &options)?;
        if n_documents == 0 {
            return Ok(());
        }
        // SAFETY: not NULL (checked), and the caller promises scores_len writable floats.
        let scores = unsafe { std::slice::from_raw_parts_mut(scores, scores_len) };
        for r in &ranked {
            scores[r.index] = r.score;
        }
        if !log_odds.is_null() {
            // SAFETY: not NULL, and the caller promises n_documents writable floats.
            let log_odds = unsafe { std::slice::from_raw_parts_mut(log_odds, n_documents) };
            for r in &ranked {
                log_odds[r.index] = r.log_odds;
            }
        }
        if !tokens.is_null() {
            // SAFETY: not NULL, and the caller promises n_documents writable counts.
            let tokens = unsafe { std::slice::from_raw_parts_mut(tokens, n_documents) };
            for r in &ranked {
                tokens[r.index] = u32::try_from(r.tokens).unwrap_or(u32::MAX);
            }
        }
        Ok(())
    })
}
