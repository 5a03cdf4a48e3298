//! Errors as each API expects them: OpenAI's `{"error":{...}}`, Ollama's `{"error":"..."}` and
//! TEI's `{"error":"...","error_type":"..."}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::Error;

/// Which API a request came through; decides the error shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `/v1/embeddings`, `/v1/models`.
    OpenAi,
    /// `/api/embed`.
    Ollama,
    /// `/embed`.
    Tei,
    /// `/v1/rerank` and `/rerank` in the llama-server / Jina / Cohere shape (OpenAI-shaped
    /// errors, as llama-server answers).
    Rerank,
    /// `/rerank` and `/v1/rerank` in TEI's shape (a body with `texts`).
    TeiRerank,
}

impl Api {
    /// The label used in metrics.
    pub fn label(self) -> &'static str {
        match self {
            Api::OpenAi => "openai",
            Api::Ollama => "ollama",
            Api::Tei => "tei",
            Api::Rerank => "rerank",
            Api::TeiRerank => "tei_rerank",
        }
    }
}

/// What went wrong, independent of the API's error shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Malformed or invalid request (400/422).
    InvalidRequest,
    /// Missing or wrong API key (401).
    Authentication,
    /// Body, input count or input length over a limit (413).
    TooLarge,
    /// The queue is full (503, with Retry-After).
    Overloaded,
    /// The engine failed (500).
    Server,
}

/// An error response.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What happened and what to do.
    pub message: String,
    /// The kind, for the API's error type field.
    pub kind: Kind,
    /// The request field at fault, if one is.
    pub param: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, kind: Kind, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            kind,
            param: None,
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Kind::InvalidRequest, message)
    }

    /// 422: well-formed, but a value is not acceptable.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Kind::InvalidRequest,
            message,
        )
    }

    /// 413: over a size limit.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, Kind::TooLarge, message)
    }

    /// 404: the server has no model for this route (a reranker route on a server without a
    /// reranker, or the reverse).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, Kind::InvalidRequest, message)
    }

    /// 401: the API key is missing or wrong.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            Kind::Authentication,
            "missing or invalid API key: send it as `Authorization: Bearer <key>`",
        )
    }

    /// Names the request field at fault.
    pub fn param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    /// The response in `api`'s error shape.
    pub fn into_response_for(self, api: Api) -> Response {
        let body = match api {
            Api::OpenAi | Api::Rerank => json!({"error": {
                "message": self.message,
                "type": match self.kind {
                    Kind::InvalidRequest | Kind::TooLarge => "invalid_request_error",
                    Kind::Authentication => "authentication_error",
                    Kind::Overloaded => "server_overloaded",
                    Kind::Server => "server_error",
                },
                "param": self.param,
                "code": match self.kind {
                    Kind::Authentication => Some("invalid_api_key"),
                    Kind::TooLarge => Some("request_too_large"),
                    Kind::Overloaded => Some("overloaded"),
                    _ => None,
                },
            }}),
            Api::Ollama => json!({"error": self.message}),
            Api::Tei | Api::TeiRerank => json!({
                "error": self.message,
                "error_type": match self.kind {
                    Kind::InvalidRequest | Kind::TooLarge => "Validation",
                    Kind::Authentication => "Unauthorized",
                    Kind::Overloaded => "Overloaded",
                    Kind::Server => "Backend",
                },
            }),
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.kind == Kind::Overloaded {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.kind == Kind::Authentication {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        match &error {
            Error::TooLong { .. } => ApiError::too_large(error.to_string()).param("input"),
            Error::QueryTooLong { .. } => ApiError::too_large(error.to_string()).param("query"),
            Error::InvalidOption(_) => ApiError::unprocessable(error.to_string()),
            Error::InvalidToken { .. } | Error::InputTooLarge { .. } => {
                ApiError::unprocessable(error.to_string()).param("input")
            }
            Error::Busy { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                Kind::Overloaded,
                format!("{error}"),
            ),
            _ => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                Kind::Server,
                error.to_string(),
            ),
        }
    }
}
