//! A host application that gave llama.cpp a log callback before loading a model keeps it: the
//! library routes llama.cpp's log into `tracing` only when nobody else asked for it. (Its own
//! test binary: the log callback is process-wide.)

mod common;

use std::ffi::{c_char, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};

use gguf_embed::{Device, EmbedOptions, Embedder, EmbedderOptions};
use llama_cpp_sys_2 as sys;

static HOST_LINES: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn host_log(_level: sys::ggml_log_level, _text: *const c_char, _: *mut c_void) {
    HOST_LINES.fetch_add(1, Ordering::Relaxed);
}

#[test]
fn a_log_callback_the_host_set_stays_in_place() {
    // SAFETY: a plain function that never unwinds; the user data is never read.
    unsafe { sys::llama_log_set(Some(host_log), std::ptr::null_mut()) };
    let embedder = Embedder::new(
        common::q8_model(),
        EmbedderOptions::default().with_device(Device::Cpu),
    )
    .unwrap();
    embedder
        .embed(&["hello"], &EmbedOptions::documents())
        .unwrap();
    let mut current: sys::ggml_log_callback = None;
    let mut user_data = std::ptr::null_mut();
    // SAFETY: writes two plain values.
    unsafe { sys::llama_log_get(&mut current, &mut user_data) };
    assert_eq!(
        current.map(|f| f as usize),
        Some(host_log as *const () as usize),
        "the library replaced the host's llama.cpp log callback"
    );
    assert!(
        HOST_LINES.load(Ordering::Relaxed) > 0,
        "llama.cpp's log of the model load reached the host's callback"
    );
}
