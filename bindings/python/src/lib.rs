//! `gguf_embed._native`: the Rust side of the Python package. It converts arguments, releases
//! the GIL around the library's calls and returns NumPy arrays; every embedding rule lives in
//! the `gguf_embed` crate. `python/gguf_embed/__init__.py` adds the pure-Python conveniences
//! (asyncio, LangChain-style methods).

mod embedder;
mod errors;
mod reranker;

use pyo3::prelude::*;

/// The extension module.
#[pymodule]
#[pyo3(name = "_native")]
fn gguf_embed_python(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<embedder::Embedder>()?;
    m.add_class::<reranker::Reranker>()?;
    m.add("GgufEmbedError", py.get_type::<errors::GgufEmbedError>())?;
    m.add("ModelError", py.get_type::<errors::ModelError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
