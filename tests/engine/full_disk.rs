//! A real filesystem that fills up: the disk tier on a small tmpfs mounted by the test. Writes that do not
//! fit are dropped loudly (counted by reason, the store degraded), what is indexed is always what is on
//! disk, and writes resume by themselves once space returns, durable across a reopen.
//!
//! Mounting needs root (CI runs as root). Elsewhere the test says why it did not run; with `CI` set it fails.

use inferno::cache::clock::{Expiry, now_ms};
use inferno::cache::disk::{DiskStore, EntryWrite, StoreOptions};

use crate::tmpfs::{Tmpfs, fill};

fn put(store: &DiskStore, key: &str, value: &[u8]) -> bool {
    store
        .put_entry(&EntryWrite {
            kind: 1,
            key: key.as_bytes(),
            name: "m",
            codec: 0,
            value,
            raw_len: value.len() as u32,
            refs: &[],
            payload_len: 0,
            created_ms: now_ms(),
            expires: Expiry::NEVER,
        })
        .is_ok()
}

fn value(key: &str) -> Vec<u8> {
    format!("{key}: some cached answer text. ").repeat(40).into_bytes()
}

#[test]
fn a_full_disk_drops_writes_loudly_and_writes_resume_when_space_returns() {
    let Some(fs) = Tmpfs::mount(4 << 20) else { return };
    let cache = fs.path().join("cache");
    let options = || StoreOptions {
        write_buffer_size: 16 * 1024,
        segment_size: 256 * 1024,
        ..StoreOptions::new(&cache)
    };
    let store = DiskStore::open(options()).unwrap();
    let filler = fill(fs.path(), "filler", 200 * 1024);
    let (mut accepted, mut refused) = (Vec::new(), 0);
    for i in 0..2000 {
        let key = format!("k{i}");
        if put(&store, &key, &value(&key)) {
            accepted.push(key);
        } else {
            refused += 1;
        }
    }
    let flushed = store.flush();
    let faults = store.write_faults();
    assert!(refused > 0 || flushed.is_err(), "the disk filled up");
    assert!(faults.errors["no_space"] > 0, "{faults:?}");
    assert!(faults.dropped_records > 0, "{faults:?}");
    let current = faults.current.as_ref().expect("degraded while writes fail");
    assert_eq!(current.reason, "no_space");
    assert!(current.message.contains("No space left on device"), "{current:?}");
    // What the index holds is what is on disk: every entry it still has reads back its own value.
    let indexed = store.entries();
    assert!(!indexed.is_empty() && indexed.len() < 2000, "{} entries kept", indexed.len());
    for (_, key, _) in &indexed {
        let key = String::from_utf8(key.clone()).unwrap();
        let got = store.get(1, key.as_bytes()).unwrap().map(|e| e.value.to_vec());
        assert_eq!(got, Some(value(&key)), "{key}");
    }
    assert_eq!(store.counters().checksum_failures.load(std::sync::atomic::Ordering::Relaxed), 0);

    // Space returns: writes resume on their own, and what is flushed from then on survives a reopen.
    std::fs::remove_file(filler).unwrap();
    assert!(put(&store, "after", &value("after")));
    store.flush().unwrap();
    assert!(store.write_faults().current.is_none(), "writes resumed");
    let kept: Vec<Vec<u8>> = store.entries().into_iter().map(|(_, k, _)| k).collect();
    drop(store);
    let reopened = DiskStore::open(options()).unwrap();
    assert_eq!(reopened.get(1, b"after").unwrap().map(|e| e.value.to_vec()), Some(value("after")));
    for key in kept {
        let text = String::from_utf8(key.clone()).unwrap();
        assert_eq!(reopened.get(1, &key).unwrap().map(|e| e.value.to_vec()), Some(value(&text)), "{text}");
    }
    assert!(reopened.verify(false).unwrap().is_clean());
}

/// KV states take the same path: a state the full disk refuses is counted by reason and not served, the ones
/// written read back whole, and states are stored again once space returns.
#[test]
fn kv_states_on_a_full_disk_are_dropped_loudly_and_never_served() {
    use std::sync::Arc;

    use inferno::cache::kv::KvStore;
    use inferno::cache::{Access, Manager};
    use inferno::config::units::Size;
    use inferno::config::{CacheType, Config};
    use inferno::models::prefix::PrefixStore;

    let Some(fs) = Tmpfs::mount(8 << 20) else { return };
    let mut config = Config::default().cache;
    config.base_dir = fs.path().join("cache");
    config.kind = CacheType::Disk;
    config.persistence.write_buffer_size = Size(16 * 1024);
    let manager = Arc::new(Manager::open(&config, Access::ReadWrite).unwrap());
    let store = KvStore::new(Arc::clone(&manager)).unwrap();
    let filler = fill(fs.path(), "filler", 1 << 20);
    let state = |seed: u8| vec![seed; 300_000];
    for seed in 1..=8 {
        store.put(&[seed; 32], &state(seed));
        store.flush();
    }
    let faults = manager.write_faults().unwrap();
    assert!(faults.errors.get("no_space").is_some_and(|n| *n > 0), "{faults:?}");
    assert!(faults.current.is_some(), "degraded while writes fail");
    let kept: Vec<u8> = (1..=8).filter(|s| store.get(&[*s; 32]).is_some()).collect();
    assert!(!kept.is_empty() && kept.len() < 8, "kept {kept:?}");
    for seed in &kept {
        assert_eq!(store.get(&[*seed; 32]).as_deref(), Some(&state(*seed)[..]), "state {seed} whole");
    }

    std::fs::remove_file(filler).unwrap();
    store.put(&[9; 32], &state(9));
    store.flush();
    manager.flush().unwrap();
    assert!(manager.write_faults().unwrap().current.is_none(), "writes resumed");
    assert_eq!(store.get(&[9; 32]).as_deref(), Some(&state(9)[..]));
}
