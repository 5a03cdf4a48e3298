//! Errors as JavaScript sees them: an `Error` (a `TypeError` for a value of the wrong type)
//! whose `code` is named after the C API's status (`MODEL`, `TOO_LONG`, ...) and whose message
//! is the library's own. Two codes are Node's alone: `CLOSED` (the embedder was closed) and
//! `ABORT_ERR` (an `AbortSignal` fired), the latter on an `AbortError` shaped like Node's own.

use gguf_embed::Error;
use gguf_embed::hub::HubError;
use napi::bindgen_prelude::{Env, FromNapiValue, JsObjectValue, Object, Unknown};
use napi::{JsError, JsTypeError};

/// The `code` property of a rejected call's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// An argument or option is out of range, or of the wrong type.
    InvalidArgument,
    /// The model could not be found, read or loaded.
    Model,
    /// Downloading the model failed.
    Download,
    /// A text is over the token limit and `truncate` is `"error"`.
    TooLong,
    /// Too many inputs are waiting.
    Busy,
    /// llama.cpp failed while embedding, or the engine stopped.
    Engine,
    /// A bug in gguf-embed, caught at the boundary.
    Internal,
    /// The embedder was closed before or while the call ran.
    Closed,
    /// The call's `AbortSignal` fired.
    Aborted,
}

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        match self {
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::Model => "MODEL",
            Code::Download => "DOWNLOAD",
            Code::TooLong => "TOO_LONG",
            Code::Busy => "BUSY",
            Code::Engine => "ENGINE",
            Code::Internal => "INTERNAL",
            Code::Closed => "CLOSED",
            // What Node's own AbortError carries (fs, timers, fetch...).
            Code::Aborted => "ABORT_ERR",
        }
    }
}

/// A failed call on its way to JavaScript: made on any thread, turned into an `Error` object on
/// the JavaScript thread ([`Failure::into_js`]).
#[derive(Debug)]
pub struct Failure {
    pub code: Code,
    pub message: String,
    /// A `TypeError` rather than an `Error` (a value of the wrong type).
    pub type_error: bool,
}

impl Failure {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            type_error: false,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, message)
    }

    pub fn type_error(message: impl Into<String>) -> Self {
        Self {
            type_error: true,
            ..Self::invalid(message)
        }
    }

    pub fn closed() -> Self {
        Self::new(
            Code::Closed,
            "the embedder is closed: load the model again to embed",
        )
    }

    pub fn aborted() -> Self {
        Self::new(Code::Aborted, "The operation was aborted")
    }

    /// The JavaScript error object. An aborted call gets Node's `AbortError` shape (`name`
    /// `"AbortError"`, `cause` the signal's reason, when given).
    pub fn into_js<'env>(self, env: &'env Env, cause: Option<Unknown<'env>>) -> Unknown<'env> {
        let error = napi::Error::new(self.code, self.message);
        let value = if self.type_error {
            JsTypeError::from(error).into_unknown(*env)
        } else {
            JsError::from(error).into_unknown(*env)
        };
        if self.code == Code::Aborted {
            // Best effort: the error stands without its name or cause if V8 refuses them.
            if let Ok(mut object) = Object::from_unknown(value) {
                let _ = object.set_named_property("name", "AbortError");
                if let Some(cause) = cause {
                    let _ = object.set_named_property("cause", cause);
                }
            }
        }
        value
    }
}

/// The library's errors, classified as the C API classifies them.
impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        let code = match &error {
            Error::Hub(
                HubError::InvalidSpec(_) | HubError::NotCached { .. } | HubError::NotFound(_),
            ) => Code::Model,
            Error::Hub(HubError::Cancelled { .. }) | Error::LoadCancelled => Code::Aborted,
            Error::Hub(_) => Code::Download,
            Error::Model { .. } | Error::Load { .. } | Error::Io { .. } => Code::Model,
            Error::InvalidOption(_) | Error::InvalidToken { .. } | Error::InputTooLarge { .. } => {
                Code::InvalidArgument
            }
            Error::TooLong { .. } => Code::TooLong,
            Error::Busy { .. } => Code::Busy,
            Error::Cancelled => Code::Aborted,
            _ => Code::Engine,
        };
        Self::new(code, error.to_string())
    }
}

impl From<napi::Error> for Failure {
    fn from(error: napi::Error) -> Self {
        Self::new(Code::Internal, error.reason)
    }
}
