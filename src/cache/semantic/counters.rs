//! The semantic cache's counters: lookups, hits, embedding time, guard refusals and the rest, kept with the
//! manager's counters (so they are saved in `counters.json` and shown by `cache stats` and Prometheus).

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Live counters of the semantic cache.
#[derive(Debug, Default)]
pub struct SemanticCounters {
    /// Exact misses searched in the index (embedded, and their scope group looked at).
    pub lookups: AtomicU64,
    /// Lookups answered by a near-duplicate.
    pub hits: AtomicU64,
    /// Texts embedded (lookups, and answers stored without a lookup).
    pub embeddings: AtomicU64,
    /// Their summed time, in nanoseconds.
    pub embedding_nanos: AtomicU64,
    /// Embeddings that failed: the request was answered by the exact cache alone.
    pub embedding_failures: AtomicU64,
    /// Last user messages over `max_prompt_tokens`: matched exactly only.
    pub too_long: AtomicU64,
    /// Candidates over the threshold that a guard refused (docs/semantic-cache.md).
    pub guard_refusals: AtomicU64,
    /// Vectors dropped because their response was gone (expired, evicted, removed) or they were cleared.
    pub stale_dropped: AtomicU64,
    /// Vectors added to the index.
    pub stored: AtomicU64,
    /// False hits reported (`inferno cache semantic forget KEY`).
    pub false_hit_reports: AtomicU64,
}

/// The semantic cache's counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SemanticSnapshot {
    /// See [`SemanticCounters::lookups`].
    pub lookups: u64,
    /// See [`SemanticCounters::hits`].
    pub hits: u64,
    /// See [`SemanticCounters::embeddings`].
    pub embeddings: u64,
    /// See [`SemanticCounters::embedding_nanos`].
    pub embedding_nanos: u64,
    /// See [`SemanticCounters::embedding_failures`].
    pub embedding_failures: u64,
    /// See [`SemanticCounters::too_long`].
    pub too_long: u64,
    /// See [`SemanticCounters::guard_refusals`].
    pub guard_refusals: u64,
    /// See [`SemanticCounters::stale_dropped`].
    pub stale_dropped: u64,
    /// See [`SemanticCounters::stored`].
    pub stored: u64,
    /// See [`SemanticCounters::false_hit_reports`].
    pub false_hit_reports: u64,
}

impl SemanticSnapshot {
    /// True before the semantic cache has done anything.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Mean time of an embedding, in milliseconds; `None` before the first.
    pub fn mean_embedding_ms(&self) -> Option<f64> {
        (self.embeddings > 0).then(|| self.embedding_nanos as f64 / self.embeddings as f64 / 1e6)
    }

    /// Hits over lookups; `None` before the first lookup.
    pub fn hit_ratio(&self) -> Option<f64> {
        (self.lookups > 0).then(|| self.hits as f64 / self.lookups as f64)
    }
}

impl SemanticCounters {
    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A plain copy.
    pub fn snapshot(&self) -> SemanticSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SemanticSnapshot {
            lookups: load(&self.lookups),
            hits: load(&self.hits),
            embeddings: load(&self.embeddings),
            embedding_nanos: load(&self.embedding_nanos),
            embedding_failures: load(&self.embedding_failures),
            too_long: load(&self.too_long),
            guard_refusals: load(&self.guard_refusals),
            stale_dropped: load(&self.stale_dropped),
            stored: load(&self.stored),
            false_hit_reports: load(&self.false_hit_reports),
        }
    }

    /// Sets every counter to `saved`.
    pub fn restore(&self, saved: &SemanticSnapshot) {
        let pairs = [
            (&self.lookups, saved.lookups),
            (&self.hits, saved.hits),
            (&self.embeddings, saved.embeddings),
            (&self.embedding_nanos, saved.embedding_nanos),
            (&self.embedding_failures, saved.embedding_failures),
            (&self.too_long, saved.too_long),
            (&self.guard_refusals, saved.guard_refusals),
            (&self.stale_dropped, saved.stale_dropped),
            (&self.stored, saved.stored),
            (&self.false_hit_reports, saved.false_hit_reports),
        ];
        for (counter, value) in pairs {
            counter.store(value, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_restore_round_trips_and_old_files_read_as_zero() {
        let counters = SemanticCounters::default();
        SemanticCounters::bump(&counters.hits);
        counters.embedding_nanos.fetch_add(3_000_000, Ordering::Relaxed);
        SemanticCounters::bump(&counters.embeddings);
        let snap = counters.snapshot();
        assert_eq!((snap.hits, snap.mean_embedding_ms()), (1, Some(3.0)));
        let again = SemanticCounters::default();
        again.restore(&snap);
        assert_eq!(again.snapshot(), snap);
        let old: SemanticSnapshot = serde_json::from_str("{}").unwrap();
        assert!(old.is_empty() && old.hit_ratio().is_none());
    }
}
