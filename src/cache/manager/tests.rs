//! Manager tests: every cache type and codec, dedup of response payloads, TTLs, housekeeping.
use super::*;
use crate::config::{CompressionAlgorithm, Config};

fn config(dir: &std::path::Path, kind: CacheType) -> CacheConfig {
    let mut config = Config::default().cache;
    config.base_dir = dir.to_path_buf();
    config.kind = kind;
    config
}

fn record(id: &str, text: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "model": "tiny",
        "request": {"messages": [{"role": "user", "content": "hi"}], "temperature": 0},
        "response": {"id": id, "created": 1, "model": "tiny", "object": "chat.completion",
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
    }))
    .unwrap()
}

#[test]
fn every_type_round_trips_and_persistent_survives_reopen() {
    for kind in [CacheType::Memory, CacheType::Disk, CacheType::Persistent] {
        for algorithm in [CompressionAlgorithm::None, CompressionAlgorithm::Gzip, CompressionAlgorithm::Zstd]
        {
            let dir = tempfile::tempdir().unwrap();
            let mut config = config(dir.path(), kind);
            config.compression.algorithm = algorithm;
            config.compression.level = 3;
            let value = "x".repeat(5000).into_bytes();
            {
                let cache = Manager::open(&config, Access::ReadWrite).unwrap();
                cache.put(Kind::Model, "m", "m.gguf", &value, None).unwrap();
                cache.put(Kind::Response, "r", "tiny", &record("a", "hello"), None).unwrap();
                assert_eq!(cache.get(Kind::Model, "m").unwrap().as_deref(), Some(&value[..]));
                assert_eq!(cache.get(Kind::Metadata, "m").unwrap(), None);
            }
            let cache = Manager::open(&config, Access::ReadWrite).unwrap();
            let got = cache.get(Kind::Model, "m").unwrap();
            if kind == CacheType::Memory {
                assert_eq!(got, None);
            } else {
                assert_eq!(got.as_deref(), Some(&value[..]), "{kind:?} {algorithm:?}");
                let stored: Value =
                    serde_json::from_slice(&cache.get(Kind::Response, "r").unwrap().unwrap()).unwrap();
                let original: Value = serde_json::from_slice(&record("a", "hello")).unwrap();
                assert_eq!(stored, original);
            }
        }
    }
}

#[test]
fn identical_payloads_are_stored_once_and_served_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Manager::open(&config(dir.path(), CacheType::Persistent), Access::ReadWrite).unwrap();
    for i in 0..10 {
        cache
            .put(Kind::Response, &format!("k{i}"), "tiny", &record(&format!("id{i}"), "same answer"), None)
            .unwrap();
    }
    let stats = cache.disk_stats().unwrap();
    assert_eq!(stats.blobs, 1);
    assert_eq!(stats.referenced_payload_bytes, 10 * stats.blob_raw_bytes);
    let fresh = cache.get_response("k3").unwrap().unwrap();
    assert_ne!(fresh["id"], "id3");
    assert_eq!(fresh["choices"][0]["message"]["content"], "same answer");
}

#[test]
fn ttl_expires_entries_and_disabled_cache_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), CacheType::Persistent);
    let cache = Manager::open(&config, Access::ReadWrite).unwrap();
    cache.put(Kind::Model, "short", "", b"v", Some(Duration::from_millis(1))).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(cache.get(Kind::Model, "short").unwrap(), None);
    drop(cache);
    config.enabled = false;
    let cache = Manager::open(&config, Access::ReadWrite).unwrap();
    cache.put(Kind::Model, "k", "", b"v", None).unwrap();
    assert_eq!(cache.get(Kind::Model, "k").unwrap(), None);
}

#[test]
fn housekeeping_keeps_disk_use_under_the_size_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), CacheType::Persistent);
    config.max_size_gb = crate::config::units::Size(400_000);
    config.cleanup.size_threshold_percent = 50;
    config.compression.algorithm = CompressionAlgorithm::None;
    config.deduplication.enabled = false;
    let cache = Manager::open(&config, Access::ReadWrite).unwrap();
    for i in 0..100 {
        let value = format!("{i:04}").repeat(1000).into_bytes();
        cache.put(Kind::Model, &format!("k{i:03}"), "", &value, None).unwrap();
    }
    let report = cache.housekeeping().unwrap();
    let limit = cache.size_threshold_bytes();
    assert_eq!(limit, 200_000);
    let (live, total) = cache.disk_record_bytes();
    assert!(live <= limit && total <= limit, "live {live}, total {total}, {report:?}");
    assert!(report.evicted_for_size > 50, "{report:?}");
    assert!(report.compacted.is_some());
    assert!(cache.get(Kind::Model, "k000").unwrap().is_none(), "the oldest go first");
    assert!(cache.get(Kind::Model, "k099").unwrap().is_some(), "the newest stay");
    assert_eq!(cache.counters().snapshot().disk_evictions, report.evicted_for_size);
}

#[test]
fn entries_older_than_an_age_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Manager::open(&config(dir.path(), CacheType::Persistent), Access::ReadWrite).unwrap();
    cache.put(Kind::Model, "old", "", b"v", None).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    cache.put(Kind::Metadata, "new", "", b"v", None).unwrap();
    assert_eq!(cache.remove_older_than(Duration::from_millis(10), None).unwrap(), 1);
    assert!(cache.get(Kind::Model, "old").unwrap().is_none());
    assert!(cache.get(Kind::Metadata, "new").unwrap().is_some());
}

#[test]
fn the_open_cache_verifies_what_it_just_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Manager::open(&config(dir.path(), CacheType::Persistent), Access::ReadWrite).unwrap();
    cache.put(Kind::Response, "r", "tiny", &record("a", "hello"), None).unwrap();
    let report = cache.verify(false).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!((report.entries_checked, report.chunks_checked), (1, 1));
}

#[test]
fn a_weak_hash_collision_never_serves_the_other_values_bytes() {
    use crate::cache::dedup::hash::ContentHasher;
    use crate::config::{HashAlgorithm, XxhashVariant};
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), CacheType::Disk);
    config.deduplication.enabled = true;
    config.deduplication.algorithm = HashAlgorithm::Xxhash;
    config.deduplication.variant = XxhashVariant::Xxh32;
    // Two short values (one chunk each) whose xxh32, with the configured seed, is the same.
    let hasher = ContentHasher::new(&config.deduplication);
    let mut seen = std::collections::HashMap::new();
    let (a, b) = (0u32..)
        .find_map(|i| {
            let value = format!("value-{i:08}").into_bytes();
            let digest = hasher.hash(&value).to_hex();
            seen.insert(digest, value.clone()).map(|earlier| (earlier, value))
        })
        .unwrap();
    assert_ne!(a, b);
    let cache = Manager::open(&config, Access::ReadWrite).unwrap();
    cache.put(Kind::Model, "a", "a.gguf", &a, None).unwrap();
    cache.put(Kind::Model, "b", "b.gguf", &b, None).unwrap();
    cache.put(Kind::Model, "a2", "a.gguf", &a, None).unwrap();
    assert_eq!(cache.get(Kind::Model, "a").unwrap().as_deref(), Some(&a[..]));
    assert_eq!(cache.get(Kind::Model, "b").unwrap().as_deref(), Some(&b[..]), "b is served its own bytes");
    assert_eq!(cache.get(Kind::Model, "a2").unwrap().as_deref(), Some(&a[..]));
    assert_eq!(cache.counters().dedup_collisions.load(Ordering::Relaxed), 1, "only b collided");
    cache.flush().unwrap();
    drop(cache);
    let reopened = Manager::open(&config, Access::ReadOnly).unwrap();
    assert_eq!(reopened.get(Kind::Model, "b").unwrap().as_deref(), Some(&b[..]));
    assert_eq!(reopened.get(Kind::Model, "a2").unwrap().as_deref(), Some(&a[..]));
}
