//! KV store tests: round trips through the writer and across a reopen, the states' own memory tier, the
//! LRU byte budget (with a property test against a model), a full queue, damage, sealing and compression.

use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::cache::Access;
use crate::cache::codec::CodecId;
use crate::cache::disk::{DiskStore, StoreOptions};
use crate::cache::seal;
use crate::config::units::Size;
use crate::config::{CacheConfig, CacheType, Config, Encryption, KvCompression};

fn config(dir: &std::path::Path, kind: CacheType) -> CacheConfig {
    let mut config = Config::default().cache;
    config.base_dir = dir.to_path_buf();
    config.kind = kind;
    config
}

fn open(config: &CacheConfig) -> Arc<Manager> {
    Arc::new(Manager::open(config, Access::ReadWrite).unwrap())
}

/// A state-like value: `len` bytes that name `seed`, so two states never share bytes by chance.
fn state(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_mul(31).wrapping_add((i * 7 + i / 251) as u8)).collect()
}

fn kv_counts(manager: &Manager) -> (u64, u64, u64) {
    let snapshot = manager.counters().snapshot();
    let kv = snapshot.kinds.iter().find(|k| k.kind == Kind::Kv).unwrap();
    (kv.memory_hits + kv.disk_hits, kv.misses, kv.puts)
}

#[test]
fn states_round_trip_through_the_writer_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), CacheType::Persistent);
    let (a, b) = ([1u8; 32], [2u8; 32]);
    {
        let store = KvStore::new(open(&config)).unwrap();
        assert!(!store.contains(&a));
        assert_eq!(store.get(&a), None);
        store.put(&a, &state(1, 70_000));
        assert!(store.contains(&a), "visible as soon as it is queued");
        assert_eq!(store.get(&a).as_deref(), Some(&state(1, 70_000)[..]));
        store.put(&b, &state(2, 1000));
        store.flush();
        store.remove(&b);
        assert!(!store.contains(&b));
        store.reused(300, 0.25);
        store.manager().flush().unwrap();
        let (hits, misses, puts) = kv_counts(store.manager());
        assert_eq!((hits, misses, puts), (1, 1, 2));
    }
    let manager = open(&config);
    let store = KvStore::new(Arc::clone(&manager)).unwrap();
    assert!(store.contains(&a) && !store.contains(&b));
    assert_eq!(store.get(&a).as_deref(), Some(&state(1, 70_000)[..]));
    let entries = manager.entries(Some(Kind::Kv));
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].key, key_hex(&a));
    let kv = manager.counters().snapshot().kv;
    assert_eq!((kv.tokens_reused, kv.prefill_micros_saved), (300, 250_000), "counters are saved");
}

#[test]
fn states_use_their_own_memory_tier_never_the_responses() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), CacheType::Persistent);
    config.kv.memory_limit_gb = Size(100_000);
    let store = KvStore::new(open(&config)).unwrap();
    store.put(&[1; 32], &state(1, 30_000));
    store.put(&[2; 32], &state(2, 150_000));
    store.flush();
    let manager = store.manager();
    assert_eq!(manager.memory_stats().unwrap().entries, 0, "the response memory tier holds no state");
    let kv = manager.kv_memory_stats().unwrap();
    assert_eq!(kv.entries, 1, "the state heavier than memory_limit_gb is not held in RAM");
    assert!(kv.bytes <= 100_000, "{kv:?}");
    assert_eq!(store.get(&[2; 32]).as_deref(), Some(&state(2, 150_000)[..]), "read from disk");
    let counts = manager.counters().snapshot();
    let kv = counts.kinds.iter().find(|k| k.kind == Kind::Kv).unwrap();
    assert_eq!((kv.memory_hits, kv.disk_hits), (0, 1));

    config.kv.memory_limit_gb = Size(0);
    let dir = tempfile::tempdir().unwrap();
    config.base_dir = dir.path().to_path_buf();
    let manager = open(&config);
    assert!(manager.kv_memory_stats().is_none(), "memory_limit_gb = 0 keeps no state in RAM");
}

#[test]
fn the_budget_evicts_the_least_recently_used_states_by_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), CacheType::Disk);
    config.kv.max_size_gb = Size(25_000);
    let store = KvStore::new(open(&config)).unwrap();
    for seed in 1..=3 {
        store.put(&[seed; 32], &state(seed, 8000));
        store.flush();
    }
    assert!(store.get(&[1; 32]).is_some(), "1 is now more recent than 2");
    store.put(&[4; 32], &state(4, 8000));
    store.flush();
    let kept: Vec<bool> = (1..=4).map(|s| store.contains(&[s; 32])).collect();
    assert_eq!(kept, [true, false, true, true], "2 was the least recently used");
    assert_eq!(store.manager().counters().kv_evictions.load(Ordering::Relaxed), 1);
    store.put(&[5; 32], &state(5, 30_000));
    assert!(!store.contains(&[5; 32]), "a state larger than the whole budget is not stored");
    assert_eq!(store.manager().counters().kv_writes_dropped.load(Ordering::Relaxed), 1);
}

#[test]
fn a_full_queue_drops_and_counts_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::with_queue(
        open(&config(dir.path(), CacheType::Disk)),
        QueueLimits { states: 4, bytes: 1000 },
    )
    .unwrap();
    store.put(&[1; 32], &state(1, 1500));
    assert!(!store.contains(&[1; 32]));
    assert_eq!(store.manager().counters().kv_writes_dropped.load(Ordering::Relaxed), 1);
    store.put(&[2; 32], &state(2, 500));
    store.flush();
    assert!(store.contains(&[2; 32]));
}

/// Flips one byte inside the stored copy of `needle` in the cache's segment files.
fn flip_inside(dir: &std::path::Path, needle: &[u8]) {
    for file in std::fs::read_dir(dir.join("data")).unwrap() {
        let path = file.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) {
            bytes[at + needle.len() / 2] ^= 0x10;
            std::fs::write(&path, bytes).unwrap();
            return;
        }
    }
    panic!("the state's bytes are not in any segment");
}

#[test]
fn a_bit_flipped_state_is_a_counted_miss_and_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), CacheType::Disk);
    let value = state(9, 20_000);
    {
        let store = KvStore::new(open(&config)).unwrap();
        store.put(&[9; 32], &value);
        store.flush();
        store.manager().flush().unwrap();
    }
    flip_inside(dir.path(), &value[1000..1064]);
    let manager = open(&config);
    let report = manager.verify(false).unwrap();
    assert!(report.damaged.iter().any(|d| d.kind == Kind::Kv.code()), "verify names it: {report:?}");
    let store = KvStore::new(manager).unwrap();
    assert_eq!(store.get(&[9; 32]), None, "never served");
    assert_eq!(kv_counts(store.manager()).1, 1, "a counted miss");
    assert!(!store.contains(&[9; 32]));
    let quarantined = std::fs::read_dir(dir.path().join("quarantine")).map_or(0, |d| d.count());
    assert!(quarantined > 0, "the damaged record is in quarantine/");
}

#[test]
fn sealed_caches_seal_states_and_compression_shuffles_them() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, [5u8; 32]).unwrap();
    let mut config = config(&dir.path().join("cache"), CacheType::Disk);
    config.security.encryption = Encryption::Aes256Gcm;
    config.security.key_file = key_file;
    config.kv.compression = KvCompression::Zstd;
    let value: Vec<u8> = (0..40_000u32).flat_map(|i| ((i % 300) as u16 | 0x3c00).to_le_bytes()).collect();
    {
        let store = KvStore::new(open(&config)).unwrap();
        store.put(&[3; 32], &value);
        store.flush();
        store.manager().flush().unwrap();
        let (_, _, slot) =
            store.manager().disk_index_entries().into_iter().find(|(k, _, _)| *k == 4).unwrap();
        assert_eq!(slot.logical_len(), value.len() as u64);
        assert!(slot.refs.is_empty(), "stored whole, no dedup chunks");
        assert!((slot.stored_len as usize) < value.len() / 2, "compressed: {} bytes", slot.stored_len);
    }
    let disk =
        DiskStore::open(StoreOptions { read_only: true, ..StoreOptions::new(&config.base_dir) }).unwrap();
    let stored = disk.get(Kind::Kv.code(), key_hex(&[3; 32]).as_bytes()).unwrap().unwrap();
    assert!(seal::is_sealed(stored.codec), "sealed");
    assert_eq!(seal::inner_codec(stored.codec), CodecId::ZstdShuffle2 as u8);
    drop(disk);
    let store = KvStore::new(open(&config)).unwrap();
    for file in std::fs::read_dir(dir.path().join("cache/data")).unwrap() {
        let bytes = std::fs::read(file.unwrap().path()).unwrap();
        assert!(!bytes.windows(64).any(|w| w == &value[2000..2064]), "no plaintext on disk");
    }
    assert_eq!(store.get(&[3; 32]).as_deref(), Some(&value[..]));
}

#[test]
fn verify_clear_and_backups_cover_states() {
    use crate::cache::Filter;
    use crate::cache::ops::backup;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&dir.path().join("cache"), CacheType::Persistent);
    let value = state(4, 50_000);
    let manager = open(&config);
    {
        let store = KvStore::new(Arc::clone(&manager)).unwrap();
        store.put(&[4; 32], &value);
        store.flush();
    }
    manager.put(Kind::Model, "m", "m.gguf", b"model entry", None).unwrap();
    manager.flush().unwrap();
    let report = manager.verify(false).unwrap();
    assert!(report.damaged.is_empty() && report.entries_checked == 2, "{report:?}");
    drop(manager);
    let copy = dir.path().join("backup");
    backup::write(&config, &copy, true).unwrap();

    let manager = open(&config);
    let filter = Filter { kinds: vec![Kind::Kv], ..Filter::default() };
    let removal = manager.remove_matching(&filter).unwrap();
    assert_eq!(removal.removed, vec![(Kind::Kv, 1)]);
    assert_eq!(manager.entries(None).len(), 1, "the model entry stays");
    assert_eq!(manager.kv_memory_stats().unwrap().entries, 0, "cleared from the KV memory tier too");
    drop(manager);

    backup::restore(&config, &copy).unwrap();
    let store = KvStore::new(open(&config)).unwrap();
    assert_eq!(store.get(&[4; 32]).as_deref(), Some(&value[..]), "the backup carried the state");
}

/// What the store should hold: states by seed, with their sizes, least recently used first.
#[derive(Default)]
struct Model {
    lru: Vec<(u8, usize)>,
}

impl Model {
    fn touch(&mut self, seed: u8) -> bool {
        let Some(at) = self.lru.iter().position(|(s, _)| *s == seed) else { return false };
        let entry = self.lru.remove(at);
        self.lru.push(entry);
        true
    }

    fn put(&mut self, seed: u8, len: usize, budget: usize) {
        self.lru.retain(|(s, _)| *s != seed);
        if len > budget {
            return;
        }
        self.lru.push((seed, len));
        while self.lru.iter().map(|(_, l)| l).sum::<usize>() > budget {
            self.lru.remove(0);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Any sequence of puts, gets and removes leaves exactly the states an LRU-by-bytes model keeps.
    #[test]
    fn the_store_matches_an_lru_by_bytes_model(
        ops in proptest::collection::vec((0u8..3, 1u8..6, 1usize..6), 1..30),
    ) {
        const BUDGET: usize = 10_000;
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path(), CacheType::Disk);
        config.kv.max_size_gb = Size(BUDGET as u64);
        let store = KvStore::new(open(&config)).unwrap();
        let mut model = Model::default();
        for (op, seed, size) in ops {
            let key = [seed; 32];
            match op {
                0 => {
                    let len = size * 1500;
                    store.put(&key, &state(seed, len));
                    store.flush();
                    model.put(seed, len, BUDGET);
                }
                1 => {
                    let expected = model.touch(seed);
                    let got = store.get(&key);
                    let len = model.lru.iter().find(|(s, _)| *s == seed).map(|(_, l)| *l);
                    prop_assert_eq!(got.is_some(), expected);
                    if let (Some(got), Some(len)) = (got, len) {
                        prop_assert_eq!(&got[..], &state(seed, len)[..]);
                    }
                }
                _ => {
                    store.remove(&key);
                    model.lru.retain(|(s, _)| *s != seed);
                }
            }
            for s in 1u8..6 {
                prop_assert_eq!(store.contains(&[s; 32]), model.lru.iter().any(|(m, _)| *m == s), "seed {}", s);
            }
        }
    }
}
