//! `POST /v1/chat/completions` and `POST /v1/completions`: the response cache in front of inference.
//!
//! Per request: parse the JSON body (400 with an OpenAI error body when it is not), find the model by name
//! (404; a loaded model is found on the request's task, a model to load is loaded on a blocking thread), plan the cache use (`inference::CachePlan`: deterministic requests only unless
//! `cache.response.deterministic_only = false`; `Cache-Control: no-cache` / `no-store`; the body's `cache`
//! field), answer a hit from the cache (its stored bytes, a fresh `id`/`created`/`model` spliced in), else
//! on an exact miss look for a near-duplicate in the semantic cache when it is on (`semantic.rs`), else
//! generate on a blocking thread and store. Planning, lookup, generation and storing are
//! `inference::Prepared`'s (the path `inference::respond` takes); this file adds HTTP and single-flight. Identical concurrent
//! requests for an uncached key generate once: the first leads, the others wait and then read the cache.
//! Streams (`"stream": true`) are generated as SSE and stored whole at the end; a cached answer is replayed
//! as a stream. Every answer carries `X-Inferno-Cache: HIT|HIT-SEMANTIC|MISS|BYPASS` and `X-Inferno-Cache-Key` (a
//! semantic hit's is the matched request's key, with `X-Inferno-Cache-Similarity`).

use std::convert::Infallible;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::mpsc;

use super::error::error_response;
use super::semantic::{self, Semantic};
use super::state::{AppState, FlightGuard, Lookup};
use crate::cache::response_store::{Endpoint, ModelIdentity};
use crate::cache::semantic::Embedded;
use crate::inference::{
    Answer, CacheControl, CacheStatus, InferenceError, Prepared, Request, chunks_from_body,
};
use crate::models::pool::CachedModel;

/// Answers a completion request to `endpoint`.
pub async fn handle(state: Arc<AppState>, headers: HeaderMap, body: Bytes, endpoint: Endpoint) -> Response {
    match answer(state, &headers, &body, endpoint).await {
        Ok(response) => response,
        Err(error) => error_response(&error),
    }
}

async fn answer(
    state: Arc<AppState>,
    headers: &HeaderMap,
    bytes: &Bytes,
    endpoint: Endpoint,
) -> Result<Response, InferenceError> {
    let body = json_body(bytes)?;
    let request = Request::parse(endpoint, &body)?;
    let name =
        request.model.clone().filter(|m| !m.is_empty()).ok_or_else(|| InferenceError::InvalidRequest {
            message: "you must provide a model parameter".into(),
            param: Some("model".into()),
            code: None,
        })?;
    // A loaded model is found on this task (a hop to a blocking thread costs more than the lookup); loading,
    // waiting for a load and reporting errors happen on a blocking thread.
    let model = match state.registry.get_loaded(&name) {
        Some(model) => model,
        None => {
            let state = Arc::clone(&state);
            let name = name.clone();
            tokio::task::spawn_blocking(move || state.registry.get(&name)).await.map_err(join_error)??
        }
    };
    if model.model().gguf().is_none() {
        return Err(InferenceError::invalid(format!("model '{name}' does not generate text"), Some("model")));
    }
    let identity = ModelIdentity { name: model.name(), fingerprint: model.fingerprint().to_string() };
    let mut control = header_control(headers);
    control.cache_all = !state.config.cache.response.deterministic_only;
    if request.stream && !state.config.cache.response.enable_streaming_cache {
        control.no_cache = true;
        control.no_store = true;
    }
    let prepared =
        Arc::new(Prepared::with_request(&state.manager, identity, endpoint, body, request, &control)?);
    let request = prepared.request();
    let guard = match state.lookup_or_lead(&prepared).await {
        Lookup::Hit(hit) => {
            let answer =
                Answer { body: hit, status: CacheStatus::Hit, key: prepared.plan().key().to_string() };
            return reply(answer, request.stream, request.include_usage);
        }
        Lookup::Generate(guard) => guard,
    };
    let embedded = match semantic::lookup(&state, &prepared).await {
        Semantic::Hit(hit) => {
            drop(guard);
            let similarity = hit.similarity;
            let answer = Answer { body: hit.body, status: CacheStatus::SemanticHit, key: hit.key };
            let mut response = reply(answer, request.stream, request.include_usage)?;
            semantic::similarity_header(response.headers_mut(), similarity);
            return Ok(response);
        }
        Semantic::Miss(embedded) => embedded,
    };
    if request.stream {
        // A stream's status is sent before generation starts: refuse what generation would refuse first
        // (a prompt that does not fit, a full queue) so those are a 400 and a 503, not an error chunk.
        let gguf = model.model().gguf().expect("checked above");
        crate::inference::run::prepare(gguf, request)?;
        if gguf.slot_stats().saturated() {
            let queue_size = gguf.slot_stats().queue_size;
            let busy = crate::models::llama::LlamaError::Busy { queue_size };
            return Err(InferenceError::Unavailable { message: busy.to_string() });
        }
        return Ok(Stream { state, model, prepared, guard, embedded }.start());
    }
    let started = Instant::now();
    let answer = {
        let (state, model, prepared) = (Arc::clone(&state), Arc::clone(&model), Arc::clone(&prepared));
        tokio::task::spawn_blocking(move || {
            let gguf = model.model().gguf().expect("checked above");
            let answer = prepared.generate(&state.manager, gguf, None)?;
            semantic::remember(&state, &prepared, embedded.as_ref());
            Ok::<_, InferenceError>(answer)
        })
        .await
        .map_err(join_error)??
    };
    let identity = prepared.identity();
    state.metrics.inference.with_label_values(&[&identity.name]).observe(started.elapsed().as_secs_f64());
    drop(guard);
    reply(answer, false, false)
}

/// The request body as a JSON object, else a 400.
pub(super) fn json_body(bytes: &[u8]) -> Result<Value, InferenceError> {
    let body: Value = serde_json::from_slice(bytes)
        .map_err(|e| InferenceError::invalid(format!("the request body is not valid JSON: {e}"), None))?;
    if !body.is_object() {
        return Err(InferenceError::invalid("the request body must be a JSON object", None));
    }
    Ok(body)
}

/// `Cache-Control: no-cache` skips the lookup (the answer is still stored); `no-store` skips the store.
pub(super) fn header_control(headers: &HeaderMap) -> CacheControl {
    let mut control = CacheControl::default();
    for value in headers.get_all("cache-control") {
        for directive in value.to_str().unwrap_or_default().split(',') {
            match directive.trim().to_ascii_lowercase().as_str() {
                "no-cache" => control.no_cache = true,
                "no-store" => control.no_store = true,
                _ => {}
            }
        }
    }
    control
}

/// A whole answer, as its JSON bytes or replayed as a stream, with the cache headers.
fn reply(answer: Answer, stream: bool, include_usage: bool) -> Result<Response, InferenceError> {
    let mut response = if stream {
        let events: Vec<Result<Event, Infallible>> = chunks_from_body(&answer.json()?, include_usage)
            .iter()
            .map(|chunk| Ok(Event::default().data(chunk.to_string())))
            .chain(std::iter::once(Ok(Event::default().data("[DONE]"))))
            .collect();
        Sse::new(futures_util::stream::iter(events)).into_response()
    } else {
        json_response(answer.body)
    };
    cache_headers(response.headers_mut(), answer.status, &answer.key);
    Ok(response)
}

/// A 200 with `body` (JSON bytes) as `application/json`.
pub(super) fn json_response(body: Vec<u8>) -> Response {
    ([(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

/// `X-Inferno-Cache` and `X-Inferno-Cache-Key`.
pub(super) fn cache_headers(headers: &mut HeaderMap, status: CacheStatus, key: &str) {
    headers.insert("x-inferno-cache", HeaderValue::from_static(status.as_str()));
    if let Ok(value) = HeaderValue::from_str(key) {
        headers.insert("x-inferno-cache-key", value);
    }
}

/// A streamed answer being generated: everything the blocking generation thread needs.
struct Stream {
    state: Arc<AppState>,
    model: Arc<CachedModel>,
    prepared: Arc<Prepared>,
    guard: Option<FlightGuard>,
    embedded: Option<Embedded>,
}

impl Stream {
    /// Generates on a blocking thread through [`Prepared::generate`], sending SSE events as chunks come; the
    /// answer is stored at the end unless the client went away before it.
    fn start(self) -> Response {
        let (tx, rx) = mpsc::channel::<Result<Event, Infallible>>(64);
        let status = self.prepared.plan().generated_status();
        let key = self.prepared.plan().key().to_string();
        tokio::task::spawn_blocking(move || self.generate(&tx));
        let mut response = Sse::new(tokio_stream::wrappers::ReceiverStream::new(rx)).into_response();
        cache_headers(response.headers_mut(), status, &key);
        response
    }

    fn generate(self, tx: &mpsc::Sender<Result<Event, Infallible>>) {
        let Stream { state, model, prepared, guard, embedded } = self;
        let _guard = guard;
        let send = |value: Value| tx.blocking_send(Ok(Event::default().data(value.to_string()))).is_ok();
        let mut sink =
            |chunk: Value| if send(chunk) { ControlFlow::Continue(()) } else { ControlFlow::Break(()) };
        let started = Instant::now();
        let gguf = model.model().gguf().expect("checked by the caller");
        match prepared.generate(&state.manager, gguf, Some(&mut sink)) {
            Ok(_) => {
                semantic::remember(&state, &prepared, embedded.as_ref());
                let name = &prepared.identity().name;
                state.metrics.inference.with_label_values(&[name]).observe(started.elapsed().as_secs_f64());
                let _ = tx.blocking_send(Ok(Event::default().data("[DONE]")));
            }
            Err(error) => {
                send(error.to_body());
            }
        }
    }
}

/// A blocking task that panicked or was cancelled, as a 500.
pub(super) fn join_error(error: tokio::task::JoinError) -> InferenceError {
    InferenceError::Server { message: format!("the inference task failed: {error}") }
}
