//! A loaded llama.cpp model: weights (memory-mapped) and vocabulary.

use std::ffi::{CString, c_void};
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use llama_cpp_sys_2 as sys;

use super::{backend, pages};
use crate::error::{Error, Result};

/// A callback told the load progress (0.0 to 1.0); returning `false` cancels the load.
pub type LoadProgress = dyn Fn(f32) -> bool + Send + Sync;

/// How to load a model.
#[derive(Default)]
pub(crate) struct LoadParams<'a> {
    /// Layers to place on the GPU (0: CPU only; negative: all).
    pub gpu_layers: i32,
    /// Devices to use (ggml device handles), or empty for llama.cpp's default choice.
    pub devices: Vec<sys::ggml_backend_dev_t>,
    /// Load progress, with cancellation.
    pub progress: Option<&'a LoadProgress>,
    /// File ranges of weights read only sparsely (the token embeddings): their pages are
    /// dropped from resident memory after each decode, on the CPU.
    pub sparse_ranges: Vec<Range<u64>>,
    /// Where `token_embd.weight` starts in the file: the decode graph shows where that tensor
    /// lies in memory, which identifies this model's own mapping of the file.
    pub token_embd_offset: Option<u64>,
}

/// A model loaded by llama.cpp.
pub(crate) struct Model {
    ptr: NonNull<sys::llama_model>,
    vocab: NonNull<sys::llama_vocab>,
    n_embd: usize,
    /// The file llama.cpp mapped.
    path: PathBuf,
    /// The file ranges of the sparsely read weights, and where the token embeddings start.
    sparse_ranges: Vec<Range<u64>>,
    token_embd_offset: Option<u64>,
    /// Whether the weights stay on the CPU (only then are they read from the file mapping).
    on_cpu: bool,
    /// Where this model's sparsely read weights are mapped, once the first decode showed it.
    sparse: OnceLock<pages::SparsePages>,
}

// SAFETY: a llama_model is immutable once loaded; llama.cpp shares one model between contexts
// on many threads (llama-server tokenizes on its HTTP threads), and tokenization keeps its
// state per call.
unsafe impl Send for Model {}
// SAFETY: see above.
unsafe impl Sync for Model {}

/// What the progress trampoline needs: the caller's callback and whether it cancelled.
struct ProgressState<'a> {
    callback: &'a LoadProgress,
    cancelled: AtomicBool,
}

unsafe extern "C" fn progress_trampoline(progress: f32, user: *mut c_void) -> bool {
    // SAFETY: `user` points to the ProgressState that outlives the load call.
    let state = unsafe { &*(user as *const ProgressState) };
    let keep_going = catch_unwind(AssertUnwindSafe(|| (state.callback)(progress))).unwrap_or(false);
    if !keep_going {
        state.cancelled.store(true, Ordering::Relaxed);
    }
    keep_going
}

impl Model {
    /// Loads a model that already passed our GGUF checks, memory-mapping its weights.
    pub fn load(path: &Path, params: &LoadParams) -> Result<Self> {
        backend::ensure_initialized();
        let load_error = |reason: &str| Error::Load {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let c_path = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| load_error("the path contains a NUL byte"))?;

        // SAFETY: default params are plain data.
        let mut mp = unsafe { sys::llama_model_default_params() };
        mp.n_gpu_layers = params.gpu_layers;
        mp.load_mode = sys::LLAMA_LOAD_MODE_MMAP;
        let mut devices = params.devices.clone();
        if !devices.is_empty() {
            devices.push(std::ptr::null_mut()); // the list is NULL-terminated
            mp.devices = devices.as_mut_ptr();
        }
        let progress = params.progress.map(|callback| ProgressState {
            callback,
            cancelled: AtomicBool::new(false),
        });
        if let Some(state) = &progress {
            mp.progress_callback = Some(progress_trampoline);
            mp.progress_callback_user_data = state as *const ProgressState as *mut c_void;
        }

        // SAFETY: the path is NUL-terminated; `devices` and `progress` outlive the call.
        let raw = unsafe { sys::llama_model_load_from_file(c_path.as_ptr(), mp) };
        let Some(ptr) = NonNull::new(raw) else {
            if progress.is_some_and(|p| p.cancelled.load(Ordering::Relaxed)) {
                return Err(Error::LoadCancelled);
            }
            return Err(load_error(
                "see llama.cpp's log (run with -v) for details; the file may be damaged",
            ));
        };
        // SAFETY: `ptr` is a valid model; the vocabulary lives as long as the model.
        let vocab = unsafe { sys::llama_model_get_vocab(ptr.as_ptr()) };
        let n_embd = unsafe { sys::llama_model_n_embd(ptr.as_ptr()) };
        Ok(Self {
            ptr,
            vocab: NonNull::new(vocab.cast_mut()).ok_or_else(|| load_error("no vocabulary"))?,
            n_embd: usize::try_from(n_embd).map_err(|_| load_error("negative n_embd"))?,
            path: path.to_path_buf(),
            sparse_ranges: params.sparse_ranges.clone(),
            token_embd_offset: params.token_embd_offset,
            on_cpu: params.gpu_layers == 0,
            sparse: OnceLock::new(),
        })
    }

    /// Whether the next decode should report where `token_embd.weight` lies in memory.
    pub fn wants_token_embd_address(&self) -> bool {
        self.on_cpu && self.token_embd_offset.is_some() && self.sparse.get().is_none()
    }

    /// Told where this model's `token_embd.weight` lies in memory (seen in a decode graph):
    /// finds this model's own mapping of the file from it, once.
    pub fn found_token_embd_at(&self, address: usize) {
        let Some(file_offset) = self.token_embd_offset.filter(|_| self.on_cpu) else {
            return;
        };
        let anchor = pages::Anchor {
            address,
            file_offset,
        };
        self.sparse
            .get_or_init(|| pages::SparsePages::find(&self.path, anchor, &self.sparse_ranges));
    }

    /// Drops the resident pages of the weights read only row by row (the token embeddings),
    /// after each decode. Returns the bytes covered (0 until a decode located them).
    pub fn release_sparse_pages(&self) -> u64 {
        self.sparse.get().map_or(0, pages::SparsePages::release)
    }

    /// The raw model, for creating contexts.
    pub fn as_ptr(&self) -> *mut sys::llama_model {
        self.ptr.as_ptr()
    }

    /// The hidden size.
    pub fn n_embd(&self) -> usize {
        self.n_embd
    }

    /// Tokenizes text without adding special tokens and without parsing them: user text that
    /// contains `<|endoftext|>` stays text. Returns `None` when the text is too large for
    /// llama.cpp (over 2 GiB).
    pub fn tokenize(&self, text: &str) -> Option<Vec<i32>> {
        self.tokenize_with(text, false)
    }

    /// Tokenizes a fixed prompt template of ours, whose special tokens (`<|im_start|>`) are
    /// meant: they become their ids. Never for user text.
    pub fn tokenize_template(&self, text: &str) -> Option<Vec<i32>> {
        self.tokenize_with(text, true)
    }

    fn tokenize_with(&self, text: &str, parse_special: bool) -> Option<Vec<i32>> {
        let len = i32::try_from(text.len()).ok()?;
        // Most text takes well under one token per two bytes; llama.cpp reports the exact
        // count (negated) when the guess is short, and then we tokenize once more.
        let mut tokens = vec![0i32; text.len() / 2 + 8];
        for _attempt in 0..2 {
            let capacity = i32::try_from(tokens.len()).ok()?;
            // SAFETY: `text` is valid for `len` bytes, `tokens` for `capacity` entries.
            let n = unsafe {
                sys::llama_tokenize(
                    self.vocab.as_ptr(),
                    text.as_ptr().cast(),
                    len,
                    tokens.as_mut_ptr(),
                    capacity,
                    false,
                    parse_special,
                )
            };
            match usize::try_from(n) {
                Ok(n) => {
                    tokens.truncate(n);
                    return Some(tokens);
                }
                Err(_) => tokens.resize(n.unsigned_abs() as usize, 0),
            }
        }
        None
    }

    /// The number of tokens in the vocabulary.
    pub fn n_vocab(&self) -> usize {
        // SAFETY: the vocabulary is valid while the model is.
        let n = unsafe { sys::llama_vocab_n_tokens(self.vocab.as_ptr()) };
        usize::try_from(n).unwrap_or(0)
    }

    /// A token's text as bytes (a control token's name, such as `<|endoftext|>`, too), or
    /// `None` for an id outside the vocabulary. Byte-level BPE pieces may hold part of a
    /// UTF-8 character: concatenated in order they give back the text.
    pub fn token_piece(&self, token: i32) -> Option<Vec<u8>> {
        // Checked here: llama.cpp looks the id up with `at()` and a C++ exception would abort.
        if usize::try_from(token).ok()? >= self.n_vocab() {
            return None;
        }
        let mut buf = vec![0u8; 64];
        for _attempt in 0..2 {
            let capacity = i32::try_from(buf.len()).ok()?;
            // SAFETY: the id is in the vocabulary (checked above); `buf` is valid for
            // `capacity` bytes.
            let n = unsafe {
                sys::llama_token_to_piece(
                    self.vocab.as_ptr(),
                    token,
                    buf.as_mut_ptr().cast(),
                    capacity,
                    0,
                    true,
                )
            };
            match usize::try_from(n) {
                Ok(n) => {
                    buf.truncate(n);
                    return Some(buf);
                }
                // Too small: llama.cpp says how much it needs, negated.
                Err(_) => buf.resize(n.unsigned_abs() as usize, 0),
            }
        }
        None
    }

    /// Whether a token is a control token (`<|endoftext|>`, `<|im_start|>`...): one that text
    /// never tokenizes to.
    pub fn is_control(&self, token: i32) -> bool {
        if usize::try_from(token).map_or(true, |t| t >= self.n_vocab()) {
            return false;
        }
        // SAFETY: the id is in the vocabulary (checked above).
        unsafe { sys::llama_vocab_is_control(self.vocab.as_ptr(), token) }
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: the model is valid and every context that borrowed it is gone.
        unsafe { sys::llama_model_free(self.ptr.as_ptr()) };
    }
}
