//! Answering one chat or completion request, the one path the server and `cache warm` share: a request is
//! [`Prepared`] (parsed, keyed, planned), then [`respond`] looks it up and, on a miss, generates (sending
//! stream chunks to a sink as they come) and stores the answer.
//!
//! The server runs the same two halves with its single-flight between them (`serve/state.rs`): the lookup on
//! the request's task, [`Prepared::generate`] on a blocking thread. Answers travel as JSON bytes: a hit is
//! the stored bytes with a fresh `id`, `created` and `model` (`cache::response_store`), never re-serialised.

use std::ops::ControlFlow;

use serde_json::Value;

use super::cached::{CacheControl, CachePlan, CacheStatus};
use super::{InferenceError, Request};
use crate::cache::Manager;
use crate::cache::response_store::{Endpoint, ModelIdentity};
use crate::cache::semantic::{Query, query_of};

/// Where a streamed answer's chunks go as they are made (`chat.completion.chunk` / `text_completion`
/// objects); `Break` stops the generation (the client went away) and the answer is then not stored.
pub type Sink<'a> = &'a mut dyn FnMut(Value) -> ControlFlow<()>;

/// An answered request.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// The response body, JSON bytes.
    pub body: Vec<u8>,
    /// Whether it came from the cache.
    pub status: CacheStatus,
    /// The request's cache key (computed even when the cache was not used).
    pub key: String,
}

impl Answer {
    /// The body parsed (for replaying it as stream chunks, and for tests).
    pub fn json(&self) -> Result<Value, InferenceError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| InferenceError::Server { message: format!("a cached answer is not JSON: {e}") })
    }
}

/// A request ready to be answered: parsed, keyed and planned, with the model name its answers carry.
#[derive(Clone, Debug)]
pub struct Prepared {
    request: Request,
    body: Value,
    plan: CachePlan,
    identity: ModelIdentity,
    endpoint: Endpoint,
    model_name: String,
}

impl Prepared {
    /// Parses and plans `body` (an OpenAI request to `endpoint`) for the model `identity` under `control`
    /// (merged with the body's own `cache` field). Answers name the model the client asked for, else the
    /// model's own name.
    pub fn new(
        manager: &Manager,
        identity: ModelIdentity,
        endpoint: Endpoint,
        body: Value,
        control: &CacheControl,
    ) -> Result<Self, InferenceError> {
        let request = Request::parse(endpoint, &body)?;
        Self::with_request(manager, identity, endpoint, body, request, control)
    }

    /// [`new`](Self::new) for a body the caller has already parsed into `request`.
    pub fn with_request(
        manager: &Manager,
        identity: ModelIdentity,
        endpoint: Endpoint,
        mut body: Value,
        request: Request,
        control: &CacheControl,
    ) -> Result<Self, InferenceError> {
        let plan = CachePlan::new(manager, &identity, endpoint, &mut body, control)?;
        let model_name =
            request.model.clone().filter(|m| !m.is_empty()).unwrap_or_else(|| identity.name.clone());
        Ok(Self { request, body, plan, identity, endpoint, model_name })
    }

    /// The parsed request.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// How the request uses the cache.
    pub fn plan(&self) -> &CachePlan {
        &self.plan
    }

    /// The model that answers.
    pub fn identity(&self) -> &ModelIdentity {
        &self.identity
    }

    /// The request body as keyed and stored (with a namespace the caller set written into `cache`).
    pub fn body(&self) -> &Value {
        &self.body
    }

    /// The endpoint the request came in on.
    pub fn endpoint(&self) -> Endpoint {
        self.endpoint
    }

    /// The model name answers carry: the one the client asked for, else the model's own.
    pub fn model_name(&self) -> &str {
        &self.model_name
    }

    /// What a semantic lookup of this request searches with (its scope group, for a caller using the API key
    /// whose identity is `api_key_id`, and its last user message), when the plan looks it up semantically
    /// and it has a semantic scope (`cache::semantic::scope`).
    pub fn semantic_query(&self, api_key_id: Option<&str>) -> Option<Query> {
        self.plan.semantic_threshold()?;
        query_of(self.endpoint, &self.body, &self.identity, api_key_id)
    }

    /// The cached answer, when the plan looks up and one is stored: its bytes as stored, with a fresh `id`
    /// and `created` and `model` set to the name the client asked for.
    pub fn lookup(&self, manager: &Manager) -> Option<Answer> {
        let body = self.plan.lookup(manager, Some(&self.model_name))?;
        Some(Answer { body, status: CacheStatus::Hit, key: self.plan.key().to_string() })
    }

    /// Generates the answer with `model`, sending stream chunks to `sink` when there is one, and stores it
    /// when the plan stores (and the sink did not stop the generation).
    #[cfg(feature = "llama")]
    pub fn generate(
        &self,
        manager: &Manager,
        model: &crate::models::llama::GgufModel,
        sink: Option<Sink<'_>>,
    ) -> Result<Answer, InferenceError> {
        use super::response::{Chunker, ResponseMeta, Usage, completion_body};
        use super::run;

        let meta = ResponseMeta::new(self.endpoint, &self.model_name, &self.identity.fingerprint);
        let (generation, complete) = match sink {
            None => (run::generate(model, &self.request, |_| ControlFlow::Continue(()))?, true),
            Some(sink) => {
                let chunker = Chunker::new(self.endpoint, meta.clone(), self.request.include_usage);
                let mut open = chunker.start().is_none_or(|start| sink(start).is_continue());
                let generation = run::generate(model, &self.request, |piece| {
                    open = open && sink(chunker.text(piece)).is_continue();
                    if open { ControlFlow::Continue(()) } else { ControlFlow::Break(()) }
                })?;
                open = open && sink(chunker.finish(generation.finish_reason)).is_continue();
                if let Some(usage) = chunker.usage(&Usage::of(&generation)) {
                    open = open && sink(usage).is_continue();
                }
                (generation, open)
            }
        };
        let body = serde_json::to_vec(&completion_body(self.endpoint, &meta, &generation))
            .map_err(|e| InferenceError::Server { message: format!("serialising the answer failed: {e}") })?;
        if complete {
            self.plan.store(manager, &self.identity, &self.body, &body);
        }
        Ok(Answer { body, status: self.plan.generated_status(), key: self.plan.key().to_string() })
    }
}

/// Answers `prepared` with `model`: from the cache when the plan allows and the answer is there (replayed as
/// chunks into `sink` when there is one), else by generating, storing the answer when the plan allows.
#[cfg(feature = "llama")]
pub fn respond(
    manager: &Manager,
    model: &crate::models::llama::GgufModel,
    prepared: &Prepared,
    sink: Option<Sink<'_>>,
) -> Result<Answer, InferenceError> {
    let Some(hit) = prepared.lookup(manager) else { return prepared.generate(manager, model, sink) };
    if let Some(sink) = sink {
        for chunk in super::chunks_from_body(&hit.json()?, prepared.request.include_usage) {
            if sink(chunk).is_break() {
                break;
            }
        }
    }
    Ok(hit)
}
