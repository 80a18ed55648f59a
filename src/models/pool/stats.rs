//! What the model cache reports about itself: its counters since it was created and a snapshot of the
//! models it holds, both serde-serialisable for `--json` output (durations as milliseconds).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::models::file::ModelFormat;
use crate::models::generate::SlotStats;

/// The model cache's counters since it was created.
///
/// A call of [`get_or_load`](super::ModelPool::get_or_load) that starts a load is a miss, so
/// `misses == loads + load_failures` (a file that cannot even be opened counts as both a miss and a failure).
/// A call answered by a loaded model is a hit, and so is a call that waits for another caller's load of the
/// same file and shares its model; a call that shares a failed load counts nowhere (the loader's call
/// counted the failure).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelCacheCounters {
    /// Calls answered by a model already loaded (or being loaded by another caller).
    pub hits: u64,
    /// Calls that started a load.
    pub misses: u64,
    /// Of the misses, those whose file had changed since it was loaded (the old instance was dropped).
    pub reloads: u64,
    /// Models loaded.
    pub loads: u64,
    /// Loads that failed: unreadable, damaged or foreign files, a missing feature, a model too large, no room.
    pub load_failures: u64,
    /// Models unloaded to make room for another (`max_models` or `memory_limit_gb`).
    pub evictions: u64,
    /// Models unloaded for being idle longer than `keep_alive_minutes` (`unload_policy = "time_based"`).
    pub idle_unloads: u64,
    /// Models unloaded on request (`unload`, `unload_all`).
    pub manual_unloads: u64,
    /// Time spent in successful loads (fingerprinting included), in total.
    #[serde(rename = "total_load_ms", serialize_with = "millis", deserialize_with = "from_millis")]
    pub total_load_time: Duration,
    /// Time the latest successful load took.
    #[serde(rename = "last_load_ms", serialize_with = "millis", deserialize_with = "from_millis")]
    pub last_load_time: Duration,
}

/// One loaded model, as [`ModelPool::stats`](super::ModelPool::stats) shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoadedModelInfo {
    /// The canonical path of the model file.
    pub path: PathBuf,
    /// The model's name (the file stem).
    pub name: String,
    /// The file's format.
    pub format: ModelFormat,
    /// `blake3:` + the hash of the file's content.
    pub fingerprint: String,
    /// The resident size estimate in bytes (see [`resident_estimate`](super::resident_estimate)).
    pub resident_bytes: u64,
    /// How often it was handed out, its load included.
    pub uses: u64,
    /// True while a caller holds it (it is then never unloaded for being idle).
    pub in_use: bool,
    /// Time since it was last handed out.
    #[serde(rename = "idle_ms", serialize_with = "millis", deserialize_with = "from_millis")]
    pub idle: Duration,
    /// How long loading it took.
    #[serde(rename = "load_ms", serialize_with = "millis", deserialize_with = "from_millis")]
    pub load_time: Duration,
    /// Its inference slots (GGUF models): busy, queued, tokens generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots: Option<SlotStats>,
}

/// A snapshot of the model cache: the loaded models, most recently used first, their totals, the limits
/// and the counters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelCacheStats {
    /// The loaded models, most recently used first.
    pub models: Vec<LoadedModelInfo>,
    /// How many models are loaded.
    pub loaded: usize,
    /// Their resident size estimates together, in bytes.
    pub resident_bytes: u64,
    /// `cache.model.max_models`.
    pub max_models: u32,
    /// `cache.model.memory_limit_gb`, in bytes.
    pub memory_limit_bytes: u64,
    /// The counters.
    pub counters: ModelCacheCounters,
}

/// A duration as fractional milliseconds.
fn millis<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64() * 1000.0)
}

/// Reads what [`millis`] wrote.
fn from_millis<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let ms = f64::deserialize(deserializer)?;
    Duration::try_from_secs_f64(ms / 1000.0).map_err(serde::de::Error::custom)
}
