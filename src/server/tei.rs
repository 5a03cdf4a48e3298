//! text-embeddings-inference's other routes: `/info`, `/tokenize`, `/decode` and `/embed_all`
//! (refused: see [`embed_all`]). `/embed` is in `routes`; `POST /` (what `huggingface_hub`'s
//! `InferenceClient(model=URL).feature_extraction` posts to) is `rerank::root`, which sends it
//! to `/embed`, or to `/rerank` on a reranker-only server.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
use super::error::{Api, ApiError};
use super::routes::{InstructionFields, StringOrStrings, authorize, finish, handle};

/// The routes of this module.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/info", routing::get(info))
        .route("/tokenize", routing::post(tokenize))
        .route("/decode", routing::post(decode))
        .route("/embed_all", routing::post(embed_all))
}

/// `/info`, with TEI's field names.
async fn info(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let started = Instant::now();
    let result = authorize(&state, &headers).map(|()| {
        let model = state.model().info();
        Json(json!({
            "model_id": state.model_name,
            "model_sha": null,
            "model_dtype": model.file_type.clone().unwrap_or_default().to_ascii_lowercase(),
            "model_type": if state.embedder.is_some() {
                json!({"embedding": {"pooling": "last_token"}})
            } else {
                json!({"reranker": {"id2label": {"0": "yes"}, "label2id": {"yes": 0}}})
            },
            "max_concurrent_requests": state.config.max_queued,
            "max_input_length": state.model().max_tokens(),
            "max_batch_tokens": state.model().max_tokens(),
            "max_batch_requests": null,
            "max_client_batch_size": state.config.max_inputs,
            "auto_truncate": false,
            "tokenization_workers": std::thread::available_parallelism().map_or(1, |n| n.get()),
            "version": env!("CARGO_PKG_VERSION"),
            "sha": null,
            "docker_label": null,
        }))
        .into_response()
    });
    finish(&state, Api::Tei, started, result)
}

#[derive(Deserialize)]
struct TokenizeRequest {
    inputs: StringOrStrings,
    #[serde(default = "yes")]
    add_special_tokens: bool,
    #[serde(default)]
    prompt_name: Option<String>,
    #[serde(flatten)]
    instruction: InstructionFields,
}

fn yes() -> bool {
    true
}

/// One token as TEI returns it: byte offsets into the prompt, none for special tokens.
#[derive(Serialize)]
struct SimpleToken {
    id: u32,
    text: String,
    special: bool,
    start: Option<usize>,
    stop: Option<usize>,
}

async fn tokenize(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(state, Api::Tei, headers, body, tokenize_texts).await
}

/// `/tokenize`: each input's tokens (the prompt's, when `prompt_name` or an instruction is
/// given), with the end-of-text token every input ends with when `add_special_tokens`.
async fn tokenize_texts(state: Arc<AppState>, req: TokenizeRequest) -> Result<Response, ApiError> {
    let instruction = req.instruction.resolve(req.prompt_name)?;
    let texts = match req.inputs {
        StringOrStrings::One(s) => vec![s],
        StringOrStrings::Many(v) => v,
    };
    check_count(&state, texts.len(), "inputs")?;
    let embedder = state.model().clone();
    let tokenized = tokio::task::spawn_blocking(move || {
        texts
            .iter()
            .map(|t| embedder.tokens(t, &instruction, req.add_special_tokens))
            .collect::<crate::Result<Vec<_>>>()
    })
    .await
    .map_err(|_| ApiError::from(crate::Error::EngineStopped))??;
    let out: Vec<Vec<SimpleToken>> = tokenized
        .into_iter()
        .map(|t| {
            t.tokens
                .into_iter()
                .map(|token| SimpleToken {
                    id: token.id,
                    text: token.text(),
                    special: token.special,
                    start: token.offsets.map(|o| o.0),
                    stop: token.offsets.map(|o| o.1),
                })
                .collect()
        })
        .collect();
    Ok(Json(out).into_response())
}

/// Token ids, one sequence or several.
#[derive(Deserialize)]
#[serde(untagged)]
enum Ids {
    One(Vec<u32>),
    Many(Vec<Vec<u32>>),
}

#[derive(Deserialize)]
struct DecodeRequest {
    ids: Ids,
    #[serde(default = "yes")]
    skip_special_tokens: bool,
}

async fn decode(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(state, Api::Tei, headers, body, decode_ids).await
}

/// `/decode`: a string for one sequence of ids, strings for several.
async fn decode_ids(state: Arc<AppState>, req: DecodeRequest) -> Result<Response, ApiError> {
    let decode = |ids: &[u32]| {
        state
            .model()
            .decode(ids, req.skip_special_tokens)
            .map_err(|e| ApiError::from(e).param("ids"))
    };
    Ok(match &req.ids {
        Ids::One(ids) => Json(Value::String(decode(ids)?)).into_response(),
        Ids::Many(many) => {
            check_count(&state, many.len(), "ids")?;
            let texts = many
                .iter()
                .map(|ids| decode(ids))
                .collect::<Result<Vec<_>, _>>()?;
            Json(texts).into_response()
        }
    })
}

/// At most `--max-inputs` inputs per request, as on the embedding routes.
fn check_count(state: &AppState, n: usize, field: &'static str) -> Result<(), ApiError> {
    if n > state.config.max_inputs {
        return Err(ApiError::too_large(format!(
            "{n} inputs in one request; the limit is {} (--max-inputs)",
            state.config.max_inputs
        ))
        .param(field));
    }
    Ok(())
}

/// `/embed_all` (every token's hidden state) is not served: the engine computes the final
/// hidden state of each input's last token only (it stops the graph there; that is much of its
/// speed), so per-token states would need a second, slower engine path.
async fn embed_all(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let started = Instant::now();
    let result = authorize(&state, &headers).and_then(|()| {
        Err(ApiError::bad_request(
            "/embed_all is not served: gguf-embed computes the last token's hidden state only \
             (Qwen3-Embedding pools the last token); use /embed",
        ))
    });
    finish(&state, Api::Tei, started, result)
}
