//! Compaction under load: puts and reads go on while a pass copies, nothing is lost or reported as damage,
//! a leftover segment file never wedges the writer, and background passes pick segments by dead bytes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::tests::{get, put};
use super::*;

fn opts(dir: &Path) -> StoreOptions {
    StoreOptions { write_buffer_size: 4096, segment_size: 32 * 1024, ..StoreOptions::new(dir) }
}

fn value(key: &str) -> Vec<u8> {
    format!("the value of {key}; ").repeat(12).into_bytes()
}

#[test]
fn puts_go_on_during_compaction_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(DiskStore::open(opts(dir.path())).unwrap());
    for i in 0..3000 {
        put(&store, &format!("old{i}"), &value(&format!("old{i}")));
    }
    for i in (0..3000).step_by(2) {
        assert!(store.remove(1, format!("old{i}").as_bytes()).unwrap());
    }
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, done) = (Arc::clone(&store), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut n = 0;
            while !done.load(Ordering::Relaxed) || n < 200 {
                let key = format!("new{n}");
                put(&store, &key, &value(&key));
                // Overwrite and remove keys the pass is copying, so relocation meets both.
                if n % 3 == 0 && n < 1500 {
                    put(&store, &format!("old{}", n * 2 + 1), b"replaced during compaction");
                }
                n += 1;
            }
            n
        })
    };
    let report = store.compact().unwrap();
    done.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(report.records_kept > 0 && report.segments_rewritten > 1, "{report:?}");
    let check = |store: &DiskStore| {
        for i in (1..3000).step_by(2) {
            let key = format!("old{i}");
            let replaced = (i - 1) / 2 % 3 == 0 && (i - 1) / 2 < 1500 && (i - 1) / 2 < written;
            let want = if replaced { b"replaced during compaction".to_vec() } else { value(&key) };
            assert_eq!(get(store, &key), Some(want), "{key}");
        }
        for i in (0..3000).step_by(2) {
            assert_eq!(get(store, &format!("old{i}")), None);
        }
        for n in 0..written {
            let key = format!("new{n}");
            assert_eq!(get(store, &key), Some(value(&key)), "{key}");
        }
        assert_eq!(store.counters().checksum_failures.load(Ordering::Relaxed), 0);
    };
    check(&store);
    store.flush().unwrap();
    let live = store.usage().0;
    drop(store);
    let reopened = DiskStore::open(opts(dir.path())).unwrap();
    check(&reopened);
    assert_eq!(reopened.usage().0, live, "the index comes out the same at open");
    assert!(reopened.verify(false).unwrap().is_clean());
}

#[test]
fn reads_racing_compaction_are_never_damage() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(DiskStore::open(opts(dir.path())).unwrap());
    for i in 0..1500 {
        put(&store, &format!("k{i}"), &value(&format!("k{i}")));
    }
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, done) = (Arc::clone(&store), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !done.load(Ordering::Relaxed) {
                for i in (0..1500).step_by(37) {
                    let key = format!("k{i}");
                    assert_eq!(get(&store, &key), Some(value(&key)), "{key} during compaction");
                    reads += 1;
                }
            }
            reads
        })
    };
    for _ in 0..15 {
        store.compact().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
    assert_eq!(store.counters().checksum_failures.load(Ordering::Relaxed), 0);
    assert_eq!(store.counters().quarantined.load(Ordering::Relaxed), 0);
    assert!(!dir.path().join(QUARANTINE_DIR).exists());
}

#[test]
fn a_leftover_segment_file_never_wedges_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let store = DiskStore::open(opts(dir.path())).unwrap();
    let data = dir.path().join(DATA_DIR);
    // What a compaction that failed after renaming its output used to leave behind: the writer's next ids.
    let active = store.writer.as_ref().unwrap().lock().id;
    for id in active + 1..active + 4 {
        std::fs::write(segment::segment_path(&data, id), segment::file_header(id)).unwrap();
    }
    for i in 0..600 {
        put(&store, &format!("k{i}"), &value(&format!("k{i}")));
    }
    store.flush().unwrap();
    assert!(store.writer.as_ref().unwrap().lock().id > active + 3, "the writer skipped the taken ids");
    drop(store);
    let reopened = DiskStore::open(opts(dir.path())).unwrap();
    for i in 0..600 {
        assert_eq!(get(&reopened, &format!("k{i}")), Some(value(&format!("k{i}"))));
    }
}

#[test]
fn background_passes_rewrite_only_mostly_dead_segments() {
    let dir = tempfile::tempdir().unwrap();
    let store = DiskStore::open(opts(dir.path())).unwrap();
    for i in 0..1200 {
        put(&store, &format!("k{i}"), &value(&format!("k{i}")));
    }
    // The first 300 keys (the oldest segments) are removed; the rest stay.
    for i in 0..300 {
        store.remove(1, format!("k{i}").as_bytes()).unwrap();
    }
    store.flush().unwrap();
    let segments_before = store.stats().segments;
    let report = store.compact_selected(Selection::DeadRatio(0.5)).unwrap();
    assert!(report.segments_rewritten > 0, "{report:?}");
    assert!(report.segments_rewritten < segments_before / 2, "{report:?} of {segments_before}");
    assert!(report.bytes_after < report.bytes_before, "{report:?}");
    for i in 300..1200 {
        assert_eq!(get(&store, &format!("k{i}")), Some(value(&format!("k{i}"))));
    }
    drop(store);
    let reopened = DiskStore::open(opts(dir.path())).unwrap();
    for i in 0..300 {
        assert_eq!(get(&reopened, &format!("k{i}")), None, "k{i} stays removed");
    }
    for i in 300..1200 {
        assert_eq!(get(&reopened, &format!("k{i}")), Some(value(&format!("k{i}"))));
    }
}

#[test]
fn a_partial_pass_keeps_the_tombstones_that_hide_records_in_segments_it_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let store = DiskStore::open(opts(dir.path())).unwrap();
    let active = |store: &DiskStore| store.writer.as_ref().unwrap().lock().id;
    // Segment A: the entries to remove, among many that stay; padded until the writer moves on.
    for i in 0..10 {
        put(&store, &format!("r{i}"), &value(&format!("r{i}")));
    }
    let first = active(&store);
    let mut pads = 0;
    while active(&store) == first {
        put(&store, &format!("x{pads}"), &value(&format!("x{pads}")));
        pads += 1;
    }
    // Segment B: the tombstones, then records overwritten at once, so B is mostly dead and A is not.
    for i in 0..10 {
        assert!(store.remove(1, format!("r{i}").as_bytes()).unwrap());
    }
    for round in 0..3 {
        for i in 0..40 {
            put(&store, &format!("f{i}"), format!("round {round} of f{i}; ").repeat(12).as_bytes());
        }
    }
    store.flush().unwrap();
    let report = store.compact_selected(Selection::DeadRatio(0.5)).unwrap();
    assert!(report.segments_rewritten >= 1, "{report:?}");
    assert!(store.state.read().readers.contains_key(&first), "segment A was not rewritten");
    drop(store);
    let reopened = DiskStore::open(opts(dir.path())).unwrap();
    for i in 0..10 {
        assert_eq!(get(&reopened, &format!("r{i}")), None, "r{i} came back from segment A");
    }
    for i in 0..pads {
        assert_eq!(get(&reopened, &format!("x{i}")), Some(value(&format!("x{i}"))));
    }
    for i in 0..40 {
        assert_eq!(
            get(&reopened, &format!("f{i}")),
            Some(format!("round 2 of f{i}; ").repeat(12).into_bytes())
        );
    }
}
