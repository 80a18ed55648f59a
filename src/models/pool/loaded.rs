//! A model instance loaded in its runtime ([`LoadedModel`]), the dispatch from a file's format to the runtime
//! that loads it, and the resident size estimate the cache's memory limit counts.

use std::panic::{AssertUnwindSafe, catch_unwind};

#[cfg(feature = "llama")]
use crate::models::llama::GgufModel;
#[cfg(feature = "onnx")]
use crate::models::onnx::OnnxModel;

use super::PoolError;
use crate::models::file::{ModelFile, ModelFormat};
use crate::models::generate::{SlotConfig, SlotStats};
use crate::models::gguf::GgufHeader;

/// A model loaded in the runtime of its format. Which variants exist depends on the cargo features this
/// build has (`llama`, `onnx`); without either, nothing can be loaded.
#[derive(Debug)]
#[non_exhaustive]
pub enum LoadedModel {
    /// A GGUF model in llama.cpp.
    #[cfg(feature = "llama")]
    Gguf(GgufModel),
    /// An ONNX model in ONNX Runtime.
    #[cfg(feature = "onnx")]
    Onnx(OnnxModel),
}

impl LoadedModel {
    /// Loads `file` in the runtime of its format, a GGUF model with the default slots. A runtime that
    /// panics is reported as a load error.
    pub fn load(file: &ModelFile) -> Result<Self, PoolError> {
        Self::load_with(file, &SlotConfig::default())
    }

    /// [`load`](Self::load), a GGUF model with `slots` (whose prompt-prefix cache, if any, hashes the file
    /// for its fingerprint).
    pub fn load_with(file: &ModelFile, slots: &SlotConfig) -> Result<Self, PoolError> {
        Self::load_fingerprinted(file, None, slots)
    }

    /// [`load_with`](Self::load_with) when the caller already has the file's `blake3:` fingerprint
    /// ([`ModelFile::fingerprint`]), which a GGUF model's prompt-prefix cache needs.
    pub fn load_fingerprinted(
        file: &ModelFile,
        fingerprint: Option<&str>,
        slots: &SlotConfig,
    ) -> Result<Self, PoolError> {
        check_supported(file)?;
        let loaded = catch_unwind(AssertUnwindSafe(|| match file.format {
            ModelFormat::Gguf => load_gguf(file, fingerprint, slots),
            ModelFormat::Onnx => load_onnx(file),
        }));
        loaded.unwrap_or_else(|_| {
            Err(PoolError::load_message(file.path.clone(), "the runtime panicked while loading it"))
        })
    }

    /// What the slots of a GGUF model are doing; `None` for other models.
    #[cfg(feature = "llama")]
    pub fn slot_stats(&self) -> Option<SlotStats> {
        self.gguf().map(GgufModel::slot_stats)
    }

    /// What the slots of a GGUF model are doing: no GGUF model in this build.
    #[cfg(not(feature = "llama"))]
    pub fn slot_stats(&self) -> Option<SlotStats> {
        None
    }

    /// The GGUF model, if this is one.
    #[cfg(feature = "llama")]
    pub fn gguf(&self) -> Option<&GgufModel> {
        match self {
            Self::Gguf(model) => Some(model),
            #[cfg(feature = "onnx")]
            Self::Onnx(_) => None,
        }
    }

    /// The ONNX model, if this is one.
    #[cfg(feature = "onnx")]
    pub fn onnx(&self) -> Option<&OnnxModel> {
        match self {
            Self::Onnx(model) => Some(model),
            #[cfg(feature = "llama")]
            Self::Gguf(_) => None,
        }
    }
}

/// The cargo feature that runs `format`.
pub fn feature_of(format: ModelFormat) -> &'static str {
    match format {
        ModelFormat::Gguf => "llama",
        ModelFormat::Onnx => "onnx",
    }
}

/// True when this build can load models of `format`.
pub fn is_supported(format: ModelFormat) -> bool {
    match format {
        ModelFormat::Gguf => cfg!(feature = "llama"),
        ModelFormat::Onnx => cfg!(feature = "onnx"),
    }
}

/// An error when this build cannot load `file`'s format.
pub(super) fn check_supported(file: &ModelFile) -> Result<(), PoolError> {
    if is_supported(file.format) { Ok(()) } else { Err(feature_missing(file)) }
}

fn feature_missing(file: &ModelFile) -> PoolError {
    let (path, format) = (file.path.clone(), file.format);
    PoolError::FeatureMissing { path, format, feature: feature_of(format) }
}

#[cfg(feature = "llama")]
fn load_gguf(
    file: &ModelFile,
    fingerprint: Option<&str>,
    slots: &SlotConfig,
) -> Result<LoadedModel, PoolError> {
    let loaded = match fingerprint {
        Some(_) => GgufModel::load_fingerprinted(&file.path, fingerprint, slots),
        None => GgufModel::load_with(&file.path, slots),
    };
    loaded.map(LoadedModel::Gguf).map_err(|e| PoolError::load(file.path.clone(), e))
}

#[cfg(not(feature = "llama"))]
fn load_gguf(
    file: &ModelFile,
    _fingerprint: Option<&str>,
    _slots: &SlotConfig,
) -> Result<LoadedModel, PoolError> {
    Err(feature_missing(file))
}

#[cfg(feature = "onnx")]
fn load_onnx(file: &ModelFile) -> Result<LoadedModel, PoolError> {
    OnnxModel::load(&file.path).map(LoadedModel::Onnx).map_err(|e| PoolError::load(file.path.clone(), e))
}

#[cfg(not(feature = "onnx"))]
fn load_onnx(file: &ModelFile) -> Result<LoadedModel, PoolError> {
    Err(feature_missing(file))
}

/// How many bytes of memory the model will hold once loaded and in use, as the memory limit counts it.
///
/// This is an estimate made before loading, from the file alone:
///
/// - **GGUF**: the file size (llama.cpp memory-maps the weights, which become resident as inference touches
///   them) plus the KV cache of the context its slots share, created at load (one unified cache for all
///   `server.parallel` sequences, at the model's training context, at most [`SlotConfig::max_context`]
///   tokens), see [`kv_cache_bytes`].
/// - **ONNX**: the file size (ONNX Runtime holds the initializers in memory).
///
/// It leaves out the runtimes' compute buffers (scratch memory for activations, which grows with batch and
/// context size), a context smaller or larger than the training context, ONNX weights kept in external data
/// files, and the runtimes' own code and allocator overhead.
pub fn resident_estimate(file: &ModelFile) -> Result<u64, PoolError> {
    match file.format {
        ModelFormat::Gguf => {
            let header =
                GgufHeader::read_path(&file.path).map_err(|e| PoolError::load(file.path.clone(), e))?;
            Ok(file.stamp.size.saturating_add(kv_cache_bytes(&header)))
        }
        ModelFormat::Onnx => Ok(file.stamp.size),
    }
}

/// The bytes of the f16 KV cache of a model's slots: `n_ctx × block_count × (2 × head_dim × head_count_kv)
/// × 2`, with `n_ctx` the training context (at most [`SlotConfig::max_context`] tokens, as the slots cap it)
/// and `head_dim = embedding_length / head_count`, read from the header. 0 when the header lacks one of these (not a transformer llama.cpp
/// describes this way). Architectures whose key and value heads differ from `head_dim` are counted as if
/// they did not.
pub fn kv_cache_bytes(header: &GgufHeader) -> u64 {
    let fields = (
        header.context_length(),
        header.block_count(),
        header.embedding_length(),
        header.head_count(),
        header.head_count_kv(),
    );
    let (Some(n_ctx), Some(blocks), Some(embedding), Some(heads), Some(heads_kv)) = fields else {
        return 0;
    };
    let Some(head_dim) = embedding.checked_div(heads) else {
        return 0;
    };
    let n_ctx = n_ctx.min(u64::from(SlotConfig::default().max_context));
    let per_token_per_block = 2u64.saturating_mul(head_dim).saturating_mul(heads_kv);
    n_ctx.saturating_mul(blocks).saturating_mul(per_token_per_block).saturating_mul(2)
}
