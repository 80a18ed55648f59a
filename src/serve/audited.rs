//! The audit record of each administrative request the server carries out — over TCP or the admin socket —
//! written once the handler has answered: the action, the request's query and body as arguments, the
//! outcome, entries and bytes affected (read from the answer), and who asked. The answer then carries
//! `X-Inferno-Audited`, so a CLI command that sent it records nothing itself (one record per action).

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth;
use super::state::AppState;
use crate::audit::{Outcome, Record, Who};

/// Largest answer read back for its figures (admin answers are small JSON documents).
const ANSWER_LIMIT: usize = 64 * 1024 * 1024;

/// The audit's name for an admin request, `None` for those that change nothing (`stats`, `flush`, a
/// `verify` without `fix`).
fn action(method: &Method, path: &str, body: &Value) -> Option<&'static str> {
    Some(match (method.as_str(), path) {
        ("DELETE", "/v1/cache") => "clear",
        ("POST", "/v1/cache/compact") => "compact",
        ("POST", "/v1/cache/warm") => "warm",
        ("POST", "/v1/cache/backup") => "backup",
        ("POST", "/v1/cache/verify") if body["fix"] == true => "verify",
        _ => return None,
    })
}

/// Entries and bytes affected, from the answer of `action`.
fn figures(action: &str, answer: &Value) -> (Option<u64>, Option<u64>) {
    let n = |field: &str| answer[field].as_u64();
    match action {
        "clear" | "backup" => (n("entries"), n("bytes")),
        "compact" => {
            (n("records_kept"), n("bytes_before").zip(n("bytes_after")).map(|(b, a)| b.saturating_sub(a)))
        }
        "verify" => {
            let count = |field: &str| answer[field].as_array().map_or(0, Vec::len) as u64;
            (Some(count("damaged") + count("loose_permissions")), None)
        }
        _ => (None, None),
    }
}

/// The middleware around the admin routes.
pub async fn record(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let limit = state.config.server.max_request_size.bytes() as usize;
    let Ok(body) = to_bytes(body, limit).await else {
        let error = crate::inference::InferenceError::TooLarge { limit: limit as u64 };
        return super::error::error_response(&error);
    };
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(action) = action(&parts.method, parts.uri.path(), &parsed) else {
        return next.run(Request::from_parts(parts, Body::from(body))).await;
    };
    let who = match parts.extensions.get::<Who>() {
        Some(who) => who.clone(),
        None => auth::socket_caller(
            parts.extensions.get::<axum::extract::ConnectInfo<super::socket::Peer>>().map(|info| &info.0),
        ),
    };
    let arguments = json!({"query": parts.uri.query(), "body": parsed});
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    let (mut head, answer) = response.into_parts();
    let Ok(answer) = to_bytes(answer, ANSWER_LIMIT).await else {
        return head.status.into_response();
    };
    let value: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
    let outcome = if head.status.is_success() { Outcome::Ok } else { Outcome::Error };
    let mut record = Record::now(action, arguments, outcome, who);
    if outcome == Outcome::Error {
        record.error = value["error"]["message"].as_str().map(str::to_string);
    }
    (record.entries, record.bytes) = figures(action, &value);
    let written = tokio::task::spawn_blocking(move || state.audit.write(&record)).await;
    if matches!(written, Ok(Ok(()))) {
        head.headers.insert(crate::admin::AUDITED_HEADER, HeaderValue::from_static("1"));
    }
    Response::from_parts(head, Body::from(answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_and_their_figures() {
        assert_eq!(action(&Method::DELETE, "/v1/cache", &Value::Null), Some("clear"));
        assert_eq!(action(&Method::GET, "/v1/cache/stats", &Value::Null), None);
        assert_eq!(action(&Method::POST, "/v1/cache/verify", &json!({})), None);
        assert_eq!(action(&Method::POST, "/v1/cache/verify", &json!({"fix": true})), Some("verify"));
        let compact = json!({"records_kept": 3, "bytes_before": 100, "bytes_after": 40});
        assert_eq!(figures("compact", &compact), (Some(3), Some(60)));
        assert_eq!(figures("clear", &json!({"entries": 2, "bytes": 9})), (Some(2), Some(9)));
        let verify = json!({"damaged": [1], "loose_permissions": [1, 2]});
        assert_eq!(figures("verify", &verify), (Some(3), None));
    }
}
