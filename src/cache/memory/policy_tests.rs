//! The eviction policy against strict LRU (the `lru` crate) on the traces that motivated it: Zipf-skewed
//! lookups, where S3-FIFO must keep at least LRU's hit ratio, and a one-pass scan, which must not flush a
//! hot set out of the tier. Hit ratios are counted, not timed, so these are exact and deterministic.

use std::num::NonZeroUsize;

use lru::LruCache;

use super::MemoryTier;

/// A Zipf(s) sampler over `0..n` by inverse CDF, driven by a fixed-seed xorshift generator.
struct Zipf {
    cdf: Vec<f64>,
    state: u64,
}

impl Zipf {
    fn new(n: usize, s: f64, seed: u64) -> Self {
        let mut total = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|rank| {
                total += 1.0 / (rank as f64).powf(s);
                total
            })
            .collect();
        cdf.iter_mut().for_each(|c| *c /= total);
        Zipf { cdf, state: seed }
    }

    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let u = (self.state >> 11) as f64 / (1u64 << 53) as f64;
        self.cdf.partition_point(|&c| c < u) as u64
    }
}

fn unit(_: &u64, _: &u64) -> u64 {
    1
}

/// Hit ratios of (S3-FIFO tier, strict LRU) replaying `requests` lookups, inserting on every miss.
fn replay(capacity: usize, requests: impl Iterator<Item = u64>) -> (f64, f64) {
    let tier = MemoryTier::with_shards(1, capacity as u64, u64::MAX, unit);
    let mut lru = LruCache::new(NonZeroUsize::new(capacity).unwrap());
    let (mut total, mut hits, mut lru_hits) = (0u64, 0u64, 0u64);
    for key in requests {
        total += 1;
        if tier.get(&key).is_some() {
            hits += 1;
        } else {
            tier.insert(key, key);
        }
        if lru.get(&key).is_some() {
            lru_hits += 1;
        } else {
            lru.put(key, key);
        }
    }
    (hits as f64 / total as f64, lru_hits as f64 / total as f64)
}

#[test]
fn on_zipf_traces_the_hit_ratio_is_at_least_lrus() {
    for (s, seed) in [(0.8, 1), (0.9, 2), (1.0, 3), (1.1, 4)] {
        for capacity in [100, 1_000] {
            let mut zipf = Zipf::new(10_000, s, seed);
            let (ours, lru) = replay(capacity, (0..200_000).map(|_| zipf.next()));
            assert!(ours >= lru, "zipf s={s}, capacity {capacity}: S3-FIFO {ours:.4} < LRU {lru:.4}");
        }
    }
}

#[test]
fn a_one_pass_scan_does_not_flush_a_hot_set() {
    let tier = MemoryTier::with_shards(1, 1_000, u64::MAX, unit);
    let hot = 0..500u64;
    for key in hot.clone() {
        tier.insert(key, key);
    }
    for _ in 0..3 {
        hot.clone().for_each(|key| assert_eq!(tier.get(&key), Some(key)));
    }
    for key in 10_000..15_000u64 {
        tier.insert(key, key);
    }
    let kept = hot.filter(|key| tier.peek(key).is_some()).count();
    assert_eq!(kept, 500, "the scan's keys, read once, leave before the hot set");
}
