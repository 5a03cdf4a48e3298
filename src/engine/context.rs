//! A llama.cpp context that turns packed token sequences into last-token hidden states.

use std::ffi::{CStr, c_void};
use std::ptr::NonNull;

use llama_cpp_sys_2 as sys;

use super::model::Model;
use crate::error::{Error, Result};

/// How the final hidden states are obtained from llama.cpp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputMode {
    /// Only each sequence's last token is an output, and the final normed hidden state
    /// (`result_norm`) is read through ggml's graph callback, which also stops the graph
    /// before the LM head. Skips the 151669-wide output projection for every token and the last
    /// layer's feed-forward for all but the last tokens. The default.
    #[default]
    LastToken,
    /// llama.cpp's own embedding mode with LAST pooling, as llama-server and llama-embedding
    /// run it: every token is an output. Same vectors, slower; kept for comparison.
    LlamaEmbeddings,
}

/// Flash attention: llama.cpp's automatic choice, or forced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlashAttention {
    /// llama.cpp decides per device.
    #[default]
    Auto,
    /// Always on.
    On,
    /// Always off.
    Off,
}

/// How the KV cache is laid out across the sequences of one decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KvCache {
    /// One cache shared by all sequences (masked per sequence): one micro-batch per decode,
    /// memory for the decode's tokens only. The default, and the measured best on the CPU
    /// (docs/BENCHMARKS.md).
    #[default]
    Unified,
    /// One cache stream per sequence, each as large as a whole decode: attention never spans
    /// other sequences, but llama.cpp then splits a decode into micro-batches of equal-length
    /// runs, and the cache takes `sequences` times the memory. For measurements.
    PerSequence,
}

/// The shape of a context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ContextParams {
    /// Tokens per decode (the KV cache size and the batch size).
    pub n_ctx: u32,
    /// Sequences per decode.
    pub n_seq_max: u32,
    /// CPU threads.
    pub n_threads: i32,
    pub flash_attention: FlashAttention,
    pub mode: OutputMode,
    pub kv_cache: KvCache,
    /// Keep keys and values in F32 instead of llama.cpp's F16 (for F32 models: F16 rounds
    /// them to 11 significant bits).
    pub kv_f32: bool,
}

/// Where the graph callback copies `result_norm`. Boxed so its address stays fixed.
struct Capture {
    n_embd: usize,
    /// Whether to capture `result_norm` (the fast path) or let llama.cpp pool.
    capture_norm: bool,
    rows: Vec<f32>,
    error: Option<String>,
    /// Set before a decode when the model still needs to know where its token embeddings lie.
    want_token_embd: bool,
    /// The data address of `token_embd.weight`, as the graph of the last decode showed it.
    token_embd: Option<usize>,
    /// Set for the probe decode (`Context::locate_token_embd`): stop the graph at the first node
    /// that reads the token embeddings.
    stop_at_token_embd: bool,
}

const RESULT_NORM: &[u8] = b"result_norm";
const TOKEN_EMBD: &[u8] = b"token_embd.weight";

/// The data address of `token_embd.weight` if it is one of the node's sources.
///
/// # Safety
/// `node` must be a valid graph node whose sources are valid tensors or null.
unsafe fn token_embd_source(node: &sys::ggml_tensor) -> Option<usize> {
    node.src.iter().filter(|s| !s.is_null()).find_map(|&src| {
        // SAFETY: non-null sources of a graph node are valid tensors with NUL-terminated names.
        let (src, name) = unsafe { (&*src, CStr::from_ptr(sys::ggml_get_name(src))) };
        (name.to_bytes() == TOKEN_EMBD && !src.data.is_null()).then_some(src.data as usize)
    })
}

/// ggml's scheduler calls this for every graph node: first to ask whether we want the node's
/// data (`ask`), then, once the node is computed, to hand it over. We want `result_norm`, the
/// final normed hidden state, and after copying it we return `false`, which stops the rest of
/// the graph: the LM head is never computed.
unsafe extern "C" fn capture_result_norm(
    t: *mut sys::ggml_tensor,
    ask: bool,
    user: *mut c_void,
) -> bool {
    // SAFETY: ggml passes a valid tensor; `user` is the context's boxed Capture, which is only
    // touched by the thread running the decode.
    let (tensor, capture) = unsafe { (&*t, &mut *(user as *mut Capture)) };
    let is_target = capture.capture_norm
        && unsafe { CStr::from_ptr(sys::ggml_get_name(t)) }.to_bytes() == RESULT_NORM;
    if ask {
        // The weights' addresses are known before the node runs: reading one costs no split.
        if capture.want_token_embd && capture.token_embd.is_none() {
            // SAFETY: ggml passes a valid node.
            capture.token_embd = unsafe { token_embd_source(tensor) };
            if capture.stop_at_token_embd && capture.token_embd.is_some() {
                // Asking for this node makes ggml compute up to it and hand it over below.
                return true;
            }
        }
        return is_target;
    }
    if capture.stop_at_token_embd {
        // The probe has what it came for: returning false stops the rest of the graph.
        return false;
    }
    if !is_target {
        return true;
    }
    let n_embd = capture.n_embd;
    let contiguous = tensor.nb[0] == 4 && tensor.nb[1] == 4 * n_embd;
    if tensor.type_ != sys::GGML_TYPE_F32 || tensor.ne[0] as usize != n_embd || !contiguous {
        capture.error = Some(format!(
            "unexpected result_norm layout (type {}, ne {:?})",
            tensor.type_, tensor.ne
        ));
        return true;
    }
    let rows = tensor.ne[1] as usize;
    let start = capture.rows.len();
    capture.rows.resize(start + rows * n_embd, 0.0);
    // SAFETY: the destination holds exactly the tensor's bytes (contiguous F32, checked above).
    unsafe {
        sys::ggml_backend_tensor_get(
            t,
            capture.rows[start..].as_mut_ptr().cast(),
            0,
            rows * n_embd * 4,
        );
    }
    false
}

/// A llama.cpp context sized for one decode of up to `n_ctx` tokens in `n_seq_max` sequences.
pub(crate) struct Context<'m> {
    ptr: NonNull<sys::llama_context>,
    model: &'m Model,
    params: ContextParams,
    batch: sys::llama_batch,
    /// Owned (from `Box::into_raw`) and shared with the graph callback, which writes to it
    /// during `llama_decode`; Rust code touches it only between decodes.
    capture: NonNull<Capture>,
}

impl<'m> Context<'m> {
    /// Creates a context. Memory: the KV cache grows with `n_ctx`.
    pub fn new(model: &'m Model, params: ContextParams) -> Result<Self> {
        let capture = NonNull::from(Box::leak(Box::new(Capture {
            n_embd: model.n_embd(),
            capture_norm: params.mode == OutputMode::LastToken,
            rows: Vec::new(),
            error: None,
            want_token_embd: false,
            token_embd: None,
            stop_at_token_embd: false,
        })));
        // SAFETY: default params are plain data.
        let mut cp = unsafe { sys::llama_context_default_params() };
        cp.n_ctx = params.n_ctx;
        cp.n_batch = params.n_ctx;
        // One sequence must fit in one micro-batch, and one micro-batch per decode keeps the
        // outputs in batch order.
        cp.n_ubatch = params.n_ctx;
        cp.n_seq_max = params.n_seq_max;
        cp.n_threads = params.n_threads;
        cp.n_threads_batch = params.n_threads;
        cp.kv_unified = params.kv_cache == KvCache::Unified;
        if params.kv_f32 {
            cp.type_k = sys::GGML_TYPE_F32;
            cp.type_v = sys::GGML_TYPE_F32;
        }
        if params.kv_cache == KvCache::PerSequence {
            // Each sequence's stream gets n_ctx / n_seq_max cells: room for a whole decode.
            cp.n_ctx = params.n_ctx.saturating_mul(params.n_seq_max);
        }
        cp.no_perf = true;
        cp.flash_attn_type = match params.flash_attention {
            FlashAttention::Auto => sys::LLAMA_FLASH_ATTN_TYPE_AUTO,
            FlashAttention::On => sys::LLAMA_FLASH_ATTN_TYPE_ENABLED,
            FlashAttention::Off => sys::LLAMA_FLASH_ATTN_TYPE_DISABLED,
        };
        match params.mode {
            OutputMode::LastToken => {
                cp.embeddings = false;
                // One output (logit row) per sequence: keeps the reserved LM-head buffers at
                // n_seq_max rows instead of n_ctx rows of 151669 floats.
                cp.n_outputs_max = params.n_seq_max;
            }
            OutputMode::LlamaEmbeddings => {
                cp.embeddings = true;
                cp.pooling_type = sys::LLAMA_POOLING_TYPE_LAST;
            }
        }
        // In both modes the callback reports where the token embeddings lie (see
        // `Model::found_token_embd_at`); only the fast path captures `result_norm`.
        cp.cb_eval = Some(capture_result_norm);
        cp.cb_eval_user_data = capture.as_ptr().cast();
        // SAFETY: the model outlives the context ('m); the capture box outlives it too.
        let raw = unsafe { sys::llama_init_from_model(model.as_ptr(), cp) };
        let Some(ptr) = NonNull::new(raw) else {
            // SAFETY: the capture was leaked above and nothing else holds it.
            drop(unsafe { Box::from_raw(capture.as_ptr()) });
            return Err(Error::ContextAlloc {
                tokens: params.n_ctx,
                sequences: params.n_seq_max,
            });
        };
        // SAFETY: allocates token, position, sequence and output arrays for n_ctx tokens.
        let batch = unsafe { sys::llama_batch_init(params.n_ctx as i32, 0, 1) };
        Ok(Self {
            ptr,
            model,
            params,
            batch,
            capture,
        })
    }

    /// The context's shape.
    pub fn params(&self) -> ContextParams {
        self.params
    }

    /// Shows the model where its token embeddings lie (see `Model::found_token_embd_at`), if it
    /// still needs to know, with a probe: a decode of `token` whose graph stops at its first node,
    /// the embedding lookup, so it costs next to nothing. Its outputs are not read.
    pub fn locate_token_embd(&mut self, token: i32) -> Result<()> {
        if !self.model.wants_token_embd_address() {
            return Ok(());
        }
        self.fill_batch(&[&[token]]);
        let capture = self.capture_mut();
        capture.want_token_embd = true;
        capture.stop_at_token_embd = true;
        let status = self.run_decode();
        let capture = self.capture_mut();
        capture.stop_at_token_embd = false;
        capture.rows.clear();
        if let Some(address) = capture.token_embd.take() {
            self.model.found_token_embd_at(address);
        }
        if status != 0 {
            return Err(Error::Decode { status });
        }
        Ok(())
    }

    /// Runs one decode over `seqs` (each already ending with the end-of-text token) and returns
    /// each sequence's final normed hidden state, `n_embd` floats per sequence, in order.
    ///
    /// The caller guarantees the sequences fit: at most `n_seq_max` of them, `n_ctx` tokens in
    /// all, none empty.
    pub fn decode(&mut self, seqs: &[&[i32]]) -> Result<Vec<f32>> {
        if self.params.kv_cache == KvCache::Unified || self.params.mode != OutputMode::LastToken {
            return self.decode_in_order(seqs);
        }
        // Per-sequence caches make llama.cpp split the decode into micro-batches of equal-length
        // runs of consecutive sequences, and the graph callback sees each sequence's last token
        // in the micro-batch where it ends. With the shortest first, that is the batch order.
        let mut order: Vec<usize> = (0..seqs.len()).collect();
        order.sort_by_key(|&i| seqs[i].len());
        let sorted: Vec<&[i32]> = order.iter().map(|&i| seqs[i]).collect();
        let rows = self.decode_in_order(&sorted)?;
        let n_embd = self.model.n_embd();
        let mut out = vec![0.0; rows.len()];
        for (row, &i) in rows.chunks_exact(n_embd).zip(&order) {
            out[i * n_embd..(i + 1) * n_embd].copy_from_slice(row);
        }
        Ok(out)
    }

    /// [`decode`](Self::decode) for a context whose outputs come back in batch order.
    fn decode_in_order(&mut self, seqs: &[&[i32]]) -> Result<Vec<f32>> {
        let total: usize = seqs.iter().map(|s| s.len()).sum();
        assert!(
            !seqs.is_empty()
                && seqs.len() <= self.params.n_seq_max as usize
                && total <= self.params.n_ctx as usize
                && seqs.iter().all(|s| !s.is_empty()),
            "decode called with a batch that does not fit the context"
        );
        self.fill_batch(seqs);
        let want_token_embd = self.model.wants_token_embd_address();
        let capture = self.capture_mut();
        capture.rows.clear();
        capture.error = None;
        capture.want_token_embd = want_token_embd;

        let status = self.run_decode();
        if let Some(address) = self.capture_mut().token_embd.take() {
            self.model.found_token_embd_at(address);
        }
        if status != 0 {
            return Err(Error::Decode { status });
        }
        match self.params.mode {
            OutputMode::LastToken => self.take_captured(seqs.len()),
            OutputMode::LlamaEmbeddings => self.read_pooled(seqs.len()),
        }
    }

    /// Decodes the filled batch from an empty KV cache; returns llama_decode's status.
    fn run_decode(&mut self) -> i32 {
        // SAFETY: the context and batch are valid; the KV cache is cleared so every decode
        // starts from empty sequences (metadata only: no need to zero the buffers).
        unsafe {
            sys::llama_memory_clear(sys::llama_get_memory(self.ptr.as_ptr()), false);
            sys::llama_decode(self.ptr.as_ptr(), self.batch)
        }
    }

    fn fill_batch(&mut self, seqs: &[&[i32]]) {
        let b = &mut self.batch;
        let all_outputs = self.params.mode == OutputMode::LlamaEmbeddings;
        let mut i = 0usize;
        for (seq_id, seq) in seqs.iter().enumerate() {
            for (pos, &token) in seq.iter().enumerate() {
                // SAFETY: the batch was allocated for n_ctx tokens with one sequence id each,
                // and decode() checked that the sequences fit.
                unsafe {
                    *b.token.add(i) = token;
                    *b.pos.add(i) = pos as i32;
                    *b.n_seq_id.add(i) = 1;
                    *(*b.seq_id.add(i)) = seq_id as i32;
                    *b.logits.add(i) = i8::from(all_outputs || pos + 1 == seq.len());
                }
                i += 1;
            }
        }
        b.n_tokens = i as i32;
    }

    /// The capture buffer, between decodes.
    fn capture_mut(&mut self) -> &mut Capture {
        // SAFETY: no decode is running (we hold &mut self), so the callback cannot alias it.
        unsafe { self.capture.as_mut() }
    }

    fn take_captured(&mut self, n_seqs: usize) -> Result<Vec<f32>> {
        let n_embd = self.model.n_embd();
        let capture = self.capture_mut();
        if let Some(error) = capture.error.take() {
            return Err(Error::Compute(error));
        }
        let rows = std::mem::take(&mut capture.rows);
        if rows.len() != n_seqs * n_embd {
            return Err(Error::Compute(format!(
                "expected {n_seqs} hidden states, the graph produced {} values",
                rows.len()
            )));
        }
        Ok(rows)
    }

    fn read_pooled(&self, n_seqs: usize) -> Result<Vec<f32>> {
        let n_embd = self.model.n_embd();
        let mut rows = Vec::with_capacity(n_seqs * n_embd);
        for seq_id in 0..n_seqs {
            // SAFETY: the context computed pooled embeddings for every sequence id in the batch;
            // the pointer is valid for n_embd floats until the next decode.
            let ptr = unsafe { sys::llama_get_embeddings_seq(self.ptr.as_ptr(), seq_id as i32) };
            if ptr.is_null() {
                return Err(Error::Compute(format!(
                    "no embedding for sequence {seq_id}"
                )));
            }
            rows.extend_from_slice(unsafe { std::slice::from_raw_parts(ptr, n_embd) });
        }
        Ok(rows)
    }
}

impl Drop for Context<'_> {
    fn drop(&mut self) {
        // SAFETY: both were allocated by llama.cpp in `new` and are freed once.
        unsafe {
            sys::llama_batch_free(self.batch);
            sys::llama_free(self.ptr.as_ptr());
            drop(Box::from_raw(self.capture.as_ptr()));
        }
    }
}
