//! The response cache around inference: which requests are looked up and stored, under which key, with
//! which TTL ([`CachePlan`]), and the cache control that decides it ([`CacheControl`]).
//!
//! Keys come from the key code (`cache::response_store`) over the request body; stored values are response
//! records in the shape `inferno cache import` stores (`{"model", "model_fingerprint", "request",
//! "response"}`), written and read as bytes by `response_store`. Cache failures are logged and never fail a
//! request. Answering a request (plan, lookup, generate, store) is `answer.rs`'s [`super::respond`].

use std::time::Duration;

use serde_json::{Map, Value};

use super::InferenceError;
use crate::cache::response_store::{
    self, CanonicalRequest, Endpoint, ModelIdentity, is_deterministic, namespace_of, response_key,
};
use crate::cache::{Kind, Manager};
use crate::config::units::{SECOND, parse_duration};

/// How one request uses the cache. The body's `cache` field (LiteLLM's) is read by
/// [`CacheControl::from_body`]; the caller's settings (config, headers) come in as a `CacheControl` too.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CacheControl {
    /// Do not look the request up (the answer may still be stored).
    pub no_cache: bool,
    /// Do not store the answer.
    pub no_store: bool,
    /// Cache non-deterministic requests too (by default only `temperature: 0` or seeded ones are cached).
    pub cache_all: bool,
    /// TTL of a stored answer; `None` = the cache's `cache.response.ttl_hours`.
    pub ttl: Option<Duration>,
    /// Cache namespace: requests in different namespaces never share entries.
    pub namespace: Option<String>,
    /// Skip the semantic lookup (`cache: {"semantic": false}`); the exact cache works as before.
    pub no_semantic: bool,
    /// The semantic cache's similarity threshold for this request (`cache.semantic_threshold`), at least the
    /// server's `cache.semantic.min_threshold`.
    pub semantic_threshold: Option<f64>,
}

impl CacheControl {
    /// Reads the body's `cache` object: `ttl` (seconds, or a duration such as `"10m"`), `no-cache` and
    /// `no-store` (also spelled `no_cache`, `no_store`), `namespace`, `semantic` (false opts out of the
    /// semantic lookup) and `semantic_threshold` (a cosine similarity in (0, 1]). Other fields (`s-maxage`)
    /// are ignored.
    pub fn from_body(body: &Value) -> Result<Self, InferenceError> {
        let cache = match body.get("cache") {
            None | Some(Value::Null) => return Ok(Self::default()),
            Some(Value::Object(cache)) => cache,
            Some(_) => return Err(InferenceError::invalid("'cache' must be an object", Some("cache"))),
        };
        let mut control = Self::default();
        for (name, value) in cache {
            let param = format!("cache.{name}");
            let flag = || match value {
                Value::Bool(b) => Ok(*b),
                Value::Null => Ok(false),
                _ => Err(InferenceError::invalid(format!("'{param}' must be true or false"), Some(&param))),
            };
            match name.as_str() {
                "no-cache" | "no_cache" => control.no_cache |= flag()?,
                "no-store" | "no_store" => control.no_store |= flag()?,
                "ttl" => control.ttl = ttl(value, &param)?,
                "semantic" => control.no_semantic |= !(value.is_null() || flag()?),
                "semantic_threshold" => control.semantic_threshold = similarity(value, &param)?,
                "namespace" => match value {
                    Value::Null => {}
                    Value::String(ns) => control.namespace = Some(ns.clone()).filter(|ns| !ns.is_empty()),
                    _ => {
                        return Err(InferenceError::invalid(
                            format!("'{param}' must be a string"),
                            Some(&param),
                        ));
                    }
                },
                _ => {}
            }
        }
        Ok(control)
    }

    /// `self` (the caller's settings) combined with `body` (the request's own): flags are or-ed; for `ttl`
    /// and `namespace` the caller's value wins where both are set, so a server can enforce a namespace.
    pub fn merged(&self, body: &CacheControl) -> CacheControl {
        CacheControl {
            no_cache: self.no_cache || body.no_cache,
            no_store: self.no_store || body.no_store,
            cache_all: self.cache_all || body.cache_all,
            ttl: self.ttl.or(body.ttl),
            namespace: self.namespace.clone().or_else(|| body.namespace.clone()),
            no_semantic: self.no_semantic || body.no_semantic,
            semantic_threshold: self.semantic_threshold.or(body.semantic_threshold),
        }
    }
}

fn similarity(value: &Value, param: &str) -> Result<Option<f64>, InferenceError> {
    match value {
        Value::Null => Ok(None),
        Value::Number(n) if n.as_f64().is_some_and(|x| x > 0.0 && x <= 1.0) => Ok(n.as_f64()),
        _ => Err(InferenceError::invalid(
            format!("'{param}' must be a cosine similarity in (0, 1], e.g. 0.97"),
            Some(param),
        )),
    }
}

fn ttl(value: &Value, param: &str) -> Result<Option<Duration>, InferenceError> {
    let bad =
        || InferenceError::invalid(format!("'{param}' must be a positive number of seconds"), Some(param));
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_f64() {
            Some(secs) if secs.is_finite() && secs > 0.0 => Ok(Some(Duration::from_secs_f64(secs))),
            _ => Err(bad()),
        },
        Value::String(s) => parse_duration(s, SECOND).ok().filter(|d| !d.is_zero()).map(Some).ok_or_else(bad),
        _ => Err(bad()),
    }
}

/// How an answer relates to the cache (for an `X-Cache`-style header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheStatus {
    /// Served from the cache.
    Hit,
    /// Served from the cache by a near-duplicate request of the same scope (the semantic cache).
    SemanticHit,
    /// Looked up, not found, generated.
    Miss,
    /// Not looked up: the request is not cacheable, `no-cache` was asked, or response caching is off.
    Bypass,
}

impl CacheStatus {
    /// `HIT`, `HIT-SEMANTIC`, `MISS` or `BYPASS`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "HIT",
            Self::SemanticHit => "HIT-SEMANTIC",
            Self::Miss => "MISS",
            Self::Bypass => "BYPASS",
        }
    }
}

/// What the cache does for one request: its key, and whether to look it up and store its answer.
#[derive(Clone, Debug, PartialEq)]
pub struct CachePlan {
    key: String,
    lookup: bool,
    store: bool,
    ttl: Option<Duration>,
    semantic: Option<f64>,
}

impl CachePlan {
    /// Plans `body` (sent to `endpoint`, answered by `identity`) under the caller's `control` merged with
    /// the body's own `cache` field. A request is cacheable when response caching is on and it is
    /// deterministic (`temperature: 0` or a `seed`) or `cache_all` is set. A namespace from the caller that
    /// the body does not name is written into the body's `cache.namespace`, so that the key, and the key
    /// an import of the stored record computes, include it.
    pub fn new(
        manager: &Manager,
        identity: &ModelIdentity,
        endpoint: Endpoint,
        body: &mut Value,
        control: &CacheControl,
    ) -> Result<Self, InferenceError> {
        let control = control.merged(&CacheControl::from_body(body)?);
        apply_namespace(body, control.namespace.as_deref());
        let canonical = CanonicalRequest::new(endpoint, body, identity)
            .map_err(|e| InferenceError::invalid(e.to_string(), None))?;
        let key = response_key(&canonical, manager.config().response.hash_algorithm);
        let cacheable = manager.is_enabled(Kind::Response) && (control.cache_all || is_deterministic(body));
        let lookup = cacheable && !control.no_cache;
        let semantic = (lookup && !control.no_semantic && manager.is_enabled(Kind::Semantic))
            .then(|| semantic_threshold(manager, &control))
            .transpose()?;
        Ok(Self { key, lookup, store: cacheable && !control.no_store, ttl: control.ttl, semantic })
    }

    /// The similarity threshold of the semantic lookup, when an exact miss is looked up semantically: the
    /// semantic cache is on, the plan looks up and the request did not opt out.
    pub fn semantic_threshold(&self) -> Option<f64> {
        self.semantic
    }

    /// The TTL of a stored answer (`None`: the cache's default).
    pub fn ttl(&self) -> Option<Duration> {
        self.ttl
    }

    /// The cache key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether the cache is consulted.
    pub fn looks_up(&self) -> bool {
        self.lookup
    }

    /// Whether the answer is stored.
    pub fn stores(&self) -> bool {
        self.store
    }

    /// The status of an answer that was generated: `Miss` when the cache was consulted, else `Bypass`.
    pub fn generated_status(&self) -> CacheStatus {
        if self.lookup { CacheStatus::Miss } else { CacheStatus::Bypass }
    }

    /// The cached answer as JSON bytes (the stored bytes with a fresh `id` and `created`, and `model` set to
    /// `model` when given), when the plan looks up and one is there.
    pub fn lookup(&self, manager: &Manager, model: Option<&str>) -> Option<Vec<u8>> {
        if !self.lookup {
            return None;
        }
        response_store::get_fresh(manager, &self.key, model).unwrap_or_else(|e| {
            tracing::warn!("response cache lookup of {} failed: {e}", self.key);
            None
        })
    }

    /// Stores `response` (JSON bytes, kept as they are) as the record of `request`, when the plan stores.
    pub fn store(&self, manager: &Manager, identity: &ModelIdentity, request: &Value, response: &[u8]) {
        if !self.store {
            return;
        }
        let record = response_store::record_bytes(&identity.name, &identity.fingerprint, request, response);
        match response_store::put(manager, &self.key, &identity.name, &record, self.ttl) {
            Ok(()) => {}
            // The disk tier counts these and warns about them itself, at most every 10 s per reason.
            Err(e) if e.is_write_failure() => tracing::debug!("response {} not stored: {e}", self.key),
            Err(e) => tracing::warn!("storing response {} in the cache failed: {e}", self.key),
        }
    }
}

/// The request's semantic threshold, else the server's; one below `cache.semantic.min_threshold` is a 400.
fn semantic_threshold(manager: &Manager, control: &CacheControl) -> Result<f64, InferenceError> {
    let config = &manager.config().semantic;
    match control.semantic_threshold {
        None => Ok(config.threshold),
        Some(asked) if asked >= config.min_threshold => Ok(asked),
        Some(asked) => Err(InferenceError::invalid(
            format!(
                "'cache.semantic_threshold' {asked} is below this server's floor (cache.semantic.min_threshold = \
                 {}): send a value from {} to 1, or leave it out to use {}",
                config.min_threshold, config.min_threshold, config.threshold
            ),
            Some("cache.semantic_threshold"),
        )),
    }
}

/// Writes `namespace` into `body`'s `cache.namespace`, when the body does not already say so.
pub(crate) fn apply_namespace(body: &mut Value, namespace: Option<&str>) {
    if let Some(ns) = namespace
        && namespace_of(body) != Some(ns)
        && let Some(object) = body.as_object_mut()
    {
        let cache = object.entry("cache").or_insert_with(|| Value::Object(Map::new()));
        if !cache.is_object() {
            *cache = Value::Object(Map::new());
        }
        cache["namespace"] = Value::String(ns.to_string());
    }
}

#[cfg(test)]
mod tests;
