//! [`PoolError`]: why the model cache could not hand out a model. Each error names the file and says
//! what to do about it.

use std::error::Error;
use std::path::PathBuf;
use std::sync::Arc;

use bytesize::ByteSize;

use crate::models::file::{ModelFileError, ModelFormat};

/// Why [`ModelPool::get_or_load`](super::ModelPool::get_or_load) failed.
///
/// Cloneable, so that callers waiting for a load in flight receive the loader's error too.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// The file could not be found, identified or hashed.
    #[error(transparent)]
    File(Arc<ModelFileError>),
    /// The header reader or the runtime refused the file (the source names the file and the problem).
    #[error("{source}")]
    Load {
        /// The model file.
        path: PathBuf,
        /// The reader's or runtime's error.
        source: Arc<dyn Error + Send + Sync>,
    },
    /// The file's format needs a cargo feature this build of inferno lacks.
    #[error(
        "{}: {} models need the `{feature}` cargo feature, but inferno was built without the `{feature}` \
         feature; rebuild with `cargo build --features {feature}`",
        .path.display(), .format.as_str()
    )]
    FeatureMissing {
        /// The model file.
        path: PathBuf,
        /// Its format.
        format: ModelFormat,
        /// The missing feature (`llama` or `onnx`).
        feature: &'static str,
    },
    /// The model alone needs more memory than the whole limit.
    #[error(
        "{}: the model needs about {} of memory, more than cache.model.memory_limit_gb allows ({}); \
         raise the limit or use a smaller (more quantised) model",
        .path.display(), ByteSize(*.estimate).display().si(), ByteSize(*.limit).display().si()
    )]
    TooLarge {
        /// The model file.
        path: PathBuf,
        /// The model's resident size estimate in bytes.
        estimate: u64,
        /// `cache.model.memory_limit_gb` in bytes.
        limit: u64,
    },
    /// `cache.model.max_models` is 0, so no model can be loaded.
    #[error("{}: cache.model.max_models is 0, so no model can be loaded; set it to 1 or more", .path.display())]
    NoModelsAllowed {
        /// The model file.
        path: PathBuf,
    },
    /// Under `unload_policy = "manual"`, the model does not fit beside the ones loaded.
    #[error(
        "{}: no room for the model ({} needed; {loaded} of {max_models} models and {} of {} loaded) and \
         cache.model.unload_policy is \"manual\", so nothing is unloaded automatically; unload a model first",
        .path.display(), ByteSize(*.estimate).display().si(), ByteSize(*.resident).display().si(),
        ByteSize(*.limit).display().si()
    )]
    NoRoom {
        /// The model file.
        path: PathBuf,
        /// The model's resident size estimate in bytes.
        estimate: u64,
        /// Models loaded or being loaded.
        loaded: usize,
        /// `cache.model.max_models`.
        max_models: u32,
        /// Their resident size estimates together, in bytes.
        resident: u64,
        /// `cache.model.memory_limit_gb` in bytes.
        limit: u64,
    },
}

impl PoolError {
    /// A load error from a reader or runtime error that names the file itself.
    pub(super) fn load(path: PathBuf, source: impl Error + Send + Sync + 'static) -> Self {
        Self::Load { path, source: Arc::new(source) }
    }

    /// A load error from a message that does not name the file: the path is put in front.
    pub(super) fn load_message(path: PathBuf, message: &str) -> Self {
        let text = format!("{}: cannot load the model: {message}", path.display());
        Self::Load { path, source: Arc::from(Box::<dyn Error + Send + Sync>::from(text)) }
    }
}

impl From<ModelFileError> for PoolError {
    fn from(error: ModelFileError) -> Self {
        Self::File(Arc::new(error))
    }
}
