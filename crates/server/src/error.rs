//! Every error the server answers with: a status and `{"error": {"type", "message"}}`, the shape
//! OpenAI's clients read. Messages say what was wrong and what to do; they never carry secrets.

use axum::extract::rejection::JsonRejection;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use benchtop_core::engine::{EngineError, ErrorKind};
use benchtop_core::store::StoreError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// A stable machine-readable class (`invalid_request_error`, `not_found_error`…).
    pub kind: &'static str,
    pub message: String,
    /// Seconds to wait before retrying (overload).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, kind, message: message.into(), retry_after: None }
    }

    /// The request is malformed or asks for something impossible (400).
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found_error", message)
    }

    /// The input broke a business rule configured for the model (422).
    pub fn rule(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "rule_violation", message)
    }

    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request_too_large", message)
    }

    /// Too much work queued already (429 with `retry-after`).
    pub fn overloaded(message: impl Into<String>) -> ApiError {
        ApiError { retry_after: Some(1), ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "overloaded_error", message) }
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "authentication_error", message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "permission_error", message)
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError {
            retry_after: Some(5),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable_error", message)
        }
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
    }

    /// The JSON body alone (also sent as the last event of a stream that fails midway).
    pub fn body(&self) -> serde_json::Value {
        json!({ "error": { "type": self.kind, "message": self.message } })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<EngineError> for ApiError {
    fn from(err: EngineError) -> ApiError {
        match (&err, err.kind()) {
            // The engine's message lists the folders searched: the client needs the names only.
            (EngineError::ModelNotFound { name, available, .. }, _) => ApiError::not_found(format!(
                "no model named `{name}`; available: {} (GET /v1/models lists them with their tasks)",
                if available.is_empty() { "none".to_string() } else { available.join(", ") }
            )),
            (_, ErrorKind::Input) => ApiError::invalid(err.to_string()),
            (_, ErrorKind::InvalidModel) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "model_error",
                format!("the model cannot be used: {err}"),
            ),
            (_, ErrorKind::Runtime) => ApiError::unavailable(err.to_string()),
            (_, ErrorKind::ModelNotFound | ErrorKind::Inference) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "inference_error", err.to_string())
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        match err {
            StoreError::NotFound { .. } => ApiError::not_found(err.to_string()),
            StoreError::Invalid { .. } => ApiError::invalid(err.to_string()),
            StoreError::Busy(_) => ApiError::overloaded(err.to_string()),
            other => {
                tracing::error!(error = %other, "feedback log");
                ApiError::unavailable(format!("the feedback log failed: {other}"))
            }
        }
    }
}

/// Malformed JSON, a wrong content type or an oversized body, said plainly.
impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_request_error",
                "send the body as JSON with `content-type: application/json`",
            ),
            JsonRejection::JsonSyntaxError(e) => {
                ApiError::invalid(format!("the body is not valid JSON: {}", e.body_text()))
            }
            JsonRejection::JsonDataError(e) => ApiError::invalid(e.body_text()),
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::too_large("the body is larger than the server's limit (--max-body); send less per request")
            }
            other => ApiError::invalid(other.body_text()),
        }
    }
}
