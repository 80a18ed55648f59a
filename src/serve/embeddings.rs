//! `POST /v1/embeddings`: OpenAI's embeddings endpoint for ONNX embedding models, with the response cache in
//! front.
//!
//! Per request: parse the JSON body (`inference::embeddings`; 400s), find the model by name (404), refuse a
//! GGUF model or an ONNX model that is not an embedding model (400, see `models::embedding` for which are),
//! find a text model's `tokenizer.json`, read the input as the model takes it (vectors, texts or token ids;
//! 400 when it does not fit), plan the cache, answer a hit from it, else run the model on a blocking thread
//! and store the answer. Embeddings are deterministic, so every request is cacheable (`Cache-Control` and the
//! body's `cache` field still apply); identical concurrent requests run once. The key's model fingerprint
//! covers the tokenizer file too where one is used. Answers carry `X-Inferno-Cache` and
//! `X-Inferno-Cache-Key`.
//! Without the `onnx` cargo feature, every known model is refused with a 400 that says so.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::Response;

use super::completions::{join_error, json_body};
use super::error::error_response;
use super::state::AppState;
use crate::inference::{EmbeddingRequest, InferenceError};
use crate::models::file::{ModelFile, ModelFormat};

/// Answers an embeddings request.
pub async fn handle(state: Arc<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    match answer(state, &headers, &body).await {
        Ok(response) => response,
        Err(error) => error_response(&error),
    }
}

/// Runs `work` on a blocking thread.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, InferenceError> + Send + 'static,
) -> Result<T, InferenceError> {
    tokio::task::spawn_blocking(work).await.map_err(join_error)?
}

/// The path of the model called `name`, when it is an ONNX file: 404 for an unknown name, 400 for GGUF.
fn onnx_path(state: &AppState, name: &str) -> Result<std::path::PathBuf, InferenceError> {
    let path = state.registry.path_of(name)?;
    let file = ModelFile::open(&path)
        .map_err(|e| InferenceError::Server { message: format!("model '{name}': {e}") })?;
    match file.format {
        ModelFormat::Onnx => Ok(path),
        ModelFormat::Gguf => Err(InferenceError::invalid(
            format!(
                "model '{name}' is a GGUF model, which generates text; /v1/embeddings serves ONNX embedding \
                 models"
            ),
            Some("model"),
        )),
    }
}

#[cfg(not(feature = "onnx"))]
async fn answer(
    state: Arc<AppState>,
    _headers: &HeaderMap,
    bytes: &Bytes,
) -> Result<Response, InferenceError> {
    let request = EmbeddingRequest::parse(&json_body(bytes)?)?;
    blocking(move || {
        let name = &request.model;
        onnx_path(&state, name)?;
        Err(InferenceError::invalid(
            format!(
                "model '{name}' is an ONNX model, but this build of inferno has no ONNX support; rebuild it \
                 with the `onnx` cargo feature"
            ),
            Some("model"),
        ))
    })
    .await
}

#[cfg(feature = "onnx")]
use onnx::answer;

/// The ONNX side: resolving the model, its signature and tokenizer, the cache, and running it.
#[cfg(feature = "onnx")]
mod onnx {
    use std::time::Instant;

    use super::*;
    use crate::cache::Manager;
    use crate::cache::response_store::{Endpoint, ModelIdentity};
    use crate::inference::{CachePlan, CacheStatus, EmbeddingInput, embeddings_body};
    use crate::models::embedding::{Batch, EmbeddingError, Signature, embed};
    use crate::models::pool::CachedModel;
    use crate::models::tokenizer::{LoadedTokenizer, TOKENIZER_FILE, TOKENIZER_SUFFIX, tokenizer_path};
    use crate::serve::completions::{cache_headers, header_control, json_response};
    use crate::serve::state::{Cached, Lookup};

    /// An embedding request's cache plan, with the model name a hit carries.
    struct Planned {
        plan: CachePlan,
        model: String,
    }

    impl Cached for Planned {
        fn plan(&self) -> &CachePlan {
            &self.plan
        }

        fn lookup(&self, manager: &Manager) -> Option<Vec<u8>> {
            self.plan.lookup(manager, Some(&self.model))
        }
    }

    /// A loaded embedding model and what reading its input needs.
    struct Target {
        model: Arc<CachedModel>,
        signature: Signature,
        tokenizer: Option<Arc<LoadedTokenizer>>,
    }

    /// The request's inputs in the form the model takes, owned so they can move to a blocking thread.
    enum Inputs {
        Vectors(Vec<Vec<f32>>),
        Texts(Vec<String>),
        Tokens(Vec<Vec<i64>>),
    }

    impl Inputs {
        fn batch(&self) -> Batch<'_> {
            match self {
                Self::Vectors(v) => Batch::Vectors(v),
                Self::Texts(t) => Batch::Texts(t),
                Self::Tokens(t) => Batch::Tokens(t),
            }
        }
    }

    pub(super) async fn answer(
        state: Arc<AppState>,
        headers: &HeaderMap,
        bytes: &Bytes,
    ) -> Result<Response, InferenceError> {
        let body = json_body(bytes)?;
        let request = EmbeddingRequest::parse(&body)?;
        let name = request.model.clone();
        let target = {
            let (state, name) = (Arc::clone(&state), name.clone());
            blocking(move || resolve(&state, &name)).await?
        };
        let inputs = inputs(&name, &request.input, &target)?;
        let identity = ModelIdentity { name: target.model.name(), fingerprint: fingerprint(&target) };
        let mut control = header_control(headers);
        // A model gives the same embedding for the same input: every request is cacheable.
        control.cache_all = true;
        let mut body = body;
        let plan = CachePlan::new(&state.manager, &identity, Endpoint::Embedding, &mut body, &control)?;
        let planned = Arc::new(Planned { plan, model: name.clone() });
        let plan = &planned.plan;
        let guard = match state.lookup_or_lead(&planned).await {
            Lookup::Hit(hit) => return Ok(reply(hit, CacheStatus::Hit, plan.key())),
            Lookup::Generate(guard) => guard,
        };
        let started = Instant::now();
        let embeddings = {
            let name = name.clone();
            blocking(move || {
                let onnx = target.model.model().onnx().expect("resolve keeps ONNX models only");
                embed(onnx, &target.signature, target.tokenizer.as_deref(), inputs.batch())
                    .map_err(|e| embedding_error(&name, e))
            })
            .await?
        };
        state.metrics.inference.with_label_values(&[&identity.name]).observe(started.elapsed().as_secs_f64());
        let response = embeddings_body(
            &name,
            &embeddings.vectors,
            request.encoding_format,
            request.dimensions,
            embeddings.tokens,
        )?;
        let response = serde_json::to_vec(&response)
            .map_err(|e| InferenceError::Server { message: format!("serialising the answer failed: {e}") })?;
        plan.store(&state.manager, &identity, &body, &response);
        drop(guard);
        Ok(reply(response, plan.generated_status(), plan.key()))
    }

    /// The embedding model called `name`, loaded, with its tokenizer when it reads text and has one.
    fn resolve(state: &AppState, name: &str) -> Result<Target, InferenceError> {
        let path = onnx_path(state, name)?;
        let model = state.registry.get(name)?;
        let Some(onnx) = model.model().onnx() else {
            return Err(InferenceError::Server { message: format!("model '{name}' did not load as ONNX") });
        };
        let signature = Signature::of(onnx).map_err(|why| {
            InferenceError::invalid(format!("model '{name}' is not an embedding model: {why}"), Some("model"))
        })?;
        let tokenizer = match signature.takes_text() {
            true => tokenizer_path(&path).or_else(|| tokenizer_path(model.path())),
            false => None,
        };
        let tokenizer = tokenizer
            .map(|p| state.tokenizers.get(&p))
            .transpose()
            .map_err(|e| InferenceError::Server { message: format!("model '{name}': {e}") })?;
        Ok(Target { model, signature, tokenizer })
    }

    /// The request's `input` read as `target` takes it: numbers as vectors or token ids, texts through the
    /// tokenizer.
    fn inputs(name: &str, input: &EmbeddingInput, target: &Target) -> Result<Inputs, InferenceError> {
        let invalid = |message: String| InferenceError::invalid(message, Some("input"));
        match (&target.signature, input) {
            (Signature::Vectors { .. }, EmbeddingInput::Numbers(_)) => Ok(Inputs::Vectors(input.vectors()?)),
            (Signature::Vectors { .. }, EmbeddingInput::Texts(_)) => {
                Err(invalid(format!("model '{name}' takes {}, not text", target.signature.describe())))
            }
            (Signature::Text(_), EmbeddingInput::Numbers(_)) => Ok(Inputs::Tokens(input.tokens()?)),
            (Signature::Text(_), EmbeddingInput::Texts(texts)) if target.tokenizer.is_some() => {
                Ok(Inputs::Texts(texts.clone()))
            }
            (Signature::Text(_), EmbeddingInput::Texts(_)) => Err(invalid(format!(
                "model '{name}' reads text through a HuggingFace tokenizer.json, and none was found: put it \
                 beside the model as {}{TOKENIZER_SUFFIX} or {TOKENIZER_FILE} (or send token ids)",
                target.model.name()
            ))),
        }
    }

    /// The model's fingerprint, joined with the tokenizer's (`MODEL+TOKENIZER`) when one is used: a changed
    /// tokenizer file gives new keys.
    fn fingerprint(target: &Target) -> String {
        match &target.tokenizer {
            Some(tokenizer) => format!("{}+{}", target.model.fingerprint(), tokenizer.fingerprint()),
            None => target.model.fingerprint().to_string(),
        }
    }

    fn embedding_error(name: &str, error: EmbeddingError) -> InferenceError {
        match error {
            EmbeddingError::Input(message) => {
                InferenceError::invalid(format!("model '{name}': {message}"), Some("input"))
            }
            other => InferenceError::Server { message: format!("model '{name}': {other}") },
        }
    }

    fn reply(body: Vec<u8>, status: CacheStatus, key: &str) -> Response {
        let mut response = json_response(body);
        cache_headers(response.headers_mut(), status, key);
        response
    }
}
