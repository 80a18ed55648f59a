//! Memory-tier tests: recency, both bounds, oversized values, weight accounting and counters, a property test
//! against an exact Vec-based LRU model, and a many-threads smoke test of the bounds.

use std::sync::Arc;

use proptest::prelude::*;

use super::{MemoryStats, MemoryTier};

const BY_LEN: fn(&&str, &Vec<u8>) -> u64 = |_, value| value.len() as u64;

fn unit(_: &&str, _: &u32) -> u64 {
    1
}

fn keys<V>(evicted: &[(&'static str, V)]) -> Vec<&'static str> {
    evicted.iter().map(|(key, _)| *key).collect()
}

#[test]
fn get_promotes_and_peek_does_not() {
    let tier = MemoryTier::new(3, 1000, unit);
    for (i, key) in ["a", "b", "c"].into_iter().enumerate() {
        assert!(tier.insert(key, i as u32).is_empty());
    }
    assert_eq!(tier.get(&"a"), Some(0));
    assert_eq!(keys(&tier.insert("d", 3)), ["b"]);
    assert_eq!(tier.peek(&"c"), Some(2));
    assert_eq!(keys(&tier.insert("e", 4)), ["c"], "peek must not promote");
    assert_eq!(tier.get(&"a"), Some(0));
    assert_eq!(tier.len(), 3);
}

#[test]
fn the_byte_bound_evicts_until_under_max_bytes() {
    let tier = MemoryTier::new(100, 100, BY_LEN);
    for key in ["a", "b", "c"] {
        assert!(tier.insert(key, vec![0; 30]).is_empty());
    }
    assert_eq!(keys(&tier.insert("d", vec![0; 30])), ["a"]);
    assert_eq!(tier.bytes(), 90);
    assert_eq!(keys(&tier.insert("e", vec![0; 70])), ["b", "c"]);
    assert_eq!((tier.len(), tier.bytes()), (2, 100));
}

#[test]
fn a_value_heavier_than_the_budget_is_refused() {
    let tier = MemoryTier::new(100, 100, BY_LEN);
    tier.insert("a", vec![0; 10]);
    tier.insert("big", vec![0; 10]);
    let evicted = tier.insert("big", vec![1; 101]);
    assert_eq!(evicted, [("big", vec![1; 101])]);
    assert_eq!(tier.peek(&"big"), None, "the stale old value is dropped too");
    assert_eq!((tier.len(), tier.bytes()), (1, 10));
    let stats = tier.stats();
    assert_eq!((stats.inserts, stats.evictions), (2, 1));
}

#[test]
fn replacing_a_value_recharges_its_weight() {
    let tier = MemoryTier::new(10, 1000, BY_LEN);
    tier.insert("a", vec![0; 10]);
    tier.insert("b", vec![0; 20]);
    assert!(tier.insert("a", vec![0; 50]).is_empty());
    assert_eq!((tier.len(), tier.bytes()), (2, 70));
    assert!(tier.insert("a", vec![0; 5]).is_empty());
    assert_eq!(tier.bytes(), 25);
    assert_eq!(tier.remove(&"a"), Some(vec![0; 5]));
    assert_eq!((tier.len(), tier.bytes()), (1, 20));
    assert_eq!(tier.stats().evictions, 0);
}

#[test]
fn counters_count_what_they_say() {
    let tier = MemoryTier::new(2, 1000, unit);
    tier.insert("a", 1);
    tier.insert("b", 2);
    tier.insert("c", 3);
    tier.insert("c", 4);
    assert_eq!(tier.get(&"c"), Some(4));
    assert_eq!(tier.get(&"a"), None);
    assert_eq!(tier.peek(&"b"), Some(2));
    assert_eq!(tier.peek(&"zzz"), None);
    assert_eq!(tier.remove(&"b"), Some(2));
    assert_eq!(tier.retain(|_, value| *value != 4), 1);
    tier.insert("d", 5);
    tier.clear();
    let stats = tier.stats();
    let expected = MemoryStats { hits: 1, misses: 1, inserts: 5, evictions: 1, entries: 0, bytes: 0 };
    assert_eq!(stats, expected);
    assert!((stats.hit_ratio() - 0.5).abs() < 1e-12);
    assert!(tier.is_empty());
}

#[test]
fn lookups_take_borrowed_keys() {
    let tier: MemoryTier<String, Arc<[u8]>> =
        MemoryTier::new(10, 1000, |key, value| (key.len() + value.len()) as u64);
    tier.insert("0123abcd".to_string(), Arc::from(&b"value"[..]));
    assert_eq!(tier.get("0123abcd").as_deref(), Some(&b"value"[..]));
    assert_eq!(tier.bytes(), 13);
    assert!(tier.remove("0123abcd").is_some());
}

#[test]
fn shard_count_follows_capacity() {
    let counts: Vec<usize> = [0, 1000, 2047, 2048, 5000, 16_384, 10_000_000]
        .into_iter()
        .map(|max_entries| MemoryTier::new(max_entries, u64::MAX, unit).shard_count())
        .collect();
    assert_eq!(counts, [1, 1, 1, 2, 4, 16, 16]);
    assert_eq!(MemoryTier::with_shards(0, 10, 10, unit).shard_count(), 1);
}

#[test]
fn bounds_hold_under_many_threads() {
    let weigh: fn(&u64, &Vec<u8>) -> u64 = |_, value| value.len() as u64;
    let (max_entries, max_bytes) = (400, 20_000);
    let tier = MemoryTier::with_shards(4, max_entries, max_bytes, weigh);
    std::thread::scope(|scope| {
        for thread in 0..4u64 {
            let tier = &tier;
            scope.spawn(move || {
                let mut state = thread + 1;
                for _ in 0..5_000 {
                    state =
                        state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                    let key = (state >> 33) % 1_000;
                    match state % 4 {
                        0 => drop(tier.insert(key, vec![0; (key % 100) as usize])),
                        1 => drop(tier.remove(&key)),
                        _ => drop(tier.get(&key)),
                    }
                }
            });
        }
    });
    let stats = tier.stats();
    assert!(stats.entries <= max_entries && stats.bytes <= max_bytes, "{stats:?}");
    let mut weighed = 0;
    tier.retain(|key, value| {
        weighed += weigh(key, value);
        true
    });
    assert_eq!(weighed, stats.bytes);
    assert_eq!(tier.len() as u64, stats.entries);
}

/// The reference: an exact LRU kept as a Vec, least recent first.
#[derive(Debug, Default)]
struct Model {
    entries: Vec<(u8, u32, u64)>,
    max_entries: u64,
    max_bytes: u64,
    stats: MemoryStats,
}

fn weigh_model(_: &u8, value: &u32) -> u64 {
    u64::from(*value % 40)
}

impl Model {
    fn take(&mut self, key: u8) -> Option<(u8, u32, u64)> {
        let pos = self.entries.iter().position(|entry| entry.0 == key)?;
        Some(self.entries.remove(pos))
    }

    fn get(&mut self, key: u8) -> Option<u32> {
        let found = self.take(key);
        match found {
            Some(entry) => {
                self.entries.push(entry);
                self.stats.hits += 1;
            }
            None => self.stats.misses += 1,
        }
        found.map(|entry| entry.1)
    }

    fn insert(&mut self, key: u8, value: u32) -> Vec<(u8, u32)> {
        let weight = weigh_model(&key, &value);
        self.take(key);
        if weight > self.max_bytes || self.max_entries == 0 {
            self.stats.evictions += 1;
            return vec![(key, value)];
        }
        self.entries.push((key, value, weight));
        self.stats.inserts += 1;
        let mut evicted = Vec::new();
        while self.entries.len() as u64 > self.max_entries || self.bytes() > self.max_bytes {
            let (key, value, _) = self.entries.remove(0);
            evicted.push((key, value));
            self.stats.evictions += 1;
        }
        evicted
    }

    fn bytes(&self) -> u64 {
        self.entries.iter().map(|entry| entry.2).sum()
    }
}

#[derive(Clone, Debug)]
enum Op {
    Insert(u8, u32),
    Get(u8),
    Peek(u8),
    Remove(u8),
    Retain(u32),
    Clear,
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..12u8;
    prop_oneof![
        6 => (key.clone(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
        4 => key.clone().prop_map(Op::Get),
        2 => key.clone().prop_map(Op::Peek),
        2 => key.prop_map(Op::Remove),
        1 => (0..3u32).prop_map(Op::Retain),
        1 => Just(Op::Clear),
    ]
}

proptest! {
    #[test]
    fn one_shard_matches_an_exact_lru_model(
        max_entries in 0..8u64,
        max_bytes in 0..150u64,
        ops in proptest::collection::vec(op(), 0..200),
    ) {
        let tier = MemoryTier::with_shards(1, max_entries, max_bytes, weigh_model);
        let mut model = Model { max_entries, max_bytes, ..Model::default() };
        for op in ops {
            match op {
                Op::Insert(key, value) => prop_assert_eq!(tier.insert(key, value), model.insert(key, value)),
                Op::Get(key) => prop_assert_eq!(tier.get(&key), model.get(key)),
                Op::Peek(key) => {
                    let expected = model.entries.iter().find(|entry| entry.0 == key).map(|entry| entry.1);
                    prop_assert_eq!(tier.peek(&key), expected);
                }
                Op::Remove(key) => prop_assert_eq!(tier.remove(&key), model.take(key).map(|entry| entry.1)),
                Op::Retain(rest) => {
                    let before = model.entries.len();
                    model.entries.retain(|entry| entry.1 % 3 != rest);
                    prop_assert_eq!(tier.retain(|_, value| value % 3 != rest), before - model.entries.len());
                }
                Op::Clear => {
                    tier.clear();
                    model.entries.clear();
                }
            }
            model.stats.entries = model.entries.len() as u64;
            model.stats.bytes = model.bytes();
            prop_assert_eq!(tier.len() as u64, model.stats.entries);
            prop_assert_eq!(tier.bytes(), model.stats.bytes);
            prop_assert_eq!(tier.stats(), model.stats);
        }
        let order: Vec<u8> = model.entries.iter().map(|entry| entry.0).collect();
        let mut tier_order = Vec::new();
        tier.retain(|key, _| {
            tier_order.push(*key);
            true
        });
        tier_order.reverse();
        prop_assert_eq!(tier_order, order, "LRU order, least recent first");
    }
}
