//! Responses in and out of the cache as bytes: a stored record is `{"model", "model_fingerprint", "request",
//! "response"}` (the object `inferno cache import` reads and `export` writes); putting one hands the manager
//! the record with its per-key byte ranges, so the response's payload is deduplicated; a hit is the stored
//! response's bytes with a fresh `id`, `created` and `model` spliced in.

use std::time::Duration;

use serde_json::Value;

use super::envelope::{Fresh, per_key_ranges, response_range, splice_fresh};
use crate::cache::{CacheError, Kind, Manager};

/// The bytes of a response record: `{"model":…,"model_fingerprint":…,"request":…,"response":…}` with the
/// response's bytes as given (not re-serialised).
pub fn record_bytes(model: &str, fingerprint: &str, request: &Value, response: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(response.len() + 256);
    out.extend_from_slice(b"{\"model\":");
    // Writing into a Vec cannot fail, and a Value always serialises.
    let _ = serde_json::to_writer(&mut out, model);
    out.extend_from_slice(b",\"model_fingerprint\":");
    let _ = serde_json::to_writer(&mut out, fingerprint);
    out.extend_from_slice(b",\"request\":");
    let _ = serde_json::to_writer(&mut out, request);
    out.extend_from_slice(b",\"response\":");
    out.extend_from_slice(response);
    out.push(b'}');
    out
}

/// Stores `record` (JSON bytes, normally [`record_bytes`]) under `key`, its response payload deduplicated
/// apart from the per-key parts. A value that is not a record with a `response` is stored whole.
pub fn put(
    manager: &Manager,
    key: &str,
    name: &str,
    record: &[u8],
    ttl: Option<Duration>,
) -> Result<(), CacheError> {
    match per_key_ranges(record) {
        Some(per_key) => manager.put_split(Kind::Response, key, name, record, &per_key, ttl),
        None => manager.put(Kind::Response, key, name, record, ttl),
    }
}

/// The stored response under `key` as bytes, served as a new answer: a fresh `id` and `created`, and `model`
/// set to `model` when given; every other byte as stored. `None` when absent or not a response record.
pub fn get_fresh(manager: &Manager, key: &str, model: Option<&str>) -> Result<Option<Vec<u8>>, CacheError> {
    let Some(record) = manager.get(Kind::Response, key)? else { return Ok(None) };
    Ok(fresh_response(&record, &Fresh::now(model)))
}

/// The response of a stored `record` with `fresh` spliced in; `None` when `record` is not a response record.
pub fn fresh_response(record: &[u8], fresh: &Fresh<'_>) -> Option<Vec<u8>> {
    let range = response_range(record)?;
    splice_fresh(&record[range], fresh)
}

/// The response bytes of a stored record, exactly as stored.
pub fn stored_response(record: &[u8]) -> Option<&[u8]> {
    response_range(record).map(|range| &record[range])
}
