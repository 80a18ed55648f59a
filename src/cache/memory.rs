//! The memory tier: a map bounded both by entry count and by bytes, safe to share between threads, that
//! evicts by S3-FIFO (see `s3fifo.rs`).
//!
//! The tier is split into shards, each behind its own read-write lock; a key's shard is picked from its hash
//! so that threads touching different keys rarely meet. A lookup takes the read lock and moves nothing (it
//! only raises the entry's frequency), so concurrent hits do not serialise. A tier with fewer than 2048
//! entries has a single shard. Larger tiers get up to 16 shards, each holding `max_entries / shards` entries
//! and `max_bytes / shards` bytes, as in moka and quick_cache: an entry may then be evicted while a colder
//! one in another shard survives.
//!
//! Why S3-FIFO and not the strict LRU this tier used to be: a hit under LRU moves the entry to the front of
//! a list, a write under a lock on every read; S3-FIFO's hit is a lookup and a counter, and on Zipf traces
//! its hit ratio matches or beats LRU's (benches/memory_tier.rs measures both; docs/performance.md has the
//! table). The tier only keeps values in RAM. It never writes anywhere: [`MemoryTier::insert`] hands the
//! entries it evicted back to the caller, which may write them to a slower tier.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

use s3fifo::Shard as Policy;

#[cfg(test)]
mod policy_tests;
mod s3fifo;
#[cfg(test)]
mod tests;

/// The hasher for shard selection and for each shard's table (foldhash: fast on short keys and strings).
type Hasher = foldhash::fast::RandomState;

/// Fewest entries a shard is given before the tier is split further.
const MIN_ENTRIES_PER_SHARD: u64 = 1024;
/// Most shards a tier gets from [`MemoryTier::new`].
const MAX_SHARDS: usize = 16;

/// Counters of one tier since it was created; [`MemoryTier::clear`] does not reset them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Values stored by `insert`, replacements included.
    pub inserts: u64,
    /// Entries pushed out to make room, plus values refused for being heavier than a shard's byte budget.
    /// Removals, replacements, `retain` and `clear` are not evictions.
    pub evictions: u64,
    /// Entries held now.
    pub entries: u64,
    /// Bytes held now, as the tier's weight function counts them.
    pub bytes: u64,
}

/// A cache bounded by `max_entries` and by `max_bytes`, where `weigh` gives each entry's bytes.
pub struct MemoryTier<K, V> {
    shards: Box<[Shard<K, V>]>,
    hasher: Hasher,
    weigh: fn(&K, &V) -> u64,
    shard_max_entries: u64,
    shard_max_bytes: u64,
}

/// One shard, aligned so that two shards' locks and counters never share a cache line.
#[repr(align(128))]
struct Shard<K, V> {
    policy: RwLock<Policy<K, V>>,
    /// Counted outside the lock's write side. Hits and misses are not counted here: the manager counts
    /// them per kind, and a second atomic add per lookup cost a hit about as much as the lookup's own
    /// work in benches/memory_tier.rs.
    inserts: AtomicU64,
    evictions: AtomicU64,
}

impl<K: Hash + Eq, V: Clone> MemoryTier<K, V> {
    /// A tier holding at most `max_entries` entries and `max_bytes` bytes, weighed by `weigh`.
    ///
    /// The shard count is the largest power of two that leaves each shard at least 1024 entries, capped at
    /// 16; below 2048 entries there is one shard.
    pub fn new(max_entries: u64, max_bytes: u64, weigh: fn(&K, &V) -> u64) -> Self {
        let wanted = (max_entries / MIN_ENTRIES_PER_SHARD).max(1);
        let shards = usize::try_from(wanted).unwrap_or(MAX_SHARDS).min(MAX_SHARDS);
        Self::with_shards(prev_power_of_two(shards), max_entries, max_bytes, weigh)
    }

    /// A tier with exactly `shards` shards (at least 1), each bounded by `max_entries / shards` entries and
    /// `max_bytes / shards` bytes (rounded down).
    pub fn with_shards(shards: usize, max_entries: u64, max_bytes: u64, weigh: fn(&K, &V) -> u64) -> Self {
        let count = shards.max(1) as u64;
        let (shard_max_entries, shard_max_bytes) = (max_entries / count, max_bytes / count);
        let shards = (0..count)
            .map(|_| Shard {
                policy: RwLock::new(Policy::new(shard_max_entries, shard_max_bytes)),
                inserts: AtomicU64::new(0),
                evictions: AtomicU64::new(0),
            })
            .collect();
        MemoryTier { shards, hasher: Hasher::default(), weigh, shard_max_entries, shard_max_bytes }
    }

    /// The number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The value under `key`; a hit raises the entry's standing (its frequency).
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let shard = self.shard(hash);
        shard.policy.read().get(hash, key)
    }

    /// The value under `key`, without touching its standing.
    pub fn peek<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        self.shard(hash).policy.read().peek(hash, key)
    }

    /// Stores `value` under `key` and returns the entries evicted to make room, in the order they left.
    ///
    /// A value already under `key` is replaced (not evicted). A value heavier than a shard's byte budget is
    /// not stored: any old value under `key` is dropped and the new entry comes back as the only eviction.
    pub fn insert(&self, key: K, value: V) -> Vec<(K, V)> {
        let weight = (self.weigh)(&key, &value);
        let hash = self.hasher.hash_one(&key);
        let shard = self.shard(hash);
        if weight > self.shard_max_bytes || self.shard_max_entries == 0 {
            shard.policy.write().remove(hash, &key);
            shard.evictions.fetch_add(1, Ordering::Relaxed);
            return vec![(key, value)];
        }
        let evicted = shard.policy.write().insert(hash, key, value, weight);
        shard.inserts.fetch_add(1, Ordering::Relaxed);
        shard.evictions.fetch_add(evicted.len() as u64, Ordering::Relaxed);
        evicted
    }

    /// Removes `key`, returning its value.
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        self.shard(hash).policy.write().remove(hash, key)
    }

    /// Keeps only the entries for which `keep` returns true, returning how many were removed.
    ///
    /// Shards are visited one at a time, so entries inserted meanwhile may or may not be seen.
    pub fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) -> usize {
        self.shards.iter().map(|shard| shard.policy.write().retain(&mut keep)).sum()
    }

    /// Removes every entry; the counters keep counting.
    pub fn clear(&self) {
        for shard in &self.shards {
            shard.policy.write().clear();
        }
    }

    /// The number of entries held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.policy.read().len() as usize).sum()
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes held, as the weight function counts them.
    pub fn bytes(&self) -> u64 {
        self.shards.iter().map(|shard| shard.policy.read().bytes()).sum()
    }

    /// The counters, summed over the shards one shard at a time (not one atomic snapshot).
    pub fn stats(&self) -> MemoryStats {
        let mut stats = MemoryStats::default();
        for shard in &self.shards {
            let policy = shard.policy.read();
            stats.inserts += shard.inserts.load(Ordering::Relaxed);
            stats.evictions += shard.evictions.load(Ordering::Relaxed);
            stats.entries += policy.len();
            stats.bytes += policy.bytes();
        }
        stats
    }

    fn shard(&self, hash: u64) -> &Shard<K, V> {
        // The table inside a shard takes bucket positions from the hash's low bits and its control bytes from
        // the top 7, so the shard is chosen from the bits between (multiply-shift over bits 20..52: no
        // division, and no shard sees fewer distinct control bytes).
        let middle = (hash >> 20) & u64::from(u32::MAX);
        let index = ((middle * self.shards.len() as u64) >> 32) as usize;
        &self.shards[index]
    }
}

fn prev_power_of_two(n: usize) -> usize {
    if n.is_power_of_two() { n } else { n.next_power_of_two() / 2 }
}
