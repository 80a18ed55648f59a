//! The remote tier's counters and what it last saw of Redis.
//!
//! Counters are kept with the manager's own (`cache/observe/stats.rs`), so they are saved in `counters.json` and a
//! `cache stats` in another process shows what a running server did. The latency histogram has fixed
//! buckets (upper bounds in [`LATENCY_BOUNDS_US`]); p50 and p99 are read from it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Upper bounds, in microseconds, of the latency buckets; the last bucket takes everything above.
pub const LATENCY_BOUNDS_US: [u64; 16] = [
    50, 100, 200, 300, 500, 750, 1_000, 2_000, 3_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000,
    500_000,
];

const BUCKETS: usize = LATENCY_BOUNDS_US.len() + 1;

/// Live counters of the remote tier.
#[derive(Debug, Default)]
pub struct RemoteCounters {
    /// Lookups answered by Redis.
    pub hits: AtomicU64,
    /// Lookups Redis answered with nothing.
    pub misses: AtomicU64,
    /// Lookups that failed or timed out (each one a miss for the caller).
    pub errors: AtomicU64,
    /// Values that failed their checksum or did not decode (each one a miss).
    pub corrupt: AtomicU64,
    /// Lookups not sent because Redis was unreachable (each one a miss).
    pub skipped: AtomicU64,
    /// Writes Redis accepted.
    pub writes: AtomicU64,
    /// Writes that failed or timed out.
    pub write_errors: AtomicU64,
    /// Writes dropped: the write-behind queue was full or Redis unreachable.
    pub dropped_writes: AtomicU64,
    /// Writes acknowledged by fewer replicas than `replication_factor - 1`.
    pub under_replicated: AtomicU64,
    /// Total time of the lookups sent to Redis, in nanoseconds.
    pub lookup_nanos: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
}

impl RemoteCounters {
    /// Counts one lookup sent to Redis that took `took`.
    pub fn observe(&self, took: Duration) {
        self.lookup_nanos.fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        let us = took.as_micros() as u64;
        let at = LATENCY_BOUNDS_US.iter().position(|&b| us <= b).unwrap_or(BUCKETS - 1);
        self.buckets[at].fetch_add(1, Ordering::Relaxed);
    }

    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A plain copy.
    pub fn snapshot(&self) -> RemoteSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RemoteSnapshot {
            hits: load(&self.hits),
            misses: load(&self.misses),
            errors: load(&self.errors),
            corrupt: load(&self.corrupt),
            skipped: load(&self.skipped),
            writes: load(&self.writes),
            write_errors: load(&self.write_errors),
            dropped_writes: load(&self.dropped_writes),
            under_replicated: load(&self.under_replicated),
            lookup_nanos: load(&self.lookup_nanos),
            latency_buckets: self.buckets.iter().map(load).collect(),
        }
    }

    /// Sets every counter to the values of `saved`.
    pub fn restore(&self, saved: &RemoteSnapshot) {
        let pairs = [
            (&self.hits, saved.hits),
            (&self.misses, saved.misses),
            (&self.errors, saved.errors),
            (&self.corrupt, saved.corrupt),
            (&self.skipped, saved.skipped),
            (&self.writes, saved.writes),
            (&self.write_errors, saved.write_errors),
            (&self.dropped_writes, saved.dropped_writes),
            (&self.under_replicated, saved.under_replicated),
            (&self.lookup_nanos, saved.lookup_nanos),
        ];
        for (counter, value) in pairs {
            counter.store(value, Ordering::Relaxed);
        }
        for (bucket, value) in self.buckets.iter().zip(&saved.latency_buckets) {
            bucket.store(*value, Ordering::Relaxed);
        }
    }
}

/// The remote tier's counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RemoteSnapshot {
    /// Lookups answered by Redis.
    pub hits: u64,
    /// Lookups Redis answered with nothing.
    pub misses: u64,
    /// Lookups that failed or timed out.
    pub errors: u64,
    /// Values that failed their checksum or did not decode.
    pub corrupt: u64,
    /// Lookups not sent because Redis was unreachable.
    pub skipped: u64,
    /// Writes Redis accepted.
    pub writes: u64,
    /// Writes that failed or timed out.
    pub write_errors: u64,
    /// Writes dropped (queue full or Redis unreachable).
    pub dropped_writes: u64,
    /// Writes acknowledged by fewer replicas than asked for.
    pub under_replicated: u64,
    /// Total time of the lookups sent to Redis, in nanoseconds.
    pub lookup_nanos: u64,
    /// Lookups per latency bucket (see [`LATENCY_BOUNDS_US`]).
    pub latency_buckets: Vec<u64>,
}

impl RemoteSnapshot {
    /// Lookups sent to Redis and timed.
    pub fn lookups(&self) -> u64 {
        self.latency_buckets.iter().sum()
    }

    /// The upper bound, in microseconds, of the bucket holding quantile `q` (0-1) of the lookup latencies;
    /// `None` before the first lookup or when it lies in the open last bucket.
    pub fn latency_quantile_us(&self, q: f64) -> Option<u64> {
        let total = self.lookups();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.latency_buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return LATENCY_BOUNDS_US.get(i).copied();
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_buckets() {
        let c = RemoteCounters::default();
        for _ in 0..98 {
            c.observe(Duration::from_micros(250));
        }
        c.observe(Duration::from_millis(4));
        c.observe(Duration::from_secs(2));
        let s = c.snapshot();
        assert_eq!(s.lookups(), 100);
        assert_eq!(s.latency_quantile_us(0.5), Some(300));
        assert_eq!(s.latency_quantile_us(0.99), Some(5_000));
        assert_eq!(s.latency_quantile_us(1.0), None, "the open last bucket");
        let back = RemoteCounters::default();
        back.restore(&s);
        assert_eq!(back.snapshot(), s);
    }
}
