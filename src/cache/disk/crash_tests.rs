//! Power-loss and write-fault replay: one write workload (puts of plain, deduplicated and TTL'd entries,
//! removes, flushes, a full and a partial compaction, hint files written at every flush and roll) run on
//! [`MemFs`] again and again, cut at every fsync and at `INFERNO_CRASH_POINTS` random operations (default
//! 1000), and failed with ENOSPC / EIO from every operation on. After each cut the store must open, serve
//! only values the workload wrote for that key, hold every entry whose flush returned before the cut, and
//! take new writes (docs/format.md, "Durability").

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::storage_mem::{CrashMode, MemFs, OpKind};
use super::*;
use crate::cache::record::REF_LEN;

const KEYS: usize = 16;
const BLOBS: u8 = 3;
const FAR_FUTURE_MS: u64 = 4_000_000_000_000;

#[derive(Clone, Copy, Debug)]
enum Step {
    Put { key: usize, len: usize, expires: Expiry },
    PutDeduped { key: usize, blob: u8 },
    Remove { key: usize },
    Flush,
    Compact(Selection),
}

/// What reading a key may give: `None` for absent (or expired).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Seen {
    value: Vec<u8>,
    chunk: Option<Vec<u8>>,
}

impl std::fmt::Debug for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = |b: &[u8]| String::from_utf8_lossy(&b[..b.len().min(24)]).into_owned();
        write!(f, "{:?}", text(&self.value))?;
        match &self.chunk {
            Some(chunk) => write!(f, "+{:?}", text(chunk)),
            None => Ok(()),
        }
    }
}

/// Per key, every state a read may show; pruned to the newest at each flush that returned after a
/// failure-free stretch.
#[derive(Clone, Debug, Default)]
struct Oracle {
    allowed: BTreeMap<usize, BTreeSet<Option<Seen>>>,
    newest: BTreeMap<usize, Option<Seen>>,
    touched: BTreeSet<usize>,
    failed_since_flush: bool,
}

impl Oracle {
    fn event(&mut self, key: usize, state: Option<Seen>) {
        let allowed = self.allowed.entry(key).or_insert_with(|| [None].into());
        allowed.insert(state.clone());
        self.newest.insert(key, state);
        self.touched.insert(key);
    }

    fn flushed(&mut self) {
        if !self.failed_since_flush {
            for key in &self.touched {
                self.allowed.insert(*key, [self.newest[key].clone()].into());
            }
        }
        self.touched.clear();
        self.failed_since_flush = false;
    }

    /// Checks every key the workload touched; returns the number of keys that must be present and the
    /// number of reads that met a damaged record (served as misses). With `strict` there must be none:
    /// nothing unsynced survived, so nothing half-survived either.
    fn check(&self, store: &DiskStore, what: &str, strict: bool) -> (usize, u64) {
        let mut required = 0;
        for (key, allowed) in &self.allowed {
            let got =
                store.get(1, key_of(*key).as_bytes()).unwrap_or_else(|e| panic!("{what}: read failed: {e}"));
            let got = got
                .map(|e| Seen { value: e.value.to_vec(), chunk: e.chunks.first().map(|c| c.bytes.to_vec()) });
            assert!(
                allowed.contains(&got),
                "{what}: key {key} reads {got:?}; the workload allows only {allowed:?}"
            );
            required += usize::from(!allowed.contains(&None));
        }
        let damaged = store.counters().checksum_failures.load(std::sync::atomic::Ordering::Relaxed);
        assert!(!strict || damaged == 0, "{what}: {damaged} reads met a damaged record");
        (required, damaged)
    }
}

fn key_of(key: usize) -> String {
    format!("key-{key:02}")
}

fn blob_ref(blob: u8) -> [u8; REF_LEN] {
    [blob + 1; REF_LEN]
}

fn blob_bytes(blob: u8) -> Vec<u8> {
    format!("shared payload {blob} ").repeat(12).into_bytes()
}

fn workload() -> Vec<Step> {
    let mut rng = fastrand::Rng::with_seed(12);
    let mut steps = Vec::new();
    for i in 0..150 {
        let key = rng.usize(0..KEYS);
        steps.push(match rng.u8(0..20) {
            0..=7 => Step::Put { key, len: rng.usize(1..60), expires: Expiry::NEVER },
            8..=10 => Step::PutDeduped { key, blob: rng.u8(0..BLOBS) },
            11..=12 => Step::Remove { key },
            13 => Step::Put { key, len: 5, expires: Expiry::from_ms(2) },
            14 => Step::Put { key, len: 7, expires: Expiry::from_ms(FAR_FUTURE_MS) },
            _ => Step::Flush,
        });
        if i == 70 {
            steps.push(Step::Compact(Selection::All));
        }
        if i == 120 {
            steps.push(Step::Compact(Selection::DeadRatio(0.3)));
        }
    }
    steps.push(Step::Flush);
    steps
}

fn options(dir: &Path, fs: &MemFs) -> StoreOptions {
    StoreOptions {
        storage: Arc::new(fs.clone()),
        write_buffer_size: 300,
        segment_size: 2048,
        ..StoreOptions::new(dir)
    }
}

fn put(
    store: &DiskStore,
    key: usize,
    value: &[u8],
    refs: &[BlobRef],
    expires: Expiry,
) -> Result<(), DiskError> {
    store.put_entry(&EntryWrite {
        kind: 1,
        key: key_of(key).as_bytes(),
        name: "m",
        codec: 0,
        value,
        raw_len: value.len() as u32,
        refs,
        payload_len: refs.len() as u64 * 12,
        created_ms: 1,
        expires,
    })
}

/// What a step does to a key (before it runs): the key and the state a read would then show.
fn effect(i: usize, s: Step) -> Option<(usize, Option<Seen>)> {
    match s {
        Step::Put { key, len, expires } => {
            let seen = Seen { value: put_value(i, key, len), chunk: None };
            Some((key, expires.is_live(now_ms()).then_some(seen)))
        }
        Step::PutDeduped { key, blob } => {
            Some((key, Some(Seen { value: envelope(i), chunk: Some(blob_bytes(blob)) })))
        }
        Step::Remove { key } => Some((key, None)),
        Step::Flush | Step::Compact(_) => None,
    }
}

fn put_value(i: usize, key: usize, len: usize) -> Vec<u8> {
    format!("<{i}:{key}>").repeat(len).into_bytes()
}

fn envelope(i: usize) -> Vec<u8> {
    format!("envelope {i}").into_bytes()
}

fn call(store: &DiskStore, i: usize, s: Step) -> Result<(), DiskError> {
    match s {
        Step::Put { key, len, expires } => put(store, key, &put_value(i, key, len), &[], expires),
        Step::PutDeduped { key, blob } => {
            let bytes = blob_bytes(blob);
            store.put_blob(&blob_ref(blob), 0, &bytes, bytes.len() as u32)?;
            put(store, key, &envelope(i), &[blob_ref(blob)], Expiry::NEVER)
        }
        Step::Remove { key } => store.remove(1, key_of(key).as_bytes()).map(|_| ()),
        Step::Flush => store.flush(),
        Step::Compact(selection) => store.compact_selected(selection).map(|_| ()),
    }
}

struct Outcome {
    /// The oracle as of the crash plan's operation (the step it fell in counted as begun, not returned).
    at_crash: Option<Oracle>,
    /// The oracle at the end.
    end: Oracle,
    /// Calls that returned an error.
    errors: usize,
}

/// Runs the workload on `fs`. With `clear_fault_after`, the fault plan ends that many steps after the
/// first step that met it (or at the end); every step that met it must fail or leave the store reporting
/// itself degraded, and writes must work again once it ends.
fn run(dir: &Path, fs: &MemFs, clear_fault_after: Option<usize>) -> Outcome {
    let mut errors = 0;
    let store = match DiskStore::open(options(dir, fs)) {
        Ok(store) => store,
        Err(e) => {
            assert!(matches!(e, DiskError::Io { .. }), "open failed with {e}");
            errors += 1;
            fs.clear_fault();
            DiskStore::open(options(dir, fs)).expect("the store opens once the fault is gone")
        }
    };
    let mut oracle = Oracle::default();
    let mut at_crash = fs.crashed().then(Oracle::default);
    let mut fault_left = None;
    for (i, s) in workload().into_iter().enumerate() {
        if let Some((key, state)) = effect(i, s) {
            oracle.event(key, state);
        }
        let before = (at_crash.is_none() && !fs.crashed()).then(|| oracle.clone());
        let injected = fs.injected();
        let result = call(&store, i, s);
        if before.is_some() && fs.crashed() {
            at_crash = before;
        }
        if fs.injected() > injected {
            assert!(
                result.is_err() || store.write_faults().current.is_some(),
                "step {i} ({s:?}) met {} injected failures, returned Ok and left the store not degraded",
                fs.injected() - injected
            );
            fault_left = fault_left.or(clear_fault_after);
        }
        match result {
            Ok(()) if matches!(s, Step::Flush) => oracle.flushed(),
            Ok(()) => {}
            Err(_) => {
                errors += 1;
                oracle.failed_since_flush = true;
            }
        }
        if let Some(left) = &mut fault_left {
            if *left == 0 {
                fs.clear_fault();
            }
            *left = left.saturating_sub(1);
        }
    }
    if clear_fault_after.is_some() {
        fs.clear_fault();
        put(&store, KEYS + 2, b"resumed", &[], Expiry::NEVER).expect("a put once the fault is gone");
        store.flush().expect("a flush once the fault is gone");
        assert_eq!(store.write_faults().current, None, "writes resumed but the store still reports a fault");
    }
    Outcome { at_crash, end: oracle, errors }
}

/// Opens the image, checks it against the oracle, then checks that it takes writes durably.
fn open_and_check(dir: &Path, image: &MemFs, oracle: &Oracle, what: &str, strict: bool) -> (usize, u64) {
    let store = DiskStore::open(options(dir, image)).unwrap_or_else(|e| panic!("{what}: open failed: {e}"));
    let counts = oracle.check(&store, what, strict);
    put(&store, KEYS + 1, b"after", &[], Expiry::NEVER).unwrap_or_else(|e| panic!("{what}: put after: {e}"));
    store.flush().unwrap_or_else(|e| panic!("{what}: flush after: {e}"));
    drop(store);
    let reopened = DiskStore::open(options(dir, &image.crash_now(CrashMode::Strict))).unwrap();
    assert_eq!(
        reopened.get(1, key_of(KEYS + 1).as_bytes()).unwrap().map(|e| e.value.to_vec()),
        Some(b"after".to_vec()),
        "{what}"
    );
    counts
}

fn cache_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    (tmp, dir)
}

#[test]
fn power_loss_at_every_fsync_and_at_random_points_loses_only_unflushed_entries() {
    let (tmp, dir) = cache_dir();
    let clean = MemFs::with_root(tmp.path());
    let outcome = run(&dir, &clean, None);
    assert_eq!(outcome.errors, 0);
    let log = clean.log();
    let boundaries: Vec<usize> =
        (0..log.len()).filter(|i| matches!(log[*i], OpKind::Sync | OpKind::SyncDir)).map(|i| i + 1).collect();
    let random: usize =
        std::env::var("INFERNO_CRASH_POINTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let mut rng = fastrand::Rng::with_seed(2026);
    let mut cuts: Vec<(usize, CrashMode)> = boundaries.iter().map(|at| (*at, CrashMode::Strict)).collect();
    cuts.extend((0..random).map(|_| (rng.usize(0..=log.len()), CrashMode::Random(rng.u64(..)))));
    let (mut required, mut damaged, mut opened) = (0, 0, 0);
    for (at, mode) in &cuts {
        let fs = MemFs::with_root(tmp.path());
        fs.plan_crash(*at, *mode);
        let outcome = run(&dir, &fs, None);
        let oracle = outcome.at_crash.unwrap_or(outcome.end);
        let image = fs.crash_now(*mode);
        let (must, met) = open_and_check(
            &dir,
            &image,
            &oracle,
            &format!("cut before operation {at} ({mode:?})"),
            matches!(mode, CrashMode::Strict),
        );
        required += must;
        damaged += met;
        opened += 1;
    }
    println!(
        "power loss: {} operations in the workload; {} cuts at fsync boundaries and {random} at random points \
         opened and checked ({opened} in all), {required} entries required present across them; {damaged} reads \
         in random cuts met an unsynced record that survived only in part (an entry whose chunk was lost) and \
         were served as misses",
        log.len(),
        boundaries.len(),
    );
    assert!(required > 0, "the oracle never required an entry: the test checks nothing");
}

#[test]
fn enospc_and_eio_from_every_operation_are_reported_lose_nothing_flushed_and_clear() {
    let (tmp, dir) = cache_dir();
    let clean = MemFs::with_root(tmp.path());
    run(&dir, &clean, None);
    let ops = clean.log().len();
    let (mut injected_runs, mut errors) = (0, 0);
    for from in 0..ops {
        let errno = if from % 2 == 0 { 28 } else { 5 };
        let fs = MemFs::with_root(tmp.path());
        fs.plan_fault(from, errno);
        let outcome = run(&dir, &fs, Some(3));
        if fs.injected() == 0 {
            continue;
        }
        injected_runs += 1;
        errors += outcome.errors;
        let what = format!("errno {errno} from operation {from}");
        open_and_check(&dir, &fs, &outcome.end, &format!("{what}, reopened"), true);
        open_and_check(
            &dir,
            &fs.crash_now(CrashMode::Strict),
            &outcome.end,
            &format!("{what}, power lost"),
            true,
        );
    }
    println!(
        "faults: {injected_runs} runs with ENOSPC/EIO injected from one of {ops} operations on, {errors} calls failed"
    );
    assert!(injected_runs > ops / 2);
}

#[test]
fn a_failed_write_is_counted_and_clears() {
    let (tmp, dir) = cache_dir();
    let fs = MemFs::with_root(tmp.path());
    let store = DiskStore::open(options(&dir, &fs)).unwrap();
    put(&store, 1, b"kept", &[], Expiry::NEVER).unwrap();
    store.flush().unwrap();
    fs.plan_fault(0, 28);
    put(&store, 2, b"lost", &[], Expiry::NEVER).unwrap();
    assert!(store.flush().is_err());
    let faults = store.write_faults();
    assert_eq!(faults.errors["no_space"], 1, "{faults:?}");
    assert!(
        faults.current.as_ref().is_some_and(|c| c.message.contains("No space left on device")),
        "{faults:?}"
    );
    assert_eq!(faults.dropped_records, 1);
    fs.clear_fault();
    put(&store, 3, b"resumed", &[], Expiry::NEVER).unwrap();
    store.flush().unwrap();
    assert_eq!(store.write_faults().current, None);
    drop(store);
    let store = DiskStore::open(options(&dir, &fs.crash_now(CrashMode::Strict))).unwrap();
    let get = |k: usize| store.get(1, key_of(k).as_bytes()).unwrap().map(|e| e.value.to_vec());
    assert_eq!((get(1), get(2), get(3)), (Some(b"kept".to_vec()), None, Some(b"resumed".to_vec())));
}

#[test]
fn a_hint_whose_segment_is_gone_is_never_applied_to_a_new_segment_with_its_id() {
    let (tmp, dir) = cache_dir();
    let fs = MemFs::with_root(tmp.path());
    let store = DiskStore::open(options(&dir, &fs)).unwrap();
    put(&store, 1, b"gone with its segment", &[], Expiry::NEVER).unwrap();
    store.flush().unwrap();
    drop(store);
    let data = dir.join(DATA_DIR);
    // The segment is lost (a power cut that kept the hint's rename but not the segment's creation).
    fs.remove_file(&segment::segment_path(&data, 1)).unwrap();
    assert!(fs.exists(&segment::hint_path(&data, 1)));
    let store = DiskStore::open(options(&dir, &fs)).unwrap();
    assert!(!fs.exists(&segment::hint_path(&data, 1)), "the orphan hint is removed at open");
    drop(store);
    let store = DiskStore::open(options(&dir, &fs)).unwrap();
    assert_eq!(store.get(1, key_of(1).as_bytes()).unwrap(), None);
    assert_eq!(store.stats().damaged_ranges, 0);
    assert_eq!(store.counters().checksum_failures.load(std::sync::atomic::Ordering::Relaxed), 0);
}
