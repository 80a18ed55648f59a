//! The disk tier: lookups with the OS page cache warm, sustained puts, and open time.
//!
//! 1. `get_hit`: 100,000 stored response records of 2 KiB (realistic chat-completion JSON, see
//!    `common/mod.rs`), zstd level 3, each looked up by a freshly allocated key in shuffled order. inferno's
//!    `Manager` with `cache.type = disk` (no memory tier), with the default dedup (response payloads split out
//!    and stored as BLAKE3-addressed chunks) and with dedup off; against one file per entry (zstd-3, read =
//!    `fs::read` + decompress) and foyer's hybrid cache with a 16-entry memory tier, so its hits come from its
//!    disk engine.
//! 2. `put_throughput` (a timed loop, not criterion): 20,000 puts of mostly distinct records, then `flush()`,
//!    per round; inferno's default `persistent` cache and `type = disk` (zstd-3, BLAKE3 dedup, write-behind with
//!    one fsync per batch), against zstd-3 alone with a reused `zstd::bulk::Compressor` (the one-core ceiling)
//!    and against zstd-3 + `cacache::write_sync`. Rounds alternate the contenders; medians are printed.
//! 3. `open`: `DiskStore::open` (read-write, as the manager opens it) of stores of 10,000, 100,000 and
//!    1,000,000 entries of 64-200 raw bytes (compression off, to keep the 1M store at about 450 MB and its
//!    setup short), built once before timing; dropping the store is not timed.
//!
//! Run with `cargo bench --bench disk_tier` (about 3 minutes); a name filter after `--` also selects or skips
//! the timed loop. `docs/performance.md` has the last numbers and the machine. Last run (on a loaded machine,
//! ratios only): get hit with dedup 1.02× dedup off; puts 69.9% (persistent) and 65.9% (disk) of the zstd-3
//! ceiling.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use inferno::cache::clock::Expiry;
use inferno::cache::disk::{DiskStore, EntryWrite, StoreOptions};
use inferno::cache::{Access, Kind, Manager, response_store};
use inferno::config::{CacheConfig, CacheType};
use xxhash_rust::xxh3::xxh3_64;

mod common;
use common::{Rng, VALUE_LEN, record, selected, with_new_envelope};

const GET_ENTRIES: usize = 100_000;
const PUT_BATCH: usize = 20_000;
const PUT_ROUNDS: usize = 5;
/// One value in this many is an earlier answer again under a new envelope (so it deduplicates).
const REPEAT_ONE_IN: usize = 10;
const OPEN_SIZES: [usize; 3] = [10_000, 100_000, 1_000_000];
const MODEL: &str = "llama-3.1-8b-instruct-q4_k_m";

fn cache_config(dir: &Path, kind: CacheType, dedup: bool) -> CacheConfig {
    common::zstd_cache_config(dir, kind, dedup)
}

/// Bytes of disk blocks used by the files under `dir`.
fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.blocks() * 512;
            }
        }
    }
    total
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// One file per entry: the value zstd-3-compressed, in `<dir>/<xx>/<xxh3 of the key, hex>`.
struct FilePerEntry {
    dir: PathBuf,
}

impl FilePerEntry {
    fn new(dir: &Path) -> Self {
        for fan in 0..256 {
            std::fs::create_dir_all(dir.join(format!("{fan:02x}"))).expect("create fan-out dir");
        }
        Self { dir: dir.to_path_buf() }
    }

    fn path(&self, key: &str) -> PathBuf {
        let hash = xxh3_64(key.as_bytes());
        self.dir.join(format!("{:02x}/{hash:016x}", hash >> 56))
    }

    fn put(&self, key: &str, compressed: &[u8]) {
        std::fs::write(self.path(key), compressed).expect("write entry file");
    }

    fn get(&self, key: &str, decompressor: &mut zstd::bulk::Decompressor<'_>) -> Option<Vec<u8>> {
        let bytes = std::fs::read(self.path(key)).ok()?;
        decompressor.decompress(&bytes, 4 * VALUE_LEN).ok()
    }
}

type Foyer = foyer::HybridCache<String, Vec<u8>>;

fn foyer_cache(rt: &tokio::runtime::Runtime, dir: &Path) -> Foyer {
    use foyer::{
        BlockEngineConfig, Compression, DeviceBuilder, FsDeviceBuilder, HybridCacheBuilder, HybridCachePolicy,
    };
    rt.block_on(async {
        let device = FsDeviceBuilder::new(dir).with_capacity(2 << 30).build().expect("foyer device");
        HybridCacheBuilder::new()
            .with_policy(HybridCachePolicy::WriteOnInsertion)
            .memory(16)
            .storage()
            .with_engine_config(BlockEngineConfig::new(device))
            .with_compression(Compression::Zstd)
            .build()
            .await
            .expect("foyer hybrid cache")
    })
}

/// Times `get` over `keys`, one key per iteration, cycling.
fn bench_get<R>(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    keys: &[String],
    mut get: impl FnMut(&str) -> R,
) {
    group.bench_function(name, |b| {
        let mut i = 0;
        b.iter(|| {
            i = if i + 1 == keys.len() { 0 } else { i + 1 };
            black_box(get(black_box(keys[i].as_str())))
        })
    });
}

fn get_hit(c: &mut Criterion) {
    if !selected("get_hit") {
        return;
    }
    let (keys, values, hits) = common::keyed_records(&mut Rng(42), GET_ENTRIES);
    let root = tempfile::tempdir().expect("temp dir");

    let open_manager = |name: &str, dedup: bool| {
        let config = cache_config(&root.path().join(name), CacheType::Disk, dedup);
        let start = Instant::now();
        {
            let manager = Manager::open(&config, Access::ReadWrite).expect("open manager");
            for (key, value) in keys.iter().zip(&values) {
                response_store::put(&manager, key, MODEL, value, None).expect("put");
            }
            manager.flush().expect("flush");
        }
        let filled = start.elapsed();
        // Reopened, as a server finds the cache at start: sealed segments mapped, the last one read by pread.
        let manager = Manager::open(&config, Access::ReadWrite).expect("reopen manager");
        let stats = manager.disk_stats().expect("disk tier");
        println!(
            "inferno {name}: filled in {filled:.2?}, {} segments, {:.1} MB on disk, {} chunks",
            stats.segments,
            mb(disk_usage(&config.base_dir)),
            stats.blobs
        );
        manager
    };
    let dedup = open_manager("inferno_dedup", true);
    let plain = open_manager("inferno_no_dedup", false);

    let files = FilePerEntry::new(&root.path().join("files"));
    let start = Instant::now();
    let mut compressor = zstd::bulk::Compressor::new(3).expect("zstd compressor");
    for (key, value) in keys.iter().zip(&values) {
        files.put(key, &compressor.compress(value).expect("compress"));
    }
    println!(
        "file per entry: filled in {:.2?}, {:.1} MB on disk",
        start.elapsed(),
        mb(disk_usage(&files.dir))
    );
    let mut decompressor = zstd::bulk::Decompressor::new().expect("zstd decompressor");

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let foyer_dir = root.path().join("foyer");
    std::fs::create_dir_all(&foyer_dir).expect("foyer dir");
    let foyer = foyer_cache(&rt, &foyer_dir);
    let start = Instant::now();
    // foyer drops writes its flushers cannot take at once (it is a cache), so let them catch up every 1,000.
    for (n, (key, value)) in keys.iter().zip(&values).enumerate() {
        foyer.insert(key.clone(), value.clone());
        if n % 1_000 == 999 {
            rt.block_on(foyer.storage().wait());
        }
    }
    rt.block_on(foyer.storage().wait());
    println!("foyer: filled in {:.2?}, {:.1} MB on disk", start.elapsed(), mb(disk_usage(&foyer_dir)));

    // Every contender must find every key, and return the stored value byte for byte.
    let by_key: std::collections::HashMap<&str, &Vec<u8>> =
        keys.iter().map(String::as_str).zip(&values).collect();
    let (mut found_dedup, mut found_plain, mut found_files, mut found_foyer) = (0, 0, 0, 0);
    for (n, key) in hits.iter().enumerate() {
        let want = by_key[key.as_str()];
        let check = n % 100 == 0;
        if let Some(got) = dedup.get(Kind::Response, key).expect("get") {
            assert!(!check || got[..] == want[..], "dedup manager returned another value");
            found_dedup += 1;
        }
        if let Some(got) = plain.get(Kind::Response, key).expect("get") {
            assert!(!check || got[..] == want[..], "manager returned another value");
            found_plain += 1;
        }
        if let Some(got) = files.get(key, &mut decompressor) {
            assert!(!check || &got == want);
            found_files += 1;
        }
        if let Some(got) = rt.block_on(foyer.get(key.as_str())).expect("foyer get") {
            assert!(!check || got.value() == want);
            found_foyer += 1;
        }
    }
    println!(
        "keys found of {GET_ENTRIES}: inferno dedup {found_dedup}, inferno no dedup {found_plain}, \
         file per entry {found_files}, foyer {found_foyer}"
    );

    let mut group = c.benchmark_group("get_hit");
    bench_get(&mut group, "inferno_manager_disk", &hits, |key| dedup.get(Kind::Response, key));
    bench_get(&mut group, "inferno_manager_disk_no_dedup", &hits, |key| plain.get(Kind::Response, key));
    bench_get(&mut group, "file_per_entry_zstd", &hits, |key| files.get(key, &mut decompressor));
    group.bench_function("foyer_hybrid_disk", |b| {
        let mut i = 0;
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    i = if i + 1 == hits.len() { 0 } else { i + 1 };
                    let entry = foyer.get(black_box(hits[i].as_str())).await;
                    black_box(entry.ok().flatten().map(|e| e.value().len()));
                }
                start.elapsed()
            })
        })
    });
    group.finish();
    rt.block_on(foyer.close()).expect("close foyer");
}

/// The values of one put batch: mostly distinct records, one in [`REPEAT_ONE_IN`] an earlier answer again.
fn put_values() -> (Vec<String>, Vec<Vec<u8>>, usize) {
    let mut rng = Rng(7);
    let keys = (0..PUT_BATCH).map(|_| rng.hex(64)).collect();
    let mut values: Vec<Vec<u8>> = Vec::with_capacity(PUT_BATCH);
    let mut distinct = 0;
    for i in 0..PUT_BATCH {
        if i > 0 && rng.below(REPEAT_ONE_IN) == 0 {
            let earlier = values[rng.below(i)].clone();
            values.push(with_new_envelope(&earlier, &mut rng, i));
        } else {
            values.push(record(&mut rng, i));
            distinct += 1;
        }
    }
    (keys, values, distinct)
}

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    let n = samples.len();
    if n % 2 == 1 { samples[n / 2] } else { (samples[n / 2 - 1] + samples[n / 2]) / 2.0 }
}

fn put_throughput(_: &mut Criterion) {
    if !selected("put_throughput") {
        return;
    }
    let (keys, values, distinct) = put_values();
    println!(
        "put_throughput: {PUT_BATCH} records of {VALUE_LEN} B per round, {PUT_ROUNDS} rounds, {distinct} distinct \
         payloads ({:.1}%)",
        100.0 * distinct as f64 / PUT_BATCH as f64
    );
    let root = tempfile::tempdir().expect("temp dir");
    let names = ["zstd3_ceiling", "inferno_persistent", "inferno_disk", "cacache_zstd3"];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut stored_chunks = 0;
    let mut compressor = zstd::bulk::Compressor::new(3).expect("zstd compressor");
    let mut out = Vec::with_capacity(2 * VALUE_LEN);
    for round in 0..PUT_ROUNDS {
        // Rotate the order each round so no contender always runs right after the same neighbour.
        for slot in 0..names.len() {
            let which = (slot + round) % names.len();
            let dir = root.path().join(format!("{}-{round}", names[which]));
            let elapsed = match which {
                0 => {
                    let start = Instant::now();
                    let mut stored = 0;
                    for value in &values {
                        compressor.compress_to_buffer(value, &mut out).expect("compress");
                        stored += out.len();
                    }
                    black_box(stored);
                    start.elapsed()
                }
                1 | 2 => {
                    let kind = if which == 1 { CacheType::Persistent } else { CacheType::Disk };
                    let manager = Manager::open(&cache_config(&dir, kind, true), Access::ReadWrite)
                        .expect("open manager");
                    let start = Instant::now();
                    for (key, value) in keys.iter().zip(&values) {
                        response_store::put(&manager, key, MODEL, value, None).expect("put");
                    }
                    manager.flush().expect("flush");
                    let elapsed = start.elapsed();
                    stored_chunks = manager.disk_stats().expect("disk tier").blobs;
                    elapsed
                }
                _ => {
                    let start = Instant::now();
                    for (key, value) in keys.iter().zip(&values) {
                        compressor.compress_to_buffer(value, &mut out).expect("compress");
                        cacache::write_sync(&dir, key, &out).expect("cacache write");
                    }
                    start.elapsed()
                }
            };
            rates[which].push(PUT_BATCH as f64 / elapsed.as_secs_f64());
            // Directories are removed only at the end: creating files right after deleting many makes ext4
            // search longer for a free inode, which would slow cacache's next round.
        }
    }
    println!("inferno stored {stored_chunks} payload chunks for {PUT_BATCH} puts");
    let medians: Vec<f64> = rates.iter_mut().map(|r| median(r)).collect();
    println!("{:<22} {:>14} {:>12} {:>12}", "put_throughput", "values/s", "of ceiling", "vs cacache");
    for (name, rate) in names.iter().zip(&medians) {
        println!("{name:<22} {rate:>14.0} {:>11.1}% {:>11.2}×", 100.0 * rate / medians[0], rate / medians[3]);
    }
    for (name, samples) in names.iter().zip(&rates) {
        let samples: Vec<String> = samples.iter().map(|r| format!("{r:.0}")).collect();
        println!("  {name} per round (sorted): {}", samples.join(", "));
    }
}

/// A store of `entries` entries of 64-200 raw bytes under 64-hex keys, built in `dir`.
fn build_store(dir: &Path, entries: usize) {
    let mut rng = Rng(entries as u64);
    let store = DiskStore::open(StoreOptions::new(dir)).expect("open store");
    let now = inferno::cache::clock::now_ms();
    for i in 0..entries {
        let key = rng.hex(64);
        let len = 64 + rng.below(137);
        let mut value = rng.words(len / 4 + 1).into_bytes();
        value.truncate(len);
        store
            .put_entry(&EntryWrite {
                kind: Kind::Response.code(),
                key: key.as_bytes(),
                name: MODEL,
                codec: 0,
                value: &value,
                raw_len: value.len() as u32,
                refs: &[],
                payload_len: 0,
                created_ms: now + i as u64,
                expires: Expiry::NEVER,
            })
            .expect("put entry");
    }
    store.flush().expect("flush");
}

fn open(c: &mut Criterion) {
    if !selected("open") {
        return;
    }
    let root = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group("open");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    for entries in OPEN_SIZES {
        let dir = root.path().join(entries.to_string());
        let start = Instant::now();
        build_store(&dir, entries);
        let store = DiskStore::open(StoreOptions::new(&dir)).expect("open store");
        let stats = store.stats();
        assert_eq!(stats.kinds.values().map(|k| k.entries).sum::<u64>(), entries as u64);
        println!(
            "open: built {entries} entries in {:.2?}: {} segments, {:.1} MB on disk; index {:.1} bytes/entry",
            start.elapsed(),
            stats.segments,
            mb(disk_usage(&dir)),
            store.index_bytes() as f64 / entries as f64
        );
        drop(store);
        group.throughput(Throughput::Elements(entries as u64));
        group.measurement_time(Duration::from_secs(if entries >= 1_000_000 { 12 } else { 4 }));
        group.bench_function(format!("disk_store_{entries}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let store = DiskStore::open(StoreOptions::new(&dir)).expect("open store");
                    total += start.elapsed();
                    drop(black_box(store));
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(20);
    // The timed put loop first: the other benches delete many files when they end, and creating files right
    // after that is slower on ext4.
    targets = put_throughput, open, get_hit
}
criterion_main!(benches);
