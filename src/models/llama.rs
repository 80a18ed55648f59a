//! GGUF models through llama.cpp (the `llama-cpp-2` crate): the process-wide backend, loading a model file,
//! rendering chat messages with the model's template, and generating text greedily or with sampling
//! parameters, all at once or piece by piece.
//!
//! Only the mechanics live here; which models stay loaded is the job of the model cache
//! ([`crate::models::pool`]). The header is read with our own reader first, so a truncated or foreign file
//! gets a clear error naming the file and the problem instead of llama.cpp's generic load failure.
//! Generation goes through the model's slots (`slots.rs`: one long-lived context, continuous batching) and
//! is blocking: callers on an async runtime run it on a blocking thread. With a prompt-prefix cache
//! ([`SlotConfig::prefix`]), the slots restore and save prompt states (`prefix_cache.rs`, docs/kv-cache.md).

mod prefix_cache;
mod prefix_chain;
mod prefix_record;
mod prefix_saver;
mod slots;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;

pub use super::generate::{FinishReason, GenerateParams, Generation, SlotConfig, SlotStats};

use super::chat::{ChatTurn, chatml};
use super::gguf::{GgufError, GgufHeader};
use slots::{Event, Job, Refused, Slots};

/// Errors of the llama.cpp backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LlamaError {
    /// The file is not a readable GGUF model.
    #[error(transparent)]
    Header(#[from] GgufError),
    /// llama.cpp could not be initialised.
    #[error("cannot initialise llama.cpp: {0}")]
    Backend(String),
    /// llama.cpp refused the file although its header reads.
    #[error("llama.cpp cannot load {}: {reason}", .path.display())]
    Load {
        /// The model file.
        path: PathBuf,
        /// llama.cpp's reason.
        reason: String,
    },
    /// Creating a context or decoding failed.
    #[error("inference failed on {}: {reason}", .path.display())]
    Inference {
        /// The model file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// Chat messages could not be rendered with the model's template.
    #[error("cannot render the chat messages for {}: {reason}", .path.display())]
    Chat {
        /// The model file.
        path: PathBuf,
        /// llama.cpp's reason.
        reason: String,
    },
    /// The prompt and the requested tokens do not fit the context.
    #[error(
        "the prompt has {prompt} tokens and {max_tokens} more were asked for, but the context holds {n_ctx}"
    )]
    ContextFull {
        /// Prompt tokens.
        prompt: usize,
        /// Requested new tokens.
        max_tokens: u32,
        /// Context size.
        n_ctx: u32,
    },
    /// Every slot is busy and the queue is full.
    #[error("every slot of the model is busy and {queue_size} requests already wait; retry in a moment")]
    Busy {
        /// The queue's size (`server.queue_size`).
        queue_size: u32,
    },
}

/// The one llama.cpp backend of this process (llama.cpp may be initialised only once): code that drives
/// llama-cpp-2 itself next to [`GgufModel`] (the slots benchmark's baseline) must use this one.
pub fn backend() -> Result<&'static LlamaBackend, LlamaError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            let mut backend = LlamaBackend::init().map_err(|e| e.to_string())?;
            backend.void_logs();
            Ok(backend)
        })
        .as_ref()
        .map_err(|e| LlamaError::Backend(e.clone()))
}

/// A GGUF model loaded in llama.cpp (memory-mapped by default).
pub struct GgufModel {
    path: PathBuf,
    header: GgufHeader,
    model: Arc<LlamaModel>,
    /// The file's chat template, when llama.cpp can apply it.
    chat_template: Option<LlamaChatTemplate>,
    /// The long-lived context and the decode loop every generation goes through; dropping it stops the loop
    /// and frees the context (the loop's thread holds its own `Arc` of the model until then).
    slots: Slots,
}

impl std::fmt::Debug for GgufModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufModel").field("path", &self.path).finish_non_exhaustive()
    }
}

impl GgufModel {
    /// [`load_with`](Self::load_with) the default slots (16 sequences over a context of at most 4096 tokens).
    pub fn load(path: &Path) -> Result<Self, LlamaError> {
        Self::load_with(path, &SlotConfig::default())
    }

    /// [`load_fingerprinted`](Self::load_fingerprinted), hashing the file first when `slots` use a
    /// prompt-prefix cache (its states are fingerprinted with the file's content).
    pub fn load_with(path: &Path, slots: &SlotConfig) -> Result<Self, LlamaError> {
        let file_fingerprint = match slots.prefix {
            Some(_) => Some(crate::models::file::fingerprint(path).map_err(|e| LlamaError::Load {
                path: path.to_path_buf(),
                reason: format!("cannot read the file to fingerprint it: {e}"),
            })?),
            None => None,
        };
        Self::load_fingerprinted(path, file_fingerprint.as_deref(), slots)
    }

    /// Reads the header, loads the model in llama.cpp, and starts its slots: the decode thread with its
    /// long-lived context of `slots.parallel` sequences over the training context (at most
    /// `slots.max_context` tokens).
    ///
    /// A chat template in the file that llama.cpp's template engine cannot apply is logged as a warning and
    /// replaced by ChatML, as llama.cpp's own server does.
    ///
    /// `file_fingerprint` is the file's `blake3:` content fingerprint
    /// ([`fingerprint`](crate::models::file::fingerprint)), which the caller (the model pool) has already
    /// computed; the prompt-prefix cache of `slots.prefix` needs it and is off without it. Recurrent and
    /// hybrid models never use the prefix cache.
    pub fn load_fingerprinted(
        path: &Path,
        file_fingerprint: Option<&str>,
        slots: &SlotConfig,
    ) -> Result<Self, LlamaError> {
        let header = GgufHeader::read_path(path)?;
        let backend = backend()?;
        let model = LlamaModel::load_from_file(backend, path, &LlamaModelParams::default())
            .map_err(|e| LlamaError::Load { path: path.to_path_buf(), reason: e.to_string() })?;
        let chat_template = usable_template(&model, path);
        let model = Arc::new(model);
        let n_ctx = match model.n_ctx_train() {
            0 => slots.max_context,
            n => n.min(slots.max_context),
        };
        let slots = Slots::start(Arc::clone(&model), n_ctx, slots, file_fingerprint)
            .map_err(|reason| LlamaError::Inference { path: path.to_path_buf(), reason })?;
        Ok(Self { path: path.to_path_buf(), header, model, chat_template, slots })
    }

    /// The model file's header, as our reader saw it.
    pub fn header(&self) -> &GgufHeader {
        &self.header
    }

    /// Bytes of the model's tensors, as llama.cpp counts them.
    pub fn size(&self) -> u64 {
        self.model.size()
    }

    /// The context length the model was trained with (`<arch>.context_length`).
    pub fn n_ctx_train(&self) -> u32 {
        self.model.n_ctx_train()
    }

    /// How many tokens `text` is as a prompt: BOS when the model adds one, special-token text parsed when
    /// `parse_special` (see [`GenerateParams::parse_special`]).
    pub fn token_count(&self, text: &str, parse_special: bool) -> usize {
        self.model.vocab().tokenize(text.as_bytes(), true, parse_special).len()
    }

    /// The chat template [`GgufModel::chat_prompt`] applies: the file's `tokenizer.chat_template` when
    /// llama.cpp can apply it, `None` when the file has none or llama.cpp cannot (ChatML is used then).
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_ref().and_then(|t| t.to_str().ok())
    }

    /// Renders chat `messages` as a prompt that ends where the assistant's answer begins: with the model's
    /// own chat template (llama.cpp's built-in template engine), or ChatML ([`chatml`]) when it has none.
    ///
    /// Fails only when a role or content holds a NUL character, which llama.cpp cannot take.
    pub fn chat_prompt(&self, messages: &[ChatTurn]) -> Result<String, LlamaError> {
        let Some(template) = &self.chat_template else { return Ok(chatml(messages)) };
        let fail = |reason: String| LlamaError::Chat { path: self.path.clone(), reason };
        let chat = messages
            .iter()
            .map(|(role, content)| LlamaChatMessage::new(role.clone(), content.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fail(e.to_string()))?;
        self.model.apply_chat_template(template, &chat, true).map_err(|e| fail(e.to_string()))
    }

    /// Generates a continuation of `prompt` (with BOS when the model asks for it); see
    /// [`GgufModel::generate_with`].
    pub fn generate(&self, prompt: &str, params: &GenerateParams) -> Result<Generation, LlamaError> {
        self.generate_with(prompt, params, |_| ControlFlow::Continue(()))
    }

    /// Generates a continuation of `prompt`, calling `on_piece` with each piece of text as soon as it is
    /// safe to show (whole UTF-8 characters, never part of a stop string; see [`TextStream`](super::generate::TextStream)). The pieces
    /// concatenate to the returned [`Generation::text`]. When `on_piece` returns `Break`, generation ends at
    /// once with [`FinishReason::Stop`] and the request's slot is freed at the decode loop's next step.
    ///
    /// The request waits for one of the model's slots (`llama/slots.rs`) and is decoded in a batch with the
    /// other requests of the moment; a full queue is [`LlamaError::Busy`].
    pub fn generate_with(
        &self,
        prompt: &str,
        params: &GenerateParams,
        mut on_piece: impl FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation, LlamaError> {
        let tokens = self.model.vocab().tokenize(prompt.as_bytes(), true, params.parse_special);
        let n_ctx = match params.n_ctx {
            0 => self.slots.n_ctx(),
            n => n.min(self.slots.n_ctx()),
        };
        if tokens.is_empty() || tokens.len() + params.max_tokens as usize > n_ctx as usize {
            return Err(LlamaError::ContextFull {
                prompt: tokens.len(),
                max_tokens: params.max_tokens,
                n_ctx,
            });
        }
        let prompt_tokens = tokens.len();
        let (events, rx) = std::sync::mpsc::channel();
        let cancel = CancelOnDrop(Arc::new(AtomicBool::new(false)), &self.slots);
        let mut job = Job {
            tokens,
            params: params.clone(),
            events,
            cancel: Arc::clone(&cancel.0),
            queued_at: Instant::now(),
            prefix: None,
        };
        job.prefix = self.slots.prefix_plan(&job.tokens, job.reserve());
        self.slots.submit(job).map_err(|refused| match refused {
            Refused::Busy { queue_size } => LlamaError::Busy { queue_size },
            Refused::Stopped => LlamaError::Inference {
                path: self.path.clone(),
                reason: "the model's decode loop has stopped; unload and load the model again".into(),
            },
        })?;
        let mut text = String::new();
        let mut cached_tokens = 0;
        loop {
            match rx.recv() {
                Ok(Event::Cached(tokens)) => cached_tokens = tokens,
                Ok(Event::Piece(piece, completion_tokens)) => {
                    text.push_str(&piece);
                    if on_piece(&piece).is_break() {
                        // Wait (one decode step at most) until the loop has freed the slot.
                        cancel.0.store(true, Ordering::Relaxed);
                        self.slots.nudge();
                        while rx.recv().is_ok() {}
                        let finish_reason = FinishReason::Stop;
                        return Ok(Generation {
                            text,
                            prompt_tokens,
                            completion_tokens,
                            cached_tokens,
                            finish_reason,
                        });
                    }
                }
                Ok(Event::Done(done)) => {
                    return done.map_err(|reason| LlamaError::Inference { path: self.path.clone(), reason });
                }
                Err(_) => {
                    let reason = "the model was unloaded while generating".to_string();
                    return Err(LlamaError::Inference { path: self.path.clone(), reason });
                }
            }
        }
    }

    /// Tokens of the context the slots share: the training context, at most [`SlotConfig::max_context`].
    pub fn n_ctx(&self) -> u32 {
        self.slots.n_ctx()
    }

    /// What the model's slots are doing and have done.
    pub fn slot_stats(&self) -> SlotStats {
        self.slots.stats()
    }

    /// How many leading tokens of `prompt` a request would restore from the prompt-prefix cache now: the
    /// lookup a request makes before it queues (the block keys walked in the store, the record read and its
    /// fingerprint and token ids checked), without restoring anything. 0 without a prefix cache, for a prompt
    /// too short for it, and on a miss. A damaged or foreign record it meets is removed, as a request would.
    pub fn cached_prefix_tokens(&self, prompt: &str, parse_special: bool) -> usize {
        let tokens = self.model.vocab().tokenize(prompt.as_bytes(), true, parse_special);
        self.slots.prefix_plan(&tokens, usize::MAX).and_then(|plan| plan.restore).map_or(0, |r| r.tokens())
    }

    /// Waits until the prompt-prefix states saved so far have been handed to the store (states are written
    /// by a background thread after prefill, so a warm-up that exits next must wait here). Returns at once
    /// without a prefix cache. Dropping the model waits too.
    pub fn wait_for_prefix_saves(&self) {
        self.slots.wait_for_prefix_saves();
    }
}

/// Cancels a request when its caller stops waiting for it (returns, or panics in `on_piece`).
struct CancelOnDrop<'a>(Arc<AtomicBool>, &'a Slots);

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        self.1.nudge();
    }
}

/// The model's own chat template, if it has one that llama.cpp can apply to a one-message probe.
fn usable_template(model: &LlamaModel, path: &Path) -> Option<LlamaChatTemplate> {
    let template = model.chat_template(None).ok()?;
    let probe = LlamaChatMessage::new("user".into(), "hi".into()).ok()?;
    match model.apply_chat_template(&template, &[probe], true) {
        Ok(_) => Some(template),
        Err(e) => {
            tracing::warn!(
                "{}: llama.cpp cannot apply the model's chat template ({e}); chat prompts use ChatML",
                path.display()
            );
            None
        }
    }
}

/// Greedy at temperature 0; otherwise top-k, top-p, temperature and a seeded draw, in llama.cpp's order.
fn sampler(params: &GenerateParams) -> LlamaSampler {
    if params.temperature <= 0.0 {
        return LlamaSampler::greedy();
    }
    let mut chain = Vec::new();
    if params.top_k > 0 {
        chain.push(LlamaSampler::top_k(params.top_k));
    }
    if params.top_p < 1.0 {
        chain.push(LlamaSampler::top_p(params.top_p, 1));
    }
    chain.push(LlamaSampler::temp(params.temperature));
    chain.push(LlamaSampler::dist(params.seed));
    LlamaSampler::chain_simple(chain)
}

#[cfg(test)]
mod prefix_tests;
#[cfg(test)]
mod slot_tests;
#[cfg(test)]
mod tests;
