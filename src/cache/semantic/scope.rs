//! The scope of a semantic match: which stored requests a request may be answered from, and the text that
//! is compared.
//!
//! A request's scope group is its exact cache key's canonical form (`cache::response_store`) with the last
//! user message's content taken out — so the endpoint, the model and its fingerprint, the namespace, every
//! request field (`max_tokens`, `seed`, `temperature`, `tools`, ...), the system prompt and every earlier
//! turn must all be equal — plus the identity of the API key the caller used, when the server has one. Only
//! the last user message may differ, and it is what gets embedded. A chat request whose last message is not
//! a user message with string content, and an embeddings request, have no semantic scope (exact only); a
//! completion request's scope is its request without `prompt`, when the prompt is one string.

use serde_json::Value;

use super::index::GroupId;
use crate::cache::response_store::{CanonicalRequest, Endpoint, ModelIdentity};

/// Starts the bytes a group id hashes; bump it when the scope changes, so old vectors simply never match.
pub const SCOPE_PREFIX: &[u8] = b"inferno-semantic-scope-v1\n";

/// What a request brings to a semantic lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// Its scope group.
    pub group: GroupId,
    /// The text to embed and compare: the last user message, or the prompt.
    pub text: String,
}

/// The semantic query of `body` (as keyed: namespace applied) sent to `endpoint` and answered by `model`, for
/// a caller using the API key whose identity is `api_key_id` (`None` when the server has no key); `None` when
/// the request has no semantic scope.
pub fn query_of(
    endpoint: Endpoint,
    body: &Value,
    model: &ModelIdentity,
    api_key_id: Option<&str>,
) -> Option<Query> {
    let mut scoped = body.clone();
    let text = match endpoint {
        Endpoint::Chat => {
            let last = scoped.get_mut("messages")?.as_array_mut()?.last_mut()?.as_object_mut()?;
            if last.get("role").and_then(Value::as_str) != Some("user") {
                return None;
            }
            let Some(Value::String(text)) = last.remove("content") else { return None };
            text
        }
        Endpoint::Completion => match scoped.as_object_mut()?.remove("prompt")? {
            Value::String(text) => text,
            _ => return None,
        },
        Endpoint::Embedding => return None,
    };
    if text.trim().is_empty() {
        return None;
    }
    let canonical = CanonicalRequest::new(endpoint, &scoped, model).ok()?;
    let mut hasher = blake3::Hasher::new();
    hasher.update(SCOPE_PREFIX);
    match api_key_id {
        Some(id) => hasher.update(format!("api-key {id}\n").as_bytes()),
        None => hasher.update(b"no api key\n"),
    };
    hasher.update(canonical.as_bytes());
    Some(Query { group: *hasher.finalize().as_bytes(), text })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn model() -> ModelIdentity {
        ModelIdentity { name: "tiny".into(), fingerprint: "gguf-1".into() }
    }

    fn base() -> Value {
        json!({
            "model": "tiny",
            "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": "What's the capital of France?"}
            ],
            "temperature": 0, "max_tokens": 16, "seed": 1
        })
    }

    fn group(body: &Value) -> GroupId {
        query_of(Endpoint::Chat, body, &model(), None).unwrap().group
    }

    #[test]
    fn only_the_last_user_message_may_differ() {
        let query = query_of(Endpoint::Chat, &base(), &model(), None).unwrap();
        assert_eq!(query.text, "What's the capital of France?");
        let mut reworded = base();
        reworded["messages"][3]["content"] = json!("capital city of france?");
        assert_eq!(group(&reworded), query.group);
        let mut other_fields = base();
        other_fields["user"] = json!("bob");
        other_fields["stream"] = json!(true);
        assert_eq!(group(&other_fields), query.group, "fields outside the key stay outside the scope");

        let changes: Vec<(&str, Value)> = vec![
            ("temperature", json!(0.7)),
            ("max_tokens", json!(17)),
            ("seed", json!(2)),
            ("tools", json!([{"type": "function", "function": {"name": "f"}}])),
            ("cache", json!({"namespace": "team-b"})),
        ];
        for (field, value) in changes {
            let mut body = base();
            body[field] = value;
            assert_ne!(group(&body), query.group, "{field}");
        }
        for (turn, content) in [(0, "Be verbose."), (1, "Hey"), (2, "Hi there")] {
            let mut body = base();
            body["messages"][turn]["content"] = json!(content);
            assert_ne!(group(&body), query.group, "turn {turn}");
        }
        let other_model = ModelIdentity { fingerprint: "gguf-2".into(), ..model() };
        assert_ne!(query_of(Endpoint::Chat, &base(), &other_model, None).unwrap().group, query.group);
        let keyed = query_of(Endpoint::Chat, &base(), &model(), Some("k1")).unwrap().group;
        assert_ne!(keyed, query.group);
        assert_ne!(query_of(Endpoint::Chat, &base(), &model(), Some("k2")).unwrap().group, keyed);
    }

    #[test]
    fn requests_without_a_last_user_text_have_no_scope() {
        let mut assistant_last = base();
        assistant_last["messages"][3]["role"] = json!("assistant");
        let mut parts = base();
        parts["messages"][3]["content"] = json!([{"type": "text", "text": "hi"}]);
        let mut blank = base();
        blank["messages"][3]["content"] = json!("  ");
        for body in [assistant_last, parts, blank, json!({"messages": []}), json!({"input": "x"})] {
            assert_eq!(query_of(Endpoint::Chat, &body, &model(), None), None, "{body}");
        }
        assert_eq!(query_of(Endpoint::Embedding, &json!({"input": "x"}), &model(), None), None);
        let prompt = query_of(Endpoint::Completion, &json!({"prompt": "Once", "seed": 1}), &model(), None);
        assert_eq!(prompt.map(|q| q.text).as_deref(), Some("Once"));
        assert_eq!(query_of(Endpoint::Completion, &json!({"prompt": ["a"]}), &model(), None), None);
    }
}
