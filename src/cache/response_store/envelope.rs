//! The envelope of a stored response, on bytes: which byte ranges of a stored record belong to its key alone
//! (everything but the response, and the response's `id`, `created`, `model`, `system_fingerprint`) so that
//! the rest, the payload, is shared; and a hit's response with a fresh `id`, `created` and `model` spliced
//! into the stored bytes. No `serde_json::Value` is built on either path.
//!
//! Two answers that differ only in their envelope fields give byte-identical payloads, which the dedup store
//! keeps once. Everything else in a response (key order, spacing, fields inferno does not know) comes back as
//! stored.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::scan::{self, Member};
use crate::cache::dedup::hash::encode_hex;

/// The response fields kept per key rather than in the shared payload.
pub const ENVELOPE_FIELDS: [&str; 4] = ["created", "id", "model", "system_fingerprint"];

fn is_envelope(bytes: &[u8], member: &Member) -> bool {
    ENVELOPE_FIELDS.iter().any(|f| f.as_bytes() == &bytes[member.key.clone()])
}

/// The `response` member of a stored record (a JSON object with a `response` field), as its value's range.
pub fn response_range(record: &[u8]) -> Option<Range<usize>> {
    let (members, end) = scan::members(record, scan::skip_ws(record, 0))?;
    if scan::skip_ws(record, end) != record.len() {
        return None;
    }
    scan::find(record, &members, "response").map(|m| m.value.clone())
}

/// The byte ranges of `record` that belong to its key: everything before and after the response value and,
/// when the response is an object, its envelope members (each with one neighbouring comma, so the payload
/// left over is itself a JSON object). `None` when `record` is not an object with a `response`.
pub fn per_key_ranges(record: &[u8]) -> Option<Vec<Range<usize>>> {
    let response = response_range(record)?;
    let mut ranges = Vec::with_capacity(6);
    ranges.push(0..response.start);
    if record[response.start] == b'{'
        && let Some((members, _)) = scan::members(record, response.start)
    {
        ranges.extend(envelope_cuts(record, &members));
    }
    ranges.push(response.end..record.len());
    Some(ranges)
}

/// The ranges that cut the envelope members out of an object's `members`: a run of envelope members is cut
/// from its first member to the next kept member, or, when the run ends the object, from the end of the kept
/// member before it.
fn envelope_cuts(bytes: &[u8], members: &[Member]) -> Vec<Range<usize>> {
    let mut cuts = Vec::new();
    let mut i = 0;
    while i < members.len() {
        if !is_envelope(bytes, &members[i]) {
            i += 1;
            continue;
        }
        let first = i;
        while i < members.len() && is_envelope(bytes, &members[i]) {
            i += 1;
        }
        let cut = match (members.get(i), first.checked_sub(1)) {
            (Some(next), _) => members[first].span.start..next.span.start,
            (None, Some(before)) => members[before].span.end..members[i - 1].span.end,
            (None, None) => members[first].span.start..members[i - 1].span.end,
        };
        cuts.push(cut);
    }
    cuts
}

/// What a hit puts into the stored response.
#[derive(Clone, Debug)]
pub struct Fresh<'a> {
    /// Replaces a present `id` (with `cmpl-` for `text_completion` responses, `chatcmpl-` otherwise).
    pub id_hex: String,
    /// Replaces a present `created` (unix seconds).
    pub created: u64,
    /// Replaces `model`, or is added when the response has none; `None` keeps the stored one.
    pub model: Option<&'a str>,
}

impl<'a> Fresh<'a> {
    /// A new id and the current time; `model` as given.
    pub fn now(model: Option<&'a str>) -> Self {
        let created = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Self { id_hex: unique_hex(), created, model }
    }
}

/// The stored response `response` (JSON bytes) with `fresh` spliced in: into the object, or into every
/// object of an array (one id for all, as a streamed chunk list shares one). Anything else is copied as is.
/// `None` when the bytes do not scan as JSON.
pub fn splice_fresh(response: &[u8], fresh: &Fresh<'_>) -> Option<Vec<u8>> {
    let start = scan::skip_ws(response, 0);
    let mut out = Vec::with_capacity(response.len() + 64);
    match response.get(start) {
        Some(b'{') => {
            let (members, end) = scan::members(response, start)?;
            let prefix = id_prefix(response, &members);
            splice_object(response, start..end, &members, fresh, prefix, &mut out);
        }
        Some(b'[') => {
            let (items, _) = scan::elements(response, start)?;
            let mut prefix = None;
            let mut at = 0;
            for item in items {
                if response[item.start] != b'{' {
                    continue;
                }
                let (members, end) = scan::members(response, item.start)?;
                let prefix = *prefix.get_or_insert_with(|| id_prefix(response, &members));
                out.extend_from_slice(&response[at..item.start]);
                splice_object(response, item.start..end, &members, fresh, prefix, &mut out);
                at = end;
            }
            out.extend_from_slice(&response[at..]);
        }
        _ => out.extend_from_slice(response),
    }
    Some(out)
}

fn id_prefix(bytes: &[u8], members: &[Member]) -> &'static str {
    match scan::find(bytes, members, "object") {
        Some(m) if bytes[m.value.clone()].starts_with(b"\"text_completion") => "cmpl-",
        _ => "chatcmpl-",
    }
}

/// Writes the object at `span` with its `id`, `created` and `model` values replaced (and `model` added at the
/// end when missing and `fresh.model` is set).
fn splice_object(
    bytes: &[u8],
    span: Range<usize>,
    members: &[Member],
    fresh: &Fresh<'_>,
    prefix: &str,
    out: &mut Vec<u8>,
) {
    let mut at = span.start;
    let mut has_model = false;
    for member in members {
        let key = &bytes[member.key.clone()];
        let replacement = match key {
            b"id" => Replacement::Id,
            b"created" => Replacement::Created,
            b"model" => {
                has_model = true;
                match fresh.model {
                    Some(model) => Replacement::Model(model),
                    None => continue,
                }
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[at..member.value.start]);
        match replacement {
            Replacement::Id => {
                out.push(b'"');
                out.extend_from_slice(prefix.as_bytes());
                out.extend_from_slice(fresh.id_hex.as_bytes());
                out.push(b'"');
            }
            Replacement::Created => out.extend_from_slice(fresh.created.to_string().as_bytes()),
            Replacement::Model(model) => write_json_string(model, out),
        }
        at = member.value.end;
    }
    match fresh.model {
        Some(model) if !has_model => {
            // Up to the closing brace, then `,"model":...}` (no comma in an empty object).
            let close = span.end - 1;
            out.extend_from_slice(&bytes[at..close]);
            if !members.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(b"\"model\":");
            write_json_string(model, out);
            out.push(b'}');
        }
        _ => out.extend_from_slice(&bytes[at..span.end]),
    }
}

enum Replacement<'a> {
    Id,
    Created,
    Model(&'a str),
}

fn write_json_string(s: &str, out: &mut Vec<u8>) {
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// 24 hex digits (96 bits) that no two calls are expected to share.
///
/// A process-wide counter, the time in nanoseconds, the process id and std's per-process random hash keys
/// are hashed with BLAKE3 and cut to 96 bits: distinct within a process and across processes.
pub(crate) fn unique_hex() -> String {
    use std::hash::BuildHasher;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let random = std::collections::hash_map::RandomState::new().hash_one(n);
    let mut hasher = blake3::Hasher::new();
    hasher.update(&n.to_le_bytes());
    hasher.update(&nanos.to_le_bytes());
    hasher.update(&std::process::id().to_le_bytes());
    hasher.update(&random.to_le_bytes());
    encode_hex(&hasher.finalize().as_bytes()[..12])
}

#[cfg(test)]
mod tests;
