//! The HTTP front door's one error type: every request that fails — a completion, an embedding, an admin
//! route, an unreadable body, a missing key — is answered with an OpenAI-style body
//! `{"error": {"message", "type", "param", "code"}}` and its status, shaped here and nowhere else.
//!
//! Library errors map onto [`ApiError`] in this file: [`InferenceError`] carries its own status; the admin
//! operations' errors become 400 for requests that are not valid, 404 for unknown models, 409 for a backup
//! destination in use, 503 for a model that does not fit, and 500 otherwise.

use axum::Json;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::admin::ops::OpError;
use crate::cache::CacheError;
use crate::cache::ops::backup::BackupError;
use crate::inference::InferenceError;
use crate::models::pool::PoolError;
use crate::warm::WarmError;

/// A failed request: what the client is told, with the status.
#[derive(Debug)]
pub enum ApiError {
    /// A completion or embedding request that got no answer; the error knows its status.
    Inference(InferenceError),
    /// Any other route's failure: a status and a message.
    Status {
        /// The HTTP status.
        status: StatusCode,
        /// What went wrong, for the client.
        message: String,
    },
}

impl ApiError {
    /// A failure with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self::Status { status, message: message.into() }
    }

    /// A 400: the request is not valid.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

/// `error` as its response; a 503 (busy slots, a model that does not fit now) carries `Retry-After: 1`.
pub fn error_response(error: &InferenceError) -> Response {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, Json(error.to_body())).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Inference(error) => error_response(&error),
            Self::Status { status, message } => {
                let kind = match status.as_u16() {
                    401 => "authentication_error",
                    403 => "permission_error",
                    400..500 => "invalid_request_error",
                    _ => "server_error",
                };
                let body = json!({"error": {"message": message, "type": kind, "param": null, "code": null}});
                (status, Json(body)).into_response()
            }
        }
    }
}

impl From<InferenceError> for ApiError {
    fn from(e: InferenceError) -> Self {
        Self::Inference(e)
    }
}

impl From<CacheError> for ApiError {
    fn from(e: CacheError) -> Self {
        let status = match e {
            CacheError::NoDiskTier { .. } => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, e.to_string())
    }
}

impl From<BackupError> for ApiError {
    fn from(e: BackupError) -> Self {
        let status = match &e {
            BackupError::DestinationInUse(_) => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, e.to_string())
    }
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Invalid(message) => Self::bad_request(message),
            OpError::Cache(e) => e.into(),
            OpError::Backup(e) => e.into(),
            OpError::BackupUnverified(e) => Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            e @ OpError::Permissions(_) => Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
}

impl From<WarmError> for ApiError {
    fn from(e: WarmError) -> Self {
        let status = match &e {
            WarmError::Load(PoolError::NoRoom { .. } | PoolError::TooLarge { .. }) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, e.to_string())
    }
}
