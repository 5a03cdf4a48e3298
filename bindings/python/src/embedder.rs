//! The `Embedder` class.

use std::path::PathBuf;

use gguf_embed::hub::{Hub, HubConfig, ModelSpec};
use gguf_embed::{EmbedOptions, EmbedderOptions, Embedding, Instruction, Task, Truncation};
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::errors::{ModelError, to_py};

/// A Qwen3-Embedding model loaded once, to embed texts from any thread.
#[pyclass(module = "gguf_embed", subclass, frozen)]
pub struct Embedder {
    inner: gguf_embed::Embedder,
    path: PathBuf,
    truncation: Truncation,
}

/// Texts as given: one string, or a sequence of them.
pub(crate) enum Texts {
    One(String),
    Many(Vec<String>),
}

impl Texts {
    pub(crate) fn as_slice(&self) -> &[String] {
        match self {
            Texts::One(t) => std::slice::from_ref(t),
            Texts::Many(v) => v,
        }
    }
}

/// Reads `texts`: a `str`, or an iterable of `str` (a clear `TypeError` names the first item
/// that is not one, such as `None`).
pub(crate) fn read_texts(texts: &Bound<'_, PyAny>) -> PyResult<Texts> {
    if let Ok(s) = texts.cast::<PyString>() {
        return Ok(Texts::One(s.to_str()?.to_owned()));
    }
    let iter = texts.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "texts must be a str or a list of str, not {}",
            type_name(texts)
        ))
    })?;
    let mut out = Vec::new();
    for (i, item) in iter.enumerate() {
        let item = item?;
        let s = item.cast::<PyString>().map_err(|_| {
            PyTypeError::new_err(format!(
                "texts[{i}] is {}, not str: every text must be a string",
                type_name(&item)
            ))
        })?;
        out.push(s.to_str()?.to_owned());
    }
    Ok(Texts::Many(out))
}

/// A value's type for messages: `None`, `int`, `bytes`...
fn type_name(value: &Bound<'_, PyAny>) -> String {
    if value.is_none() {
        return "None".into();
    }
    value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// The instruction that `task`, `instruction` and `query` ask for.
pub(crate) fn instruction(
    task: Option<&str>,
    instruction: Option<String>,
    query: bool,
) -> PyResult<Instruction> {
    Ok(match (task, instruction) {
        (Some(_), Some(_)) => {
            return Err(PyValueError::new_err(
                "give either task or instruction, not both",
            ));
        }
        (Some(task), None) => Instruction::Task(
            task.parse::<Task>()
                .map_err(|e| PyValueError::new_err(e.to_string()))?,
        ),
        (None, Some(text)) => Instruction::Custom(text),
        (None, None) if query => Instruction::query(),
        (None, None) => Instruction::None,
    })
}

#[pymethods]
impl Embedder {
    /// Loads a model: a `.gguf` path, a catalog name (`"Qwen/Qwen3-Embedding-0.6B"`,
    /// `"qwen3-embedding-4b:q4_k_m"`) or `"hf:OWNER/REPO/FILE.gguf"`, found in (or downloaded
    /// once to) the Hugging Face cache, as the CLI does.
    #[new]
    #[pyo3(signature = (
        model = "Qwen/Qwen3-Embedding-0.6B".into(),
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
            gguf_embed::Embedder::new(path, options)
        })?;
        Ok(Self {
            inner,
            path,
            truncation,
        })
    }

    /// The model's full output size.
    #[getter]
    fn dimensions(&self) -> usize {
        self.inner.dimensions()
    }

    /// The model file in use.
    #[getter]
    fn model_path(&self) -> String {
        self.path.display().to_string()
    }

    fn __repr__(&self) -> String {
        format!(
            "Embedder(model={:?}, dimensions={})",
            self.path.display().to_string(),
            self.dimensions()
        )
    }

    /// Embeds a text (a 1-D array) or a list of texts (an `(n, dim)` array) as `float32`.
    /// Documents by default; `query=True` (web search), `task` or `instruction` embed queries.
    #[pyo3(signature = (texts, *, task = None, instruction = None, query = false, dim = None, normalize = true))]
    #[allow(clippy::too_many_arguments)]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        task: Option<&str>,
        instruction: Option<String>,
        query: bool,
        dim: Option<usize>,
        normalize: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let texts = read_texts(texts)?;
        let mut options = EmbedOptions::default()
            .with_instruction(self::instruction(task, instruction, query)?)
            .with_normalize(normalize)
            .with_truncation(self.truncation);
        if let Some(dim) = dim {
            options = options.with_dimensions(dim);
        }
        let width = dim.unwrap_or(self.inner.dimensions());
        let inner = &self.inner;
        // The GIL is released while the engine works: other threads (and asyncio's
        // to_thread) run meanwhile, and concurrent calls share decodes.
        let embeddings = py
            .detach(|| inner.embed(texts.as_slice(), &options))
            .map_err(to_py)?;
        Ok(match texts {
            Texts::One(_) => {
                let vector = embeddings.into_iter().next().map(|e| e.vector);
                PyArray1::from_vec(py, vector.unwrap_or_default()).into_any()
            }
            Texts::Many(_) => matrix(py, embeddings, width)?.into_any(),
        })
    }

    /// The token ids the model sees for `text` (instruction and `<|endoftext|>` included).
    #[pyo3(signature = (text, *, task = None, instruction = None, query = false))]
    fn tokenize(
        &self,
        py: Python<'_>,
        text: &str,
        task: Option<&str>,
        instruction: Option<String>,
        query: bool,
    ) -> PyResult<Vec<u32>> {
        let instruction = self::instruction(task, instruction, query)?;
        let inner = &self.inner;
        py.detach(|| inner.token_ids(text, &instruction))
            .map_err(to_py)
    }

    /// How many tokens `text` has as embedded (instruction and `<|endoftext|>` included,
    /// before truncation).
    #[pyo3(signature = (text, *, task = None, instruction = None, query = false))]
    fn count_tokens(
        &self,
        py: Python<'_>,
        text: &str,
        task: Option<&str>,
        instruction: Option<String>,
        query: bool,
    ) -> PyResult<usize> {
        let instruction = self::instruction(task, instruction, query)?;
        let inner = &self.inner;
        py.detach(|| inner.count_tokens(text, &instruction))
            .map_err(to_py)
    }
}

/// `truncate=`: "end", "start" or "error".
pub(crate) fn truncation(truncate: &str) -> PyResult<Truncation> {
    match truncate {
        "end" => Ok(Truncation::End),
        "start" => Ok(Truncation::Start),
        "error" => Ok(Truncation::Error),
        other => Err(PyValueError::new_err(format!(
            "truncate must be 'end', 'start' or 'error', not {other:?}"
        ))),
    }
}

/// The engine options of the constructors' arguments.
pub(crate) fn engine_options(
    device: &str,
    threads: Option<usize>,
    max_tokens: usize,
) -> PyResult<EmbedderOptions> {
    let device = device.parse().map_err(PyValueError::new_err)?;
    if threads == Some(0) {
        return Err(PyValueError::new_err("threads must be at least 1"));
    }
    let mut options = EmbedderOptions::default()
        .with_device(device)
        .with_max_tokens(max_tokens);
    if let Some(threads) = threads {
        options = options.with_threads(threads);
    }
    Ok(options)
}

/// Finds the model (downloading it once into the Hugging Face cache, as the CLI does) and
/// loads it with `open`, without the GIL: both take seconds.
pub(crate) fn load<T: Send>(
    py: Python<'_>,
    model: &std::path::Path,
    quant: &str,
    offline: bool,
    open: impl FnOnce(&std::path::Path) -> gguf_embed::Result<T> + Send,
) -> PyResult<(T, PathBuf)> {
    let spec = model.to_str().ok_or_else(|| {
        PyValueError::new_err(format!("model {} is not valid UTF-8", model.display()))
    })?;
    let spec = ModelSpec::parse(spec, quant).map_err(|e| ModelError::new_err(e.to_string()))?;
    py.detach(|| {
        let config = HubConfig::from_env();
        let offline = offline || config.offline;
        let path = Hub::new(config.with_offline(offline)).resolve(&spec)?;
        Ok::<_, gguf_embed::Error>((open(&path)?, path))
    })
    .map_err(to_py)
}

/// Rows of vectors as one `(n, width)` array, moved into NumPy without another copy.
fn matrix(
    py: Python<'_>,
    embeddings: Vec<Embedding>,
    width: usize,
) -> PyResult<Bound<'_, PyArray2<f32>>> {
    let n = embeddings.len();
    let mut flat = Vec::with_capacity(n * width);
    for e in embeddings {
        flat.extend_from_slice(&e.vector);
    }
    let array = Array2::from_shape_vec((n, width), flat)
        .map_err(|e| PyValueError::new_err(format!("unexpected vector size: {e}")))?;
    Ok(array.into_pyarray(py))
}
