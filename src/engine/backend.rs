//! llama.cpp's process-wide state: the one-time backend initialisation and its log.

use std::ffi::{CStr, c_char, c_void};
use std::sync::OnceLock;

use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_sys_2 as sys;

/// The backend handle, kept for the life of the process. `None` when the host application
/// initialised llama.cpp itself before us (llama-cpp-2 allows one initialisation per process).
static BACKEND: OnceLock<Option<LlamaBackend>> = OnceLock::new();

/// Initialises llama.cpp once per process and routes its log into `tracing`, unless the host
/// application already gave llama.cpp a log callback of its own: that one stays.
pub(crate) fn ensure_initialized() {
    BACKEND.get_or_init(|| {
        if !host_set_log_callback() {
            // SAFETY: the callback is a plain function that never unwinds; the null user data
            // is never dereferenced.
            unsafe { sys::llama_log_set(Some(log_to_tracing), std::ptr::null_mut()) };
        }
        #[cfg(feature = "portable")]
        load_backend_modules();
        LlamaBackend::init().ok()
    });
}

/// Whether llama.cpp's log goes to a callback other than ggml's default (the host set one).
///
/// ggml does not export its default callback's address, so it is read from ggml itself: reset
/// to the default, read it, then restore what was there. This runs once, before our first
/// model loads; a line logged by another thread in between would go to ggml's default
/// (stderr) instead of the host's callback.
fn host_set_log_callback() -> bool {
    let mut current: sys::ggml_log_callback = None;
    let mut user_data = std::ptr::null_mut();
    let mut default: sys::ggml_log_callback = None;
    let mut default_data = std::ptr::null_mut();
    // SAFETY: the getters write two plain values; the setter takes a function pointer (or
    // null for the default) and an opaque pointer that ggml only hands back to that function.
    unsafe {
        sys::ggml_log_get(&mut current, &mut user_data);
        sys::ggml_log_set(None, std::ptr::null_mut());
        sys::ggml_log_get(&mut default, &mut default_data);
        sys::ggml_log_set(current, user_data);
    }
    current.map(|f| f as usize) != default.map(|f| f as usize)
}

/// Portable builds: loads ggml's backend modules (the CPU variants and any GPU backend) from
/// the first of `$GGUF_EMBED_BACKENDS_DIR`, the directory of the file that holds this code (a
/// Node addon or another shared library, when gguf-embed is linked into one), the executable's
/// directory and the build's output directory that holds any. ggml picks the best CPU variant
/// for this machine.
#[cfg(feature = "portable")]
fn load_backend_modules() {
    let candidates = [
        std::env::var_os("GGUF_EMBED_BACKENDS_DIR").map(std::path::PathBuf::from),
        own_directory(),
        std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(std::path::Path::to_path_buf)),
        llama_cpp_sys_2::BACKENDS_DIR.map(std::path::PathBuf::from),
    ];
    let has_modules = |dir: &std::path::Path| {
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.contains("ggml-")
                    && (name.ends_with(".so") || name.ends_with(".dll") || name.ends_with(".dylib"))
            })
        })
    };
    match candidates.into_iter().flatten().find(|d| has_modules(d)) {
        Some(dir) => {
            tracing::debug!("loading ggml backend modules from {}", dir.display());
            llama_cpp_2::llama_backend::load_backends_from_path(&dir);
        }
        None => tracing::warn!(
            "no ggml backend modules found (set GGUF_EMBED_BACKENDS_DIR to their directory)"
        ),
    }
}

/// The directory of the executable or shared library this function was loaded from: for a
/// library loaded into another program (a Node addon in `node` or Electron), that is where its
/// backend modules ship, not the program's directory.
#[cfg(all(feature = "portable", unix))]
fn own_directory() -> Option<std::path::PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    // SAFETY: dladdr reads an address (this function's, so inside a loaded image) and fills the
    // struct it is given; it returns 0 when it found nothing, and then the struct is not read.
    let found = unsafe { libc::dladdr(own_directory as *const libc::c_void, info.as_mut_ptr()) };
    if found == 0 {
        return None;
    }
    // SAFETY: dladdr succeeded, so it initialised the struct.
    let info = unsafe { info.assume_init() };
    if info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dli_fname is a NUL-terminated path owned by the dynamic loader, valid while the
    // image is loaded (it is ours: it stays loaded while this runs).
    let name = unsafe { CStr::from_ptr(info.dli_fname) };
    let path = std::path::Path::new(std::ffi::OsStr::from_bytes(name.to_bytes()));
    path.canonicalize()
        .ok()?
        .parent()
        .map(std::path::Path::to_path_buf)
}

#[cfg(all(feature = "portable", not(unix)))]
fn own_directory() -> Option<std::path::PathBuf> {
    None
}

/// Forwards llama.cpp and ggml log lines to `tracing` under the target `llama_cpp`, one level
/// quieter than llama.cpp's own: its errors are warnings to us (our own error says what failed),
/// its chatty load-time info is debug output.
unsafe extern "C" fn log_to_tracing(
    level: sys::ggml_log_level,
    text: *const c_char,
    _: *mut c_void,
) {
    if text.is_null() {
        return;
    }
    // SAFETY: llama.cpp passes a NUL-terminated string valid for the duration of the call.
    let text = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    let line = text.trim_end();
    // Progress dots and bare continuations carry no information.
    if line
        .trim_matches(|c: char| c == '.' || c.is_whitespace())
        .is_empty()
    {
        return;
    }
    match level {
        sys::GGML_LOG_LEVEL_ERROR => tracing::warn!(target: "llama_cpp", "{line}"),
        sys::GGML_LOG_LEVEL_WARN => tracing::info!(target: "llama_cpp", "{line}"),
        sys::GGML_LOG_LEVEL_INFO => tracing::debug!(target: "llama_cpp", "{line}"),
        _ => tracing::trace!(target: "llama_cpp", "{line}"),
    }
}
