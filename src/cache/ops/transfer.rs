//! Import and export of response entries as JSONL: one JSON object per line,
//! `{"model": "...", "model_fingerprint": "...", "request": {...}, "response": {...}, "ttl": ...}`.
//!
//! Each line is keyed exactly as the server keys a request (`response::response_key` over the canonical
//! request and the model identity), so an imported answer is a cache hit for the same request later.
//! `model_fingerprint` is optional (empty when absent); `ttl` is optional, seconds or a duration string.

use std::io::{BufRead, Write};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::cache::clock::now_ms;
use crate::cache::kind::Kind;
use crate::cache::manager::{CacheError, Manager};
use crate::cache::response_store::{self, CanonicalRequest, Endpoint, ModelIdentity, response_key};
use crate::config::units::{SECOND, parse_duration};

/// What [`import`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Lines stored under a key the cache did not have.
    pub new: u64,
    /// Lines whose key the cache already had (left unchanged).
    pub duplicate: u64,
    /// Lines refused, with their 1-based line number and the reason.
    pub rejected: Vec<Rejected>,
    /// Lines stored unbound (empty model fingerprint) because their model is not a file in `models.dir`:
    /// `serve` does not hit them.
    pub unbound: u64,
    /// The models those lines name.
    pub unbound_models: std::collections::BTreeSet<String>,
}

/// One refused line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rejected {
    /// 1-based line number.
    pub line: u64,
    /// Why it was refused.
    pub reason: String,
}

/// Errors that stop an import or export (a bad line is not one: it is reported and skipped).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// Reading the input or writing the output failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The cache failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// Response entries are not cached (`cache.response.enabled = false`): an import would store nothing and
    /// an export would read nothing, so both refuse rather than report a count that is not true.
    #[error(
        "response caching is disabled (cache.response.enabled = false), so nothing can be imported or exported; \
         turn it on with `inferno cache enable --type response`"
    )]
    ResponsesDisabled,
}

/// A parsed, valid line.
struct Line {
    key: String,
    model: String,
    record: Value,
    ttl: Option<Duration>,
}

/// The key a request gets for `model` (name and file fingerprint), as the server computes it.
pub fn request_key(manager: &Manager, model: &ModelIdentity, request: &Value) -> Result<String, String> {
    let Some(endpoint) = Endpoint::of_request(request) else {
        return Err(
            "`request` has none of `messages` (chat), `prompt` (completion) and `input` (embedding)".into()
        );
    };
    let canonical = CanonicalRequest::new(endpoint, request, model).map_err(|e| e.to_string())?;
    Ok(response_key(&canonical, manager.config().response.hash_algorithm))
}

/// How `import` binds a line without `model_fingerprint` to a model file: the model's fingerprint, or why
/// there is none (the model is not in `models.dir`).
pub type Binder<'a> = dyn FnMut(&str) -> Result<String, String> + 'a;

/// Whether a line's model was bound to a file.
enum Bound {
    /// It carried its fingerprint, or its model was found.
    Yes,
    /// Not found; stored unbound unless strict.
    No(String),
}

fn parse_line(
    manager: &Manager,
    text: &str,
    bind: &mut Binder<'_>,
    strict: bool,
) -> Result<(Line, Bound), String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(mut object) = value else { return Err("not a JSON object".into()) };
    let model = match object.get("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => m.clone(),
        _ => return Err("`model` must be a non-empty string".into()),
    };
    let (fingerprint, bound) = match object.get("model_fingerprint") {
        None | Some(Value::Null) => match bind(&model) {
            Ok(fingerprint) => (fingerprint, Bound::Yes),
            Err(why) if strict => return Err(format!("{why} (--strict refuses lines it cannot bind)")),
            Err(why) => (String::new(), Bound::No(why)),
        },
        Some(Value::String(f)) => (f.clone(), Bound::Yes),
        Some(_) => return Err("`model_fingerprint` must be a string".into()),
    };
    if !fingerprint.is_empty() {
        object.insert("model_fingerprint".into(), Value::String(fingerprint.clone()));
    }
    if !object.get("request").is_some_and(Value::is_object) {
        return Err("`request` must be a JSON object".into());
    }
    if !object.get("response").is_some_and(Value::is_object) {
        return Err("`response` must be a JSON object".into());
    }
    let ttl = match object.remove("ttl") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_f64() {
            Some(secs) if secs.is_finite() && secs > 0.0 => Some(Duration::from_secs_f64(secs)),
            _ => return Err(format!("`ttl` {n} must be a positive number of seconds")),
        },
        Some(Value::String(s)) => Some(parse_duration(&s, SECOND).map_err(|e| format!("`ttl`: {e}"))?),
        Some(_) => return Err("`ttl` must be seconds or a duration string such as \"1h\"".into()),
    };
    let identity = ModelIdentity { name: model.clone(), fingerprint };
    let key = request_key(manager, &identity, &object["request"])?;
    let known: Map<String, Value> = object
        .into_iter()
        .filter(|(k, _)| matches!(k.as_str(), "model" | "model_fingerprint" | "request" | "response"))
        .collect();
    Ok((Line { key, model, record: Value::Object(known), ttl }, bound))
}

/// Reads JSONL from `input` into the cache; `progress` is called with the bytes read so far. A line without
/// `model_fingerprint` is keyed with the fingerprint `bind` finds for its model (as `serve` keys it); when
/// there is none it is stored unbound and counted, or refused with `strict`. Blank lines are skipped; bad
/// lines are reported in the result, not fatal.
pub fn import(
    manager: &Manager,
    input: impl BufRead,
    mut progress: impl FnMut(u64),
    bind: &mut Binder<'_>,
    strict: bool,
) -> Result<ImportReport, TransferError> {
    if !manager.is_enabled(Kind::Response) {
        return Err(TransferError::ResponsesDisabled);
    }
    let mut report = ImportReport::default();
    let mut read = 0u64;
    for (index, line) in input.lines().enumerate() {
        let line = line?;
        read += line.len() as u64 + 1;
        progress(read);
        if line.trim().is_empty() {
            continue;
        }
        let number = index as u64 + 1;
        match parse_line(manager, &line, bind, strict) {
            Err(reason) => report.rejected.push(Rejected { line: number, reason }),
            Ok((parsed, bound)) => {
                if let Bound::No(why) = bound {
                    report.unbound += 1;
                    if report.unbound_models.insert(parsed.model.clone()) {
                        tracing::warn!("line {number}: {why}; stored unbound, so `serve` will not hit it");
                    }
                }
                if manager.contains(Kind::Response, &parsed.key) {
                    report.duplicate += 1;
                    continue;
                }
                let bytes = serde_json::to_vec(&parsed.record).map_err(std::io::Error::other)?;
                response_store::put(manager, &parsed.key, &parsed.model, &bytes, parsed.ttl)?;
                report.new += 1;
            }
        }
    }
    manager.flush()?;
    Ok(report)
}

/// Writes every live response entry to `output` as JSONL (with the remaining `ttl` in seconds when the entry
/// expires); returns how many lines were written. `progress` is called with (done, total).
pub fn export(
    manager: &Manager,
    mut output: impl Write,
    mut progress: impl FnMut(u64, u64),
) -> Result<u64, TransferError> {
    if !manager.is_enabled(Kind::Response) {
        return Err(TransferError::ResponsesDisabled);
    }
    let entries = manager.entries(Some(Kind::Response));
    let total = entries.len() as u64;
    let mut written = 0;
    for (done, entry) in entries.iter().enumerate() {
        progress(done as u64 + 1, total);
        let Some(bytes) = manager.get(Kind::Response, &entry.key)? else { continue };
        let Ok(Value::Object(mut record)) = serde_json::from_slice::<Value>(&bytes) else { continue };
        if let Some(left) = entry.expires.remaining(now_ms()) {
            record.insert("ttl".into(), Value::from((left.as_millis() as u64).div_ceil(1000)));
        }
        serde_json::to_writer(&mut output, &record).map_err(std::io::Error::other)?;
        output.write_all(b"\n")?;
        written += 1;
    }
    output.flush()?;
    Ok(written)
}
