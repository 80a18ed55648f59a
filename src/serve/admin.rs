//! The admin routes, `/v1/cache/...`: the live cache's figures, removing entries, warming models, and the
//! maintenance the CLI sends here while this server holds the cache (docs/serve.md, "Admin API").
//!
//! The same routes answer on the TCP listener (behind the API key, like every route but `/health`) and on
//! the admin socket (no key: its file permissions, 0600, guard it). A request's [`Channel`] says which:
//! over TCP, `warm` takes only names of models in `models.dir` (clients never make the server open an
//! arbitrary path) and `backup`, which writes where the caller says, is refused.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::error::ApiError;
use super::state::AppState;
use crate::admin::{BackupRequest, ClearRequest, LiveStats, ServerInfo, VerifyRequest, WarmRequest, ops};
use crate::cache::CacheReport;
use crate::models::catalog;
use crate::warm::{self, LoadInto};

/// Where an admin request came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// The TCP listener: the API key applies, model paths and backups are refused.
    Http,
    /// The admin socket in the cache directory: trusted by its file permissions.
    Socket,
}

/// The admin routes; the caller adds an `Extension(Channel)` layer.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/cache/stats", get(stats))
        .route("/v1/cache/alerts", get(alerts))
        .route("/v1/cache", delete(clear))
        .route("/v1/cache/warm", post(warm_model))
        .route("/v1/cache/verify", post(verify))
        .route("/v1/cache/compact", post(compact))
        .route("/v1/cache/train-dictionary", post(train_dictionary))
        .route("/v1/cache/flush", post(flush))
        .route("/v1/cache/backup", post(backup_cache))
        .route("/v1/cache/semantic/forget", post(forget_semantic))
}

/// Runs `work` on a blocking thread (cache and model work blocks) and answers with its value as JSON.
async fn blocking<T: Serialize + Send + 'static>(
    state: Arc<AppState>,
    work: impl FnOnce(&AppState) -> Result<T, ApiError> + Send + 'static,
) -> Response {
    match tokio::task::spawn_blocking(move || work(&state)).await {
        Ok(Ok(value)) => Json(value).into_response(),
        Ok(Err(error)) => error.into_response(),
        Err(e) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("the task failed: {e}")).into_response()
        }
    }
}

/// A JSON request body; an empty body is `T::default()` when `empty` gives one.
fn parse<T: DeserializeOwned>(body: &Bytes, empty: Option<T>) -> Result<T, ApiError> {
    match empty {
        Some(default) if body.iter().all(u8::is_ascii_whitespace) => Ok(default),
        _ => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the request body is not valid: {e}"))),
    }
}

/// The server's own figures.
fn server_info(state: &AppState) -> ServerInfo {
    ServerInfo {
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        requests: state.metrics.requests_answered(),
        responses: state.metrics.cache_result_counts(),
        models: state.registry.pool().stats(),
    }
}

/// `GET /v1/cache/stats`: the cache report (live counters) and the server's figures.
async fn stats(State(state): State<Arc<AppState>>, _body: Bytes) -> Response {
    blocking(state, |state| {
        Ok(LiveStats { report: CacheReport::measure(&state.manager), server: server_info(state) })
    })
    .await
}

/// `GET /v1/cache/alerts`: each alert rule's state, figure and threshold, and the channels.
async fn alerts(State(state): State<Arc<AppState>>) -> Response {
    Json(state.alerts.view()).into_response()
}

/// `DELETE /v1/cache?all=true | key=K | pattern=GLOB | type=T[,T] | older_than=D` (or the same fields as a
/// JSON body): removes the entries, compacts, and says what went.
async fn clear(
    State(state): State<Arc<AppState>>,
    query: Result<Query<ClearRequest>, QueryRejection>,
    body: Bytes,
) -> Response {
    let request = match query {
        Err(rejection) => Err(ApiError::bad_request(rejection.body_text())),
        Ok(Query(query)) => parse(&body, Some(query)),
    };
    let request = match request.and_then(|r| r.filter().map(|_| r).map_err(ApiError::bad_request)) {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    blocking(state, move |state| Ok(ops::clear(&state.manager, &request)?)).await
}

/// `POST /v1/cache/warm {"model": NAME}`: warms the model as `cache warm` does (page cache, metadata, a
/// `model` entry) and loads it into the model cache, where it stays; over the socket `model` may be a path.
async fn warm_model(
    State(state): State<Arc<AppState>>,
    Extension(channel): Extension<Channel>,
    body: Bytes,
) -> Response {
    let request: WarmRequest = match parse(&body, None) {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    blocking(state, move |state| {
        let not_found = |e: String| ApiError::new(StatusCode::NOT_FOUND, e);
        let path = match channel {
            Channel::Socket => catalog::resolve(&request.model, &state.config.models.dir)
                .map_err(|e| not_found(e.to_string()))?,
            Channel::Http => state.registry.path_of(&request.model).map_err(|e| not_found(e.to_string()))?,
        };
        // With model caching off the model is checked and unloaded, as in a CLI warm.
        let into = if state.registry.keeps_loaded() {
            LoadInto::Keep(state.registry.pool())
        } else {
            LoadInto::Check
        };
        let report = warm::warm_model(Some(&state.manager), &path, into, |_, _| {})?;
        state.registry.pin(&report.name, &report.path);
        tracing::info!(model = %report.name, "warmed and loaded on request");
        Ok(report)
    })
    .await
}

/// `POST /v1/cache/verify {"fix": bool}`: checks every record; with `fix`, quarantines what is damaged.
async fn verify(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let request: VerifyRequest = match parse(&body, Some(VerifyRequest::default())) {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    blocking(state, move |state| Ok(ops::verify(&state.manager, &request)?)).await
}

/// `POST /v1/cache/compact`: rewrites the disk tier without dead records. A body is read and ignored (an
/// unread body would make the connection close under the client).
async fn compact(State(state): State<Arc<AppState>>, _body: Bytes) -> Response {
    blocking(state, |state| Ok(ops::compact(&state.manager)?)).await
}

/// `POST /v1/cache/train-dictionary`: trains a zstd dictionary on the cached responses now (a body is read
/// and ignored).
async fn train_dictionary(State(state): State<Arc<AppState>>, _body: Bytes) -> Response {
    blocking(state, |state| Ok(ops::train_dictionary(&state.manager)?)).await
}

/// `POST /v1/cache/flush`: makes every write so far durable now (a body is read and ignored).
async fn flush(State(state): State<Arc<AppState>>, _body: Bytes) -> Response {
    blocking(state, |state| {
        state.manager.flush()?;
        Ok(json!({"flushed": true, "base_dir": state.config.cache.base_dir}))
    })
    .await
}

/// `POST /v1/cache/semantic/forget {"key": K}`: a false semantic hit reported: the vector and the answer
/// stored under K are removed (from the index too) and the report counted.
async fn forget_semantic(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let request: ForgetRequest = match parse(&body, None) {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    blocking(state, move |state| {
        let forgotten = match &state.semantic {
            Some(semantic) => semantic.forget(&state.manager, &request.key)?,
            None => crate::cache::semantic::forget_stored(&state.manager, &request.key)?,
        };
        Ok(json!({"key": request.key, "forgotten": forgotten}))
    })
    .await
}

/// The body of `POST /v1/cache/semantic/forget`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ForgetRequest {
    key: String,
}

/// `POST /v1/cache/backup {"destination", "compress"?, "verify"?}` (admin socket only): flushes, then backs
/// the cache up as `cache backup` does.
async fn backup_cache(
    State(state): State<Arc<AppState>>,
    Extension(channel): Extension<Channel>,
    body: Bytes,
) -> Response {
    if channel != Channel::Socket {
        let message = "backups write files where the caller says, so only the admin socket takes them: \
                       run `inferno cache backup` on the server's machine";
        return ApiError::new(StatusCode::FORBIDDEN, message).into_response();
    }
    let request: BackupRequest = match parse(&body, None) {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    blocking(state, move |state| Ok(ops::backup(&state.config.cache, Some(&state.manager), &request)?)).await
}
