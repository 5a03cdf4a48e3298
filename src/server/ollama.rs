//! Ollama's other routes: the legacy `/api/embeddings`, and the model discovery that tools such
//! as Open WebUI and Obsidian plugins call before they embed (`/api/tags`, `/api/show`,
//! `/api/version`). `/api/embed` itself is in `routes`.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::{Api, ApiError};
use super::routes::{InstructionFields, authorize, embed, finish, handle, options, truncation};

/// The routes of this module.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/embeddings", routing::post(embeddings))
        .route("/api/tags", routing::get(tags))
        .route("/api/show", routing::post(show))
        .route("/api/version", routing::get(version))
}

/// The legacy request: one `prompt`, one `embedding` back.
#[derive(Deserialize)]
struct LegacyRequest {
    #[serde(default)]
    #[allow(dead_code)]
    model: Option<String>,
    prompt: String,
    /// Sampling and context options: none applies to an embedding (Ollama ignores them
    /// there too).
    #[serde(default)]
    #[allow(dead_code)]
    options: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    keep_alive: Option<Value>,
    #[serde(default)]
    truncate: Option<bool>,
    #[serde(flatten)]
    instruction: InstructionFields,
}

async fn embeddings(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(state, Api::Ollama, headers, body, legacy_embed).await
}

/// Ollama's `/api/embeddings`: `{"embedding": [...]}`. Unlike Ollama's own legacy route, the
/// vector is L2-normalised, as Qwen3-Embedding defines its output (cosine similarity is the
/// same either way), and an empty prompt is embedded rather than answered with `[]`.
async fn legacy_embed(state: Arc<AppState>, req: LegacyRequest) -> Result<Response, ApiError> {
    let options = options(
        req.instruction.resolve(None)?,
        None,
        true,
        truncation(req.truncate.unwrap_or(true), false),
    );
    let mut embeddings = embed(
        &state,
        super::routes::Inputs::Texts(vec![req.prompt]),
        options,
    )
    .await?;
    let vector = embeddings.pop().map(|e| e.vector).unwrap_or_default();
    Ok(Json(json!({ "embedding": vector })).into_response())
}

/// The served model's name as Ollama writes names: `name:tag`.
fn ollama_name(state: &AppState) -> String {
    if state.model_name.contains(':') {
        state.model_name.clone()
    } else {
        format!("{}:latest", state.model_name)
    }
}

/// `details` as Ollama reports it.
fn details(state: &AppState) -> Value {
    let info = state.model().info();
    json!({
        "parent_model": "",
        "format": "gguf",
        "family": info.architecture,
        "families": [info.architecture],
        "parameter_size": parameter_size(info.parameters),
        "quantization_level": info.file_type.clone().unwrap_or_default(),
    })
}

/// Ollama's style: `595.78M`, `4.02B`.
fn parameter_size(parameters: u64) -> String {
    let p = parameters as f64;
    if p >= 1e9 {
        format!("{:.2}B", p / 1e9)
    } else {
        format!("{:.2}M", p / 1e6)
    }
}

/// The model file's modification time, RFC 3339 (UTC).
fn modified_at(state: &AppState) -> String {
    let modified = std::fs::metadata(&state.model().info().path)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    rfc3339(modified)
}

/// A time as `YYYY-MM-DDTHH:MM:SSZ` (civil date from days since the epoch: Howard Hinnant's
/// algorithm).
fn rfc3339(time: SystemTime) -> String {
    let secs = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

async fn tags(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let started = Instant::now();
    let result = async {
        authorize(&state, &headers)?;
        let name = ollama_name(&state);
        Ok(Json(json!({"models": [{
            "name": name,
            "model": name,
            "modified_at": modified_at(&state),
            "size": state.model().info().file_size,
            "digest": state.model_digest().await,
            "details": details(&state),
        }]}))
        .into_response())
    }
    .await;
    finish(&state, Api::Ollama, started, result)
}

#[derive(Deserialize)]
struct ShowRequest {
    #[serde(default)]
    #[allow(dead_code)]
    model: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    name: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    verbose: Option<bool>,
}

async fn show(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(state, Api::Ollama, headers, body, show_model).await
}

/// `/api/show`: this server has one model, so any name shows it.
async fn show_model(state: Arc<AppState>, _req: ShowRequest) -> Result<Response, ApiError> {
    let info = state.model().info();
    let arch = &info.architecture;
    let mut model_info = serde_json::Map::new();
    model_info.insert("general.architecture".into(), json!(arch));
    model_info.insert("general.parameter_count".into(), json!(info.parameters));
    if let Some(name) = &info.name {
        model_info.insert("general.basename".into(), json!(name));
    }
    for (key, value) in [
        ("context_length", info.context_length),
        ("embedding_length", info.embedding_length),
        ("block_count", info.block_count),
        ("attention.head_count", info.head_count),
        ("attention.head_count_kv", info.head_count_kv),
        ("feed_forward_length", info.feed_forward_length),
    ] {
        model_info.insert(format!("{arch}.{key}"), json!(value));
    }
    model_info.insert("tokenizer.ggml.model".into(), json!(info.tokenizer_model));
    Ok(Json(json!({
        "license": "",
        "modelfile": format!("# served by gguf-embed\nFROM {}\n", info.path.display()),
        "parameters": "",
        "template": "",
        "details": details(&state),
        "model_info": model_info,
        "capabilities": ["embedding"],
        "modified_at": modified_at(&state),
    }))
    .into_response())
}

/// `/api/version`: this server's version (it is not Ollama, and says so in `server`).
async fn version() -> Response {
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "server": "gguf-embed",
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn times_and_sizes_are_written_as_ollama_writes_them() {
        let at = |secs| rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_796_428_799), "2026-12-04T23:59:59Z");
        assert_eq!(parameter_size(595_776_512), "595.78M");
        assert_eq!(parameter_size(4_021_774_336), "4.02B");
    }
}
