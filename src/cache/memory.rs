//! The memory tier: an LRU map bounded both by entry count and by bytes, safe to share between threads.
//!
//! Entries live in `lru::LruCache`s behind mutexes, one per shard; a key's shard is picked from its hash so
//! that threads touching different keys rarely wait on the same lock. A tier with fewer than 2048 entries
//! has a single shard and so keeps exact global LRU order. Larger tiers get up to 16 shards, each holding
//! `max_entries / shards` entries and `max_bytes / shards` bytes; LRU order is then kept per shard, as in
//! moka and quick_cache, and an entry may be evicted while an older one in another shard survives.
//!
//! The tier only keeps values in RAM. It never writes anywhere: [`MemoryTier::insert`] hands the entries it
//! evicted back to the caller, which may write them to a slower tier.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};

use lru::LruCache;
use parking_lot::Mutex;

#[cfg(test)]
mod tests;

/// The hasher for shard selection and for each shard's map (foldhash: fast on short keys and strings).
type Hasher = foldhash::fast::RandomState;

/// Fewest entries a shard is given before the tier is split further.
const MIN_ENTRIES_PER_SHARD: u64 = 1024;
/// Most shards a tier gets from [`MemoryTier::new`].
const MAX_SHARDS: usize = 16;

/// Counters of one tier since it was created; [`MemoryTier::clear`] does not reset them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// `get` calls that found their key.
    pub hits: u64,
    /// `get` calls that did not.
    pub misses: u64,
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

impl MemoryStats {
    /// Hits over lookups, or 0 when there were no lookups.
    pub fn hit_ratio(&self) -> f64 {
        let lookups = self.hits + self.misses;
        if lookups == 0 { 0.0 } else { self.hits as f64 / lookups as f64 }
    }
}

/// An LRU cache bounded by `max_entries` and by `max_bytes`, where `weigh` gives each entry's bytes.
pub struct MemoryTier<K, V> {
    shards: Box<[Shard<K, V>]>,
    shard_hasher: Hasher,
    weigh: fn(&K, &V) -> u64,
    shard_max_entries: u64,
    shard_max_bytes: u64,
}

/// One shard, aligned so that two shards' locks never share a cache line.
#[repr(align(128))]
struct Shard<K, V>(Mutex<ShardState<K, V>>);

struct ShardState<K, V> {
    lru: LruCache<K, Slot<V>, Hasher>,
    bytes: u64,
    hits: u64,
    misses: u64,
    inserts: u64,
    evictions: u64,
}

/// A value with the weight it was charged on insert, so removal gives back exactly that.
struct Slot<V> {
    value: V,
    weight: u64,
}

impl<K: Hash + Eq, V: Clone> MemoryTier<K, V> {
    /// A tier holding at most `max_entries` entries and `max_bytes` bytes, weighed by `weigh`.
    ///
    /// The shard count is the largest power of two that leaves each shard at least 1024 entries, capped at
    /// 16; below 2048 entries there is one shard and LRU order is exact.
    pub fn new(max_entries: u64, max_bytes: u64, weigh: fn(&K, &V) -> u64) -> Self {
        let wanted = (max_entries / MIN_ENTRIES_PER_SHARD).max(1);
        let shards = usize::try_from(wanted).unwrap_or(MAX_SHARDS).min(MAX_SHARDS);
        Self::with_shards(prev_power_of_two(shards), max_entries, max_bytes, weigh)
    }

    /// A tier with exactly `shards` shards (at least 1), each bounded by `max_entries / shards` entries and
    /// `max_bytes / shards` bytes (rounded down).
    pub fn with_shards(shards: usize, max_entries: u64, max_bytes: u64, weigh: fn(&K, &V) -> u64) -> Self {
        let shards = shards.max(1);
        let count = shards as u64;
        let shard_hasher = Hasher::default();
        let shards = (0..shards)
            .map(|_| {
                Shard(Mutex::new(ShardState {
                    lru: LruCache::unbounded_with_hasher(Hasher::default()),
                    bytes: 0,
                    hits: 0,
                    misses: 0,
                    inserts: 0,
                    evictions: 0,
                }))
            })
            .collect();
        MemoryTier {
            shards,
            shard_hasher,
            weigh,
            shard_max_entries: max_entries / count,
            shard_max_bytes: max_bytes / count,
        }
    }

    /// The number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The value under `key`, marking it most recently used; counts a hit or a miss.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut shard = self.shard(key).lock();
        match shard.lru.get(key) {
            Some(slot) => {
                let value = slot.value.clone();
                shard.hits += 1;
                Some(value)
            }
            None => {
                shard.misses += 1;
                None
            }
        }
    }

    /// The value under `key`, without touching recency or the hit and miss counters.
    pub fn peek<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shard(key).lock().lru.peek(key).map(|slot| slot.value.clone())
    }

    /// Stores `value` under `key` as the most recently used entry and returns the entries evicted to make
    /// room, least recently used first.
    ///
    /// A value already under `key` is replaced (not evicted). A value heavier than a shard's byte budget is
    /// not stored: any old value under `key` is dropped and the new entry comes back as the only eviction.
    pub fn insert(&self, key: K, value: V) -> Vec<(K, V)> {
        let weight = (self.weigh)(&key, &value);
        let mut shard = self.shard(&key).lock();
        let mut evicted = Vec::new();
        if weight > self.shard_max_bytes || self.shard_max_entries == 0 {
            if let Some(old) = shard.lru.pop(&key) {
                shard.bytes -= old.weight;
            }
            shard.evictions += 1;
            evicted.push((key, value));
            return evicted;
        }
        shard.inserts += 1;
        shard.bytes += weight;
        if let Some((_, old)) = shard.lru.push(key, Slot { value, weight }) {
            shard.bytes -= old.weight;
        }
        // The new entry is the most recent and fits on its own, so it is never popped here.
        while shard.lru.len() as u64 > self.shard_max_entries || shard.bytes > self.shard_max_bytes {
            let Some((key, slot)) = shard.lru.pop_lru() else { break };
            shard.bytes -= slot.weight;
            shard.evictions += 1;
            evicted.push((key, slot.value));
        }
        evicted
    }

    /// Removes `key`, returning its value.
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut shard = self.shard(key).lock();
        let slot = shard.lru.pop(key)?;
        shard.bytes -= slot.weight;
        Some(slot.value)
    }

    /// Keeps only the entries for which `keep` returns true, returning how many were removed.
    ///
    /// Shards are visited one at a time, so entries inserted meanwhile may or may not be seen.
    pub fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) -> usize {
        let mut removed = 0;
        for shard in &self.shards {
            let mut shard = shard.0.lock();
            let mut freed = 0;
            shard.lru.retain(|key, slot| {
                let kept = keep(key, &slot.value);
                if !kept {
                    removed += 1;
                    freed += slot.weight;
                }
                kept
            });
            shard.bytes -= freed;
        }
        removed
    }

    /// Removes every entry; the counters keep counting.
    pub fn clear(&self) {
        for shard in &self.shards {
            let mut shard = shard.0.lock();
            shard.lru.clear();
            shard.bytes = 0;
        }
    }

    /// The number of entries held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.0.lock().lru.len()).sum()
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes held, as the weight function counts them.
    pub fn bytes(&self) -> u64 {
        self.shards.iter().map(|shard| shard.0.lock().bytes).sum()
    }

    /// The counters, summed over the shards one shard at a time (not one atomic snapshot).
    pub fn stats(&self) -> MemoryStats {
        let mut stats = MemoryStats::default();
        for shard in &self.shards {
            let shard = shard.0.lock();
            stats.hits += shard.hits;
            stats.misses += shard.misses;
            stats.inserts += shard.inserts;
            stats.evictions += shard.evictions;
            stats.entries += shard.lru.len() as u64;
            stats.bytes += shard.bytes;
        }
        stats
    }

    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> &Mutex<ShardState<K, V>> {
        if self.shards.len() == 1 {
            return &self.shards[0].0;
        }
        // Multiply-shift maps the hash onto 0..len without a division; the shard hasher has its own seed,
        // so the bits that pick a shard are unrelated to those each shard's map uses.
        let hash = self.shard_hasher.hash_one(key);
        let index = ((u128::from(hash) * self.shards.len() as u128) >> 64) as usize;
        &self.shards[index].0
    }
}

fn prev_power_of_two(n: usize) -> usize {
    if n.is_power_of_two() { n } else { n.next_power_of_two() / 2 }
}
