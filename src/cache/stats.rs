//! Counters the manager keeps while it runs: hits per tier, misses, puts, expirations and evictions per
//! kind. Every figure a command prints about cache activity comes from here or from the disk tier's index.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::kind::Kind;

/// Activity counters for one kind.
#[derive(Debug, Default)]
pub struct KindCounters {
    /// Gets answered by the memory tier.
    pub memory_hits: AtomicU64,
    /// Gets answered by the disk tier.
    pub disk_hits: AtomicU64,
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
    kinds: [KindCounters; 3],
    /// Memory-tier entries evicted for room.
    pub evictions: AtomicU64,
    /// Disk-tier entries removed, oldest first, to stay under `max_size_gb`.
    pub disk_evictions: AtomicU64,
    /// Bytes of values put (before compression and dedup).
    pub bytes_put: AtomicU64,
}

impl Counters {
    /// The counters of one kind.
    pub fn kind(&self, kind: Kind) -> &KindCounters {
        &self.kinds[kind.code() as usize - 1]
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
                        misses: load(&c.misses),
                        expired: load(&c.expired),
                        puts: load(&c.puts),
                    }
                })
                .collect(),
            evictions: load(&self.evictions),
            disk_evictions: load(&self.disk_evictions),
            bytes_put: load(&self.bytes_put),
        }
    }
}

/// Counters of one kind at one moment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KindSnapshot {
    /// The kind.
    pub kind: Kind,
    /// Gets answered by the memory tier.
    pub memory_hits: u64,
    /// Gets answered by the disk tier.
    pub disk_hits: u64,
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
        self.memory_hits + self.disk_hits
    }

    /// Hits / (hits + misses), or `None` before the first get.
    pub fn hit_ratio(&self) -> Option<f64> {
        let total = self.hits() + self.misses;
        (total > 0).then(|| self.hits() as f64 / total as f64)
    }
}

/// Every counter at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CounterSnapshot {
    /// Per kind.
    pub kinds: Vec<KindSnapshot>,
    /// Memory-tier evictions.
    pub evictions: u64,
    /// Disk-tier evictions for size.
    pub disk_evictions: u64,
    /// Bytes of values put.
    pub bytes_put: u64,
}
