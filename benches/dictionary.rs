//! Compression with a zstd dictionary trained on the cache's own responses, against plain zstd-3.
//!
//! 1. `ratio` (printed, not criterion): 2 KiB chat-completion records as the response cache stores them
//!    (`common::record`, one in ten an earlier answer under a new envelope), `type = disk`, default dedup and
//!    zstd-3. One cache without a dictionary gets all 4,000 records; another gets the first 2,000, trains a
//!    dictionary (`Manager::train_dictionary`, as `inferno cache train-dictionary` does), gets the other 2,000,
//!    and is compacted (`Manager::compact`, which re-encodes the first 2,000 under the dictionary). For each,
//!    `disk.compression_ratio` of `CacheReport::measure` (what `cache stats --json` prints: decoded bytes of
//!    every stored head and chunk over their stored bytes, per-key heads included), and the dictionary
//!    report's ratio with and without the dictionary measured on the same values.
//! 2. `put`: `response_store::put` of distinct records into a `type = disk` cache with the dictionary and
//!    without (`cache.compression.dictionary = false`), one put per iteration.
//! 3. `get_hit`: `Manager::get` of those caches' records (no memory tier), shuffled keys.
//! 4. `codec`: `Codec::encode_with` / `decode_with` of one 2 KiB record, with the dictionary and plain zstd-3.
//!
//! Run with `cargo bench --bench dictionary` (about 2 minutes). `docs/performance.md` has the last numbers.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use inferno::cache::codec::{Codec, CodecId};
use inferno::cache::{Access, CacheReport, Kind, Manager, response_store};
use inferno::config::{CacheConfig, CacheType};

mod common;
use common::{Rng, record, selected, with_new_envelope};

const TRAINING: usize = 2_000;
const MEASURED: usize = 2_000;
const REPEAT_ONE_IN: usize = 10;
const MODEL: &str = "llama-3.1-8b-instruct-q4_k_m";

fn config(dir: &std::path::Path, dictionary: bool) -> CacheConfig {
    let mut config = common::zstd_cache_config(dir, CacheType::Disk, true);
    config.compression.dictionary = dictionary;
    config
}

/// `n` records under 64-hex keys, one in [`REPEAT_ONE_IN`] an earlier answer under a new envelope.
fn records(rng: &mut Rng, first: usize, n: usize) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::with_capacity(n);
    for i in first..first + n {
        let value = match out.len() {
            len if len > 0 && i % REPEAT_ONE_IN == 0 => {
                let earlier = rng.below(len);
                with_new_envelope(&out[earlier].1, rng, i)
            }
            _ => record(rng, i),
        };
        out.push((rng.hex(64), value));
    }
    out
}

fn put_all(manager: &Manager, records: &[(String, Vec<u8>)]) {
    for (key, value) in records {
        response_store::put(manager, key, MODEL, value, None).expect("put");
    }
}

fn print_ratio(name: &str, manager: &Manager) {
    let report = CacheReport::measure(manager);
    let disk = report.disk.expect("disk tier");
    println!(
        "{name}: disk.compression_ratio {:.3} ({} raw / {} stored bytes)",
        disk.compression_ratio.unwrap_or(0.0),
        disk.raw_bytes,
        disk.stored_bytes
    );
    if let Some(d) = report.dictionary {
        println!(
            "{name}: {} dictionary ({} bytes); on {} dictionary-coded values: {:.3} with, {:.3} without",
            d.dictionaries,
            d.dictionary_bytes,
            d.measured_values,
            d.ratio_with_dictionary.unwrap_or(0.0),
            d.ratio_without_dictionary.unwrap_or(0.0)
        );
    }
}

/// Two caches of the same records: with a trained dictionary (compacted) and without. Returns them with the
/// records' keys.
fn filled_caches(root: &std::path::Path) -> (Manager, Manager, Vec<(String, Vec<u8>)>) {
    let mut rng = Rng(7);
    let mut all = records(&mut rng, 0, TRAINING);
    all.extend(records(&mut rng, TRAINING, MEASURED));
    let plain = Manager::open(&config(&root.join("plain"), false), Access::ReadWrite).expect("open");
    put_all(&plain, &all);
    plain.flush().expect("flush");
    let with = Manager::open(&config(&root.join("dictionary"), true), Access::ReadWrite).expect("open");
    put_all(&with, &all[..TRAINING]);
    let start = Instant::now();
    let trained = with.train_dictionary().expect("train");
    println!(
        "trained dictionary {} ({} bytes) on {} samples ({} bytes) in {:.2?}; held out: {:.3} with, {:.3} without",
        trained.id,
        trained.bytes,
        trained.samples,
        trained.sample_bytes,
        start.elapsed(),
        trained.held_out_raw_bytes as f64 / trained.held_out_with_dictionary as f64,
        trained.held_out_raw_bytes as f64 / trained.held_out_without_dictionary as f64
    );
    put_all(&with, &all[TRAINING..]);
    print_ratio("with dictionary, before compaction", &with);
    let start = Instant::now();
    let pass = with.compact().expect("compact");
    println!("compaction re-encoded {} records in {:.2?}", pass.reencoded, start.elapsed());
    with.flush().expect("flush");
    (with, plain, all)
}

fn ratio_and_costs(c: &mut Criterion) {
    let root = tempfile::tempdir().expect("temp dir");
    let (with, plain, all) = filled_caches(root.path());
    print_ratio("zstd-3 without dictionary", &plain);
    print_ratio("with dictionary, compacted", &with);
    for (key, value) in all.iter().step_by(97) {
        assert_eq!(with.get(Kind::Response, key).expect("get").as_deref(), Some(&value[..]));
        assert_eq!(plain.get(Kind::Response, key).expect("get").as_deref(), Some(&value[..]));
    }

    if selected("get_hit") {
        let mut keys: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
        let mut rng = Rng(11);
        for i in (1..keys.len()).rev() {
            keys.swap(i, rng.below(i + 1));
        }
        let mut group = c.benchmark_group("get_hit");
        for (name, manager) in [("zstd3", &plain), ("dictionary", &with)] {
            group.bench_function(name, |b| {
                let mut i = 0;
                b.iter(|| {
                    i = (i + 1) % keys.len();
                    black_box(manager.get(Kind::Response, black_box(keys[i])).expect("get"))
                })
            });
        }
        group.finish();
    }

    if selected("put") {
        let fresh = records(&mut Rng(13), 10 * TRAINING, 20_000);
        let mut group = c.benchmark_group("put");
        for (name, manager) in [("zstd3", &plain), ("dictionary", &with)] {
            group.bench_function(name, |b| {
                let mut i = 0;
                b.iter(|| {
                    i = (i + 1) % fresh.len();
                    let (key, value) = &fresh[i];
                    response_store::put(manager, key, MODEL, black_box(value), None).expect("put")
                })
            });
        }
        group.finish();
    }

    if selected("codec") {
        let dictionaries = with.dictionaries();
        let dictionary = dictionaries.current().expect("trained").clone();
        let codec = Codec::from_cache_config(with.config());
        let values: Vec<&Vec<u8>> = all.iter().map(|(_, v)| v).take(1000).collect();
        let mut group = c.benchmark_group("codec");
        for (name, dict) in [("zstd3", None), ("dictionary", Some(&*dictionary))] {
            let stored: Vec<(CodecId, Vec<u8>)> = values
                .iter()
                .map(|v| {
                    let mut scratch = Vec::new();
                    let (id, bytes) = codec.encode_with(v, &mut scratch, dict);
                    (id, bytes.to_vec())
                })
                .collect();
            group.bench_function(format!("encode_{name}"), |b| {
                let (mut i, mut scratch) = (0, Vec::new());
                b.iter(|| {
                    i = (i + 1) % values.len();
                    black_box(codec.encode_with(black_box(values[i]), &mut scratch, dict).1.len())
                })
            });
            group.bench_function(format!("decode_{name}"), |b| {
                let (mut i, mut out) = (0, Vec::new());
                b.iter(|| {
                    i = (i + 1) % values.len();
                    let (id, bytes) = &stored[i];
                    let decoded =
                        Codec::decode_with(*id, black_box(bytes), values[i].len(), &mut out, &dictionaries);
                    black_box(decoded.map(<[u8]>::len))
                })
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = ratio_and_costs
}
criterion_main!(benches);
