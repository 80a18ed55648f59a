//! OpenAI request bodies for `/v1/chat/completions` and `/v1/completions`: the serde types, and their
//! validation into one [`Request`] that says what to generate and how.
//!
//! Fields that do not steer generation here (`tools`, `logprobs`, `user`, ...) are ignored; they still count
//! in the cache key, which the key code computes from the raw JSON body. Defaults are applied later, when the
//! model is known (see `docs/inference.md`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::InferenceError;
use crate::cache::response_store::Endpoint;
use crate::models::chat::ChatTurn;

/// Temperature when the request gives none (llama.cpp's server and Ollama use 0.8).
pub const DEFAULT_TEMPERATURE: f32 = 0.8;
/// `top_p` when the request gives none (llama.cpp's server default).
pub const DEFAULT_TOP_P: f32 = 0.95;
/// `top_k` when the request gives none (llama.cpp's server and Ollama default).
pub const DEFAULT_TOP_K: i32 = 40;
/// The largest context inferno gives a request: the model's training context, but at most this many tokens.
pub const MAX_CONTEXT: u32 = 4096;

/// A `/v1/chat/completions` request body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionRequest {
    /// The model the client asked for.
    #[serde(default)]
    pub model: Option<String>,
    /// The conversation so far.
    pub messages: Vec<ChatMessage>,
    /// Sampling and output options shared with completions.
    #[serde(flatten)]
    pub options: GenerationOptions,
}

/// One message of a chat request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `developer` (read as `system`), `user`, `assistant` or `tool`.
    pub role: String,
    /// The text; `null` (an assistant turn that only called tools) reads as empty.
    #[serde(default)]
    pub content: Option<MessageContent>,
}

/// A message's content: a string, or a list of parts of which only `text` parts are supported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged, expecting = "expected a string or an array of {\"type\": \"text\", \"text\": ...} parts")]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Content parts, joined with newlines (as llama.cpp's server does).
    Parts(Vec<ContentPart>),
}

/// One part of a message's content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContentPart {
    /// The part's type; only `text` is supported.
    #[serde(rename = "type")]
    pub kind: String,
    /// The text of a `text` part.
    #[serde(default)]
    pub text: Option<String>,
}

/// A `/v1/completions` request body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompletionRequest {
    /// The model the client asked for.
    #[serde(default)]
    pub model: Option<String>,
    /// The text to continue.
    pub prompt: Prompt,
    /// Sampling and output options shared with chat.
    #[serde(flatten)]
    pub options: GenerationOptions,
}

/// A completion prompt: a string or an array of exactly one string (token arrays are not supported).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged, expecting = "expected a string or an array of one string")]
pub enum Prompt {
    /// One prompt.
    Text(String),
    /// A batch of prompts; only a batch of one is supported.
    Batch(Vec<String>),
}

/// `stop`: one string or a list of them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged, expecting = "expected a string or an array of strings")]
pub enum Stop {
    /// One stop string.
    One(String),
    /// Several stop strings.
    Many(Vec<String>),
}

/// The request fields that steer generation, shared by both endpoints. Whole numbers may be written as
/// floats (`16.0`), as the cache key treats them alike.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerationOptions {
    /// Most tokens to generate (legacy name).
    #[serde(default, deserialize_with = "whole::u32_opt")]
    pub max_tokens: Option<u32>,
    /// Most tokens to generate; wins over `max_tokens`.
    #[serde(default, deserialize_with = "whole::u32_opt")]
    pub max_completion_tokens: Option<u32>,
    /// Sampling temperature, 0 to 2; 0 is greedy.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Nucleus sampling threshold, 0 to 1.
    #[serde(default)]
    pub top_p: Option<f32>,
    /// Keep only the k most likely tokens; 0 or less turns it off (llama.cpp extension).
    #[serde(default, deserialize_with = "whole::i32_opt")]
    pub top_k: Option<i32>,
    /// Sampler seed, any whole number; used modulo 2^32.
    #[serde(default, deserialize_with = "whole::seed_opt")]
    pub seed: Option<u32>,
    /// Stop strings.
    #[serde(default)]
    pub stop: Option<Stop>,
    /// Number of choices; only 1 is supported.
    #[serde(default, deserialize_with = "whole::u32_opt")]
    pub n: Option<u32>,
    /// Stream the answer as server-sent events.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Streaming options.
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
}

/// `stream_options`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk with the token usage.
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// A validated request: what to generate from, and how.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The endpoint it came in on.
    pub endpoint: Endpoint,
    /// The model the client asked for, if it named one.
    pub model: Option<String>,
    /// The chat turns or the prompt.
    pub input: Input,
    /// Sampling; `None` fields take the model-side defaults.
    pub sampling: Sampling,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// Whether a streamed answer ends with a usage chunk.
    pub include_usage: bool,
}

/// What the model continues.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// Chat turns, rendered with the model's chat template.
    Chat(Vec<ChatTurn>),
    /// A raw prompt.
    Prompt(String),
}

/// Sampling as asked; `None` means the default ([`DEFAULT_TEMPERATURE`], [`DEFAULT_TOP_P`],
/// [`DEFAULT_TOP_K`], a random seed, up to the rest of the context).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sampling {
    /// Most new tokens.
    pub max_tokens: Option<u32>,
    /// Temperature.
    pub temperature: Option<f32>,
    /// Nucleus threshold.
    pub top_p: Option<f32>,
    /// Top-k.
    pub top_k: Option<i32>,
    /// Seed.
    pub seed: Option<u32>,
    /// Stop strings.
    pub stop: Vec<String>,
}

impl Request {
    /// Reads and validates `body` as a request to `endpoint`. Errors are 400s naming the bad parameter.
    pub fn parse(endpoint: Endpoint, body: &Value) -> Result<Self, InferenceError> {
        if !body.is_object() {
            return Err(InferenceError::invalid("the request body must be a JSON object", None));
        }
        // The options are read on their own first: inside the flattened struct, errors lose their path.
        let options: GenerationOptions = deserialize(body)?;
        let (model, input) = match endpoint {
            Endpoint::Chat => {
                let req: ChatCompletionRequest = deserialize(body)?;
                (req.model, Input::Chat(chat_turns(&req.messages)?))
            }
            Endpoint::Completion => {
                let req: CompletionRequest = deserialize(body)?;
                (req.model, Input::Prompt(prompt_text(req.prompt)?))
            }
            Endpoint::Embedding => {
                return Err(InferenceError::invalid(
                    "an embedding request is not a completion; send it to /v1/embeddings",
                    None,
                ));
            }
        };
        let sampling = sampling(&options)?;
        let include_usage = options.stream_options.and_then(|o| o.include_usage).unwrap_or(false);
        Ok(Self { endpoint, model, input, sampling, stream: options.stream.unwrap_or(false), include_usage })
    }
}

fn deserialize<T: serde::de::DeserializeOwned>(body: &Value) -> Result<T, InferenceError> {
    serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            InferenceError::invalid(e.inner().to_string(), None)
        } else {
            InferenceError::invalid(format!("invalid '{path}': {}", e.inner()), Some(&path))
        }
    })
}

fn chat_turns(messages: &[ChatMessage]) -> Result<Vec<ChatTurn>, InferenceError> {
    if messages.is_empty() {
        return Err(InferenceError::invalid("'messages' must hold at least one message", Some("messages")));
    }
    let mut turns = Vec::with_capacity(messages.len());
    for (i, message) in messages.iter().enumerate() {
        let role = match message.role.as_str() {
            "developer" => "system",
            role @ ("system" | "user" | "assistant" | "tool") => role,
            other => {
                return Err(InferenceError::invalid(
                    format!(
                        "invalid 'messages[{i}].role': {other:?}; expected system, developer, user, \
                         assistant or tool"
                    ),
                    Some(&format!("messages[{i}].role")),
                ));
            }
        };
        let content = match &message.content {
            None => String::new(),
            Some(MessageContent::Text(text)) => text.clone(),
            Some(MessageContent::Parts(parts)) => {
                let mut texts = Vec::with_capacity(parts.len());
                for (j, part) in parts.iter().enumerate() {
                    let param = format!("messages[{i}].content[{j}]");
                    match (part.kind.as_str(), &part.text) {
                        ("text", Some(text)) => texts.push(text.as_str()),
                        ("text", None) => {
                            return Err(InferenceError::invalid(
                                format!("'{param}' is a text part without 'text'"),
                                Some(&param),
                            ));
                        }
                        (kind, _) => {
                            return Err(InferenceError::invalid(
                                format!("'{param}' has type {kind:?}; only text content is supported"),
                                Some(&format!("{param}.type")),
                            ));
                        }
                    }
                }
                texts.join("\n")
            }
        };
        if content.contains('\0') {
            let param = format!("messages[{i}].content");
            return Err(InferenceError::invalid(format!("'{param}' contains a NUL character"), Some(&param)));
        }
        turns.push((role.to_string(), content));
    }
    Ok(turns)
}

fn prompt_text(prompt: Prompt) -> Result<String, InferenceError> {
    match prompt {
        Prompt::Text(text) => Ok(text),
        Prompt::Batch(mut texts) if texts.len() == 1 => Ok(texts.remove(0)),
        Prompt::Batch(texts) => Err(InferenceError::invalid(
            format!("'prompt' holds {} prompts; only one prompt per request is supported", texts.len()),
            Some("prompt"),
        )),
    }
}

fn sampling(options: &GenerationOptions) -> Result<Sampling, InferenceError> {
    if let Some(n) = options.n.filter(|&n| n != 1) {
        return Err(InferenceError::invalid(
            format!("'n' is {n}; only n = 1 (one choice per request) is supported"),
            Some("n"),
        ));
    }
    let (max_tokens, name) = match options.max_completion_tokens {
        Some(m) => (Some(m), "max_completion_tokens"),
        None => (options.max_tokens, "max_tokens"),
    };
    if max_tokens == Some(0) {
        return Err(InferenceError::invalid(format!("'{name}' must be at least 1"), Some(name)));
    }
    in_range("temperature", options.temperature, 0.0, 2.0)?;
    in_range("top_p", options.top_p, 0.0, 1.0)?;
    let stop = match &options.stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s.clone()],
        Some(Stop::Many(list)) => list.clone(),
    };
    Ok(Sampling {
        max_tokens,
        temperature: options.temperature,
        top_p: options.top_p,
        top_k: options.top_k,
        seed: options.seed,
        stop,
    })
}

fn in_range(name: &str, value: Option<f32>, low: f32, high: f32) -> Result<(), InferenceError> {
    match value {
        Some(v) if !(low..=high).contains(&v) => Err(InferenceError::invalid(
            format!("'{name}' is {v}; it must be between {low} and {high}"),
            Some(name),
        )),
        _ => Ok(()),
    }
}

/// Deserializers for whole numbers that also take whole floats (`16.0`), `null` as absent.
mod whole {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer};
    use serde_json::Number;

    fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Option<(i128, Number)>, D::Error> {
        let Some(n) = Option::<Number>::deserialize(d)? else { return Ok(None) };
        let whole = n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 1e18).map(|f| f as i128));
        match whole {
            Some(value) => Ok(Some((value, n))),
            None => Err(D::Error::custom(format!("expected a whole number, got {n}"))),
        }
    }

    pub fn u32_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        in_range(read(d)?, 0, u32::MAX.into())
    }

    pub fn i32_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i32>, D::Error> {
        in_range(read(d)?, i32::MIN.into(), i32::MAX.into())
    }

    fn in_range<T: TryFrom<i128>, E: Error>(
        read: Option<(i128, Number)>,
        low: i128,
        high: i128,
    ) -> Result<Option<T>, E> {
        let Some((value, n)) = read else { return Ok(None) };
        T::try_from(value)
            .map(Some)
            .map_err(|_| E::custom(format!("expected a whole number from {low} to {high}, got {n}")))
    }

    pub fn seed_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        Ok(read(d)?.map(|(v, _)| v.rem_euclid(1 << 32) as u32))
    }
}

#[cfg(test)]
mod tests;
