//! The audit of lookups (`cache.audit.log_reads`): for each completion or embedding request that looked up
//! the response cache, one `lookup` record — the request key, the kind, the tier that answered (`memory`,
//! `disk`, `remote`) or none for a miss, and who asked (client address, key id). Never prompt or answer
//! text: only the key, which is a hash.
//!
//! The lookup itself (`state.rs`) notes its outcome in a task-local slot that this middleware opens around
//! the request; the record is written once the handler has answered.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use parking_lot::Mutex;
use serde_json::json;

use super::state::AppState;
use crate::audit::{Outcome, Record, Who};

/// The last lookup of a request: its key and the tier that answered (`None`: a miss).
type Noted = Option<(String, Option<&'static str>)>;

tokio::task_local! {
    static LOOKUP: Arc<Mutex<Noted>>;
}

/// Notes the outcome of a lookup of `key` made for the request in progress (a no-op outside [`record`]).
/// A request that waited for another's generation looks up twice; the last lookup is the one recorded.
pub fn note(key: &str, tier: Option<&'static str>) {
    let _ = LOOKUP.try_with(|slot| *slot.lock() = Some((key.to_string(), tier)));
}

/// The middleware: with `log_reads`, writes the `lookup` record of the request's lookup, if it made one.
pub async fn record(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    if !state.audit.logs_reads() {
        return next.run(request).await;
    }
    let who = request.extensions().get::<Who>().cloned().unwrap_or_default();
    let path = request.uri().path().to_string();
    let slot = Arc::new(Mutex::new(None));
    let response = LOOKUP.scope(Arc::clone(&slot), next.run(request)).await;
    let noted = slot.lock().take();
    if let Some((key, tier)) = noted {
        let arguments =
            json!({"key": key, "kind": "response", "tier": tier, "hit": tier.is_some(), "path": path});
        let record = Record::now("lookup", arguments, Outcome::Ok, who);
        tokio::task::spawn_blocking(move || state.audit.write(&record));
    }
    response
}
