//! The options objects JavaScript passes, as TypeScript sees them (napi generates the types from
//! these structs), and their checks. Every check fails with an `INVALID_ARGUMENT` error that
//! names the option, never with napi's own conversion error.

use gguf_embed::{Device, EmbedOptions, Instruction, Task, Truncation};
use napi::bindgen_prelude::{FromNapiValue, Function, Unknown, ValueType};
use napi_derive::napi;

use crate::errors::Failure;

/// How to load a model (every field is optional).
#[napi(object, object_to_js = false)]
pub struct LoadOptions<'env> {
    /// The quantization of a catalog model: `"Q8_0"` (default) or `"F16"` for 0.6B; 4B and 8B
    /// also have `"Q4_K_M"`, `"Q5_0"`, `"Q5_K_M"`, `"Q6_K"`.
    pub quant: Option<String>,
    /// Use the model cache only, never the network (as `HF_HUB_OFFLINE=1`).
    pub offline: Option<bool>,
    /// The Hugging Face cache folder to use instead of `HF_HUB_CACHE` / `~/.cache/huggingface/hub`.
    pub cache_dir: Option<String>,
    /// CPU threads for the engine. Default: the physical cores less one, at least 1, so the
    /// app's own thread keeps a core.
    pub threads: Option<f64>,
    /// `"auto"` (default: the first GPU of a GPU build, else the CPU), `"cpu"`, `"gpu"`, `"gpu:N"`.
    pub device: Option<String>,
    /// The most tokens a text may have (instruction and end-of-text token included). Default 8192.
    pub max_tokens: Option<f64>,
    /// What to do with a longer text: keep its start (`"end"`, default), keep its end
    /// (`"start"`), or reject the call with a `TOO_LONG` error (`"error"`).
    #[napi(ts_type = "'end' | 'start' | 'error'")]
    pub truncate: Option<String>,
    /// Told how the download and the load advance (called on the JavaScript thread).
    #[napi(ts_type = "(progress: LoadProgress) => void")]
    pub on_progress: Option<Function<'env, LoadProgress, Unknown<'env>>>,
    /// Cancels the download or the load; the promise rejects with an `AbortError`.
    #[napi(ts_type = "AbortSignal")]
    pub signal: Option<Unknown<'env>>,
}

/// How a download or a load advances.
#[napi(object, object_from_js = false)]
pub struct LoadProgress {
    /// `waiting` (for another process's download of the same file), `downloading`,
    /// `verifying` (the file's hash), `loading` (into memory).
    #[napi(ts_type = "'waiting' | 'downloading' | 'verifying' | 'loading'")]
    pub phase: String,
    /// The file being downloaded.
    pub file: Option<String>,
    /// Bytes on disk so far.
    pub downloaded: Option<f64>,
    /// The file's size in bytes.
    pub total: Option<f64>,
    /// How far this phase is, from 0 to 1.
    pub fraction: f64,
}

/// How to embed (every field is optional).
#[napi(object, object_to_js = false, js_name = "EmbedOptions")]
pub struct EmbedCallOptions<'env> {
    /// A task instruction for queries, in your own words (one English sentence works best).
    pub instruction: Option<String>,
    /// One of Qwen's task instructions: `"web-search"` (the default for `embedQuery`),
    /// `"similarity"`, `"bitext"`, `"code-search"`.
    #[napi(ts_type = "'web-search' | 'similarity' | 'bitext' | 'code-search'")]
    pub task: Option<String>,
    /// A Matryoshka size from 32 to the model's dimensions: the vector is cut, then normalised.
    pub dimensions: Option<f64>,
    /// L2-normalise the vectors (default `true`).
    pub normalize: Option<bool>,
    /// Cancels the call; the promise rejects with an `AbortError`.
    #[napi(ts_type = "AbortSignal")]
    pub signal: Option<Unknown<'env>>,
}

/// Options of `countTokens`.
#[napi(object, object_to_js = false)]
pub struct TokenOptions {
    /// As for `embed`.
    pub instruction: Option<String>,
    /// As for `embed`.
    #[napi(ts_type = "'web-search' | 'similarity' | 'bitext' | 'code-search'")]
    pub task: Option<String>,
}

/// Reads an optional options object (`undefined` and `null` mean none).
pub fn read<'env, T: FromNapiValue>(
    options: Option<Unknown<'env>>,
    what: &str,
) -> Result<Option<T>, Failure> {
    let Some(options) = options else {
        return Ok(None);
    };
    match options.get_type() {
        Ok(ValueType::Undefined | ValueType::Null) => Ok(None),
        Ok(ValueType::Object) => T::from_unknown(options)
            .map(Some)
            .map_err(|e| Failure::type_error(format!("invalid {what}: {}", e.reason))),
        _ => Err(Failure::type_error(format!("{what} must be an object"))),
    }
}

/// A whole number in `range`, for an option called `name`.
pub fn whole(
    value: Option<f64>,
    name: &str,
    range: std::ops::RangeInclusive<usize>,
) -> Result<Option<usize>, Failure> {
    let Some(value) = value else {
        return Ok(None);
    };
    let (lo, hi) = (*range.start() as f64, *range.end() as f64);
    if value.fract() != 0.0 || !(lo..=hi).contains(&value) {
        return Err(Failure::invalid(format!(
            "{name} must be a whole number from {lo} to {hi}, not {value}"
        )));
    }
    Ok(Some(value as usize))
}

pub fn truncation(value: Option<&str>) -> Result<Truncation, Failure> {
    Ok(match value {
        None | Some("end") => Truncation::End,
        Some("start") => Truncation::Start,
        Some("error") => Truncation::Error,
        Some(other) => {
            return Err(Failure::invalid(format!(
                "truncate must be \"end\", \"start\" or \"error\", not {other:?}"
            )));
        }
    })
}

pub fn device(value: Option<&str>) -> Result<Device, Failure> {
    value.map_or(Ok(Device::Auto), |d| d.parse().map_err(Failure::invalid))
}

/// The instruction that `task` and `instruction` ask for; `query` says what neither means
/// (`embedQuery`: the web-search task; `embed`: none, documents).
pub fn instruction(
    task: Option<&str>,
    instruction: Option<String>,
    query: bool,
) -> Result<Instruction, Failure> {
    Ok(match (task, instruction) {
        (Some(_), Some(_)) => {
            return Err(Failure::invalid(
                "give either task or instruction, not both",
            ));
        }
        (Some(task), None) => Instruction::Task(
            task.parse::<Task>()
                .map_err(|e| Failure::invalid(e.to_string()))?,
        ),
        (None, Some(text)) => Instruction::Custom(text),
        (None, None) if query => Instruction::query(),
        (None, None) => Instruction::None,
    })
}

/// The library's options for one `embed` call. `dimensions` is checked against the model by
/// the library itself.
pub fn embed_options(
    options: &EmbedCallOptions<'_>,
    truncation: Truncation,
    query: bool,
) -> Result<EmbedOptions, Failure> {
    let instruction = instruction(options.task.as_deref(), options.instruction.clone(), query)?;
    let mut out = EmbedOptions::default()
        .with_instruction(instruction)
        .with_normalize(options.normalize.unwrap_or(true))
        .with_truncation(truncation);
    if let Some(d) = whole(options.dimensions, "dimensions", 1..=u32::MAX as usize)? {
        out = out.with_dimensions(d);
    }
    Ok(out)
}
