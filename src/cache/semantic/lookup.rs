//! A server's semantic cache: the index of stored requests' embeddings (loaded from the cache's `semantic`
//! entries at start), the lookup of an exact miss among the near-duplicates of its scope group, and the
//! vector added when an answer is stored.
//!
//! A lookup embeds the request's last user message, takes the stored vectors of its scope group whose cosine
//! similarity reaches the threshold, most similar first, and serves the first that passes every
//! [guard](super::guards) and whose response is still in the cache. A vector whose response is gone
//! (expired, evicted, cleared) or that was itself cleared (`cache clear --type semantic`) is dropped when a
//! lookup meets it. Embedding failures are counted and leave the request to the exact cache alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;

use super::counters::SemanticCounters;
use super::guards;
use super::index::{GroupId, Index, normalize};
use super::record;
use super::scope::Query;
use crate::cache::{CacheError, Kind, Manager, response_store};

/// Turns a text into an embedding (an ONNX model in `inferno serve`, see `embedder.rs`).
pub trait TextEmbedder: Send + Sync {
    /// The embedding of `text`, or `Ok(None)` when the text is longer than the token limit.
    fn embed(&self, text: &str) -> anyhow::Result<Option<Vec<f32>>>;
    /// The width of its embeddings.
    fn dims(&self) -> usize;
}

/// A request's last user message, embedded, with its scope group.
#[derive(Clone, Debug, PartialEq)]
pub struct Embedded {
    /// The scope group.
    pub group: GroupId,
    /// The text embedded.
    pub text: String,
    /// Its unit-length embedding.
    pub vector: Vec<f32>,
}

/// A near-duplicate's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct SemanticHit {
    /// The response key of the stored request that answered.
    pub key: String,
    /// Its cosine similarity to the request.
    pub similarity: f32,
    /// The stored response with a fresh `id`, `created` and `model`, and a `cache` member saying it is a
    /// semantic hit.
    pub body: Vec<u8>,
}

/// The semantic cache.
pub struct SemanticCache {
    embedder: Box<dyn TextEmbedder>,
    index: RwLock<Index>,
    counters: Arc<SemanticCounters>,
}

impl std::fmt::Debug for SemanticCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SemanticCache").field("vectors", &self.len()).finish_non_exhaustive()
    }
}

impl SemanticCache {
    /// The semantic cache of `manager` (bounded by its `cache.semantic.max_entries`), its index loaded from
    /// the stored `semantic` entries, oldest first. Entries that do not decode, or were made by a model of
    /// another width, are removed; so are the oldest beyond `max_entries`.
    pub fn open(manager: &Manager, embedder: Box<dyn TextEmbedder>) -> Self {
        let max = usize::try_from(manager.config().semantic.max_entries).unwrap_or(usize::MAX);
        let mut index = Index::new(embedder.dims(), max);
        let mut unusable = Vec::new();
        let mut entries = manager.entries(Some(Kind::Semantic));
        entries.sort_by_key(|e| e.created_ms);
        for entry in entries {
            let decoded = match manager.get(Kind::Semantic, &entry.key) {
                Ok(Some(bytes)) => record::decode(&bytes),
                Ok(None) => continue,
                Err(e) => Err(e.to_string()),
            };
            match decoded {
                Ok(stored) => match index.insert(stored.group, &entry.key, &stored.text, &stored.vector) {
                    Some(dropped) => unusable.extend(dropped),
                    None => unusable.push(entry.key),
                },
                Err(why) => {
                    tracing::warn!(key = %entry.key, "dropping a semantic cache vector: {why}");
                    unusable.push(entry.key);
                }
            }
        }
        for key in unusable {
            if let Err(e) = manager.remove(Kind::Semantic, &key) {
                tracing::warn!(key = %key, "removing a semantic cache vector failed: {e}");
            }
        }
        tracing::info!(vectors = index.len(), "semantic cache index loaded");
        let counters = Arc::clone(&manager.counters().semantic);
        Self { embedder, index: RwLock::new(index), counters }
    }

    /// Vectors in the index.
    pub fn len(&self) -> usize {
        self.index.read().len()
    }

    /// True when the index is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when `key` has a vector in the index.
    pub fn contains(&self, key: &str) -> bool {
        self.index.read().contains(key)
    }

    /// Embeds `query`'s text; `None` (counted) when it is too long or embedding fails.
    pub fn embed(&self, query: &Query) -> Option<Embedded> {
        let started = Instant::now();
        let result = self.embedder.embed(&query.text);
        let nanos = started.elapsed().as_nanos() as u64;
        self.counters.embedding_nanos.fetch_add(nanos, std::sync::atomic::Ordering::Relaxed);
        SemanticCounters::bump(&self.counters.embeddings);
        let failed = |why: &str| {
            tracing::warn!("semantic cache: embedding failed, answering from the exact cache only: {why}");
            SemanticCounters::bump(&self.counters.embedding_failures);
            None
        };
        match result {
            Ok(Some(mut vector)) => {
                if vector.len() != self.embedder.dims() || !normalize(&mut vector) {
                    return failed("the model gave no usable vector");
                }
                Some(Embedded { group: query.group, text: query.text.clone(), vector })
            }
            Ok(None) => {
                SemanticCounters::bump(&self.counters.too_long);
                None
            }
            Err(e) => failed(&format!("{e:#}")),
        }
    }

    /// The answer of the most similar stored request in `embedded`'s scope group that reaches `threshold`
    /// and passes the guards, with `model` as the answer's model name (see [`response_store::get_fresh`]).
    pub fn find(
        &self,
        manager: &Manager,
        embedded: &Embedded,
        threshold: f64,
        model: Option<&str>,
    ) -> Option<SemanticHit> {
        SemanticCounters::bump(&self.counters.lookups);
        let candidates = self.index.read().search(&embedded.group, &embedded.vector, threshold as f32);
        for candidate in candidates {
            if guards::mismatch(&embedded.text, &candidate.text).is_some() {
                // Not logged: the reason names words of the prompts.
                SemanticCounters::bump(&self.counters.guard_refusals);
                continue;
            }
            // Without a disk tier vectors live in the index alone (docs/semantic-cache.md).
            if manager.has_disk() && !manager.contains(Kind::Semantic, &candidate.key) {
                self.drop_stale(manager, &candidate.key);
                continue;
            }
            match response_store::get_fresh(manager, &candidate.key, model) {
                Ok(Some(body)) => {
                    SemanticCounters::bump(&self.counters.hits);
                    let body = mark_semantic(body, &candidate.key, candidate.similarity);
                    return Some(SemanticHit { key: candidate.key, similarity: candidate.similarity, body });
                }
                Ok(None) => self.drop_stale(manager, &candidate.key),
                Err(e) => {
                    tracing::warn!(key = %candidate.key, "semantic cache: reading the answer failed: {e}")
                }
            }
        }
        None
    }

    /// Adds `embedded` as the vector of the answer stored under `key` (`name`: the model's name; `ttl`: the
    /// answer's), dropping the oldest vectors beyond `max_entries`.
    pub fn remember(
        &self,
        manager: &Manager,
        key: &str,
        name: &str,
        embedded: &Embedded,
        ttl: Option<Duration>,
    ) {
        let bytes = record::encode(&embedded.group, &embedded.vector, &embedded.text);
        if let Err(e) = manager.put(Kind::Semantic, key, name, &bytes, ttl) {
            tracing::warn!(key = %key, "semantic cache: storing the vector failed: {e}");
            return;
        }
        let dropped = self.index.write().insert(embedded.group, key, &embedded.text, &embedded.vector);
        SemanticCounters::bump(&self.counters.stored);
        for old in dropped.unwrap_or_default() {
            if let Err(e) = manager.remove(Kind::Semantic, &old) {
                tracing::warn!(key = %old, "semantic cache: removing an old vector failed: {e}");
            }
        }
    }

    /// A false hit reported on `key` (a key a semantic hit named): its vector leaves the index, and
    /// [`forget_stored`] removes it and its answer from the cache. Returns whether there was either.
    pub fn forget(&self, manager: &Manager, key: &str) -> Result<bool, CacheError> {
        let indexed = self.index.write().remove(key);
        Ok(forget_stored(manager, key)? || indexed)
    }

    fn drop_stale(&self, manager: &Manager, key: &str) {
        self.index.write().remove(key);
        if let Err(e) = manager.remove(Kind::Semantic, key) {
            tracing::warn!(key = %key, "semantic cache: removing a stale vector failed: {e}");
        }
        SemanticCounters::bump(&self.counters.stale_dropped);
    }
}

/// A false hit reported on `key`: its semantic vector and its answer are removed from the cache, so it
/// answers nobody again, and the report is counted when there was either. Returns whether there was.
pub fn forget_stored(manager: &Manager, key: &str) -> Result<bool, CacheError> {
    let vector = manager.remove(Kind::Semantic, key)?;
    let answer = manager.remove(Kind::Response, key)?;
    if vector || answer {
        SemanticCounters::bump(&manager.counters().semantic.false_hit_reports);
    }
    Ok(vector || answer)
}

/// `body` (a response object's JSON bytes) with `"cache": {"status": "HIT-SEMANTIC", "key", "similarity"}`
/// added as its last member; anything but a non-empty object is returned as it is.
pub fn mark_semantic(mut body: Vec<u8>, key: &str, similarity: f32) -> Vec<u8> {
    let Some(end) = body.iter().rposition(|b| !b.is_ascii_whitespace()) else { return body };
    if body[end] != b'}' || !body.iter().take(end).any(|b| !b.is_ascii_whitespace() && *b != b'{') {
        return body;
    }
    let member = serde_json::json!({
        "status": "HIT-SEMANTIC",
        "key": key,
        "similarity": (f64::from(similarity) * 10_000.0).round() / 10_000.0,
    });
    let tail = body.split_off(end);
    body.extend_from_slice(format!(",\"cache\":{member}").as_bytes());
    body.extend_from_slice(&tail);
    body
}

#[cfg(test)]
mod tests;
