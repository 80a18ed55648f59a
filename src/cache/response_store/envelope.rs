//! Splitting a response body into the per-key envelope (`id`, `created`, `model`, `system_fingerprint`) and
//! the payload (everything else, canonical bytes), and joining them back, optionally as a fresh response.
//!
//! Two answers that differ only in their envelope give byte-identical payloads, which the dedup store then
//! keeps once. This file does not store anything or decide what is cached.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use super::ResponseError;
use super::canonical;
use crate::cache::dedup::hash::encode_hex;

/// The response fields kept per key rather than in the shared payload.
pub const ENVELOPE_FIELDS: [&str; 4] = ["created", "id", "model", "system_fingerprint"];

/// The per-key fields of one response, as found (absent fields stay absent).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Envelope {
    fields: Map<String, Value>,
}

impl Envelope {
    /// Whether no envelope field was found (a non-object body, or an object with none of them).
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// One envelope field, if the response had it.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.fields.get(field)
    }

    /// The stored form: a canonical JSON object of the fields present.
    pub fn to_bytes(&self) -> Vec<u8> {
        canonical::to_vec(&Value::Object(self.fields.clone()))
    }

    /// Reads [`Envelope::to_bytes`] output.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ResponseError> {
        let fields: Map<String, Value> = serde_json::from_slice(bytes).map_err(ResponseError::Envelope)?;
        match fields.keys().find(|k| !ENVELOPE_FIELDS.contains(&k.as_str())) {
            Some(field) => Err(ResponseError::UnknownEnvelopeField { field: field.clone() }),
            None => Ok(Self { fields }),
        }
    }

    fn take_from(object: &mut Map<String, Value>) -> Self {
        let fields =
            ENVELOPE_FIELDS.iter().filter_map(|&f| object.remove(f).map(|v| (f.to_owned(), v))).collect();
        Self { fields }
    }

    fn of(object: &Map<String, Value>) -> Self {
        let fields = ENVELOPE_FIELDS
            .iter()
            .filter_map(|&f| object.get(f).map(|v| (f.to_owned(), v.clone())))
            .collect();
        Self { fields }
    }

    fn apply_to(&self, object: &mut Map<String, Value>) {
        for (field, value) in &self.fields {
            object.insert(field.clone(), value.clone());
        }
    }
}

/// The shared part of a response: canonical JSON bytes (compact, keys sorted).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Payload(Vec<u8>);

impl Payload {
    /// The bytes to store and deduplicate.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// Splits a response body into its envelope and its payload.
///
/// - An object loses the [`ENVELOPE_FIELDS`] it has to the envelope; the rest is the payload.
/// - A non-empty array of objects whose envelope fields are all identical (a streamed
///   `chat.completion.chunk` list) gives that one envelope and strips it from every element.
/// - Anything else is payload only, with an empty envelope.
///
/// [`join_response`] with `fresh = false` rebuilds `body` exactly.
pub fn split_response(body: &Value) -> (Envelope, Payload) {
    match body {
        Value::Object(object) => {
            // The payload is written straight from `object` less the envelope fields, without copying it.
            let envelope = Envelope::of(object);
            let mut payload = Vec::new();
            let rest = object.iter().filter(|(k, _)| !ENVELOPE_FIELDS.contains(&k.as_str()));
            canonical::write_object(rest, &mut payload);
            (envelope, Payload(payload))
        }
        Value::Array(items) => match shared_envelope(items) {
            Some(envelope) => {
                let rest: Vec<Value> = items
                    .iter()
                    .map(|item| match item {
                        Value::Object(object) => {
                            let mut object = object.clone();
                            Envelope::take_from(&mut object);
                            Value::Object(object)
                        }
                        other => other.clone(),
                    })
                    .collect();
                (envelope, Payload(canonical::to_vec(&Value::Array(rest))))
            }
            None => (Envelope::default(), Payload(canonical::to_vec(body))),
        },
        _ => (Envelope::default(), Payload(canonical::to_vec(body))),
    }
}

/// The envelope every element shares, if the array is a non-empty list of objects that agree on it.
fn shared_envelope(items: &[Value]) -> Option<Envelope> {
    let mut objects = items.iter().map(Value::as_object);
    let first = Envelope::of(objects.next()??);
    for object in objects {
        if Envelope::of(object?) != first {
            return None;
        }
    }
    Some(first)
}

/// Rebuilds a response body from its envelope and stored payload bytes.
///
/// With `fresh = true` it looks like a new answer: a present `id` is replaced by a new unique one
/// (`cmpl-` + 24 hex digits for `text_completion` payloads, `chatcmpl-` + 24 hex digits otherwise) and a
/// present `created` by the current unix time in seconds. `model` and `system_fingerprint` are kept.
/// Fails when the payload bytes are not JSON.
pub fn join_response(envelope: &Envelope, payload: &[u8], fresh: bool) -> Result<Value, ResponseError> {
    let mut body: Value = serde_json::from_slice(payload).map_err(ResponseError::Payload)?;
    let mut envelope = envelope.clone();
    if fresh {
        refresh(&mut envelope, &body);
    }
    if envelope.is_empty() {
        return Ok(body);
    }
    match &mut body {
        Value::Object(object) => envelope.apply_to(object),
        Value::Array(items) => {
            for item in items.iter_mut().filter_map(Value::as_object_mut) {
                envelope.apply_to(item);
            }
        }
        _ => {}
    }
    Ok(body)
}

fn refresh(envelope: &mut Envelope, body: &Value) {
    let first = match body {
        Value::Array(items) => items.first(),
        other => Some(other),
    };
    let object = first.and_then(|v| v.get("object")).and_then(Value::as_str).unwrap_or("");
    let prefix = if object.starts_with("text_completion") { "cmpl-" } else { "chatcmpl-" };
    if let Some(id) = envelope.fields.get_mut("id") {
        *id = Value::String(format!("{prefix}{}", unique_hex()));
    }
    if let Some(created) = envelope.fields.get_mut("created") {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        *created = Value::from(now);
    }
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
mod tests {
    use serde_json::json;

    use super::*;

    fn completion(id: &str, created: u64, model: &str, fingerprint: &str) -> Value {
        json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "system_fingerprint": fingerprint,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."},
                         "finish_reason": "stop", "logprobs": null}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14}
        })
    }

    fn join(envelope: &Envelope, payload: &Payload, fresh: bool) -> Value {
        join_response(envelope, payload.as_bytes(), fresh).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn split_then_join_round_trips() {
        let bodies = [
            completion("chatcmpl-abc", 1_700_000_000, "llama-3-8b", "fp_1"),
            json!({"object": "text_completion", "choices": [{"text": "x", "index": 0}], "id": "cmpl-1"}),
            json!({"no_envelope": [1, 2.5, "three"]}),
            json!(["plain", 1]),
            json!("just a string"),
            json!(null),
        ];
        for body in bodies {
            let (envelope, payload) = split_response(&body);
            assert_eq!(join(&envelope, &payload, false), body);
            let stored = Envelope::from_bytes(&envelope.to_bytes()).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(stored, envelope);
        }
    }

    #[test]
    fn envelope_holds_exactly_the_per_key_fields() {
        let (envelope, payload) = split_response(&completion("chatcmpl-abc", 1, "m", "fp"));
        assert_eq!(envelope.get("id"), Some(&json!("chatcmpl-abc")));
        assert_eq!(
            envelope.to_bytes(),
            br#"{"created":1,"id":"chatcmpl-abc","model":"m","system_fingerprint":"fp"}"#
        );
        let text = String::from_utf8_lossy(payload.as_bytes()).into_owned();
        assert!(
            text.starts_with(r#"{"choices":[{"finish_reason":"stop","index":0,"logprobs":null,"#),
            "{text}"
        );
        for field in ENVELOPE_FIELDS {
            assert!(!text.contains(&format!("\"{field}\"")), "{field} in {text}");
        }
    }

    #[test]
    fn responses_differing_only_in_envelope_share_payload_bytes() {
        let (_, a) = split_response(&completion("chatcmpl-a", 1_700_000_000, "llama", "fp_1"));
        let (_, b) = split_response(&completion("chatcmpl-b", 1_800_000_000, "llama-alias", "fp_2"));
        assert_eq!(a, b);
        let mut other = completion("chatcmpl-a", 1_700_000_000, "llama", "fp_1");
        other["choices"][0]["message"]["content"] = json!("Lyon.");
        assert_ne!(split_response(&other).1, a);
    }

    #[test]
    fn chunk_lists_share_one_envelope() {
        let chunk = |id: &str, delta: &str| {
            json!({"id": id, "object": "chat.completion.chunk", "created": 5, "model": "m",
                   "system_fingerprint": "fp", "choices": [{"index": 0, "delta": {"content": delta}}]})
        };
        let list = json!([chunk("chatcmpl-x", "Par"), chunk("chatcmpl-x", "is.")]);
        let (envelope, payload) = split_response(&list);
        assert_eq!(envelope.get("id"), Some(&json!("chatcmpl-x")));
        assert!(!String::from_utf8_lossy(payload.as_bytes()).contains("chatcmpl-x"));
        assert_eq!(join(&envelope, &payload, false), list);
        let other = json!([chunk("chatcmpl-y", "Par"), chunk("chatcmpl-y", "is.")]);
        assert_eq!(split_response(&other).1, payload);

        let fresh = join(&envelope, &payload, true);
        assert_ne!(fresh[0]["id"], json!("chatcmpl-x"));
        assert_eq!(fresh[0]["id"], fresh[1]["id"]);

        // Elements that disagree on the envelope are kept whole.
        let mixed = json!([chunk("chatcmpl-x", "Par"), chunk("chatcmpl-z", "is.")]);
        let (envelope, payload) = split_response(&mixed);
        assert!(envelope.is_empty());
        assert_eq!(join(&envelope, &payload, false), mixed);
    }

    #[test]
    fn fresh_join_gives_a_new_id_and_the_current_time() {
        let (envelope, payload) = split_response(&completion("chatcmpl-abc", 1_700_000_000, "m", "fp"));
        let before = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let a = join(&envelope, &payload, true);
        let b = join(&envelope, &payload, true);
        let after = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let id = a["id"].as_str().unwrap_or_default();
        assert!(id.starts_with("chatcmpl-") && id.len() == "chatcmpl-".len() + 24, "{id}");
        assert!(id["chatcmpl-".len()..].bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a["id"], json!("chatcmpl-abc"));
        assert_ne!(a["id"], b["id"]);
        let created = a["created"].as_u64().unwrap_or_default();
        assert!((before..=after).contains(&created), "{created}");
        assert_eq!(a["model"], json!("m"));
        assert_eq!(a["system_fingerprint"], json!("fp"));
        assert_eq!(a["choices"], completion("x", 0, "m", "fp")["choices"]);

        let text = json!({"id": "cmpl-1", "object": "text_completion", "created": 1, "choices": []});
        let (envelope, payload) = split_response(&text);
        let fresh = join(&envelope, &payload, true);
        assert!(fresh["id"].as_str().is_some_and(|id| id.starts_with("cmpl-")), "{fresh}");
    }

    #[test]
    fn corrupt_stored_bytes_are_errors() {
        assert!(matches!(
            join_response(&Envelope::default(), b"{not json", false),
            Err(ResponseError::Payload(_))
        ));
        assert!(matches!(Envelope::from_bytes(b"[1]"), Err(ResponseError::Envelope(_))));
        assert!(matches!(
            Envelope::from_bytes(br#"{"choices":[]}"#),
            Err(ResponseError::UnknownEnvelopeField { .. })
        ));
    }
}
