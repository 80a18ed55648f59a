//! The semantic cache between an exact miss and generation (docs/semantic-cache.md): embed the request's
//! last user message on a blocking thread, look for a near-duplicate in its scope group, and after an
//! answer is generated and stored, add its vector to the index. Nothing here fails a request: an embedding
//! that fails leaves it to the exact cache (counted by the semantic cache).

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue};

use super::state::AppState;
use crate::cache::Kind;
use crate::cache::semantic::{Embedded, SemanticHit};
use crate::inference::Prepared;

/// What the semantic lookup of an exact miss found.
pub enum Semantic {
    /// A near-duplicate's answer.
    Hit(SemanticHit),
    /// None: generate; the embedding (when one was made) goes into the index once the answer is stored.
    Miss(Option<Embedded>),
}

/// Looks `prepared` (an exact miss) up in the semantic cache, when the server has one and the request's plan
/// asks for it.
pub async fn lookup(state: &Arc<AppState>, prepared: &Arc<Prepared>) -> Semantic {
    let (Some(cache), Some(threshold)) = (state.semantic.clone(), prepared.plan().semantic_threshold())
    else {
        return Semantic::Miss(None);
    };
    let api_key = state.keys.api.as_ref().map(|key| key.id());
    let Some(query) = prepared.semantic_query(api_key.as_deref()) else { return Semantic::Miss(None) };
    let (state, prepared) = (Arc::clone(state), Arc::clone(prepared));
    let found = tokio::task::spawn_blocking(move || {
        let embedded = cache.embed(&query)?;
        let hit = cache.find(&state.manager, &embedded, threshold, Some(prepared.model_name()));
        Some((embedded, hit))
    })
    .await;
    match found {
        Ok(Some((_, Some(hit)))) => Semantic::Hit(hit),
        Ok(Some((embedded, None))) => Semantic::Miss(Some(embedded)),
        Ok(None) => Semantic::Miss(None),
        Err(e) => {
            tracing::warn!("the semantic lookup task failed: {e}");
            Semantic::Miss(None)
        }
    }
}

/// After `prepared` was answered by generation: `embedded` joins the index when the answer was stored.
/// Blocking (it writes to the cache).
pub fn remember(state: &AppState, prepared: &Prepared, embedded: Option<&Embedded>) {
    let (Some(cache), Some(embedded)) = (&state.semantic, embedded) else { return };
    let key = prepared.plan().key();
    if prepared.plan().stores() && state.manager.contains(Kind::Response, key) {
        cache.remember(&state.manager, key, &prepared.identity().name, embedded, prepared.plan().ttl());
    }
}

/// `X-Inferno-Cache-Similarity` of a semantic hit (4 decimals).
pub fn similarity_header(headers: &mut HeaderMap, hit_similarity: f32) {
    if let Ok(value) = HeaderValue::from_str(&format!("{hit_similarity:.4}")) {
        headers.insert("x-inferno-cache-similarity", value);
    }
}
