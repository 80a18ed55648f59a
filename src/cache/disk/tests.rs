//! Store-level tests: round trips, reopen, durability of flushed writes, torn tails, compaction, damage.

use std::fs::OpenOptions;

use super::*;
use crate::cache::record::REF_LEN;

fn opts(dir: &Path) -> StoreOptions {
    StoreOptions { write_buffer_size: 4096, segment_size: 64 * 1024, ..StoreOptions::new(dir) }
}

pub(super) fn put(store: &DiskStore, key: &str, value: &[u8]) {
    store
        .put_entry(&EntryWrite {
            kind: 1,
            key: key.as_bytes(),
            name: "model-a",
            codec: 0,
            value,
            raw_len: value.len() as u32,
            refs: &[],
            payload_len: 0,
            created_ms: now_ms(),
            expires: Expiry::NEVER,
        })
        .unwrap();
}

pub(super) fn get(store: &DiskStore, key: &str) -> Option<Vec<u8>> {
    store.get(1, key.as_bytes()).unwrap().map(|e| e.value.to_vec())
}

fn value(i: usize) -> Vec<u8> {
    format!("value number {i} ").repeat(20 + i % 7).into_bytes()
}

#[test]
fn put_get_remove_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = DiskStore::open(opts(dir.path())).unwrap();
        for i in 0..500 {
            put(&store, &format!("k{i}"), &value(i));
        }
        put(&store, "k7", b"overwritten");
        assert!(store.remove(1, b"k8").unwrap());
        assert!(!store.remove(1, b"k8").unwrap());
        assert_eq!(get(&store, "k7").as_deref(), Some(&b"overwritten"[..]));
        assert_eq!(get(&store, "k9"), Some(value(9)));
        assert_eq!(get(&store, "k8"), None);
        store.flush().unwrap();
        assert!(store.stats().segments > 1, "small segments roll over");
    }
    let store = DiskStore::open(opts(dir.path())).unwrap();
    assert_eq!(store.entries().len(), 499);
    assert_eq!(get(&store, "k7").as_deref(), Some(&b"overwritten"[..]));
    assert_eq!(get(&store, "k8"), None);
    for i in (0..500).filter(|i| *i != 7 && *i != 8) {
        assert_eq!(get(&store, &format!("k{i}")), Some(value(i)), "k{i}");
    }
}

#[test]
fn second_writer_is_refused_and_readers_still_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = DiskStore::open(opts(dir.path())).unwrap();
    put(&store, "a", b"1");
    store.flush().unwrap();
    let err = DiskStore::open(opts(dir.path())).unwrap_err();
    assert!(err.to_string().contains(&format!("process {}", std::process::id())), "{err}");
    let reader = DiskStore::open(StoreOptions { read_only: true, ..opts(dir.path()) }).unwrap();
    assert_eq!(get(&reader, "a").as_deref(), Some(&b"1"[..]));
    assert!(matches!(reader.put_blob(&[0; REF_LEN], 0, b"x", 1), Err(DiskError::ReadOnly)));
}

#[test]
fn a_torn_tail_is_cut_and_earlier_records_survive() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = DiskStore::open(opts(dir.path())).unwrap();
        put(&store, "a", b"first");
        put(&store, "b", b"second");
        store.flush().unwrap();
    }
    let seg = segment::segment_path(&dir.path().join(DATA_DIR), 1);
    let len = std::fs::metadata(&seg).unwrap().len();
    let file = OpenOptions::new().write(true).open(&seg).unwrap();
    file.set_len(len - 3).unwrap();
    drop(file);
    let store = DiskStore::open(opts(dir.path())).unwrap();
    assert_eq!(get(&store, "a").as_deref(), Some(&b"first"[..]));
    assert_eq!(get(&store, "b"), None);
    put(&store, "c", b"third");
    store.flush().unwrap();
    drop(store);
    let store = DiskStore::open(opts(dir.path())).unwrap();
    assert_eq!(get(&store, "c").as_deref(), Some(&b"third"[..]));
    assert!(store.verify(false).unwrap().is_clean());
}

#[test]
fn damaged_values_are_never_served_and_verify_names_them() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = DiskStore::open(opts(dir.path())).unwrap();
        for i in 0..20 {
            put(&store, &format!("k{i}"), &value(i));
        }
        store.flush().unwrap();
    }
    let seg = segment::segment_path(&dir.path().join(DATA_DIR), 1);
    let mut bytes = std::fs::read(&seg).unwrap();
    let needle = b"value number 5 ";
    let at = bytes.windows(needle.len()).position(|w| w == needle).unwrap();
    bytes[at + 3] ^= 0x20;
    std::fs::write(&seg, &bytes).unwrap();

    let store = DiskStore::open(opts(dir.path())).unwrap();
    let report = store.verify(false).unwrap();
    let names: Vec<&str> = report.damaged.iter().map(|d| d.key.as_str()).collect();
    assert!(names.contains(&"k5"), "{report:?}");
    assert_eq!(get(&store, "k5"), None, "a damaged value is never served");
    assert_eq!(store.counters().quarantined.load(Ordering::Relaxed), 1);
    assert_eq!(get(&store, "k6"), Some(value(6)));
    assert_eq!(std::fs::read_dir(dir.path().join(QUARANTINE_DIR)).unwrap().count(), 1);
    drop(store);
    let store = DiskStore::open(opts(dir.path())).unwrap();
    assert_eq!(get(&store, "k5"), None, "the quarantine is remembered");
}

#[test]
fn compaction_reclaims_space_and_keeps_live_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = DiskStore::open(opts(dir.path())).unwrap();
    for round in 0..5 {
        for i in 0..200 {
            put(&store, &format!("k{i}"), &value(i + round));
        }
    }
    for i in 0..50 {
        store.remove(1, format!("k{i}").as_bytes()).unwrap();
    }
    let blob = [3u8; REF_LEN];
    store.put_blob(&blob, 0, b"orphan chunk", 12).unwrap();
    let report = store.compact().unwrap();
    assert!(report.bytes_after * 4 < report.bytes_before, "{report:?}");
    assert_eq!(report.records_kept, 150);
    assert!(!store.has_blob(&blob), "an unreferenced chunk is dropped");
    for i in 50..200 {
        assert_eq!(get(&store, &format!("k{i}")), Some(value(i + 4)));
    }
    put(&store, "after", b"x");
    store.flush().unwrap();
    drop(store);
    let store = DiskStore::open(opts(dir.path())).unwrap();
    assert_eq!(store.entries().len(), 151);
    assert_eq!(get(&store, "k10"), None);
    assert_eq!(get(&store, "after").as_deref(), Some(&b"x"[..]));
}

#[test]
fn chunks_are_shared_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let store = DiskStore::open(opts(dir.path())).unwrap();
    let blob = [9u8; REF_LEN];
    assert!(store.put_blob(&blob, 0, b"shared payload", 14).unwrap());
    assert!(!store.put_blob(&blob, 0, b"shared payload", 14).unwrap());
    for key in ["a", "b", "c"] {
        store
            .put_entry(&EntryWrite {
                kind: 1,
                key: key.as_bytes(),
                name: "m",
                codec: 0,
                value: b"env",
                raw_len: 3,
                refs: &[blob],
                payload_len: 14,
                created_ms: 0,
                expires: Expiry::NEVER,
            })
            .unwrap();
    }
    let got = store.get(1, b"b").unwrap().unwrap();
    assert_eq!(&*got.chunks[0].bytes, b"shared payload");
    let stats = store.stats();
    assert_eq!(stats.blobs, 1);
    assert_eq!(stats.referenced_payload_bytes, 42);
    assert_eq!(stats.blob_raw_bytes, 14);
}

#[test]
fn expired_entries_are_not_returned() {
    let dir = tempfile::tempdir().unwrap();
    let store = DiskStore::open(opts(dir.path())).unwrap();
    store
        .put_entry(&EntryWrite {
            kind: 1,
            key: b"old",
            name: "",
            codec: 0,
            value: b"v",
            raw_len: 1,
            refs: &[],
            payload_len: 0,
            created_ms: 1,
            expires: Expiry::from_ms(2),
        })
        .unwrap();
    assert_eq!(get(&store, "old"), None);
    assert_eq!(store.compact().unwrap().records_kept, 0);
}

#[test]
fn the_writer_verifying_itself_sees_its_buffered_appends_as_intact() {
    let dir = tempfile::tempdir().unwrap();
    let store = DiskStore::open(StoreOptions { write_buffer_size: 1 << 20, ..opts(dir.path()) }).unwrap();
    put(&store, "buffered", b"still in the write buffer");
    let report = store.verify(true).unwrap();
    assert!(report.is_clean() && !report.fixed, "{report:?}");
    assert_eq!(report.entries_checked, 1);
    assert_eq!(get(&store, "buffered").as_deref(), Some(&b"still in the write buffer"[..]));
}

#[test]
fn a_last_segment_that_is_full_at_close_stays_readable_after_a_writable_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let options = opts(dir.path());
    let keys: Vec<String> = {
        let store = DiskStore::open(options.clone()).unwrap();
        // 16 KiB values: four fill a 64 KiB segment, and the writer rolls only at the next put, so after
        // eight the second (last) segment is full.
        let keys: Vec<String> = (0..8).map(|i| format!("k{i}")).collect();
        for key in &keys {
            put(&store, key, &vec![b'x'; 16 * 1024]);
        }
        store.flush().unwrap();
        keys
    };
    let last = segment::segment_path(&dir.path().join(DATA_DIR), 2);
    assert!(
        std::fs::metadata(&last).unwrap().len() >= options.segment_size,
        "the test needs a full last segment"
    );
    let store = DiskStore::open(options).unwrap();
    for key in &keys {
        assert_eq!(get(&store, key).map(|v| v.len()), Some(16 * 1024), "{key}");
    }
    assert!(store.verify(false).unwrap().damaged.is_empty());
}

#[test]
fn large_values_read_from_the_active_segment_round_trip_and_damage_is_caught() {
    // Records of at least `SPLIT_READ_BYTES` are read from a segment file in two parts, the value straight
    // into its buffer; the checksum still covers header, key, name and value.
    let dir = tempfile::tempdir().unwrap();
    let big =
        |i: usize, len: usize| -> Vec<u8> { (0..len).map(|j| (j * 31 + i * 7 + j / 4096) as u8).collect() };
    let lens = [300 * 1024, 1024 * 1024, 2 * 1024 * 1024 + 13];
    {
        let store = DiskStore::open(StoreOptions::new(dir.path())).unwrap();
        for (i, len) in lens.iter().enumerate() {
            put(&store, &format!("big{i}"), &big(i, *len));
        }
        store.flush().unwrap();
    }
    let store = DiskStore::open(StoreOptions::new(dir.path())).unwrap();
    for (i, len) in lens.iter().enumerate() {
        assert_eq!(get(&store, &format!("big{i}")), Some(big(i, *len)), "big{i} after a reopen");
    }
    drop(store);

    let seg = segment::segment_path(&dir.path().join(DATA_DIR), 1);
    let mut bytes = std::fs::read(&seg).unwrap();
    let needle = big(1, lens[1]);
    let at = bytes.windows(64).position(|w| w == &needle[..64]).unwrap();
    bytes[at + 700_000] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();
    let store = DiskStore::open(StoreOptions::new(dir.path())).unwrap();
    assert_eq!(get(&store, "big1"), None, "a damaged large value is never served");
    assert_eq!(store.counters().checksum_failures.load(Ordering::Relaxed), 1);
    assert_eq!(store.counters().quarantined.load(Ordering::Relaxed), 1);
    assert_eq!(get(&store, "big0"), Some(big(0, lens[0])));
    assert_eq!(get(&store, "big2"), Some(big(2, lens[2])));
}
