//! The response cache key: an OpenAI request body plus the model's identity, reduced to canonical bytes
//! and hashed.
//!
//! This file owns which request fields the key covers and how each is normalised (the rules are listed in
//! `docs/keys.md`, and a golden test pins the bytes). It does not validate requests or fingerprint models.

use serde_json::{Map, Value};

use super::ResponseError;
use super::canonical;
use crate::cache::dedup::hash::ContentHasher;
use crate::config::HashAlgorithm;

/// Starts every canonical request; bump it when the canonical form changes, so old keys simply miss.
pub const KEY_PREFIX: &str = "inferno-key-v1\n";

/// Request fields left out of the key because they do not change the generated output.
///
/// `model` is here because the model's identity comes from [`ModelIdentity`], not from what the user typed.
/// Of `cache`, only `cache.namespace` counts (see [`namespace_of`]).
pub const EXCLUDED_FIELDS: [&str; 6] = ["cache", "metadata", "model", "stream", "stream_options", "user"];

/// Request fields read as plain numbers: `1` and `1.0` give the same key.
pub const NUMERIC_FIELDS: [&str; 12] = [
    "frequency_penalty",
    "max_completion_tokens",
    "max_tokens",
    "min_p",
    "n",
    "presence_penalty",
    "repeat_penalty",
    "seed",
    "temperature",
    "top_k",
    "top_logprobs",
    "top_p",
];

/// Which OpenAI endpoint a request came in on; requests to different endpoints never share a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `/v1/chat/completions`.
    Chat,
    /// `/v1/completions`.
    Completion,
    /// `/v1/embeddings`.
    Embedding,
}

impl Endpoint {
    /// The name written into the canonical form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Completion => "completion",
            Self::Embedding => "embedding",
        }
    }

    /// The endpoint a request body is for, judged by its fields: `messages` (chat), else `prompt`
    /// (completion), else `input` (embedding); `None` when it has none of them.
    pub fn of_request(body: &Value) -> Option<Self> {
        if body.get("messages").is_some() {
            Some(Self::Chat)
        } else if body.get("prompt").is_some() {
            Some(Self::Completion)
        } else if body.get("input").is_some() {
            Some(Self::Embedding)
        } else {
            None
        }
    }
}

/// What model answers: its configured name and the fingerprint of its file (computed by the model layer).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModelIdentity {
    /// The model's name as inferno knows it.
    pub name: String,
    /// A fingerprint of the model file; a changed file gives new keys.
    pub fingerprint: String,
}

/// A request in canonical form: [`KEY_PREFIX`] followed by compact, key-sorted JSON.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CanonicalRequest {
    bytes: Vec<u8>,
}

impl CanonicalRequest {
    /// Canonicalises `body` (an OpenAI request object) as sent to `endpoint` and answered by `model`.
    ///
    /// Fails only when `body` is not a JSON object.
    pub fn new(endpoint: Endpoint, body: &Value, model: &ModelIdentity) -> Result<Self, ResponseError> {
        let request = body.as_object().ok_or(ResponseError::RequestNotObject { found: kind_of(body) })?;
        let mut fields = Map::new();
        for (name, value) in request {
            if value.is_null() || EXCLUDED_FIELDS.contains(&name.as_str()) {
                continue;
            }
            fields.insert(name.clone(), normalize_field(name, value));
        }
        let mut identity = Map::new();
        identity.insert("fingerprint".into(), Value::String(model.fingerprint.clone()));
        identity.insert("name".into(), Value::String(model.name.clone()));
        let mut root = Map::new();
        root.insert("endpoint".into(), Value::String(endpoint.as_str().into()));
        root.insert("model".into(), Value::Object(identity));
        if let Some(namespace) = namespace_of(body) {
            root.insert("namespace".into(), Value::String(namespace.into()));
        }
        root.insert("request".into(), Value::Object(fields));

        let mut bytes = KEY_PREFIX.as_bytes().to_vec();
        canonical::write(&Value::Object(root), &mut bytes);
        Ok(Self { bytes })
    }

    /// The canonical bytes that [`response_key`] hashes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// The canonical bytes of a request; shorthand for [`CanonicalRequest::new`] then [`CanonicalRequest::as_bytes`].
pub fn canonical_request(
    endpoint: Endpoint,
    body: &Value,
    model: &ModelIdentity,
) -> Result<Vec<u8>, ResponseError> {
    CanonicalRequest::new(endpoint, body, model).map(|req| req.bytes)
}

/// The cache key of a request: lower-case hex of its canonical bytes hashed with `algo`.
///
/// BLAKE3 gives 64 hex characters; xxhash gives xxh3-128 with seed 0, 32 hex characters.
pub fn response_key(req: &CanonicalRequest, algo: HashAlgorithm) -> String {
    ContentHasher::for_algorithm(algo).hash(req.as_bytes()).to_hex()
}

/// The cache namespace a request names in `cache.namespace` (LiteLLM's field), when it is a non-empty string.
///
/// Requests in different namespaces never share a key; a request without one is in the default namespace,
/// whose canonical form has no `namespace` field at all.
pub fn namespace_of(body: &Value) -> Option<&str> {
    body.get("cache")?.get("namespace")?.as_str().filter(|ns| !ns.is_empty())
}

/// Whether a request asks for reproducible output: `temperature` is 0 or a `seed` is given.
///
/// The server caches only such requests unless told otherwise.
pub fn is_deterministic(body: &Value) -> bool {
    let zero_temperature = body.get("temperature").and_then(Value::as_f64) == Some(0.0);
    let seeded = body.get("seed").is_some_and(Value::is_number);
    zero_temperature || seeded
}

fn normalize_field(name: &str, value: &Value) -> Value {
    match (name, value) {
        (_, Value::Number(n)) if NUMERIC_FIELDS.contains(&name) => {
            Value::Number(canonical::normalize_number(n))
        }
        ("stop", Value::String(s)) => Value::Array(vec![Value::String(s.clone())]),
        ("logit_bias", Value::Object(bias)) => Value::Object(
            bias.iter()
                .map(|(token, v)| match v {
                    Value::Number(n) => (token.clone(), Value::Number(canonical::normalize_number(n))),
                    other => (token.clone(), other.clone()),
                })
                .collect(),
        ),
        ("messages", Value::Array(messages)) => {
            Value::Array(messages.iter().map(normalize_message).collect())
        }
        _ => value.clone(),
    }
}

/// A message object loses its null fields (`"name": null` is the same as no name); nothing else changes.
fn normalize_message(message: &Value) -> Value {
    match message {
        Value::Object(fields) => Value::Object(
            fields.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), v.clone())).collect(),
        ),
        other => other.clone(),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn model() -> ModelIdentity {
        ModelIdentity { name: "llama-3-8b".into(), fingerprint: "gguf-3f2a9c".into() }
    }

    fn key_of(body: &Value) -> String {
        key_with(body, &model())
    }

    fn key_with(body: &Value, model: &ModelIdentity) -> String {
        match CanonicalRequest::new(Endpoint::Chat, body, model) {
            Ok(req) => response_key(&req, HashAlgorithm::Blake3),
            Err(e) => panic!("{e}"),
        }
    }

    fn base() -> Value {
        json!({
            "model": "llama-3-8b",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Capital of France?", "name": null}
            ],
            "temperature": 0.0,
            "max_tokens": 16,
            "stop": "\n",
            "seed": 42,
            "stream": true,
            "user": "alice"
        })
    }

    /// The worked example of `docs/keys.md`. If this fails, the key format changed: bump `KEY_PREFIX`
    /// and update the doc, rather than editing the expected values alone.
    #[test]
    fn golden_canonical_bytes_and_key() {
        let bytes = canonical_request(Endpoint::Chat, &base(), &model()).unwrap_or_default();
        let expected = concat!(
            "inferno-key-v1\n",
            r#"{"endpoint":"chat","model":{"fingerprint":"gguf-3f2a9c","name":"llama-3-8b"},"#,
            r#""request":{"max_tokens":16,"messages":[{"content":"You are terse.","role":"system"},"#,
            r#"{"content":"Capital of France?","role":"user"}],"seed":42,"stop":["\n"],"temperature":0}}"#,
        );
        assert_eq!(String::from_utf8_lossy(&bytes), expected);
        assert_eq!(key_of(&base()), "1ca1df69cc9709a90a7ae16e6d3c3fb0a2751bcc8c0e863aa2ab1123ed4ef036");
        let req = CanonicalRequest::new(Endpoint::Chat, &base(), &model()).ok();
        let xxh = req.map(|r| response_key(&r, HashAlgorithm::Xxhash));
        assert_eq!(xxh.as_deref(), Some("96beae9d7d094232d06c83a177e12fb9"));
    }

    #[test]
    fn key_ignores_order_whitespace_number_spelling_and_nulls() {
        let text = r#"{ "seed" : 42.0, "stop" : ["\n"], "stream": false, "max_tokens": 1.6e1,
            "temperature": 0, "top_p": null, "model": "other-alias",
            "messages": [ {"content": "You are terse.", "role": "system"},
                          {"role": "user", "content": "Capital of France?"} ] }"#;
        let reordered: Value = serde_json::from_str(text).unwrap_or_default();
        assert_eq!(key_of(&reordered), key_of(&base()));
    }

    #[test]
    fn key_changes_with_every_output_field() {
        let changes: Vec<(&str, Value)> = vec![
            ("temperature", json!(0.7)),
            ("top_p", json!(0.9)),
            ("top_k", json!(40)),
            ("min_p", json!(0.05)),
            ("max_tokens", json!(17)),
            ("max_completion_tokens", json!(16)),
            ("stop", json!(["\n", "."])),
            ("seed", json!(43)),
            ("presence_penalty", json!(0.5)),
            ("frequency_penalty", json!(0.5)),
            ("repeat_penalty", json!(1.1)),
            ("logit_bias", json!({"50256": -100})),
            ("n", json!(2)),
            ("response_format", json!({"type": "json_object"})),
            ("tools", json!([{"type": "function", "function": {"name": "f"}}])),
            ("tool_choice", json!("none")),
            ("logprobs", json!(true)),
            ("top_logprobs", json!(2)),
            ("grammar", json!("root ::= \"Paris\"")),
            ("some_future_field", json!(1)),
        ];
        let base_key = key_of(&base());
        for (field, value) in changes {
            let mut body = base();
            body[field] = value;
            assert_ne!(key_of(&body), base_key, "{field}");
        }
        let message_changes = [
            json!({"role": "user", "content": "Capital of Spain?"}),
            json!({"role": "assistant", "content": "Capital of France?"}),
            json!({"role": "user", "content": "Capital of France?", "name": "bob"}),
            json!({"role": "user", "content": [{"type": "text", "text": "Capital of France?"}]}),
        ];
        for message in message_changes {
            let mut body = base();
            body["messages"][1] = message.clone();
            assert_ne!(key_of(&body), base_key, "{message}");
        }
        let refitted = ModelIdentity { fingerprint: "gguf-000000".into(), ..model() };
        assert_ne!(key_with(&base(), &refitted), base_key);
        let renamed = ModelIdentity { name: "llama-3-8b-q4".into(), ..model() };
        assert_ne!(key_with(&base(), &renamed), base_key);
        let completion = CanonicalRequest::new(Endpoint::Completion, &base(), &model()).ok();
        assert_ne!(completion.map(|r| response_key(&r, HashAlgorithm::Blake3)), Some(base_key));
    }

    #[test]
    fn embedding_requests_have_their_own_endpoint() {
        let body = json!({"model": "m", "input": ["a", "b"], "encoding_format": "base64", "user": "u"});
        let bytes = canonical_request(Endpoint::Embedding, &body, &model()).unwrap_or_default();
        let expected = concat!(
            "inferno-key-v1\n",
            r#"{"endpoint":"embedding","model":{"fingerprint":"gguf-3f2a9c","name":"llama-3-8b"},"#,
            r#""request":{"encoding_format":"base64","input":["a","b"]}}"#,
        );
        assert_eq!(String::from_utf8_lossy(&bytes), expected);
        assert_eq!(Endpoint::of_request(&body), Some(Endpoint::Embedding));
        assert_eq!(Endpoint::of_request(&base()), Some(Endpoint::Chat));
        assert_eq!(Endpoint::of_request(&json!({"prompt": "p", "input": "i"})), Some(Endpoint::Completion));
        assert_eq!(Endpoint::of_request(&json!({"model": "m"})), None);
    }

    #[test]
    fn excluded_fields_do_not_change_the_key() {
        let base_key = key_of(&base());
        let mut body = base();
        body["stream"] = json!(false);
        body["user"] = json!("bob");
        body["stream_options"] = json!({"include_usage": true});
        body["metadata"] = json!({"team": "x"});
        body["cache"] = json!({"no_store": true});
        body["model"] = json!("some-alias");
        assert_eq!(key_of(&body), base_key);
    }

    #[test]
    fn namespaces_partition_keys() {
        let in_ns = |ns: Value| {
            let mut body = base();
            body["cache"] = json!({"namespace": ns, "ttl": 60});
            key_of(&body)
        };
        assert_eq!(in_ns(json!("")), key_of(&base()));
        assert_eq!(in_ns(json!(null)), key_of(&base()));
        assert_ne!(in_ns(json!("team-a")), key_of(&base()));
        assert_ne!(in_ns(json!("team-a")), in_ns(json!("team-b")));
        let mut body = base();
        body["cache"] = json!({"namespace": "team-a"});
        assert_eq!(key_of(&body), in_ns(json!("team-a")), "other cache fields still do not count");
        let bytes = canonical_request(Endpoint::Chat, &body, &model()).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains(r#""model":{"fingerprint":"gguf-3f2a9c","name":"llama-3-8b"},"namespace":"team-a","request":{"#), "{text}");
    }

    #[test]
    fn defaults_are_not_filled_in() {
        // The server's defaults are not the key's business: sending a value the server would have used
        // anyway is still a different request.
        let mut body = base();
        body["top_p"] = json!(1.0);
        assert_ne!(key_of(&body), key_of(&base()));
    }

    #[test]
    fn content_numbers_are_not_normalised() {
        // Tool schemas may be rendered into the prompt, where 1 and 1.0 can read differently.
        let with = |min: Value| {
            let mut body = base();
            body["tools"] =
                json!([{"type": "function", "function": {"name": "f", "parameters": {"minimum": min}}}]);
            key_of(&body)
        };
        assert_ne!(with(json!(1)), with(json!(1.0)));
    }

    #[test]
    fn keys_have_the_hash_length() {
        let req = CanonicalRequest::new(Endpoint::Completion, &json!({"prompt": "hi"}), &model());
        let req = req.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(response_key(&req, HashAlgorithm::Blake3).len(), 64);
        assert_eq!(response_key(&req, HashAlgorithm::Xxhash).len(), 32);
        assert!(req.as_bytes().starts_with(KEY_PREFIX.as_bytes()));
    }

    #[test]
    fn non_object_bodies_are_rejected() {
        let err = CanonicalRequest::new(Endpoint::Chat, &json!([1]), &model());
        assert!(matches!(err, Err(ResponseError::RequestNotObject { found: "an array" })));
    }

    #[test]
    fn deterministic_means_zero_temperature_or_a_seed() {
        assert!(is_deterministic(&json!({"temperature": 0})));
        assert!(is_deterministic(&json!({"temperature": 0.0})));
        assert!(is_deterministic(&json!({"temperature": 0.8, "seed": 7})));
        assert!(!is_deterministic(&json!({"temperature": 0.8})));
        assert!(!is_deterministic(&json!({})));
        assert!(!is_deterministic(&json!({"seed": null})));
    }
}
