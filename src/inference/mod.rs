//! The OpenAI request/response layer over local models, shared by `inferno cache warm --responses` and the
//! server: request bodies in, `chat.completion` / `text_completion` bodies (or stream chunks) out, with the
//! response cache in between.
//!
//! - [`openai`]: the request types and their validation into a [`Request`]; the sampling defaults.
//! - [`response`]: response bodies and stream chunks.
//! - [`cached`]: cache control (including LiteLLM's `cache` body field) and the cache plan of a request.
//! - `answer.rs`: [`Prepared`] and [`respond`] (cargo feature `llama`), the one path that answers a
//!   completion request: plan, lookup, generate (with a sink for stream chunks), store.
//! - [`embeddings`]: `/v1/embeddings` request validation and response bodies (float or base64).
//! - [`run`] (cargo feature `llama`): a request run on a GGUF model (prompt, defaults, context budget).
//! - [`InferenceError`]: OpenAI-style error bodies with their HTTP status.
//!
//! `docs/inference.md` describes the defaults and the cache behaviour.

mod answer;
pub mod cached;
pub mod embeddings;
mod error;
pub mod openai;
pub mod response;
#[cfg(feature = "llama")]
pub mod run;

#[cfg(feature = "llama")]
pub use answer::respond;
pub use answer::{Answer, Prepared, Sink};
pub use cached::{CacheControl, CachePlan, CacheStatus};
pub use embeddings::{EmbeddingInput, EmbeddingRequest, EncodingFormat, embeddings_body};
pub use error::InferenceError;
pub use openai::{Input, Request, Sampling};
pub use response::{Chunker, ResponseMeta, chunks_from_body, completion_body};
