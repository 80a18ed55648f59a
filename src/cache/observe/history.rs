//! What the cache has been doing over time, for `cache report`, `cache analyze` and `cache monitor`.
//!
//! - `history.jsonl`: one [`Snapshot`] of the counters and sizes per line, appended by the writer at every
//!   flush — every `persistence.sync_interval_seconds` in a long-running process, and at the end of every CLI
//!   command that wrote. Kept under 4 MiB by dropping the oldest half when it grows past that.
//! - `live.json`: the writer's current counters and memory-tier figures, rewritten about once a second by its
//!   background thread, so `cache monitor` in another process sees live rates.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::stats::CounterSnapshot;
use crate::cache::memory::MemoryStats;

/// File of counter snapshots in the cache directory.
pub const HISTORY_FILE: &str = "history.jsonl";
/// File with the writer's live figures in the cache directory.
pub const LIVE_FILE: &str = "live.json";
const HISTORY_MAX_BYTES: u64 = 4 << 20;

/// The cache at one moment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When, ms since the Unix epoch.
    pub time_ms: u64,
    /// Counters (totals since the cache was created).
    pub counters: CounterSnapshot,
    /// Live entries on disk.
    pub entries: u64,
    /// Bytes of records on disk.
    pub record_bytes: u64,
}

/// Appends `snapshot` to the history in `dir`.
pub fn record(dir: &Path, snapshot: &Snapshot) -> std::io::Result<()> {
    super::jsonl::append(&dir.join(HISTORY_FILE), HISTORY_MAX_BYTES, snapshot)
}

/// Snapshots in `dir` taken at or after `since_ms`, oldest first. Unreadable lines (a torn last write) are
/// skipped.
pub fn load(dir: &Path, since_ms: u64) -> Vec<Snapshot> {
    let all: Vec<Snapshot> = super::jsonl::read(&dir.join(HISTORY_FILE));
    all.into_iter().filter(|s| s.time_ms >= since_ms).collect()
}

/// The writer's live figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Live {
    /// The writer's pid.
    pub pid: u32,
    /// When written, ms since the Unix epoch.
    pub time_ms: u64,
    /// Counters.
    pub counters: CounterSnapshot,
    /// Entries in the writer's memory tier.
    pub memory_entries: u64,
    /// Bytes in the writer's memory tier.
    pub memory_bytes: u64,
    /// Bytes appended to the disk tier since the writer opened it.
    pub disk_bytes_written: u64,
    /// Records read from the disk tier since the writer opened it.
    pub disk_reads: u64,
    /// fsyncs since the writer opened the cache.
    pub disk_syncs: u64,
}

impl Live {
    /// Memory figures from a tier's stats.
    pub fn with_memory(mut self, memory: Option<MemoryStats>) -> Self {
        if let Some(m) = memory {
            self.memory_entries = m.entries;
            self.memory_bytes = m.bytes;
        }
        self
    }

    /// Writes the figures to `dir` atomically.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        serde_json::to_writer(&mut tmp, self)?;
        tmp.persist(dir.join(LIVE_FILE)).map_err(|e| e.error)?;
        Ok(())
    }

    /// The figures in `dir`, if any.
    pub fn load(dir: &Path) -> Option<Self> {
        serde_json::from_slice(&std::fs::read(dir.join(LIVE_FILE)).ok()?).ok()
    }
}
