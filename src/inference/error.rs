//! [`InferenceError`]: why a request got no answer, as an OpenAI-style error body with the HTTP status to
//! send it with.

use serde_json::{Value, json};

/// Why a request got no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InferenceError {
    /// The request is malformed or asks for something unsupported (HTTP 400).
    #[error("{message}")]
    InvalidRequest {
        /// What is wrong, for the client.
        message: String,
        /// The offending parameter (`messages[0].content`, `n`, ...), when one is to blame.
        param: Option<String>,
        /// A machine-readable code such as `context_length_exceeded`.
        code: Option<String>,
    },
    /// No model of that name is served (HTTP 404).
    #[error("the model '{model}' does not exist")]
    ModelNotFound {
        /// The name the client asked for.
        model: String,
    },
    /// Inference itself failed (HTTP 500).
    #[error("{message}")]
    Server {
        /// What failed.
        message: String,
    },
    /// The credentials are missing or wrong (HTTP 401).
    #[error("{message}")]
    Unauthorized {
        /// What is wrong.
        message: String,
    },
    /// The request body is larger than `server.max_request_size` (HTTP 413).
    #[error("the request body is larger than the server accepts ({limit} bytes; server.max_request_size)")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The server cannot answer now: the model does not fit, or the server is shutting down (HTTP 503).
    #[error("{message}")]
    Unavailable {
        /// Why.
        message: String,
    },
}

impl InferenceError {
    /// A 400 with `message`, blaming `param` when given.
    pub fn invalid(message: impl Into<String>, param: Option<&str>) -> Self {
        Self::InvalidRequest { message: message.into(), param: param.map(str::to_string), code: None }
    }

    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidRequest { .. } => 400,
            Self::Unauthorized { .. } => 401,
            Self::ModelNotFound { .. } => 404,
            Self::TooLarge { .. } => 413,
            Self::Server { .. } => 500,
            Self::Unavailable { .. } => 503,
        }
    }

    /// OpenAI's error `type`: `invalid_request_error` for the client's mistakes, `authentication_error`,
    /// `server_error` for 5xx.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::InvalidRequest { .. } | Self::ModelNotFound { .. } | Self::TooLarge { .. } => {
                "invalid_request_error"
            }
            Self::Unauthorized { .. } => "authentication_error",
            Self::Server { .. } | Self::Unavailable { .. } => "server_error",
        }
    }

    /// The response body: `{"error": {"message", "type", "param", "code"}}`, absent values as `null`.
    pub fn to_body(&self) -> Value {
        let (param, code) = match self {
            Self::InvalidRequest { param, code, .. } => (param.as_deref(), code.as_deref()),
            Self::ModelNotFound { .. } => (Some("model"), Some("model_not_found")),
            Self::Unauthorized { .. } => (None, Some("invalid_api_key")),
            Self::TooLarge { .. } => (None, Some("request_too_large")),
            Self::Server { .. } | Self::Unavailable { .. } => (None, None),
        };
        json!({"error": {
            "message": self.to_string(),
            "type": self.error_type(),
            "param": param,
            "code": code,
        }})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_and_statuses_follow_openai() {
        let bad = InferenceError::invalid("'n' is 2; only n = 1 is supported", Some("n"));
        assert_eq!(bad.status(), 400);
        assert_eq!(
            bad.to_body(),
            json!({"error": {"message": "'n' is 2; only n = 1 is supported", "type": "invalid_request_error",
                             "param": "n", "code": null}})
        );
        let missing = InferenceError::ModelNotFound { model: "gpt-9".into() };
        assert_eq!(missing.status(), 404);
        assert_eq!(missing.to_body()["error"]["code"], "model_not_found");
        assert_eq!(missing.to_body()["error"]["message"], "the model 'gpt-9' does not exist");
        let failed = InferenceError::Server { message: "decode failed".into() };
        assert_eq!(failed.status(), 500);
        assert_eq!(
            failed.to_body(),
            json!({"error": {"message": "decode failed", "type": "server_error", "param": null, "code": null}})
        );
    }
}
