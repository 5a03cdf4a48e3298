//! The HTTP routes: OpenAI, Ollama and TEI embedding APIs, models, health and metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing};
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
use super::error::{Api, ApiError};
use super::metrics::{ApiLabels, RequestLabels};
use crate::{EmbedOptions, Embedding, Error, Instruction, Task, Truncation};

/// The router over shared state.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/embeddings", routing::post(openai))
        .route("/embeddings", routing::post(openai))
        .route("/api/embed", routing::post(ollama))
        .route("/embed", routing::post(tei))
        .route("/", routing::post(super::rerank::root))
        .merge(super::rerank::routes())
        .route("/v1/models", routing::get(models))
        .route("/health", routing::get(health))
        .route("/metrics", routing::get(metrics))
        .merge(super::ollama::routes())
        .merge(super::tei::routes())
        .layer(axum::extract::DefaultBodyLimit::max(
            state.config.max_body_bytes,
        ))
        .with_state(state)
}

/// Text or token inputs of one request.
pub(super) enum Inputs {
    Texts(Vec<String>),
    Tokens(Vec<Vec<u32>>),
}

impl Inputs {
    fn len(&self) -> usize {
        match self {
            Inputs::Texts(t) => t.len(),
            Inputs::Tokens(t) => t.len(),
        }
    }
}

/// `"text"` or `["text", ...]`.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum StringOrStrings {
    One(String),
    Many(Vec<String>),
}

impl From<StringOrStrings> for Inputs {
    fn from(v: StringOrStrings) -> Self {
        match v {
            StringOrStrings::One(s) => Inputs::Texts(vec![s]),
            StringOrStrings::Many(v) => Inputs::Texts(v),
        }
    }
}

/// OpenAI's `input`: a string, strings, a token array or token arrays.
#[derive(Deserialize)]
#[serde(untagged)]
enum OpenAiInput {
    One(String),
    Many(Vec<String>),
    Tokens(Vec<u32>),
    ManyTokens(Vec<Vec<u32>>),
}

/// The instruction extension every API accepts: `instruction` (free text) or `task` (a name).
#[derive(Deserialize, Default)]
pub(super) struct InstructionFields {
    instruction: Option<String>,
    task: Option<String>,
}

impl InstructionFields {
    pub(super) fn resolve(self, prompt_name: Option<String>) -> Result<Instruction, ApiError> {
        let given = [
            self.instruction.is_some(),
            self.task.is_some(),
            prompt_name.is_some(),
        ];
        if given.iter().filter(|&&g| g).count() > 1 {
            return Err(ApiError::unprocessable(
                "give at most one of instruction, task and prompt_name",
            ));
        }
        if let Some(text) = self.instruction {
            return Ok(Instruction::Custom(text));
        }
        let name = match (self.task, prompt_name) {
            (Some(task), _) => task,
            (None, Some(prompt)) => match prompt.to_ascii_lowercase().as_str() {
                "document" | "passage" | "none" => return Ok(Instruction::None),
                _ => prompt,
            },
            (None, None) => return Ok(Instruction::None),
        };
        name.parse::<Task>()
            .map(Instruction::Task)
            .map_err(|e| ApiError::unprocessable(e.to_string()).param("task"))
    }
}

#[derive(Deserialize)]
struct OpenAiRequest {
    input: Value,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<usize>,
    #[serde(default)]
    #[allow(dead_code)]
    user: Option<String>,
    #[serde(default)]
    truncate: Option<bool>,
    #[serde(flatten)]
    instruction: InstructionFields,
}

#[derive(Deserialize)]
struct OllamaRequest {
    #[serde(default)]
    model: Option<String>,
    input: Value,
    #[serde(default)]
    truncate: Option<bool>,
    #[serde(default)]
    dimensions: Option<usize>,
    #[serde(default)]
    #[allow(dead_code)]
    keep_alive: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    options: Option<Value>,
    #[serde(flatten)]
    instruction: InstructionFields,
}

#[derive(Deserialize)]
struct TeiRequest {
    inputs: Value,
    #[serde(default)]
    normalize: Option<bool>,
    #[serde(default)]
    truncate: Option<bool>,
    #[serde(default)]
    truncation_direction: Option<String>,
    #[serde(default)]
    prompt_name: Option<String>,
    #[serde(default)]
    dimensions: Option<usize>,
    #[serde(flatten)]
    instruction: InstructionFields,
}

/// Checks the API key, if the server has one.
pub(super) fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(key) = &state.config.api_key else {
        return Ok(());
    };
    let sent = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if sent.is_some_and(|s| constant_time_eq(s.as_bytes(), key.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

/// Compares secrets without leaking where they differ through timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Parses a JSON body, mapping every failure to a clear 4xx.
pub(super) fn parse<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large("the request body is larger than the server's limit (--max-body)")
        } else {
            ApiError::bad_request(rejection.body_text())
        }
    })?;
    serde_json::from_slice(&body).map_err(|e| {
        if e.is_data() {
            ApiError::unprocessable(format!("invalid request: {e}"))
        } else {
            ApiError::bad_request(format!("the body is not valid JSON: {e}"))
        }
    })
}

fn texts_or_tokens(
    value: Value,
    field: &'static str,
    allow_tokens: bool,
) -> Result<Inputs, ApiError> {
    let wrong = || {
        let accepted = if allow_tokens {
            "a string, an array of strings, an array of token ids or an array of token-id arrays"
        } else {
            "a string or an array of strings"
        };
        ApiError::unprocessable(format!("`{field}` must be {accepted}")).param(field)
    };
    let inputs = if allow_tokens {
        match serde_json::from_value::<OpenAiInput>(value).map_err(|_| wrong())? {
            OpenAiInput::One(s) => Inputs::Texts(vec![s]),
            OpenAiInput::Many(v) => Inputs::Texts(v),
            OpenAiInput::Tokens(t) => Inputs::Tokens(vec![t]),
            OpenAiInput::ManyTokens(t) => Inputs::Tokens(t),
        }
    } else {
        serde_json::from_value::<StringOrStrings>(value)
            .map_err(|_| wrong())?
            .into()
    };
    if inputs.len() == 0 {
        return Err(
            ApiError::bad_request(format!("`{field}` is empty: give at least one input"))
                .param(field),
        );
    }
    Ok(inputs)
}

/// Refuses token-id inputs unless the server was started to accept them
/// ([`ServerConfig::allow_token_input`](super::ServerConfig::allow_token_input)): they are read
/// as this model's (Qwen3) token ids, which no client sends by accident, while some send other
/// tokenizers' ids without being asked (LangChain's `OpenAIEmbeddings` sends tiktoken ids), and
/// would get vectors of unrelated text without a word.
fn check_token_input(
    state: &AppState,
    inputs: &Inputs,
    field: &'static str,
) -> Result<(), ApiError> {
    if matches!(inputs, Inputs::Tokens(_)) && !state.config.allow_token_input {
        return Err(ApiError::unprocessable(format!(
            "`{field}` holds token ids, which this server would read as Qwen3 token ids; clients \
             that tokenize for another model send those by default (LangChain's \
             OpenAIEmbeddings sends tiktoken ids unless check_embedding_ctx_length=False), so \
             they are refused: send text, or start the server with --allow-token-input if your \
             ids are this model's"
        ))
        .param(field));
    }
    Ok(())
}

/// Texts up to this many bytes in all are tokenized on the async thread (microseconds);
/// larger requests are tokenized on a blocking thread so they do not stall other connections.
pub(super) const INLINE_TOKENIZE_BYTES: usize = 16 << 10;

/// Admits, tokenizes, queues and awaits a request's inputs, and records metrics.
///
/// The queue bound is checked first, from the input count alone: a request over it gets 503
/// before it takes a thread or tokenizes anything. Waiting for the engine holds no thread (the
/// pending embeddings are a future), and if the client hangs up, hyper drops this future, which
/// drops the pending embeddings and so cancels their sequences still queued.
pub(super) async fn embed(
    state: &Arc<AppState>,
    inputs: Inputs,
    options: EmbedOptions,
) -> Result<Vec<Embedding>, ApiError> {
    let n = inputs.len();
    if n > state.config.max_inputs {
        return Err(ApiError::too_large(format!(
            "{n} inputs in one request; the limit is {} (--max-inputs)",
            state.config.max_inputs
        ))
        .param("input"));
    }
    let _permit = state.admission.admit(n).map_err(|e| {
        state.metrics.rejected.inc();
        ApiError::from(e)
    })?;
    let inline = match &inputs {
        Inputs::Texts(texts) => {
            texts.iter().map(String::len).sum::<usize>() <= INLINE_TOKENIZE_BYTES
        }
        Inputs::Tokens(_) => true,
    };
    let embedder = state.embedder()?.clone();
    let submit = move || match inputs {
        Inputs::Texts(texts) => embedder.submit(&texts, &options),
        Inputs::Tokens(tokens) => embedder.submit_tokens(&tokens, &options),
    };
    let pending = if inline {
        submit()
    } else {
        let _slot = state
            .tokenizers
            .acquire()
            .await
            .map_err(|_| ApiError::from(Error::EngineStopped))?;
        tokio::task::spawn_blocking(submit)
            .await
            .map_err(|_| ApiError::from(Error::EngineStopped))?
    };
    let result = match pending {
        Ok(pending) => pending.await,
        Err(e) => Err(e),
    };
    match result {
        Ok(embeddings) => {
            state.metrics.inputs.inc_by(n as u64);
            let tokens: usize = embeddings.iter().map(|e| e.tokens).sum();
            state.metrics.tokens.inc_by(tokens as u64);
            Ok(embeddings)
        }
        Err(e) => {
            if matches!(e, Error::Busy { .. }) {
                state.metrics.rejected.inc();
            }
            Err(e.into())
        }
    }
}

/// Finishes a request: counts it, times it, shapes errors for its API.
pub(super) fn finish(
    state: &AppState,
    api: Api,
    started: Instant,
    result: Result<Response, ApiError>,
) -> Response {
    let response = match result {
        Ok(r) => r,
        Err(e) => {
            if e.status.is_server_error() {
                state
                    .warnings
                    .warn(e.status.as_u16(), api.label(), &e.message);
            } else {
                tracing::debug!(
                    api = api.label(),
                    status = e.status.as_u16(),
                    "{}",
                    e.message
                );
            }
            e.into_response_for(api)
        }
    };
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            api: api.label().into(),
            status: response.status().as_u16(),
        })
        .inc();
    state
        .metrics
        .request_seconds
        .get_or_create(&ApiLabels {
            api: api.label().into(),
        })
        .observe(started.elapsed().as_secs_f64());
    response
}

pub(super) fn truncation(truncate: bool, from_left: bool) -> Truncation {
    match (truncate, from_left) {
        (false, _) => Truncation::Error,
        (true, false) => Truncation::End,
        (true, true) => Truncation::Start,
    }
}

/// The common frame of the embedding routes: authorization, JSON parsing, metrics and the
/// API's error shape around `handler`.
pub(super) async fn handle<T, F, Fut>(
    state: Arc<AppState>,
    api: Api,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    handler: F,
) -> Response
where
    T: DeserializeOwned,
    F: FnOnce(Arc<AppState>, T) -> Fut,
    Fut: std::future::Future<Output = Result<Response, ApiError>>,
{
    let started = Instant::now();
    let result = match authorize(&state, &headers).and_then(|()| parse::<T>(body)) {
        Ok(request) => handler(Arc::clone(&state), request).await,
        Err(e) => Err(e),
    };
    finish(&state, api, started, result)
}

async fn openai(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(state, Api::OpenAi, headers, body, openai_embed).await
}

async fn openai_embed(state: Arc<AppState>, req: OpenAiRequest) -> Result<Response, ApiError> {
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "encoding_format must be \"float\" or \"base64\", not {other:?}"
            ))
            .param("encoding_format"));
        }
    };
    let inputs = texts_or_tokens(req.input, "input", true)?;
    check_token_input(&state, &inputs, "input")?;
    let options = options(
        req.instruction.resolve(None)?,
        req.dimensions,
        true,
        truncation(req.truncate.unwrap_or(false), false),
    );
    let embeddings = embed(&state, inputs, options).await?;
    let tokens: usize = embeddings.iter().map(|e| e.tokens).sum();
    let data = embeddings
        .into_iter()
        .enumerate()
        .map(|(index, e)| OpenAiEmbedding {
            object: "embedding",
            index,
            embedding: if base64 {
                let bytes: Vec<u8> = e.vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                Vector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                Vector::Floats(e.vector)
            },
        })
        .collect();
    Ok(Json(OpenAiResponse {
        object: "list",
        data,
        model: req.model.unwrap_or_else(|| state.model_name.clone()),
        usage: Usage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    })
    .into_response())
}

// Responses are serialised straight from these structs: no intermediate `Value` tree, so a
// large response costs its vectors and the output bytes, nothing more.

/// OpenAI's embeddings response.
#[derive(Serialize)]
struct OpenAiResponse {
    object: &'static str,
    data: Vec<OpenAiEmbedding>,
    model: String,
    usage: Usage,
}

#[derive(Serialize)]
struct OpenAiEmbedding {
    object: &'static str,
    index: usize,
    embedding: Vector,
}

/// A vector as floats, or as base64 of its little-endian f32 bytes.
#[derive(Serialize)]
#[serde(untagged)]
enum Vector {
    Floats(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: usize,
    total_tokens: usize,
}

/// Ollama's `/api/embed` response.
#[derive(Serialize)]
struct OllamaResponse {
    model: String,
    embeddings: Vec<Vec<f32>>,
    total_duration: u64,
    load_duration: u64,
    prompt_eval_count: usize,
}

async fn ollama(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(state, Api::Ollama, headers, body, ollama_embed).await
}

async fn ollama_embed(state: Arc<AppState>, req: OllamaRequest) -> Result<Response, ApiError> {
    let started = Instant::now();
    let inputs = texts_or_tokens(req.input, "input", false)?;
    let options = options(
        req.instruction.resolve(None)?,
        req.dimensions,
        true,
        truncation(req.truncate.unwrap_or(true), false),
    );
    let embeddings = embed(&state, inputs, options).await?;
    let tokens: usize = embeddings.iter().map(|e| e.tokens).sum();
    Ok(Json(OllamaResponse {
        model: req.model.unwrap_or_else(|| state.model_name.clone()),
        embeddings: embeddings.into_iter().map(|e| e.vector).collect(),
        total_duration: started.elapsed().as_nanos() as u64,
        load_duration: 0,
        prompt_eval_count: tokens,
    })
    .into_response())
}

pub(super) async fn tei(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(state, Api::Tei, headers, body, tei_embed).await
}

async fn tei_embed(state: Arc<AppState>, req: TeiRequest) -> Result<Response, ApiError> {
    let from_left = match req
        .truncation_direction
        .as_deref()
        .map(str::to_ascii_lowercase)
    {
        None => false,
        Some(d) if d == "right" => false,
        Some(d) if d == "left" => true,
        Some(other) => {
            return Err(ApiError::unprocessable(format!(
                "truncation_direction must be \"Right\" or \"Left\", not {other:?}"
            ))
            .param("truncation_direction"));
        }
    };
    let inputs = texts_or_tokens(req.inputs, "inputs", true)?;
    check_token_input(&state, &inputs, "inputs")?;
    let options = options(
        req.instruction.resolve(req.prompt_name)?,
        req.dimensions,
        req.normalize.unwrap_or(true),
        truncation(req.truncate.unwrap_or(false), from_left),
    );
    let embeddings = embed(&state, inputs, options).await?;
    let vectors: Vec<Vec<f32>> = embeddings.into_iter().map(|e| e.vector).collect();
    Ok(Json(vectors).into_response())
}

pub(super) fn options(
    instruction: Instruction,
    dimensions: Option<usize>,
    normalize: bool,
    truncation: Truncation,
) -> EmbedOptions {
    let mut options = EmbedOptions::default()
        .with_instruction(instruction)
        .with_normalize(normalize)
        .with_truncation(truncation);
    if let Some(d) = dimensions {
        options = options.with_dimensions(d);
    }
    options
}

async fn models(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&state, &headers) {
        return e.into_response_for(Api::OpenAi);
    }
    let embedder = state.embedder.as_ref().map(|e| {
        json!({
            "id": state.model_name,
            "object": "model",
            "created": 0,
            "owned_by": "gguf-embed",
            "dimensions": e.dimensions(),
        })
    });
    let data: Vec<Value> = embedder
        .into_iter()
        .chain(super::rerank::model_entry(&state))
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    Json(json!({
        "status": "ok",
        "model": state.model_name,
        "queued": state.queued(),
        "admitted": state.admission.admitted(),
    }))
    .into_response()
}

async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&state, &headers) {
        return e.into_response_for(Api::OpenAi);
    }
    state.metrics.queue_depth.set(state.queued() as i64);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}
