//! Memory-tier tests: what a read protects, both bounds, oversized values, weight accounting and counters, a
//! property test against a Vec-based S3-FIFO model, a many-threads smoke test of the bounds, and the policy's
//! hit ratio against strict LRU on a Zipf trace and a scan.

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
fn a_read_keeps_an_entry_and_a_peek_does_not() {
    let tier = MemoryTier::new(3, 1000, unit);
    for (i, key) in ["a", "b", "c"].into_iter().enumerate() {
        assert!(tier.insert(key, i as u32).is_empty());
    }
    assert_eq!(tier.get(&"a"), Some(0));
    assert_eq!(keys(&tier.insert("d", 3)), ["b"]);
    assert_eq!(tier.peek(&"c"), Some(2));
    assert_eq!(keys(&tier.insert("e", 4)), ["c"], "peek must not count as a read");
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
    let expected = MemoryStats { inserts: 5, evictions: 1, entries: 0, bytes: 0 };
    assert_eq!(stats, expected);
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

/// The reference: S3-FIFO written plainly, queues as Vecs (front = oldest), the same sizes and the same
/// rule for the entry being inserted (never the one to leave).
#[derive(Debug, Default)]
struct Model {
    small: Vec<ModelEntry>,
    main: Vec<ModelEntry>,
    ghost: Vec<u8>,
    ghost_order: std::collections::VecDeque<u8>,
    max_entries: u64,
    max_bytes: u64,
    stats: MemoryStats,
}

#[derive(Clone, Copy, Debug)]
struct ModelEntry {
    key: u8,
    value: u32,
    weight: u64,
    freq: u8,
}

fn weigh_model(_: &u8, value: &u32) -> u64 {
    u64::from(*value % 40)
}

impl Model {
    fn find(&mut self, key: u8) -> Option<&mut ModelEntry> {
        self.small.iter_mut().chain(self.main.iter_mut()).find(|entry| entry.key == key)
    }

    fn take(&mut self, key: u8) -> Option<ModelEntry> {
        for queue in [&mut self.small, &mut self.main] {
            if let Some(pos) = queue.iter().position(|entry| entry.key == key) {
                return Some(queue.remove(pos));
            }
        }
        None
    }

    fn get(&mut self, key: u8) -> Option<u32> {
        match self.find(key) {
            Some(entry) => {
                entry.freq = (entry.freq + 1).min(3);
                let value = entry.value;
                Some(value)
            }
            None => None,
        }
    }

    fn insert(&mut self, key: u8, value: u32) -> Vec<(u8, u32)> {
        let weight = weigh_model(&key, &value);
        if weight > self.max_bytes || self.max_entries == 0 {
            self.take(key);
            self.stats.evictions += 1;
            return vec![(key, value)];
        }
        self.stats.inserts += 1;
        if let Some(entry) = self.find(key) {
            entry.value = value;
            entry.weight = weight;
        } else if let Some(pos) = self.ghost.iter().position(|&k| k == key) {
            self.ghost.remove(pos);
            self.main.push(ModelEntry { key, value, weight, freq: 0 });
        } else {
            self.small.push(ModelEntry { key, value, weight, freq: 0 });
        }
        let mut evicted = Vec::new();
        while self.len() > self.max_entries || self.bytes() > self.max_bytes {
            let others = |queue: &[ModelEntry]| queue.iter().any(|entry| entry.key != key);
            let small_bytes: u64 = self.small.iter().map(|entry| entry.weight).sum();
            let small_over =
                self.small.len() as u64 > (self.max_entries / 10).max(1) || small_bytes > self.max_bytes / 10;
            if others(&self.small) && (small_over || !others(&self.main)) {
                let mut head = self.small.remove(0);
                if head.freq > 0 {
                    head.freq = 0;
                    self.main.push(head);
                } else {
                    if !self.ghost.contains(&head.key) {
                        self.ghost.push(head.key);
                        self.ghost_order.push_back(head.key);
                    }
                    while self.ghost_order.len() as u64 > self.max_entries {
                        let old = self.ghost_order.pop_front().unwrap();
                        self.ghost.retain(|&k| k != old);
                    }
                    evicted.push((head.key, head.value));
                }
                continue;
            }
            if !others(&self.main) {
                break;
            }
            loop {
                let mut head = self.main.remove(0);
                if head.key != key && head.freq == 0 {
                    evicted.push((head.key, head.value));
                    break;
                }
                if head.key != key {
                    head.freq -= 1;
                }
                self.main.push(head);
            }
        }
        self.stats.evictions += evicted.len() as u64;
        evicted
    }

    fn retain(&mut self, keep: impl Fn(&ModelEntry) -> bool) -> usize {
        let before = self.len();
        self.small.retain(&keep);
        self.main.retain(&keep);
        (before - self.len()) as usize
    }

    fn clear(&mut self) {
        self.small.clear();
        self.main.clear();
        self.ghost.clear();
        self.ghost_order.clear();
    }

    fn len(&self) -> u64 {
        (self.small.len() + self.main.len()) as u64
    }

    fn bytes(&self) -> u64 {
        self.small.iter().chain(&self.main).map(|entry| entry.weight).sum()
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
    let key = 0..20u8;
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
    fn one_shard_matches_an_s3_fifo_model(
        max_entries in 0..12u64,
        max_bytes in 0..150u64,
        ops in proptest::collection::vec(op(), 0..300),
    ) {
        let tier = MemoryTier::with_shards(1, max_entries, max_bytes, weigh_model);
        let mut model = Model { max_entries, max_bytes, ..Model::default() };
        for op in ops {
            match op {
                Op::Insert(key, value) => prop_assert_eq!(tier.insert(key, value), model.insert(key, value)),
                Op::Get(key) => prop_assert_eq!(tier.get(&key), model.get(key)),
                Op::Peek(key) => {
                    let expected = model.find(key).map(|entry| entry.value);
                    prop_assert_eq!(tier.peek(&key), expected);
                }
                Op::Remove(key) => prop_assert_eq!(tier.remove(&key), model.take(key).map(|entry| entry.value)),
                Op::Retain(rest) => {
                    let removed = model.retain(|entry| entry.value % 3 != rest);
                    prop_assert_eq!(tier.retain(|_, value| value % 3 != rest), removed);
                }
                Op::Clear => {
                    tier.clear();
                    model.clear();
                }
            }
            model.stats.entries = model.len();
            model.stats.bytes = model.bytes();
            prop_assert_eq!(tier.len() as u64, model.stats.entries);
            prop_assert_eq!(tier.bytes(), model.stats.bytes);
            prop_assert_eq!(tier.stats(), model.stats);
        }
    }
}
