//! GGUF models through llama.cpp (the `llama-cpp-2` crate): the process-wide backend, loading a model file,
//! and generating text greedily or with sampling parameters.
//!
//! Only the mechanics live here; which models stay loaded is the job of the model cache
//! ([`crate::models::cache`]). The header is read with our own reader first, so a truncated or foreign file
//! gets a clear error naming the file and the problem instead of llama.cpp's generic load failure.
//! Generation is blocking: callers on an async runtime run it on a blocking thread.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::sampling::LlamaSampler;
use parking_lot::Mutex;

use super::gguf::{GgufError, GgufHeader};

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
}

/// The one llama.cpp backend of this process (llama.cpp may be initialised only once).
fn backend() -> Result<&'static LlamaBackend, LlamaError> {
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

/// How to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateParams {
    /// Most new tokens.
    pub max_tokens: u32,
    /// 0 = greedy; otherwise the softmax temperature.
    pub temperature: f32,
    /// Nucleus sampling threshold (1.0 = off).
    pub top_p: f32,
    /// Keep only the k most likely tokens (0 = off).
    pub top_k: i32,
    /// Seed of the sampler when temperature > 0.
    pub seed: u32,
    /// Generation stops when the text ends with one of these; the stop string is not returned.
    pub stop: Vec<String>,
    /// Context size in tokens (0 = the model's training context).
    pub n_ctx: u32,
}

impl Default for GenerateParams {
    fn default() -> Self {
        Self { max_tokens: 16, temperature: 0.0, top_p: 1.0, top_k: 0, seed: 0, stop: Vec::new(), n_ctx: 0 }
    }
}

/// Why generation ended, in OpenAI's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// The model produced an end-of-generation token or a stop string.
    Stop,
    /// `max_tokens` was reached.
    Length,
}

/// The result of a generation.
#[derive(Clone, Debug, PartialEq)]
pub struct Generation {
    /// The generated text.
    pub text: String,
    /// Tokens in the prompt (including BOS when the model adds one).
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// Why it ended.
    pub finish_reason: FinishReason,
}

/// A GGUF model loaded in llama.cpp (memory-mapped by default).
pub struct GgufModel {
    path: PathBuf,
    header: GgufHeader,
    model: LlamaModel,
    /// llama.cpp mutates the model while creating a context, so contexts are created one at a time.
    context_lock: Mutex<()>,
}

impl std::fmt::Debug for GgufModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufModel").field("path", &self.path).finish_non_exhaustive()
    }
}

impl GgufModel {
    /// Reads the header, then loads the model in llama.cpp.
    pub fn load(path: &Path) -> Result<Self, LlamaError> {
        let header = GgufHeader::read_path(path)?;
        let backend = backend()?;
        let model = LlamaModel::load_from_file(backend, path, &LlamaModelParams::default())
            .map_err(|e| LlamaError::Load { path: path.to_path_buf(), reason: e.to_string() })?;
        Ok(Self { path: path.to_path_buf(), header, model, context_lock: Mutex::new(()) })
    }

    /// The model file's header, as our reader saw it.
    pub fn header(&self) -> &GgufHeader {
        &self.header
    }

    /// Bytes of the model's tensors, as llama.cpp counts them.
    pub fn size(&self) -> u64 {
        self.model.size()
    }

    /// Generates a continuation of `prompt` (fed raw, with BOS when the model asks for it).
    pub fn generate(&self, prompt: &str, params: &GenerateParams) -> Result<Generation, LlamaError> {
        let fail = |reason: String| LlamaError::Inference { path: self.path.clone(), reason };
        let vocab = self.model.vocab();
        let tokens = vocab.tokenize(prompt.as_bytes(), true, false);
        let n_ctx = if params.n_ctx > 0 { params.n_ctx } else { self.model.n_ctx_train() };
        if tokens.is_empty() || tokens.len() + params.max_tokens as usize > n_ctx as usize {
            return Err(LlamaError::ContextFull {
                prompt: tokens.len(),
                max_tokens: params.max_tokens,
                n_ctx,
            });
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as i32;
        let context_params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(n_ctx)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let mut ctx = {
            let _one_at_a_time = self.context_lock.lock();
            self.model.new_context(backend()?, context_params).map_err(|e| fail(e.to_string()))?
        };
        let mut batch = LlamaBatch::new(n_ctx as usize, 1);
        let last = tokens.len() - 1;
        for (i, token) in tokens.iter().enumerate() {
            batch.add(*token, i as i32, &[0], i == last).map_err(|e| fail(e.to_string()))?;
        }
        ctx.decode(&mut batch).map_err(|e| fail(e.to_string()))?;
        let mut sampler = if params.temperature <= 0.0 {
            LlamaSampler::greedy()
        } else {
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
        };
        let mut bytes = Vec::new();
        let mut completion_tokens = 0;
        let mut position = tokens.len() as i32;
        let mut finish_reason = FinishReason::Length;
        while completion_tokens < params.max_tokens as usize {
            let token = sampler.sample(&ctx, batch.n_tokens() - 1);
            sampler.accept(token);
            if vocab.is_eog(token) {
                finish_reason = FinishReason::Stop;
                break;
            }
            completion_tokens += 1;
            bytes.extend(vocab.token_to_piece(token, false, None));
            if let Some(cut) = stop_at(&bytes, &params.stop) {
                bytes.truncate(cut);
                finish_reason = FinishReason::Stop;
                break;
            }
            batch.clear();
            batch.add(token, position, &[0], true).map_err(|e| fail(e.to_string()))?;
            position += 1;
            ctx.decode(&mut batch).map_err(|e| fail(e.to_string()))?;
        }
        Ok(Generation {
            text: String::from_utf8_lossy(&bytes).into_owned(),
            prompt_tokens: tokens.len(),
            completion_tokens,
            finish_reason,
        })
    }
}

/// Where the text must be cut when it contains a stop string: the start of the earliest one.
fn stop_at(bytes: &[u8], stops: &[String]) -> Option<usize> {
    stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| bytes.windows(s.len()).position(|w| w == s.as_bytes()))
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::gguf::tiny::write_tiny_llama;

    fn tiny() -> (tempfile::TempDir, GgufModel) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        write_tiny_llama(&path).unwrap();
        let model = GgufModel::load(&path).unwrap();
        (dir, model)
    }

    #[test]
    fn greedy_generation_continues_the_alphabet() {
        let (_dir, model) = tiny();
        let params = GenerateParams { max_tokens: 8, n_ctx: 64, ..GenerateParams::default() };
        let out = model.generate("abc", &params).unwrap();
        assert_eq!(out.text, "defghijk");
        assert_eq!(out.prompt_tokens, 5, "BOS, the space prefix and three letters");
        assert_eq!(out.completion_tokens, 8);
        assert_eq!(out.finish_reason, FinishReason::Length);
        assert_eq!(model.generate("xy78", &params).unwrap().text, "90123456");
    }

    #[test]
    fn stop_strings_and_sampling() {
        let (_dir, model) = tiny();
        let stop =
            GenerateParams { max_tokens: 8, n_ctx: 64, stop: vec!["gh".into()], ..GenerateParams::default() };
        let out = model.generate("abc", &stop).unwrap();
        assert_eq!((out.text.as_str(), out.finish_reason), ("def", FinishReason::Stop));
        // The tiny model is so sure of the next letter that sampling at temperature 1 agrees with greedy.
        let sampled = GenerateParams {
            max_tokens: 4,
            n_ctx: 64,
            temperature: 1.0,
            top_k: 5,
            seed: 7,
            ..GenerateParams::default()
        };
        assert_eq!(model.generate("abc", &sampled).unwrap().text, "defg");
    }

    #[test]
    fn bad_files_and_full_contexts_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        write_tiny_llama(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let err = GgufModel::load(&path).unwrap_err().to_string();
        assert!(err.contains("tiny.gguf"), "{err}");
        std::fs::write(&path, b"not a model").unwrap();
        assert!(GgufModel::load(&path).is_err());
        let (_dir, model) = tiny();
        let params = GenerateParams { max_tokens: 100, n_ctx: 32, ..GenerateParams::default() };
        assert!(matches!(model.generate("abc", &params), Err(LlamaError::ContextFull { .. })));
    }
}
