//! Status codes, the thread-local error message, and the guard every entry point runs in: it
//! turns the library's errors into codes and keeps panics from unwinding into C.

use std::cell::RefCell;
use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use gguf_embed::Error;
use gguf_embed::hub::HubError;

/// What a call did. Every function that can fail returns one; on failure,
/// `gguf_embed_last_error()` says what happened, in words meant for the user.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgufEmbedStatus {
    /// Success.
    Ok = 0,
    /// A pointer that must not be NULL was NULL.
    NullArgument = 1,
    /// A text or string argument is not valid UTF-8.
    InvalidUtf8 = 2,
    /// An argument or option is out of range (an unknown task, device or quantization, a
    /// Matryoshka size the model does not have, ...).
    InvalidArgument = 3,
    /// The output buffer does not have exactly the number of floats the call writes.
    BufferSize = 4,
    /// The model could not be found, read or loaded (a missing file, an unknown name, a file
    /// that is not a Qwen3-Embedding GGUF, a reranker given to the embedder or the reverse, a
    /// model that is not cached while offline).
    Model = 5,
    /// Downloading the model failed (network, access denied, a checksum mismatch, a full disk,
    /// an interrupted transfer: calling again resumes it).
    Download = 6,
    /// A text is longer than the token limit and truncation is off (or a reranker's query
    /// leaves no room for a document).
    TooLong = 7,
    /// Too many inputs are waiting; try again shortly.
    Busy = 8,
    /// llama.cpp failed while embedding, or the engine stopped.
    Engine = 9,
    /// A bug inside gguf-embed was caught at the boundary (please report it); the process
    /// and other embedders are unaffected.
    Internal = 10,
}

/// A failed call: its status and message.
#[derive(Debug)]
pub(crate) struct Failure {
    pub status: GgufEmbedStatus,
    pub message: String,
}

impl Failure {
    pub fn new(status: GgufEmbedStatus, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn null(argument: &str) -> Self {
        Self::new(
            GgufEmbedStatus::NullArgument,
            format!("{argument} must not be NULL"),
        )
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(GgufEmbedStatus::InvalidArgument, message)
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        let status = match &error {
            Error::Hub(hub) => hub_status(hub),
            Error::Model { .. }
            | Error::WrongModelKind { .. }
            | Error::Load { .. }
            | Error::LoadCancelled
            | Error::Io { .. } => GgufEmbedStatus::Model,
            Error::InvalidOption(_) | Error::InvalidToken { .. } | Error::InputTooLarge { .. } => {
                GgufEmbedStatus::InvalidArgument
            }
            Error::TooLong { .. } | Error::QueryTooLong { .. } => GgufEmbedStatus::TooLong,
            Error::Busy { .. } => GgufEmbedStatus::Busy,
            _ => GgufEmbedStatus::Engine,
        };
        Self::new(status, error.to_string())
    }
}

/// Which hub errors mean "no such model" and which mean "the download failed".
fn hub_status(error: &HubError) -> GgufEmbedStatus {
    match error {
        HubError::InvalidSpec(_) | HubError::NotCached { .. } | HubError::NotFound(_) => {
            GgufEmbedStatus::Model
        }
        _ => GgufEmbedStatus::Download,
    }
}

thread_local! {
    /// The message of the last failed call on this thread (empty when the last call succeeded).
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    // A message never holds NUL in practice; if one did, it would be cut there rather than lost.
    let bytes: Vec<u8> = message.bytes().take_while(|&b| b != 0).collect();
    let message = CString::new(bytes).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = message);
}

/// The current thread's last error message; the pointer stays valid until the next call into
/// the library on this thread.
pub(crate) fn last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// Runs one entry point: clears the thread's message, runs `body`, and turns its error or
/// panic into a status and a message. Nothing unwinds past this function.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), Failure>) -> GgufEmbedStatus {
    set_last_error("");
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => GgufEmbedStatus::Ok,
        Ok(Err(failure)) => {
            set_last_error(&failure.message);
            failure.status
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(&format!(
                "internal error in gguf-embed (please report it): {what}"
            ));
            GgufEmbedStatus::Internal
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn message() -> String {
        // SAFETY: last_error returns a pointer to this thread's live CString, which nothing
        // replaces while we read it.
        unsafe { CStr::from_ptr(last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn a_panic_becomes_a_status_and_a_message() {
        let status = guard(|| panic!("boom"));
        assert_eq!(status, GgufEmbedStatus::Internal);
        assert!(message().contains("boom"), "{}", message());
        assert_eq!(guard(|| Ok(())), GgufEmbedStatus::Ok);
        assert_eq!(message(), "", "a successful call clears the message");
    }

    #[test]
    fn errors_map_to_their_codes() {
        let missing = Failure::from(Error::Hub(HubError::InvalidSpec("x: no such file".into())));
        assert_eq!(missing.status, GgufEmbedStatus::Model);
        let network = Failure::from(Error::Hub(HubError::Network("refused".into())));
        assert_eq!(network.status, GgufEmbedStatus::Download);
        let long = Failure::from(Error::TooLong {
            index: 1,
            tokens: 9,
            max: 8,
        });
        assert_eq!(long.status, GgufEmbedStatus::TooLong);
        assert!(long.message.contains("input 1 has 9 tokens"));
    }

    #[test]
    fn messages_are_per_thread() {
        guard(|| Err(Failure::invalid("on the main thread")));
        std::thread::spawn(|| assert_eq!(message(), ""))
            .join()
            .unwrap();
        assert_eq!(message(), "on the main thread");
    }
}
