//! Running a validated [`Request`] on a GGUF model: the prompt (chat template or raw text), the sampling
//! defaults, the context budget, and llama.cpp's errors as OpenAI errors.

use std::ops::ControlFlow;

use super::InferenceError;
use super::openai::{DEFAULT_TEMPERATURE, DEFAULT_TOP_K, DEFAULT_TOP_P, Input, Request};
use crate::models::llama::{GenerateParams, Generation, GgufModel, LlamaError};

/// What to feed the model: the rendered prompt and the generation parameters with every default filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct Prepared {
    /// The prompt text (chat turns rendered with the model's template).
    pub prompt: String,
    /// How to generate.
    pub params: GenerateParams,
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
}

/// The context a request may use on `model`: the context its slots share (its training context, at most
/// [`MAX_CONTEXT`](super::openai::MAX_CONTEXT) as the server loads models).
pub fn context_size(model: &GgufModel) -> u32 {
    model.n_ctx()
}

/// Renders the prompt and fills in the defaults: temperature, `top_p` and `top_k` as llama.cpp's server,
/// a random seed, and `max_tokens` = the rest of the context (a larger `max_tokens` is cut to it, so the
/// answer ends with `length`). A prompt that leaves no room to generate is a 400
/// `context_length_exceeded`.
pub fn prepare(model: &GgufModel, request: &Request) -> Result<Prepared, InferenceError> {
    let (prompt, param) = match &request.input {
        Input::Chat(turns) => (model.chat_prompt(turns).map_err(llama_error)?, "messages"),
        Input::Prompt(text) => (text.clone(), "prompt"),
    };
    let n_ctx = context_size(model);
    let prompt_tokens = model.token_count(&prompt, true);
    let room = (n_ctx as usize).saturating_sub(prompt_tokens);
    if room == 0 {
        return Err(context_exceeded(n_ctx, prompt_tokens, Some(param)));
    }
    let sampling = &request.sampling;
    let room = u32::try_from(room).unwrap_or(u32::MAX);
    let params = GenerateParams {
        max_tokens: sampling.max_tokens.map_or(room, |m| m.min(room)),
        temperature: sampling.temperature.unwrap_or(DEFAULT_TEMPERATURE),
        top_p: sampling.top_p.unwrap_or(DEFAULT_TOP_P),
        top_k: sampling.top_k.unwrap_or(DEFAULT_TOP_K),
        seed: sampling.seed.unwrap_or_else(random_seed),
        stop: sampling.stop.clone(),
        n_ctx,
        parse_special: true,
    };
    Ok(Prepared { prompt, params, prompt_tokens })
}

/// [`prepare`]s `request` and generates, calling `on_piece` with each piece of text (see
/// [`GgufModel::generate_with`]).
pub fn generate(
    model: &GgufModel,
    request: &Request,
    on_piece: impl FnMut(&str) -> ControlFlow<()>,
) -> Result<Generation, InferenceError> {
    let prepared = prepare(model, request)?;
    model.generate_with(&prepared.prompt, &prepared.params, on_piece).map_err(llama_error)
}

/// A llama.cpp error as the client sees it: a full context is the client's 400, anything else a 500.
pub fn llama_error(error: LlamaError) -> InferenceError {
    match error {
        LlamaError::ContextFull { prompt, n_ctx, .. } => context_exceeded(n_ctx, prompt, None),
        busy @ LlamaError::Busy { .. } => InferenceError::Unavailable { message: busy.to_string() },
        other => InferenceError::Server { message: other.to_string() },
    }
}

fn context_exceeded(n_ctx: u32, prompt_tokens: usize, param: Option<&str>) -> InferenceError {
    InferenceError::InvalidRequest {
        message: format!(
            "the context holds {n_ctx} tokens and the prompt is {prompt_tokens}, which leaves no room for an answer"
        ),
        param: param.map(str::to_string),
        code: Some("context_length_exceeded".to_string()),
    }
}

/// A seed nobody asked for: std's per-process random hash keys over the time.
fn random_seed() -> u32 {
    use std::hash::BuildHasher;
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    std::collections::hash_map::RandomState::new().hash_one(nanos) as u32
}
