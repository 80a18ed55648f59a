//! Who may use the server over TCP (docs/security.md). `/health` is open. The admin routes (`/v1/cache`,
//! `/v1/cache/...`) need `server.admin_key` alone — the API key never grants them — and without an admin key
//! they are not served over TCP at all (404 naming the admin socket). Every other route needs
//! `server.api_key` when one is set. Keys are compared in constant time (`config::Secret`); a request let in
//! carries an [`audit::Who`] (client address, which key, its id) for the audit. Refused admin requests are
//! recorded in the audit as `denied`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::state::AppState;
use crate::audit::{self, Outcome, Record, Who};

/// True for the admin routes.
pub fn is_admin(path: &str) -> bool {
    path == "/v1/cache" || path.starts_with("/v1/cache/")
}

/// The check in front of every TCP route.
pub async fn authorize(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    if path == "/health" {
        return next.run(request).await;
    }
    let client = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.to_string());
    let bearer = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let mut who = Who { via: "http".into(), client, ..Who::default() };
    let keys = &state.keys;
    let refusal = if is_admin(&path) {
        match (&keys.admin, &bearer) {
            (None, _) => Some(not_served(&state)),
            (Some(admin), Some(given)) if admin.matches(given) => {
                who.key = Some("admin".into());
                who.key_id = Some(admin.id());
                None
            }
            (Some(_), Some(given)) if keys.api.as_ref().is_some_and(|api| api.matches(given)) => {
                Some(refuse(
                    StatusCode::UNAUTHORIZED,
                    "the API key does not grant the admin routes: send `Authorization: Bearer <server.admin_key>`",
                ))
            }
            (Some(_), Some(_)) => Some(refuse(StatusCode::UNAUTHORIZED, "incorrect admin key provided")),
            (Some(_), None) => Some(refuse(
                StatusCode::UNAUTHORIZED,
                "missing admin key: send `Authorization: Bearer <server.admin_key>`",
            )),
        }
    } else {
        match (&keys.api, &bearer) {
            (None, _) => None,
            (Some(api), Some(given)) if api.matches(given) => {
                who.key = Some("api".into());
                who.key_id = Some(api.id());
                None
            }
            (Some(_), Some(_)) => Some(api_refusal("incorrect API key provided")),
            (Some(_), None) => Some(api_refusal("missing API key: send `Authorization: Bearer <key>`")),
        }
    };
    match refusal {
        None => {
            request.extensions_mut().insert(who);
            next.run(request).await
        }
        Some((response, message)) => {
            if is_admin(&path) || state.audit.logs_reads() {
                let arguments = json!({"method": request.method().as_str(), "path": path});
                let mut record = Record::now("denied", arguments, Outcome::Denied, who);
                record.error = Some(message);
                let audit = Arc::clone(&state);
                tokio::task::spawn_blocking(move || audit.audit.write(&record));
            }
            response
        }
    }
}

/// A refused request's answer, and its message for the audit.
type Refusal = (Response, String);

/// The 404 of an admin route over TCP without `server.admin_key`, naming where the admin API is.
fn not_served(state: &AppState) -> Refusal {
    let socket = crate::admin::socket_path(&state.config.cache.base_dir);
    let message = format!(
        "the admin API is not served over TCP without server.admin_key: use the admin socket {} \
         (`inferno cache ...` on the server's machine), or set server.admin_key (or admin_key_file) and \
         restart `inferno serve`",
        socket.display()
    );
    let body = json!({"error": {
        "message": message, "type": "invalid_request_error", "param": null, "code": "admin_not_served",
    }});
    ((StatusCode::NOT_FOUND, axum::Json(body)).into_response(), message)
}

fn refuse(status: StatusCode, message: &str) -> Refusal {
    let body = json!({"error": {
        "message": message, "type": "invalid_request_error", "param": null, "code": "invalid_api_key",
    }});
    ((status, axum::Json(body)).into_response(), message.to_string())
}

/// The OpenAI-shaped 401 of the API routes (the same body as before admin keys existed).
fn api_refusal(message: &str) -> Refusal {
    let error = crate::inference::InferenceError::Unauthorized { message: message.into() };
    (super::error::error_response(&error), message.to_string())
}

/// The caller of a request that came in on the admin socket: the user and pid the kernel reports for the
/// connecting process (see `socket.rs`); nothing the client sends is taken for it.
pub fn socket_caller(peer: Option<&super::socket::Peer>) -> Who {
    let peer = peer.copied().unwrap_or_default();
    Who { via: "socket".into(), user: peer.uid.map(audit::user_of_uid), pid: peer.pid, ..Who::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_routes_are_the_cache_routes() {
        assert!(is_admin("/v1/cache") && is_admin("/v1/cache/stats") && is_admin("/v1/cache/warm"));
        assert!(!is_admin("/v1/cached") && !is_admin("/v1/chat/completions") && !is_admin("/health"));
    }
}
