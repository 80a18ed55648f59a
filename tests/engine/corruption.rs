//! Recovery from damaged files: random bytes of segments and hint files under `data/` are flipped, and files
//! are cut short at random, in copies of two intact caches (one written by the manager in several sessions,
//! with zstd and dedup, in a single segment; one written through the disk tier with small segments, so most
//! of it is sealed), 64 seeded cases in all (`INFERNO_CORRUPTION_CASES=N` runs N per cache). After each, the cache must open (read-only and read-write)
//! without a panic, and every key must read as `Ok` with either its current value or nothing — an older
//! version or a removed key coming back is allowed only where `verify` reports damage over the record that
//! replaced or removed it. Every key that reads as nothing must be accounted for by `verify(false)`, which
//! must name it or report a damaged range over its record or one of its chunks. Then `verify(true)` fixes
//! the store: after a reopen `verify` is clean, every key reads as it did before the fix, and the damaged
//! records are in `quarantine/`. Set `INFERNO_CORRUPTION_SEED` to replay a run.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use inferno::cache::clock::{Expiry, now_ms};
use inferno::cache::disk::{DiskStore, EntryWrite, StoreOptions, VerifyReport};
use inferno::cache::{Access, Kind, Manager, response_store};
use inferno::config::{CacheConfig, CacheType, CompressionAlgorithm};

use crate::util::{self, RawRecord, Rng, Style};

/// Everything ever written under one key, and what it holds now.
#[derive(Clone, Debug, Default)]
struct History {
    /// Every value ever put, oldest first.
    versions: Vec<Vec<u8>>,
    /// The value it holds now; `None` once removed.
    current: Option<Vec<u8>>,
}

/// An intact cache to damage copies of.
struct Template {
    name: &'static str,
    dir: tempfile::TempDir,
    keys: BTreeMap<(Kind, String), History>,
    /// The records of the intact cache, as this test reads docs/format.md.
    records: Vec<RawRecord>,
}

fn config(dir: &Path) -> CacheConfig {
    util::config(dir, CacheType::Persistent, CompressionAlgorithm::Zstd, true)
}

/// A value that names its key and version; its tail is one of a few shared texts so chunks deduplicate.
fn tagged_value(key: &str, version: usize, rng: &mut Rng) -> Vec<u8> {
    let mut bytes = format!("{key} version {version}\n").into_bytes();
    let len = [0, 300, 1200, 3000, 7000][rng.below(5) as usize];
    bytes.extend(util::make_value(len, Style::Text, rng.below(4)));
    if rng.percent(30) {
        bytes.extend(util::make_value(rng.range(1..900) as usize, Style::Noise, rng.next_u64()));
    }
    bytes
}

/// A cache written by the manager over three sessions: model entries and response records, with
/// overwrites and removes; one segment, whose hint covers all of it after the last close.
fn manager_template() -> Template {
    let dir = tempfile::tempdir().unwrap();
    let mut keys: BTreeMap<(Kind, String), History> = BTreeMap::new();
    let mut rng = Rng::new(1);
    let answers = ["Paris.".to_string(), "The capital of France is Paris. ".repeat(60)];
    for _session in 0..3 {
        let cache = Manager::open(&config(dir.path()), Access::ReadWrite).unwrap();
        for _ in 0..40 {
            let kind = if rng.percent(30) { Kind::Response } else { Kind::Model };
            let key = format!("{kind}-{}", rng.below(24));
            let history = keys.entry((kind, key.clone())).or_default();
            if rng.percent(12) {
                cache.remove(kind, &key).unwrap();
                history.current = None;
                continue;
            }
            let version = history.versions.len();
            let value = match kind {
                Kind::Response => {
                    let answer = &answers[rng.below(2) as usize];
                    let record = util::response_record("tiny", &key, &format!("{key}-v{version}"), 7, answer);
                    serde_json::to_vec(&record).unwrap()
                }
                _ => tagged_value(&key, version, &mut rng),
            };
            match kind {
                Kind::Response => response_store::put(&cache, &key, "name", &value, None).unwrap(),
                _ => cache.put(kind, &key, "name", &value, None).unwrap(),
            }
            history.versions.push(value.clone());
            history.current = Some(value);
        }
    }
    let records = util::read_records(&util::data_dir(dir.path()), true);
    Template { name: "manager", dir, keys, records }
}

/// A cache written straight through the disk tier with 6 KB segments: raw, zstd and chunked entries (whose
/// chunks may sit in older segments than the entry), overwrites and removes.
fn store_template() -> Template {
    let dir = tempfile::tempdir().unwrap();
    let mut keys: BTreeMap<(Kind, String), History> = BTreeMap::new();
    let mut rng = Rng::new(2);
    let options =
        StoreOptions { segment_size: 6000, write_buffer_size: 1024, ..StoreOptions::new(dir.path()) };
    let store = DiskStore::open(options).unwrap();
    for _ in 0..160 {
        let key = format!("model-{}", rng.below(30));
        let history = keys.entry((Kind::Model, key.clone())).or_default();
        if rng.percent(12) {
            store.remove(Kind::Model.code(), key.as_bytes()).unwrap();
            history.current = None;
            continue;
        }
        let value = tagged_value(&key, history.versions.len(), &mut rng);
        match rng.below(3) {
            0 => store.put_entry(&entry(&key, 0, &value, value.len(), &[], 0)).unwrap(),
            1 => {
                let compressed = zstd::bulk::compress(&value, 3).unwrap();
                store.put_entry(&entry(&key, 2, &compressed, value.len(), &[], 0)).unwrap();
            }
            _ => {
                let mut refs = Vec::new();
                for piece in value.chunks(700) {
                    let mut blob = [0u8; 33];
                    blob[0] = 1;
                    blob[1..].copy_from_slice(blake3::hash(piece).as_bytes());
                    store.put_blob(&blob, 0, piece, piece.len() as u32).unwrap();
                    refs.push(blob);
                }
                store.put_entry(&entry(&key, 0, &[], 0, &refs, value.len())).unwrap();
            }
        }
        history.versions.push(value.clone());
        history.current = Some(value);
    }
    store.flush().unwrap();
    drop(store);
    let records = util::read_records(&util::data_dir(dir.path()), true);
    assert!(records.iter().map(|r| r.segment).max() > Some(3), "the store template has several segments");
    Template { name: "store", dir, keys, records }
}

/// A model entry for [`DiskStore::put_entry`].
fn entry<'a>(
    key: &'a str,
    codec: u8,
    stored: &'a [u8],
    raw_len: usize,
    refs: &'a [[u8; 33]],
    payload_len: usize,
) -> EntryWrite<'a> {
    EntryWrite {
        kind: Kind::Model.code(),
        key: key.as_bytes(),
        name: "name",
        codec,
        value: stored,
        raw_len: raw_len as u32,
        refs,
        payload_len: payload_len as u64,
        created_ms: now_ms(),
        expires: Expiry::NEVER,
    }
}

/// Whether `got` is `expected` as the manager serves it: byte for byte, response records included.
fn same(expected: &[u8], got: &[u8]) -> bool {
    expected == got
}

/// One thing done to a file.
#[derive(Clone)]
struct Damage {
    /// The file's name in `data/`.
    file: String,
    /// What was done to it.
    what: String,
}

impl std::fmt::Debug for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file, self.what)
    }
}

/// Damages 1-3 random files of the cache in `dir`.
fn damage(dir: &Path, rng: &mut Rng) -> Vec<Damage> {
    let data = util::data_dir(dir);
    let mut done = Vec::new();
    let count = [1, 1, 1, 2, 2, 3][rng.below(6) as usize];
    for _ in 0..count {
        let suffix = if rng.percent(65) { ".log" } else { ".hint" };
        let files = util::files_ending(&data, suffix);
        let path = &files[rng.below(files.len() as u64) as usize];
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut bytes = std::fs::read(path).unwrap();
        if bytes.is_empty() {
            continue;
        }
        if rng.percent(30) {
            let len = rng.below(bytes.len() as u64);
            bytes.truncate(len as usize);
            done.push(Damage { file, what: format!("cut to {len} bytes") });
        } else {
            for _ in 0..rng.range(1..4) {
                // Now and then aim at the 16-byte segment header or the 32-byte hint header.
                let offset = if rng.percent(8) { rng.below(16) } else { rng.below(bytes.len() as u64) };
                let mask = 1 << rng.below(8);
                bytes[offset as usize] ^= mask;
                done.push(Damage { file: file.clone(), what: format!("flip {mask:#04x} at {offset}") });
            }
        }
        std::fs::write(path, bytes).unwrap();
    }
    done
}

fn copy_data(from: &Path, to: &Path) {
    let data = util::data_dir(to);
    std::fs::create_dir_all(&data).unwrap();
    for file in util::files_ending(&util::data_dir(from), "") {
        std::fs::copy(&file, data.join(file.file_name().unwrap())).unwrap();
    }
}

/// Where the records that matter for each key are, in the intact cache.
struct Layout {
    /// (kind code, key) -> the newest entry or tombstone.
    newest: HashMap<(u8, Vec<u8>), RawRecord>,
    /// Chunk reference -> its blob record.
    blobs: HashMap<Vec<u8>, RawRecord>,
}

impl Layout {
    fn of(records: &[RawRecord]) -> Self {
        let mut newest: HashMap<(u8, Vec<u8>), RawRecord> = HashMap::new();
        let mut blobs: HashMap<Vec<u8>, RawRecord> = HashMap::new();
        for r in records {
            if r.record_type == 2 {
                blobs.insert(r.key.clone(), r.clone());
            } else if newest.get(&(r.kind, r.key.clone())).is_none_or(|old| old.seq < r.seq) {
                newest.insert((r.kind, r.key.clone()), r.clone());
            }
        }
        Self { newest, blobs }
    }

    /// The records a key's current state depends on: its newest entry or tombstone, and that entry's chunks.
    fn records_of(&self, kind: Kind, key: &str) -> Vec<&RawRecord> {
        let Some(newest) = self.newest.get(&(kind.code(), key.as_bytes().to_vec())) else {
            return Vec::new();
        };
        let mut out = vec![newest];
        out.extend(newest.refs.iter().filter_map(|r| self.blobs.get(r)));
        out
    }
}

/// Whether `report` names the entry or reports a damaged range over one of `records`. A range at offset 0 is
/// a segment skipped for its bad header, which costs the whole segment, however short the file now is.
fn accounted(report: &VerifyReport, kind: Kind, key: &str, records: &[&RawRecord]) -> bool {
    let named = report.damaged.iter().any(|d| d.kind == kind.code() && d.key == key);
    let in_range = records.iter().any(|r| {
        report.damaged_ranges.iter().any(|&(segment, offset, len)| {
            segment == r.segment && (offset == 0 || (offset < r.offset + r.len && r.offset < offset + len))
        })
    });
    named || in_range
}

/// Segments whose `.log` and `.hint` were both damaged. Such a segment is read by scanning it, and what a
/// scan cannot see is lost without a trace: records past a cut (a cut at the end of the last segment looks
/// exactly like a torn write) and the key of a record whose bytes are damaged.
fn unhinted(damages: &[Damage]) -> Vec<u32> {
    let id =
        |d: &Damage, suffix: &str| d.file.strip_suffix(suffix).map(|s| s["seg-".len()..].parse().unwrap());
    let logs: Vec<u32> = damages.iter().filter_map(|d| id(d, ".log")).collect();
    damages.iter().filter_map(|d| id(d, ".hint")).filter(|s| logs.contains(s)).collect()
}

/// What a read of every key gave.
type Reads = BTreeMap<(Kind, String), Option<Vec<u8>>>;

fn read_all(cache: &Manager, template: &Template, context: &str) -> Reads {
    let mut reads = Reads::new();
    for ((kind, key), history) in &template.keys {
        let got = cache
            .get(*kind, key)
            .unwrap_or_else(|e| panic!("{context}: reading {kind} {key} failed: {e}"))
            .map(|v| v.to_vec());
        if let Some(got) = &got {
            assert!(
                history.versions.iter().any(|v| same(v, got)),
                "{context}: {kind} {key} read {} bytes that were never written for it",
                got.len()
            );
        }
        reads.insert((*kind, key.clone()), got);
    }
    reads
}

fn quarantine_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("quarantine")).map_or(0, |entries| entries.count())
}

fn check_case(template: &Template, layout: &Layout, case: u64, seed: u64) {
    let mut rng = Rng::new(seed ^ case.wrapping_mul(0x9E37_79B9));
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cache");
    copy_data(template.dir.path(), &dir);
    let damages = damage(&dir, &mut rng);
    let context = format!(
        "seed {seed} (INFERNO_CORRUPTION_SEED) case {case}, {} cache, damage {damages:?}",
        template.name
    );

    // A reader without the lock, on a copy: nothing wrong comes back, nothing panics.
    let ro_dir: PathBuf = root.path().join("read-only");
    copy_data(&dir, &ro_dir);
    {
        let cache = Manager::open(&config(&ro_dir), Access::ReadOnly)
            .unwrap_or_else(|e| panic!("{context}: read-only open failed: {e}"));
        read_all(&cache, template, &format!("{context}, read-only"));
        cache.verify(false).unwrap();
    }

    // The writer: every key reads as its current value or nothing, and verify accounts for what is missing.
    let cache = Manager::open(&config(&dir), Access::ReadWrite)
        .unwrap_or_else(|e| panic!("{context}: read-write open failed: {e}"));
    let report = cache.verify(false).unwrap();
    let reads = read_all(&cache, template, &context);
    let blind = unhinted(&damages);
    for ((kind, key), got) in &reads {
        let history = &template.keys[&(*kind, key.clone())];
        let current = history.current.as_deref();
        let fine = match (current, got) {
            (Some(expected), Some(got)) => same(expected, got),
            (None, None) => true,
            _ => false,
        };
        if !fine {
            let what = match (current, got) {
                (Some(_), None) => "reads as nothing",
                (None, Some(_)) => "was removed but reads as an old value",
                _ => "reads as an older version",
            };
            let records = layout.records_of(*kind, key);
            if records.iter().any(|r| blind.contains(&r.segment)) {
                continue;
            }
            assert!(
                accounted(&report, *kind, key, &records),
                "{context}: {kind} {key} {what}, and verify does not account for it: its records {records:?}, \
                 report {report:?}"
            );
        }
    }

    // verify --fix, then a reopen: clean, and every key reads as it did before the fix.
    let fixed = cache.verify(true).unwrap();
    assert_eq!(fixed.damaged_ranges, report.damaged_ranges, "{context}");
    drop(cache);
    let cache = Manager::open(&config(&dir), Access::ReadWrite)
        .unwrap_or_else(|e| panic!("{context}: reopening after verify --fix failed: {e}"));
    let after = cache.verify(false).unwrap();
    // A segment with a bad header cannot be repaired in place: it stays skipped and reported.
    let bad_headers: Vec<_> = report.damaged_ranges.iter().filter(|r| r.1 == 0).copied().collect();
    assert!(
        after.damaged.is_empty() && after.damaged_ranges.iter().all(|r| bad_headers.contains(r)),
        "{context}: verify after verify --fix and a reopen: {after:?}"
    );
    assert_eq!(read_all(&cache, template, &context), reads, "{context}: reads changed after verify --fix");
    if !report.damaged.is_empty() {
        assert!(quarantine_files(&dir) > 0, "{context}: damaged records were not quarantined");
    }
}

#[test]
fn damaged_files_never_give_wrong_data_and_verify_accounts_for_every_loss() {
    let seed =
        std::env::var("INFERNO_CORRUPTION_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
        });
    let cases = std::env::var("INFERNO_CORRUPTION_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(32);
    for template in [manager_template(), store_template()] {
        let layout = Layout::of(&template.records);
        // The intact template reads back exactly, and verify finds nothing.
        let cache = Manager::open(&config(template.dir.path()), Access::ReadOnly).unwrap();
        assert!(cache.verify(false).unwrap().is_clean());
        for ((kind, key), history) in &template.keys {
            let got = cache.get(*kind, key).unwrap();
            match (&history.current, &got) {
                (Some(expected), Some(got)) => assert!(same(expected, got), "{kind} {key}"),
                (None, None) => {}
                _ => panic!("intact {} cache: {kind} {key} reads {got:?}", template.name),
            }
        }
        drop(cache);
        for case in 0..cases {
            check_case(&template, &layout, case, seed);
        }
    }
}
