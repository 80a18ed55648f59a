//! OpenAI response bodies: `chat.completion` and `text_completion` objects for whole answers, and the
//! chunks of a streamed answer (`chat.completion.chunk`, or `text_completion` pieces), including replaying a
//! whole (cached) answer as chunks.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::cache::response_store::{Endpoint, unique_hex};
use crate::models::generate::{FinishReason, Generation};

/// The per-answer fields every body and chunk of one answer shares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseMeta {
    /// `chatcmpl-…` or `cmpl-…`.
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// The model name the answer reports.
    pub model: String,
    /// `fp_` + 10 hex digits of the model file's fingerprint; `None` when the fingerprint is unknown.
    pub system_fingerprint: Option<String>,
}

impl ResponseMeta {
    /// A new answer's fields: a fresh id for `endpoint`, the current time, `model` as given, and
    /// [`system_fingerprint`] of the model file's `fingerprint`.
    pub fn new(endpoint: Endpoint, model: &str, fingerprint: &str) -> Self {
        Self {
            id: response_id(endpoint),
            created: now_secs(),
            model: model.to_string(),
            system_fingerprint: system_fingerprint(fingerprint),
        }
    }
}

/// A fresh response id: `chatcmpl-` (chat) or `cmpl-` (completions) and 24 random hex digits, the form cache
/// hits are given too. (Embedding responses carry no id; `embd-` is there for completeness.)
pub fn response_id(endpoint: Endpoint) -> String {
    let prefix = match endpoint {
        Endpoint::Chat => "chatcmpl-",
        Endpoint::Completion => "cmpl-",
        Endpoint::Embedding => "embd-",
    };
    format!("{prefix}{}", unique_hex())
}

/// `fp_` + the first 10 characters of a model fingerprint's digest (the part after `blake3:`), e.g.
/// `blake3:3f2a9c41d0e8…` → `fp_3f2a9c41d0`; `None` for an empty fingerprint.
pub fn system_fingerprint(fingerprint: &str) -> Option<String> {
    let digest = fingerprint.rsplit(':').next().unwrap_or_default();
    let short: String = digest.chars().filter(char::is_ascii_alphanumeric).take(10).collect();
    (!short.is_empty()).then(|| format!("fp_{short}"))
}

/// Whether answers to `endpoint` have chat shapes; the others built here are text completions. (Embedding
/// requests never get here: [`super::Request::parse`] refuses them, and the server answers them with
/// [`super::embeddings_body`].)
fn is_chat(endpoint: Endpoint) -> bool {
    endpoint == Endpoint::Chat
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `usage` for a generation: prompt, completion and total tokens, and as OpenAI reports prompt caching,
/// `prompt_tokens_details.cached_tokens`: the prompt tokens restored from the prompt-prefix KV cache.
pub fn usage(generation: &Generation) -> Value {
    usage_of(&Usage::of(generation))
}

/// The token counts of one answer's `usage`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt: usize,
    /// Generated tokens.
    pub completion: usize,
    /// Prompt tokens restored from the prompt-prefix KV cache; `None` leaves `prompt_tokens_details` out
    /// (a stored answer from before it was reported, replayed as it was stored).
    pub cached: Option<usize>,
}

impl Usage {
    /// The counts of `generation`.
    pub fn of(generation: &Generation) -> Self {
        Self {
            prompt: generation.prompt_tokens,
            completion: generation.completion_tokens,
            cached: Some(generation.cached_tokens),
        }
    }

    /// The counts a body's `usage` holds (missing counts are 0).
    fn from_body(usage: &Value) -> Self {
        let count = |v: &Value| v.as_u64().unwrap_or(0) as usize;
        Self {
            prompt: count(&usage["prompt_tokens"]),
            completion: count(&usage["completion_tokens"]),
            cached: usage["prompt_tokens_details"]["cached_tokens"].as_u64().map(|n| n as usize),
        }
    }
}

fn usage_of(usage: &Usage) -> Value {
    let (prompt, completion) = (usage.prompt, usage.completion);
    let mut value = json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion});
    if let Some(cached) = usage.cached {
        value["prompt_tokens_details"] = json!({"cached_tokens": cached});
    }
    value
}

/// The whole answer: a `chat.completion` (choice with `message`) or a `text_completion` (choice with `text`).
pub fn completion_body(endpoint: Endpoint, meta: &ResponseMeta, generation: &Generation) -> Value {
    let finish = generation.finish_reason.as_str();
    let (object, choice) = if is_chat(endpoint) {
        (
            "chat.completion",
            json!({"index": 0, "message": {"role": "assistant", "content": generation.text},
                   "logprobs": null, "finish_reason": finish}),
        )
    } else {
        (
            "text_completion",
            json!({"index": 0, "text": generation.text, "logprobs": null, "finish_reason": finish}),
        )
    };
    json!({
        "id": meta.id,
        "object": object,
        "created": meta.created,
        "model": meta.model,
        "system_fingerprint": meta.system_fingerprint,
        "choices": [choice],
        "usage": usage(generation),
    })
}

/// Builds the chunks of one streamed answer, all with the same envelope.
///
/// A chat stream is `start` (the assistant role), `text` per piece, `finish`, then `usage` when asked for;
/// a completions stream is the same without `start`. With `include_usage`, every chunk carries
/// `"usage": null` and the last one the counts, as OpenAI does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunker {
    endpoint: Endpoint,
    meta: ResponseMeta,
    include_usage: bool,
}

impl Chunker {
    /// Chunks for an answer to `endpoint` with envelope `meta`.
    pub fn new(endpoint: Endpoint, meta: ResponseMeta, include_usage: bool) -> Self {
        Self { endpoint, meta, include_usage }
    }

    /// The envelope.
    pub fn meta(&self) -> &ResponseMeta {
        &self.meta
    }

    /// The opening chunk: for chat, a delta with `role: assistant` and empty content; none for completions.
    pub fn start(&self) -> Option<Value> {
        is_chat(self.endpoint).then(|| self.chunk(json!({"role": "assistant", "content": ""}), None))
    }

    /// A chunk carrying one piece of text.
    pub fn text(&self, piece: &str) -> Value {
        if is_chat(self.endpoint) {
            self.chunk(json!({"content": piece}), None)
        } else {
            self.chunk(json!(piece), None)
        }
    }

    /// The chunk that says why the answer ended (an empty delta, or empty text).
    pub fn finish(&self, reason: FinishReason) -> Value {
        if is_chat(self.endpoint) {
            self.chunk(json!({}), Some(reason))
        } else {
            self.chunk(json!(""), Some(reason))
        }
    }

    /// The usage chunk (`choices: []`), when `include_usage` was asked for.
    pub fn usage(&self, usage: &Usage) -> Option<Value> {
        self.include_usage.then(|| {
            let mut chunk = self.envelope(json!([]));
            chunk["usage"] = usage_of(usage);
            chunk
        })
    }

    /// A chunk with one choice: `delta` for chat, `text` for completions.
    fn chunk(&self, content: Value, finish: Option<FinishReason>) -> Value {
        let finish = finish.map(FinishReason::as_str);
        let choice = if is_chat(self.endpoint) {
            json!({"index": 0, "delta": content, "logprobs": null, "finish_reason": finish})
        } else {
            json!({"index": 0, "text": content, "logprobs": null, "finish_reason": finish})
        };
        self.envelope(json!([choice]))
    }

    fn envelope(&self, choices: Value) -> Value {
        let object = if is_chat(self.endpoint) { "chat.completion.chunk" } else { "text_completion" };
        let mut chunk = json!({
            "id": self.meta.id,
            "object": object,
            "created": self.meta.created,
            "model": self.meta.model,
            "system_fingerprint": self.meta.system_fingerprint,
            "choices": choices,
        });
        if self.include_usage {
            chunk["usage"] = Value::Null;
        }
        chunk
    }
}

/// Replays a whole answer (a `chat.completion` or `text_completion` body, e.g. a cache hit) as the chunks
/// a stream of it would have sent: its text in one piece, with its envelope, finish reason and usage.
pub fn chunks_from_body(body: &Value, include_usage: bool) -> Vec<Value> {
    let endpoint = match body["object"].as_str() {
        Some("text_completion") => Endpoint::Completion,
        _ => Endpoint::Chat,
    };
    let meta = ResponseMeta {
        id: body["id"].as_str().unwrap_or_default().to_string(),
        created: body["created"].as_u64().unwrap_or_else(now_secs),
        model: body["model"].as_str().unwrap_or_default().to_string(),
        system_fingerprint: body["system_fingerprint"].as_str().map(str::to_string),
    };
    let choice = &body["choices"][0];
    let text =
        if is_chat(endpoint) { choice["message"]["content"].as_str() } else { choice["text"].as_str() };
    let finish = match choice["finish_reason"].as_str() {
        Some("length") => FinishReason::Length,
        _ => FinishReason::Stop,
    };
    let chunker = Chunker::new(endpoint, meta, include_usage);
    let mut chunks: Vec<Value> = chunker.start().into_iter().collect();
    if let Some(text) = text.filter(|t| !t.is_empty()) {
        chunks.push(chunker.text(text));
    }
    chunks.push(chunker.finish(finish));
    chunks.extend(chunker.usage(&Usage::from_body(&body["usage"])));
    chunks
}

#[cfg(test)]
mod tests;
