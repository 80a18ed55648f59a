//! The routers: on TCP, the OpenAI routes (chat, completions, embeddings, models), `/health`, `/metrics`
//! (only with `cache.metrics.prometheus_enabled`) and the admin routes, with the API-key check, the body-size
//! limit and request metrics (and, with alerts on, each answer's time to its last byte); on the admin socket,
//! the admin routes alone. Who may call what is `auth.rs`; the audit of admin actions, `audited.rs`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde_json::json;

use super::admin::{self, Channel};
use super::completions;
use super::embeddings;
use super::error::error_response;
use super::state::AppState;
use super::{audited, auth, reads, timing};
use crate::alerts::window::Served;
use crate::cache::response_store::Endpoint;
use crate::inference::InferenceError;

/// Every route, with the layers around them.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.config.server.max_request_size.bytes() as usize;
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completion))
        .route("/v1/embeddings", post(embedding))
        .route("/v1/models", get(models))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .merge(audited_admin_router(&state))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), reads::record))
        .layer(Extension(Channel::Http))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), auth::authorize))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), measure))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// The admin socket's routes: the admin routes, trusted (no API key; the socket is 0600), unmeasured.
pub fn admin_socket_router(state: Arc<AppState>) -> Router {
    let limit = state.config.server.max_request_size.bytes() as usize;
    audited_admin_router(&state)
        .layer(Extension(Channel::Socket))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// The admin routes, each action recorded in the audit.
fn audited_admin_router(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    admin::router().layer(middleware::from_fn_with_state(Arc::clone(state), audited::record))
}

async fn chat(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match body {
        Ok(body) => completions::handle(state, headers, body, Endpoint::Chat).await,
        Err(rejection) => body_error(&state, rejection),
    }
}

async fn completion(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match body {
        Ok(body) => completions::handle(state, headers, body, Endpoint::Completion).await,
        Err(rejection) => body_error(&state, rejection),
    }
}

async fn embedding(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match body {
        Ok(body) => embeddings::handle(state, headers, body).await,
        Err(rejection) => body_error(&state, rejection),
    }
}

/// A body that could not be read: too large (413) or broken (400), as an OpenAI error body.
fn body_error(state: &AppState, rejection: BytesRejection) -> Response {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return error_response(&InferenceError::TooLarge {
            limit: state.config.server.max_request_size.bytes(),
        });
    }
    error_response(&InferenceError::invalid(format!("cannot read the request body: {rejection}"), None))
}

/// `GET /v1/models`: every model the server can answer for (loaded or not).
async fn models(State(state): State<Arc<AppState>>) -> Response {
    let list = tokio::task::spawn_blocking(move || state.registry.list()).await.unwrap_or_default();
    let data: Vec<_> = list
        .iter()
        .map(|(name, path)| {
            let created = std::fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            json!({"id": name, "object": "model", "created": created, "owned_by": "inferno"})
        })
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

/// `GET /health`: 200 while the server runs, `{"status": "ok"}`; `{"status": "degraded", "reason",
/// "message", "since_ms"}` while the cache cannot write to disk (a full disk, say). The status stays 200
/// so an orchestrator does not restart a server that still answers. Exempt from the API key so probes
/// need no secret.
async fn health(State(state): State<Arc<AppState>>) -> Response {
    match state.manager.write_faults().and_then(|w| w.current) {
        None => axum::Json(json!({"status": "ok"})).into_response(),
        Some(fault) => axum::Json(json!({
            "status": "degraded",
            "reason": format!("cache writes failing ({})", fault.reason),
            "message": fault.message,
            "since_ms": fault.since_ms,
        }))
        .into_response(),
    }
}

/// `GET /metrics`: the cache engine's metrics and the server's, in Prometheus text format, when
/// `cache.metrics.prometheus_enabled` is on; otherwise 404 with a JSON error that says how to turn it on.
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    if !state.config.cache.metrics.prometheus_enabled {
        return metrics_disabled();
    }
    let text = tokio::task::spawn_blocking(move || -> Result<String, prometheus::Error> {
        let report = crate::cache::CacheReport::measure(&state.manager);
        let mut text = crate::cache::observe::prometheus::encode(&report)?;
        text.push_str(&state.metrics.encode(&state.registry.pool().stats())?);
        text.push_str(&state.alerts.encode_metrics()?);
        Ok(text)
    })
    .await;
    match text {
        Ok(Ok(text)) => {
            ([("content-type", "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
        }
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The 404 of `/metrics` while Prometheus export is off, in the OpenAI error shape the other routes use.
fn metrics_disabled() -> Response {
    let message = "Prometheus metrics are off: set cache.metrics.prometheus_enabled = true \
                   (`inferno cache configure --prometheus-enabled`, or \
                   INFERNO_CACHE__METRICS__PROMETHEUS_ENABLED=true) and restart `inferno serve`";
    let body = json!({"error": {
        "message": message,
        "type": "invalid_request_error",
        "param": null,
        "code": "metrics_disabled",
    }});
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

/// Counts and times every request by its route pattern.
async fn measure(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    state.metrics.durations.with_label_values(&[&route]).observe(started.elapsed().as_secs_f64());
    state.metrics.requests.with_label_values(&[&route, response.status().as_str()]).inc();
    if let Some(result) = response.headers().get("x-inferno-cache").and_then(|v| v.to_str().ok()) {
        state.metrics.cache_results.with_label_values(&[result]).inc();
        if let Some(served) = Served::from_header(result).filter(|_| state.alerts.enabled()) {
            return timing::until_last_byte(response, started, served, Arc::clone(&state.alerts));
        }
    }
    response
}
