//! Manager tests: every cache type and codec, dedup of response payloads, TTLs, housekeeping.
use super::*;
use crate::cache::codec::CodecId;
use crate::cache::disk::EntryWrite;
use crate::cache::response_store;
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
                response_store::put(&cache, "r", "tiny", &record("a", "hello"), None).unwrap();
                assert_eq!(cache.get(Kind::Model, "m").unwrap().as_deref(), Some(&value[..]));
                assert_eq!(cache.get(Kind::Metadata, "m").unwrap(), None);
            }
            let cache = Manager::open(&config, Access::ReadWrite).unwrap();
            let got = cache.get(Kind::Model, "m").unwrap();
            if kind == CacheType::Memory {
                assert_eq!(got, None);
            } else {
                assert_eq!(got.as_deref(), Some(&value[..]), "{kind:?} {algorithm:?}");
                let stored = cache.get(Kind::Response, "r").unwrap().unwrap();
                assert_eq!(&stored[..], &record("a", "hello")[..], "the stored bytes, exactly");
            }
        }
    }
}

#[test]
fn identical_payloads_are_stored_once_and_served_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Manager::open(&config(dir.path(), CacheType::Persistent), Access::ReadWrite).unwrap();
    for i in 0..10 {
        let key = format!("k{i}");
        response_store::put(&cache, &key, "tiny", &record(&format!("id{i}"), "same answer"), None).unwrap();
    }
    let stats = cache.disk_stats().unwrap();
    assert_eq!(stats.blobs, 1);
    assert_eq!(stats.referenced_payload_bytes, 10 * stats.blob_raw_bytes);
    let fresh = response_store::get_fresh(&cache, "k3", Some("alias")).unwrap().unwrap();
    let fresh: serde_json::Value = serde_json::from_slice(&fresh).unwrap();
    assert_ne!(fresh["id"], "id3");
    assert_eq!(fresh["model"], "alias");
    assert_eq!(fresh["choices"][0]["message"]["content"], "same answer");
    // Reopened, each key reads back its own bytes from the shared payload.
    drop(cache);
    let cache = Manager::open(&config(dir.path(), CacheType::Disk), Access::ReadWrite).unwrap();
    for i in 0..10 {
        let got = cache.get(Kind::Response, &format!("k{i}")).unwrap().unwrap();
        assert_eq!(&got[..], &record(&format!("id{i}"), "same answer")[..]);
    }
}

#[test]
fn split_values_of_any_kind_share_the_bytes_between_their_per_key_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Manager::open(&config(dir.path(), CacheType::Disk), Access::ReadWrite).unwrap();
    let shared = "s".repeat(3000);
    for i in 0..4 {
        let value = format!("<{i}>{shared}<{i}{i}>");
        let per_key = [0..3, 3 + shared.len()..value.len()];
        cache.put_split(Kind::Metadata, &format!("m{i}"), "n", value.as_bytes(), &per_key, None).unwrap();
    }
    assert_eq!(cache.disk_stats().unwrap().blobs, 1);
    for i in 0..4 {
        let got = cache.get(Kind::Metadata, &format!("m{i}")).unwrap().unwrap();
        assert_eq!(&got[..], format!("<{i}>{shared}<{i}{i}>").as_bytes());
    }
    // Nothing left to share: stored whole, read back whole.
    let all = 0..3;
    cache.put_split(Kind::Metadata, "all-key", "n", b"abc", std::slice::from_ref(&all), None).unwrap();
    assert_eq!(cache.get(Kind::Metadata, "all-key").unwrap().as_deref(), Some(&b"abc"[..]));
}

#[test]
fn response_entries_of_the_first_dedup_layout_are_still_served() {
    // What the first layout wrote: a canonical JSON head with the envelope, and the canonical payload.
    let head = br#"{"envelope":{"created":1,"id":"a","model":"tiny"},"model":"tiny","request":{"prompt":"hi","temperature":0}}"#;
    let payload = br#"{"choices":[{"index":0,"text":"hello"}],"object":"text_completion"}"#;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), CacheType::Disk);
    {
        let cache = Manager::open(&config, Access::ReadWrite).unwrap();
        let disk = cache.disk.as_ref().unwrap();
        let hasher = cache.hasher.as_ref().unwrap();
        let mut refs = Vec::new();
        for chunk in hasher.chunk_and_hash(payload) {
            let blob = chunk.hash.to_bytes();
            let raw = &payload[chunk.range.clone()];
            disk.put_blob(&blob, CodecId::None as u8, raw, raw.len() as u32).unwrap();
            refs.push(blob);
        }
        disk.put_entry(&EntryWrite {
            kind: Kind::Response.code(),
            key: b"old",
            name: "tiny",
            codec: CodecId::None as u8,
            value: head,
            raw_len: head.len() as u32,
            refs: &refs,
            payload_len: payload.len() as u64,
            created_ms: now_ms(),
            expires: Expiry::NEVER,
        })
        .unwrap();
    }
    let cache = Manager::open(&config, Access::ReadWrite).unwrap();
    let record: serde_json::Value =
        serde_json::from_slice(&cache.get(Kind::Response, "old").unwrap().unwrap()).unwrap();
    assert_eq!(record["response"]["id"], "a");
    assert_eq!(record["response"]["choices"][0]["text"], "hello");
    assert_eq!(record["request"]["prompt"], "hi");
    let fresh = response_store::get_fresh(&cache, "old", Some("tiny")).unwrap().unwrap();
    let fresh: serde_json::Value = serde_json::from_slice(&fresh).unwrap();
    assert!(fresh["id"].as_str().unwrap().starts_with("cmpl-"), "{fresh}");
    assert_eq!(fresh["object"], "text_completion");
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
    response_store::put(&cache, "r", "tiny", &record("a", "hello"), None).unwrap();
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

#[test]
fn sealed_values_share_chunks_and_another_key_is_a_counted_miss_naming_both_ids() {
    use crate::cache::seal::CacheKey;
    use crate::config::Encryption;
    let dir = tempfile::tempdir().unwrap();
    let key = |name: &str, byte: u8| {
        let path = dir.path().join(name);
        std::fs::write(&path, [byte; 32]).unwrap();
        path
    };
    let mut sealed = config(&dir.path().join("cache"), CacheType::Disk);
    sealed.security.encryption = Encryption::ChaCha20Poly1305;
    sealed.security.key_file = key("a", 1);
    {
        let cache = Manager::open(&sealed, Access::ReadWrite).unwrap();
        response_store::put(&cache, "r1", "tiny", &record("one", &"shared answer ".repeat(50)), None)
            .unwrap();
        response_store::put(&cache, "r2", "tiny", &record("two", &"shared answer ".repeat(50)), None)
            .unwrap();
        let stats = cache.disk_stats().unwrap();
        assert_eq!(stats.blobs, 1, "equal payloads share one sealed chunk");
        assert!(cache.get(Kind::Response, "r1").unwrap().is_some());
    }
    let mut other = sealed.clone();
    other.security.key_file = key("b", 2);
    let cache = Manager::open(&other, Access::ReadOnly).unwrap();
    let err = cache.get(Kind::Response, "r1").unwrap_err().to_string();
    let (a, b) = (CacheKey::from_bytes(&[1; 32]).id(), CacheKey::from_bytes(&[2; 32]).id());
    assert!(err.contains(&format!("written with key {a}, the configured key is {b}")), "{err}");
    let misses = cache.counters().snapshot().kinds.iter().find(|k| k.kind == Kind::Response).unwrap().misses;
    assert_eq!(misses, 1, "counted as a miss");
}

/// `compact` re-seals plain records while a server keeps putting and removing: the re-seal must never write
/// an older value over a newer put, nor bring back a removed entry.
#[test]
fn a_reseal_racing_puts_and_removes_never_undoes_them() {
    use crate::config::Encryption;
    let dir = tempfile::tempdir().unwrap();
    let mut plain = config(&dir.path().join("cache"), CacheType::Disk);
    plain.deduplication.enabled = false;
    {
        let cache = Manager::open(&plain, Access::ReadWrite).unwrap();
        for i in 0..400 {
            cache.put(Kind::Metadata, &format!("k{i}"), "m", b"old", None).unwrap();
        }
    }
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, [7u8; 32]).unwrap();
    let mut sealed = plain.clone();
    sealed.security.encryption = Encryption::Aes256Gcm;
    sealed.security.key_file = key_file;
    let cache = Manager::open(&sealed, Access::ReadWrite).unwrap();
    std::thread::scope(|scope| {
        scope.spawn(|| cache.reseal(&|_, _| {}).unwrap());
        for i in (0..400).rev() {
            let key = format!("k{i}");
            if i % 2 == 0 {
                cache.put(Kind::Metadata, &key, "m", b"new", None).unwrap();
            } else {
                cache.remove(Kind::Metadata, &key).unwrap();
            }
        }
    });
    for i in 0..400 {
        let found = cache.get(Kind::Metadata, &format!("k{i}")).unwrap();
        let expected: Option<&[u8]> = if i % 2 == 0 { Some(b"new") } else { None };
        assert_eq!(found.as_deref(), expected, "k{i}");
    }
}
