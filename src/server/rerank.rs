//! The rerank routes: `/v1/rerank` and `/rerank`, each answering both request shapes.
//!
//! - llama-server / Jina / Cohere: `{query, documents, top_n, return_documents}` ->
//!   `{model, object, results: [{index, relevance_score, document?}], usage}`, best first.
//! - TEI (a body with `texts`): `{query, texts, raw_scores, return_text, truncate,
//!   truncation_direction}` -> `[{index, score, text?}]`, best first, with TEI's defaults (no
//!   truncation, probabilities rather than raw scores, no text).
//!
//! `relevance_score` and TEI's `score` are P("yes") (TEI's sigmoid of the raw score is exactly
//! that); TEI's `raw_scores` gives the log-odds. Both shapes also take the embeddings routes'
//! `instruction` or `task` extension. Admission, limits, metrics and errors are the embeddings
//! routes': the same queue bound and input limit, 413 for a pair over the token limit when
//! truncation is off, 503 when the queue is full.
//!
//! `POST /` answers as TEI's main route for the model the server has: `/rerank` when it serves
//! a reranker alone, `/embed` otherwise.

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
use super::routes::{INLINE_TOKENIZE_BYTES, authorize, finish, parse};
use crate::{Error, Instruction, RerankOptions, RerankScore, Reranker, Task, Truncation};

/// The rerank routes, merged into the server's router.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/rerank", routing::post(rerank))
        .route("/rerank", routing::post(rerank))
}

/// `POST /`: TEI's main route, for whichever model the server has.
pub(super) async fn root(
    state: State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if state.embedder.is_none() && state.reranker.is_some() {
        rerank(state, headers, body).await
    } else {
        super::routes::tei(state, headers, body).await
    }
}

/// The reranker's entry in `/v1/models`.
pub(super) fn model_entry(state: &AppState) -> Option<Value> {
    state.reranker.as_ref().map(|r| {
        json!({
            "id": state.reranker_name,
            "object": "model",
            "created": 0,
            "owned_by": "gguf-embed",
            "type": "reranker",
            "head": r.head_source(),
        })
    })
}

/// Documents as strings, or as objects with a `text` field (Jina, Cohere v1).
#[derive(Deserialize)]
#[serde(untagged)]
enum Document {
    Text(String),
    Object { text: String },
}

/// The instruction extension, as on the embeddings routes.
#[derive(Deserialize, Default)]
struct InstructionFields {
    instruction: Option<String>,
    task: Option<String>,
}

impl InstructionFields {
    fn resolve(self) -> Result<Instruction, ApiError> {
        match (self.instruction, self.task) {
            (Some(_), Some(_)) => Err(ApiError::unprocessable(
                "give at most one of instruction and task",
            )),
            (Some(text), None) => Ok(Instruction::Custom(text)),
            (None, Some(task)) => task
                .parse::<Task>()
                .map(Instruction::Task)
                .map_err(|e| ApiError::unprocessable(e.to_string()).param("task")),
            (None, None) => Ok(Instruction::None),
        }
    }
}

/// llama-server's, Jina's and Cohere's request.
#[derive(Deserialize)]
struct JinaRequest {
    #[serde(default)]
    model: Option<String>,
    query: String,
    documents: Vec<Document>,
    #[serde(default)]
    top_n: Option<usize>,
    #[serde(default)]
    return_documents: Option<bool>,
    /// Cut documents that do not fit (default: yes, as these APIs do).
    #[serde(default)]
    truncate: Option<bool>,
    #[serde(flatten)]
    instruction: InstructionFields,
}

/// TEI's request.
#[derive(Deserialize)]
struct TeiRequest {
    query: String,
    texts: Vec<String>,
    #[serde(default)]
    raw_scores: Option<bool>,
    #[serde(default)]
    return_text: Option<bool>,
    #[serde(default)]
    truncate: Option<bool>,
    #[serde(default)]
    truncation_direction: Option<String>,
    #[serde(flatten)]
    instruction: InstructionFields,
}

#[derive(Serialize)]
struct JinaResponse {
    model: String,
    object: &'static str,
    results: Vec<JinaResult>,
    usage: Usage,
}

#[derive(Serialize)]
struct JinaResult {
    index: usize,
    relevance_score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    document: Option<DocumentText>,
}

#[derive(Serialize)]
struct DocumentText {
    text: String,
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: usize,
    total_tokens: usize,
}

#[derive(Serialize)]
struct TeiResult {
    index: usize,
    score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
}

/// `/v1/rerank` and `/rerank`: TEI's shape when the body has `texts`, else llama-server's.
async fn rerank(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    // The shape decides the error format, so it is read first (a malformed body gets the
    // llama-server shape's error).
    let tei = body.as_ref().is_ok_and(|b| has_texts(b));
    let api = if tei { Api::TeiRerank } else { Api::Rerank };
    let result = match authorize(&state, &headers) {
        Err(e) => Err(e),
        Ok(()) if tei => match parse::<TeiRequest>(body) {
            Ok(req) => tei_rerank(&state, req).await,
            Err(e) => Err(e),
        },
        Ok(()) => match parse::<JinaRequest>(body) {
            Ok(req) => jina_rerank(&state, req).await,
            Err(e) => Err(e),
        },
    };
    finish(&state, api, started, result)
}

/// Whether a JSON body is an object with a `texts` field (TEI's request), checked without
/// building the whole document.
fn has_texts(body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(default)]
        texts: Option<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Probe>(body).is_ok_and(|p| p.texts.is_some())
}

async fn jina_rerank(state: &Arc<AppState>, req: JinaRequest) -> Result<Response, ApiError> {
    let documents: Arc<[String]> = req
        .documents
        .into_iter()
        .map(|d| match d {
            Document::Text(text) | Document::Object { text } => text,
        })
        .collect();
    let options = RerankOptions::default()
        .with_instruction(req.instruction.resolve()?)
        .with_truncation(if req.truncate.unwrap_or(true) {
            Truncation::End
        } else {
            Truncation::Error
        });
    let return_documents = req.return_documents.unwrap_or(false);
    let ranked = score(
        state,
        req.query,
        Arc::clone(&documents),
        options,
        "documents",
    )
    .await?;
    // Usage counts every pair scored, also those top_n leaves out.
    let tokens = ranked.iter().map(|r| r.tokens).sum();
    let results = ranked
        .iter()
        .take(req.top_n.unwrap_or(usize::MAX))
        .map(|r| JinaResult {
            index: r.index,
            relevance_score: r.score,
            document: return_documents.then(|| DocumentText {
                text: documents[r.index].clone(),
            }),
        })
        .collect();
    Ok(Json(JinaResponse {
        model: req.model.unwrap_or_else(|| state.reranker_name.clone()),
        object: "list",
        results,
        usage: Usage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    })
    .into_response())
}

async fn tei_rerank(state: &Arc<AppState>, req: TeiRequest) -> Result<Response, ApiError> {
    let truncation = match (
        req.truncate.unwrap_or(false),
        req.truncation_direction
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref(),
    ) {
        (_, Some(d)) if d != "right" && d != "left" => {
            return Err(ApiError::unprocessable(format!(
                "truncation_direction must be \"Right\" or \"Left\", not {d:?}"
            ))
            .param("truncation_direction"));
        }
        (false, _) => Truncation::Error,
        (true, Some("left")) => Truncation::Start,
        (true, _) => Truncation::End,
    };
    let options = RerankOptions::default()
        .with_instruction(req.instruction.resolve()?)
        .with_truncation(truncation);
    let raw = req.raw_scores.unwrap_or(false);
    let return_text = req.return_text.unwrap_or(false);
    let texts: Arc<[String]> = req.texts.into();
    let ranked = score(state, req.query, Arc::clone(&texts), options, "texts").await?;
    let results: Vec<TeiResult> = ranked
        .iter()
        .map(|r| TeiResult {
            index: r.index,
            score: if raw { r.log_odds } else { r.score },
            text: return_text.then(|| texts[r.index].clone()),
        })
        .collect();
    Ok(Json(results).into_response())
}

/// Admits, tokenizes, queues and awaits one query's documents, and records metrics: the
/// embeddings routes' path (see `routes::embed`) for the reranker.
async fn score(
    state: &Arc<AppState>,
    query: String,
    documents: Arc<[String]>,
    options: RerankOptions,
    field: &'static str,
) -> Result<Vec<RerankScore>, ApiError> {
    let reranker: Reranker = state.reranker.clone().ok_or_else(|| {
        ApiError::not_found(format!(
            "this server has no reranker; start it with `gguf-embed serve --model {} \
             --reranker RERANKER` (or serve a reranker alone with --model)",
            state.model_name
        ))
    })?;
    let n = documents.len();
    if n == 0 {
        return Err(ApiError::bad_request(format!(
            "`{field}` is empty: give at least one document"
        ))
        .param(field));
    }
    if n > state.config.max_inputs {
        return Err(ApiError::too_large(format!(
            "{n} documents in one request; the limit is {} (--max-inputs)",
            state.config.max_inputs
        ))
        .param(field));
    }
    let _permit = state.admission.admit(n).map_err(|e| {
        state.metrics.rejected.inc();
        ApiError::from(e)
    })?;
    let bytes = query.len() * n + documents.iter().map(String::len).sum::<usize>();
    let submit = move || reranker.submit(&query, &documents[..], &options);
    let pending = if bytes <= INLINE_TOKENIZE_BYTES {
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
        Ok(ranked) => {
            state.metrics.rerank_pairs.inc_by(n as u64);
            let tokens: usize = ranked.iter().map(|r| r.tokens).sum();
            state.metrics.rerank_tokens.inc_by(tokens as u64);
            Ok(ranked)
        }
        Err(e) => {
            if matches!(e, Error::Busy { .. }) {
                state.metrics.rejected.inc();
            }
            Err(match e {
                Error::TooLong { .. } => ApiError::from(e).param(field),
                other => other.into(),
            })
        }
    }
}
