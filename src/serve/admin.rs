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

use super::state::AppState;
use crate::admin::{
    BackupRequest, BackupView, ClearRequest, CompactView, LiveStats, RemovalView, ServerInfo, VerifyRequest,
    VerifyView, WarmRequest,
};
use crate::cache::backup::{self, BackupError};
use crate::cache::{CacheError, CacheReport};
use crate::models::cache::ModelCacheError;
use crate::models::catalog;
use crate::warm::{self, LoadInto, WarmError};

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
        .route("/v1/cache", delete(clear))
        .route("/v1/cache/warm", post(warm_model))
        .route("/v1/cache/verify", post(verify))
        .route("/v1/cache/compact", post(compact))
        .route("/v1/cache/flush", post(flush))
        .route("/v1/cache/backup", post(backup_cache))
}

/// An admin request that failed: its status and an OpenAI-style error body.
#[derive(Debug)]
struct AdminError {
    status: StatusCode,
    message: String,
}

impl AdminError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let kind = match self.status.as_u16() {
            403 => "permission_error",
            400..500 => "invalid_request_error",
            _ => "server_error",
        };
        let body = json!({"error": {"message": self.message, "type": kind, "param": null, "code": null}});
        (self.status, Json(body)).into_response()
    }
}

impl From<CacheError> for AdminError {
    fn from(e: CacheError) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl From<crate::cache::disk::DiskError> for AdminError {
    fn from(e: crate::cache::disk::DiskError) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl From<WarmError> for AdminError {
    fn from(e: WarmError) -> Self {
        let status = match &e {
            WarmError::Load(ModelCacheError::NoRoom { .. } | ModelCacheError::TooLarge { .. }) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, e.to_string())
    }
}

impl From<BackupError> for AdminError {
    fn from(e: BackupError) -> Self {
        let status = match &e {
            BackupError::DestinationInUse(_) => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, e.to_string())
    }
}

/// Runs `work` on a blocking thread (cache and model work blocks) and answers with its value as JSON.
async fn blocking<T: Serialize + Send + 'static>(
    state: Arc<AppState>,
    work: impl FnOnce(&AppState) -> Result<T, AdminError> + Send + 'static,
) -> Response {
    match tokio::task::spawn_blocking(move || work(&state)).await {
        Ok(Ok(value)) => Json(value).into_response(),
        Ok(Err(error)) => error.into_response(),
        Err(e) => AdminError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("the task failed: {e}"))
            .into_response(),
    }
}

/// A JSON request body; an empty body is `T::default()` when `empty` gives one.
fn parse<T: DeserializeOwned>(body: &Bytes, empty: Option<T>) -> Result<T, AdminError> {
    match empty {
        Some(default) if body.iter().all(u8::is_ascii_whitespace) => Ok(default),
        _ => serde_json::from_slice(body)
            .map_err(|e| AdminError::bad_request(format!("the request body is not valid: {e}"))),
    }
}

/// The server's own figures.
fn server_info(state: &AppState) -> ServerInfo {
    ServerInfo {
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        requests: state.metrics.requests_answered(),
        responses: state.metrics.cache_result_counts(),
        models: state.registry.cache().stats(),
    }
}

/// `GET /v1/cache/stats`: the cache report (live counters) and the server's figures.
async fn stats(State(state): State<Arc<AppState>>, _body: Bytes) -> Response {
    blocking(state, |state| {
        Ok(LiveStats { report: CacheReport::measure(&state.manager), server: server_info(state) })
    })
    .await
}

/// `DELETE /v1/cache?all=true | key=K | pattern=GLOB | type=T[,T] | older_than=D` (or the same fields as a
/// JSON body): removes the entries, compacts, and says what went.
async fn clear(
    State(state): State<Arc<AppState>>,
    query: Result<Query<ClearRequest>, QueryRejection>,
    body: Bytes,
) -> Response {
    let request = match query {
        Err(rejection) => Err(AdminError::bad_request(rejection.body_text())),
        Ok(Query(query)) => parse(&body, Some(query)),
    };
    let (filter, local_only) =
        match request.and_then(|r| r.filter().map(|f| (f, r.local_only)).map_err(AdminError::bad_request)) {
            Ok(selected) => selected,
            Err(error) => return error.into_response(),
        };
    blocking(state, move |state| {
        let removal = state.manager.remove_matching(&filter)?;
        let remote = if local_only { None } else { state.manager.clear_remote(&filter) };
        Ok(RemovalView::from(&removal).with_remote(remote))
    })
    .await
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
        let not_found = |e: String| AdminError::new(StatusCode::NOT_FOUND, e);
        let path = match channel {
            Channel::Socket => catalog::resolve(&request.model, &state.config.models.dir)
                .map_err(|e| not_found(e.to_string()))?,
            Channel::Http => state.registry.path_of(&request.model).map_err(|e| not_found(e.to_string()))?,
        };
        // With model caching off the model is checked and unloaded, as in a CLI warm.
        let into = if state.registry.keeps_loaded() {
            LoadInto::Keep(state.registry.cache())
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
    blocking(state, move |state| {
        let disk = state
            .manager
            .disk()
            .ok_or_else(|| AdminError::bad_request("cache.type = memory has no disk tier to verify"))?;
        let view = VerifyView::from(&disk.verify(request.fix)?);
        view.with_permissions(&state.config.cache.base_dir, request.fix).map_err(|e| {
            AdminError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("checking permissions: {e}"))
        })
    })
    .await
}

/// `POST /v1/cache/compact`: rewrites the disk tier without dead records. A body is read and ignored (an
/// unread body would make the connection close under the client).
async fn compact(State(state): State<Arc<AppState>>, _body: Bytes) -> Response {
    blocking(state, |state| {
        let disk = state
            .manager
            .disk()
            .ok_or_else(|| AdminError::bad_request("cache.type = memory has no disk tier to compact"))?;
        Ok(CompactView::from(&disk.compact()?))
    })
    .await
}

/// `POST /v1/cache/flush`: makes every write so far durable now (a body is read and ignored).
async fn flush(State(state): State<Arc<AppState>>, _body: Bytes) -> Response {
    blocking(state, |state| {
        state.manager.flush()?;
        Ok(json!({"flushed": true, "base_dir": state.config.cache.base_dir}))
    })
    .await
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
        return AdminError::new(StatusCode::FORBIDDEN, message).into_response();
    }
    let request: BackupRequest = match parse(&body, None) {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    blocking(state, move |state| {
        state.manager.flush()?;
        let manifest = backup::create(&state.config.cache, &request.destination, request.compress)?;
        if request.verify {
            backup::verify(&request.destination)?;
        }
        Ok(BackupView::new(request.destination, &manifest, request.verify))
    })
    .await
}
