//! Cache warming (`inferno cache warm`): getting models and responses ready before anyone asks for them.
//!
//! Warming a model, in a CLI process: read the whole file once, which pulls its pages into the OS page cache
//! (so a server's later load and first inference do not wait on the disk) and yields its fingerprint in the
//! same pass; read and cache its metadata; load it in its runtime to prove it loads (timed); with
//! `cache.metadata.include_performance_stats`, also time a short generation; and record a `model` entry
//! (what was warmed, when, which content) in the cache. Warming responses runs prompts through a model and
//! stores the answers under the keys the server computes for the same requests (see [`responses`]).
//! Warming prefixes runs prompts through a model's slots with the KV store attached, so their states are
//! saved for requests that start with them (see [`prefixes`]).

pub mod prefixes;
pub mod progress;
#[cfg(feature = "llama")]
pub mod responses;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::cache::{Kind, Manager};
use crate::models::file::{ModelFile, ModelFileError, ModelFormat};
use crate::models::metadata::{MetadataError, ModelMetadata, PerformanceStats};
use crate::models::metadata_cache::MetadataCache;
use crate::models::pages::{self, WarmReport};
use crate::models::pool::{LoadedModel, ModelPool, PoolError};

/// Why a model could not be warmed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WarmError {
    /// The file could not be identified.
    #[error(transparent)]
    File(#[from] ModelFileError),
    /// The file could not be read.
    #[error("{path}: cannot read model file: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Its header or graph is damaged.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// Its runtime refused it.
    #[error(transparent)]
    Load(#[from] PoolError),
    /// Responses were asked of a model that does not generate text.
    #[error("{path}: only GGUF models generate text; --responses and --prefixes need a GGUF model")]
    NotTextModel {
        /// The model file.
        path: PathBuf,
    },
    /// Prefixes were asked for while `cache.kv` is off (or has nowhere to keep states).
    #[error(
        "the prompt-prefix KV cache is off (cache.enabled or cache.kv.enabled is false, or cache.type = memory with cache.kv.memory_limit_gb = 0); enable it with `inferno cache enable --type kv`"
    )]
    KvDisabled,
    /// The cache could not be written.
    #[error("cannot record the warmed model in the cache: {0}")]
    Cache(#[from] crate::cache::CacheError),
}

/// What warming one model did and measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelWarmReport {
    /// Canonical path.
    pub path: PathBuf,
    /// Its name (file stem).
    pub name: String,
    /// `gguf` or `onnx`.
    pub format: ModelFormat,
    /// The read pass: bytes, time, page-cache residency before and after, fingerprint.
    pub read: WarmReport,
    /// Read throughput, MB/s.
    pub read_mb_per_s: f64,
    /// Time to load it in its runtime after the read, in milliseconds.
    pub load_ms: f64,
    /// Tokens per second of a short greedy generation (GGUF, with include_performance_stats).
    pub tokens_per_second: Option<f64>,
    /// Whether metadata and the model entry were stored (false when no cache is open).
    pub stored: bool,
    /// Whether the model stays loaded afterwards, in a running server's model cache.
    #[serde(default)]
    pub kept_loaded: bool,
}

/// Where warming loads the model.
#[derive(Clone, Copy, Debug)]
pub enum LoadInto<'a> {
    /// Load it once to prove it loads and time it, then drop it (a CLI process).
    Check,
    /// Load it into this model cache, where it stays for requests (a server). A model already loaded is
    /// not loaded again; its load time is the one measured when it was.
    Keep(&'a ModelPool),
}

/// Warms the model file at `path`; `cache` is the open cache to record it in (`None`: record nothing);
/// `into` says whether the load is a check or the model stays loaded. `on_progress(done, total)` follows the
/// read in bytes.
pub fn warm_model(
    cache: Option<&Manager>,
    path: &Path,
    into: LoadInto<'_>,
    on_progress: impl FnMut(u64, u64),
) -> Result<ModelWarmReport, WarmError> {
    let file = ModelFile::open(path)?;
    let read = pages::warm(&file.path, on_progress)
        .map_err(|source| WarmError::Read { path: file.path.clone(), source })?;
    let metadata = match cache {
        Some(manager) => MetadataCache::new(manager).put_read(&file, read.fingerprint.clone())?,
        None => ModelMetadata::read(&file, read.fingerprint.clone())?,
    };
    let measure = cache.is_none_or(|m| m.config().metadata.include_performance_stats);
    let (load_ms, tokens_per_second) = match into {
        // Loaded to prove it loads, timed, and unloaded at the end of this block.
        LoadInto::Check => {
            let started = Instant::now();
            let loaded = LoadedModel::load(&file)?;
            let load_ms = started.elapsed().as_secs_f64() * 1e3;
            (load_ms, if measure { generation_speed(&loaded, &metadata) } else { None })
        }
        LoadInto::Keep(models) => {
            let cached = models.get_or_load(&file.path)?;
            let load_ms = cached.load_time().as_secs_f64() * 1e3;
            (load_ms, if measure { generation_speed(cached.model(), &metadata) } else { None })
        }
    };
    if let Some(manager) = cache {
        let stats =
            PerformanceStats { load_ms, tokens_per_second, measured_at_ms: crate::cache::clock::now_ms() };
        MetadataCache::new(manager).record_performance(&file.path, stats)?;
        let entry = serde_json::json!({
            "path": file.path,
            "name": file.stem(),
            "format": file.format,
            "fingerprint": read.fingerprint,
            "file_size": read.bytes,
            "warmed_at_ms": crate::cache::clock::now_ms(),
        });
        let key = file.path.to_string_lossy();
        manager.put(Kind::Model, &key, &file.file_name(), entry.to_string().as_bytes(), None)?;
    }
    Ok(ModelWarmReport {
        path: file.path.clone(),
        name: file.stem(),
        format: file.format,
        read_mb_per_s: read.mb_per_s(),
        read,
        load_ms,
        tokens_per_second,
        stored: cache.is_some(),
        kept_loaded: matches!(into, LoadInto::Keep(_)),
    })
}

/// Tokens per second of 16 greedy tokens from a one-word prompt, for GGUF models; `None` for others or when
/// the model cannot generate (its load already succeeded, so this is not an error).
fn generation_speed(loaded: &LoadedModel, metadata: &ModelMetadata) -> Option<f64> {
    #[cfg(feature = "llama")]
    if let Some(model) = loaded.gguf() {
        use crate::models::llama::GenerateParams;
        let n_ctx = metadata.context_length.unwrap_or(512).min(512) as u32;
        let params = GenerateParams { max_tokens: 16.min(n_ctx / 2), n_ctx, ..GenerateParams::default() };
        let started = Instant::now();
        let generation = model.generate("The", &params).ok()?;
        let secs = started.elapsed().as_secs_f64();
        return (generation.completion_tokens > 0 && secs > 0.0)
            .then(|| generation.completion_tokens as f64 / secs);
    }
    let _ = (loaded, metadata);
    None
}

/// The model files a warm job covers: the `--model` files, then every model under each `--directory`.
pub fn collect_models(
    files: &[PathBuf],
    dirs: &[PathBuf],
) -> Result<Vec<PathBuf>, crate::models::catalog::CatalogError> {
    let mut out: Vec<PathBuf> = files.to_vec();
    for dir in dirs {
        out.extend(crate::models::catalog::discover(dir)?);
    }
    Ok(out)
}
