//! The `Reranker` class.

use std::path::PathBuf;

use gguf_embed::{RerankOptions, RerankScore, Truncation};
use numpy::PyArray1;
use pyo3::prelude::*;

use crate::embedder::{engine_options, instruction, load, read_texts, truncation};
use crate::errors::to_py;

/// A Qwen3-Reranker model loaded once, to score how well documents answer a query from any
/// thread.
#[pyclass(module = "gguf_embed", subclass, frozen)]
pub struct Reranker {
    inner: gguf_embed::Reranker,
    path: PathBuf,
    truncation: Truncation,
}

impl Reranker {
    /// The call's options.
    fn options(&self, task: Option<&str>, instruction: Option<String>) -> PyResult<RerankOptions> {
        Ok(RerankOptions::default()
            .with_instruction(self::instruction(task, instruction, false)?)
            .with_truncation(self.truncation))
    }

    /// Scores `documents` (a str or a list of str), best first, without the GIL.
    fn run(
        &self,
        py: Python<'_>,
        query: &str,
        documents: &Bound<'_, PyAny>,
        options: &RerankOptions,
    ) -> PyResult<Vec<RerankScore>> {
        let documents = read_texts(documents)?;
        let inner = &self.inner;
        py.detach(|| inner.rerank(query, documents.as_slice(), options))
            .map_err(to_py)
    }
}

#[pymethods]
impl Reranker {
    /// Loads a reranker: a `.gguf` path, a catalog name (`"Qwen3-Reranker-0.6B"`, the default:
    /// ggml-org/Qwen3-Reranker-0.6B-Q8_0-GGUF) or `"hf:OWNER/REPO/FILE.gguf"`, found in (or
    /// downloaded once to) the Hugging Face cache, as the CLI does.
    #[new]
    #[pyo3(signature = (
        model = "Qwen3-Reranker-0.6B".into(),
        *,
        quant = "Q8_0".to_string(),
        device = "auto".to_string(),
        threads = None,
        max_tokens = gguf_embed::DEFAULT_MAX_TOKENS,
        truncate = "end".to_string(),
        offline = false,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        model: PathBuf,
        quant: String,
        device: String,
        threads: Option<usize>,
        max_tokens: usize,
        truncate: String,
        offline: bool,
    ) -> PyResult<Self> {
        let truncation = truncation(&truncate)?;
        let options = engine_options(&device, threads, max_tokens)?;
        let (inner, path) = load(py, &model, &quant, offline, |path| {
            gguf_embed::Reranker::new(path, options)
        })?;
        Ok(Self {
            inner,
            path,
            truncation,
        })
    }

    /// The model file in use.
    #[getter]
    fn model_path(&self) -> String {
        self.path.display().to_string()
    }

    /// Where the "yes" and "no" rows were read from (`cls.output.weight`, `output.weight` or
    /// `token_embd.weight`).
    #[getter]
    fn head(&self) -> String {
        self.inner.head_source().to_string()
    }

    fn __repr__(&self) -> String {
        format!("Reranker(model={:?})", self.path.display().to_string())
    }

    /// Each document's score as a `float32` array in input order: P("yes"), the model's
    /// probability that the document meets the query; `log_odds=True` gives
    /// logit("yes") - logit("no") instead (it still orders scores that saturate at 1).
    #[pyo3(signature = (query, documents, *, task = None, instruction = None, log_odds = false))]
    fn score<'py>(
        &self,
        py: Python<'py>,
        query: &str,
        documents: &Bound<'py, PyAny>,
        task: Option<&str>,
        instruction: Option<String>,
        log_odds: bool,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let options = self.options(task, instruction)?;
        let mut values = Vec::new();
        for s in self.run(py, query, documents, &options)? {
            if values.len() <= s.index {
                values.resize(s.index + 1, 0.0);
            }
            values[s.index] = if log_odds { s.log_odds } else { s.score };
        }
        Ok(PyArray1::from_vec(py, values))
    }

    /// `(index, score)` pairs, best first (by log-odds), the best `top_n` if given.
    #[pyo3(signature = (query, documents, *, top_n = None, task = None, instruction = None))]
    fn rerank(
        &self,
        py: Python<'_>,
        query: &str,
        documents: &Bound<'_, PyAny>,
        top_n: Option<usize>,
        task: Option<&str>,
        instruction: Option<String>,
    ) -> PyResult<Vec<(usize, f32)>> {
        let mut options = self.options(task, instruction)?;
        if let Some(n) = top_n {
            options = options.with_top_n(n);
        }
        let scores = self.run(py, query, documents, &options)?;
        Ok(scores.into_iter().map(|s| (s.index, s.score)).collect())
    }

    /// The token ids the model sees for a pair (the whole prompt, the document cut as
    /// scoring would cut it).
    #[pyo3(signature = (query, document, *, task = None, instruction = None))]
    fn tokenize(
        &self,
        py: Python<'_>,
        query: &str,
        document: &str,
        task: Option<&str>,
        instruction: Option<String>,
    ) -> PyResult<Vec<u32>> {
        let options = self.options(task, instruction)?;
        let inner = &self.inner;
        py.detach(|| inner.token_ids(query, document, &options))
            .map_err(to_py)
    }
}
