//! Counters the manager keeps: hits per tier, misses, puts, expirations and evictions per kind, the remote
//! tier's own (`remote/stats.rs`), and what the prompt-prefix KV cache reused (`cache/kv_store.rs`). Every figure a command prints about cache activity comes from here or from
//! the disk tier's index.
//!
//! The counters are totals since the cache directory was created: the writer saves them to
//! `<base_dir>/counters.json` at every flush, and every open starts from the saved values, so a `stats` run in
//! a new process shows the hits of the processes before it.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::cache::kind::Kind;
use crate::cache::remote::{RemoteCounters, RemoteSnapshot};
use crate::cache::semantic::counters::{SemanticCounters, SemanticSnapshot};

/// Activity counters for one kind.
#[derive(Debug, Default)]
pub struct KindCounters {
    /// Gets answered by the memory tier.
    pub memory_hits: AtomicU64,
    /// Gets answered by the disk tier.
    pub disk_hits: AtomicU64,
    /// Gets answered by the remote tier (Redis).
    pub remote_hits: AtomicU64,
    /// Gets that found nothing usable.
    pub misses: AtomicU64,
    /// Gets that found an expired entry.
    pub expired: AtomicU64,
    /// Puts.
    pub puts: AtomicU64,
}

/// All counters of a manager.
#[derive(Debug, Default)]
pub struct Counters {
    kinds: [KindCounters; Kind::ALL.len()],
    /// Memory-tier entries evicted for room.
    pub evictions: AtomicU64,
    /// Disk-tier entries removed, oldest first, to stay under `max_size_gb`.
    pub disk_evictions: AtomicU64,
    /// Bytes of values put (before compression and dedup).
    pub bytes_put: AtomicU64,
    /// Gets timed.
    pub lookups: AtomicU64,
    /// Total time of those gets, in nanoseconds.
    pub lookup_nanos: AtomicU64,
    /// Values stored whole because a weak content hash (xxh32, xxh64) matched a chunk with other bytes.
    pub dedup_collisions: AtomicU64,
    /// The remote tier's counters (shared with the tier itself).
    pub remote: Arc<RemoteCounters>,
    /// Prompt tokens restored from saved KV states instead of being prefilled.
    pub kv_tokens_reused: AtomicU64,
    /// Prefill time those restores spared, in microseconds (as the model's slots estimate it).
    pub kv_prefill_micros_saved: AtomicU64,
    /// KV states not stored because the background writer's queue was full.
    pub kv_writes_dropped: AtomicU64,
    /// KV states removed, least recently used first, to stay under `cache.kv.max_size_gb`.
    pub kv_evictions: AtomicU64,
    /// The semantic cache's counters (shared with the server's semantic index).
    pub semantic: Arc<SemanticCounters>,
}

impl Counters {
    /// The counters of one kind.
    pub fn kind(&self, kind: Kind) -> &KindCounters {
        &self.kinds[kind.code() as usize - 1]
    }

    /// Sets every counter to the values of `saved`.
    pub fn restore(&self, saved: &CounterSnapshot) {
        for k in &saved.kinds {
            let c = self.kind(k.kind);
            c.memory_hits.store(k.memory_hits, Ordering::Relaxed);
            c.disk_hits.store(k.disk_hits, Ordering::Relaxed);
            c.remote_hits.store(k.remote_hits, Ordering::Relaxed);
            c.misses.store(k.misses, Ordering::Relaxed);
            c.expired.store(k.expired, Ordering::Relaxed);
            c.puts.store(k.puts, Ordering::Relaxed);
        }
        self.evictions.store(saved.evictions, Ordering::Relaxed);
        self.disk_evictions.store(saved.disk_evictions, Ordering::Relaxed);
        self.bytes_put.store(saved.bytes_put, Ordering::Relaxed);
        self.lookups.store(saved.lookups, Ordering::Relaxed);
        self.lookup_nanos.store(saved.lookup_nanos, Ordering::Relaxed);
        self.remote.restore(&saved.remote);
        self.kv_tokens_reused.store(saved.kv.tokens_reused, Ordering::Relaxed);
        self.kv_prefill_micros_saved.store(saved.kv.prefill_micros_saved, Ordering::Relaxed);
        self.kv_writes_dropped.store(saved.kv.writes_dropped, Ordering::Relaxed);
        self.kv_evictions.store(saved.kv.evictions, Ordering::Relaxed);
        self.semantic.restore(&saved.semantic);
    }

    /// A plain copy of every counter.
    pub fn snapshot(&self) -> CounterSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterSnapshot {
            kinds: Kind::ALL
                .into_iter()
                .map(|kind| {
                    let c = self.kind(kind);
                    KindSnapshot {
                        kind,
                        memory_hits: load(&c.memory_hits),
                        disk_hits: load(&c.disk_hits),
                        remote_hits: load(&c.remote_hits),
                        misses: load(&c.misses),
                        expired: load(&c.expired),
                        puts: load(&c.puts),
                    }
                })
                .collect(),
            evictions: load(&self.evictions),
            disk_evictions: load(&self.disk_evictions),
            bytes_put: load(&self.bytes_put),
            lookups: load(&self.lookups),
            lookup_nanos: load(&self.lookup_nanos),
            remote: self.remote.snapshot(),
            kv: KvSnapshot {
                tokens_reused: load(&self.kv_tokens_reused),
                prefill_micros_saved: load(&self.kv_prefill_micros_saved),
                writes_dropped: load(&self.kv_writes_dropped),
                evictions: load(&self.kv_evictions),
            },
            semantic: self.semantic.snapshot(),
        }
    }
}

/// The prompt-prefix KV cache's own counters at one moment (its hits and misses are those of kind `kv`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KvSnapshot {
    /// Prompt tokens restored instead of prefilled.
    pub tokens_reused: u64,
    /// Prefill time spared, in microseconds.
    pub prefill_micros_saved: u64,
    /// States not stored: the background writer's queue was full.
    pub writes_dropped: u64,
    /// States removed to stay under `cache.kv.max_size_gb`.
    pub evictions: u64,
}

impl KvSnapshot {
    /// Prefill time spared, in seconds.
    pub fn prefill_seconds_saved(&self) -> f64 {
        self.prefill_micros_saved as f64 / 1e6
    }
}

/// Counters of one kind at one moment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindSnapshot {
    /// The kind.
    pub kind: Kind,
    /// Gets answered by the memory tier.
    pub memory_hits: u64,
    /// Gets answered by the disk tier.
    pub disk_hits: u64,
    /// Gets answered by the remote tier.
    #[serde(default)]
    pub remote_hits: u64,
    /// Gets that found nothing usable.
    pub misses: u64,
    /// Gets that found an expired entry.
    pub expired: u64,
    /// Puts.
    pub puts: u64,
}

impl KindSnapshot {
    /// Hits in all tiers.
    pub fn hits(&self) -> u64 {
        self.memory_hits + self.disk_hits + self.remote_hits
    }

    /// Hits / (hits + misses), or `None` before the first get.
    pub fn hit_ratio(&self) -> Option<f64> {
        let total = self.hits() + self.misses;
        (total > 0).then(|| self.hits() as f64 / total as f64)
    }
}

/// Every counter at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterSnapshot {
    /// Per kind.
    pub kinds: Vec<KindSnapshot>,
    /// Memory-tier evictions.
    pub evictions: u64,
    /// Disk-tier evictions for size.
    pub disk_evictions: u64,
    /// Bytes of values put.
    pub bytes_put: u64,
    /// Gets timed.
    #[serde(default)]
    pub lookups: u64,
    /// Total time of those gets, in nanoseconds.
    #[serde(default)]
    pub lookup_nanos: u64,
    /// The remote tier's counters.
    #[serde(default)]
    pub remote: RemoteSnapshot,
    /// The prompt-prefix KV cache's counters.
    #[serde(default)]
    pub kv: KvSnapshot,
    /// The semantic cache's counters.
    #[serde(default)]
    pub semantic: SemanticSnapshot,
}

/// File, in the cache directory, that holds the saved counters.
pub const COUNTERS_FILE: &str = "counters.json";

impl CounterSnapshot {
    /// The counters saved in `dir`, or `None` when there are none yet. An unreadable file is logged and
    /// ignored (counting starts again), since counters are statistics, not data.
    pub fn load(dir: &Path) -> Option<Self> {
        let path = dir.join(COUNTERS_FILE);
        let text = std::fs::read(&path).ok()?;
        match serde_json::from_slice(&text) {
            Ok(saved) => Some(saved),
            Err(err) => {
                tracing::warn!(path = %path.display(), "ignoring unreadable saved counters: {err}");
                None
            }
        }
    }

    /// Saves the counters in `dir`, atomically (temp file + rename).
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        serde_json::to_writer(&mut tmp, self)?;
        tmp.persist(dir.join(COUNTERS_FILE)).map_err(|e| e.error)?;
        Ok(())
    }
}
