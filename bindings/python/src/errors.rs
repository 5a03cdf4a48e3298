//! The library's errors as Python exceptions, in Python's idiom: bad arguments are
//! `ValueError`, a model that cannot be found, downloaded or loaded is `ModelError`, anything
//! else from the engine is `GgufEmbedError` (the base of `ModelError`). Messages are the
//! library's own.

use gguf_embed::Error;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::{PyErr, create_exception};

create_exception!(
    gguf_embed,
    GgufEmbedError,
    PyRuntimeError,
    "An error from gguf-embed's engine."
);
create_exception!(
    gguf_embed,
    ModelError,
    GgufEmbedError,
    "The model could not be found, downloaded or loaded."
);

/// Converts a library error into the exception Python callers expect.
pub fn to_py(error: Error) -> PyErr {
    let message = error.to_string();
    match error {
        Error::InvalidOption(_)
        | Error::TooLong { .. }
        | Error::InvalidToken { .. }
        | Error::InputTooLarge { .. }
        | Error::QueryTooLong { .. } => PyValueError::new_err(message),
        Error::Model { .. }
        | Error::WrongModelKind { .. }
        | Error::Hub(_)
        | Error::Load { .. }
        | Error::LoadCancelled
        | Error::Io { .. } => ModelError::new_err(message),
        _ => GgufEmbedError::new_err(message),
    }
}
