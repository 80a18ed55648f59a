//! Memory-tier lookups against quick_cache and moka, hit ratios on Zipf traces against strict LRU and
//! quick_cache, and zstd/gzip on the same values.
//!
//! 100,000 entries of 2 KiB chat-completion JSON (markdown content, generated deterministically) under
//! 64-char hex keys, as a blake3 hex digest would be. Every cache gets the same capacity and shares the same
//! `Arc<[u8]>` values. Lookups use freshly allocated key strings in a shuffled order, so each measured `get`
//! includes hashing the key and the cache misses of a cold entry. Run with `cargo bench --bench memory_tier`;
//! `docs/performance.md` has the last numbers and the machine. Last run, medians: get hit 280 ns (quick_cache
//! 225 ns, moka 1164 ns), get miss 52 ns (quick_cache 30 ns, moka 281 ns); zstd-3 9.4 µs compress, 2.6 µs
//! decompress, ratio 2.28; gzip-6 21.2 µs compress, 4.7 µs decompress, ratio 2.30.

use std::hint::black_box;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use inferno::cache::codec::Codec;
use inferno::cache::memory::MemoryTier;
use inferno::config::{CompressionAlgorithm, CompressionConfig};

mod common;
use common::{Rng, VALUE_LEN, response};

const ENTRIES: usize = 100_000;
/// Room for every entry in every shard of every cache, so that each lookup of a stored key is a hit.
const CAPACITY: u64 = 125_000;
const CODEC_SAMPLES: usize = 1_000;

struct Data {
    keys: Vec<String>,
    values: Vec<Arc<[u8]>>,
    /// The stored keys again, freshly allocated and shuffled.
    hits: Vec<String>,
    /// Keys that were never stored.
    misses: Vec<String>,
}

fn data() -> Data {
    let mut rng = Rng(42);
    let keys: Vec<String> = (0..ENTRIES).map(|_| rng.hex(64)).collect();
    let values = (0..ENTRIES).map(|i| Arc::from(response(&mut rng, i))).collect();
    let mut hits = keys.clone();
    for i in (1..hits.len()).rev() {
        hits.swap(i, rng.below(i + 1));
    }
    let misses = (0..ENTRIES).map(|_| rng.hex(64)).collect();
    Data { keys, values, hits, misses }
}

/// Times `get` over `keys`, one key per iteration, cycling.
fn bench_get<R>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    keys: &[String],
    get: impl Fn(&str) -> R,
) {
    group.bench_function(name, |b| {
        let mut i = 0;
        b.iter(|| {
            i = if i + 1 == keys.len() { 0 } else { i + 1 };
            black_box(get(black_box(keys[i].as_str())))
        })
    });
}

fn lookups(c: &mut Criterion) {
    let data = data();
    let ours: MemoryTier<String, Arc<[u8]>> =
        MemoryTier::new(CAPACITY, 1 << 30, |key, value| (key.len() + value.len()) as u64);
    let quick: quick_cache::sync::Cache<String, Arc<[u8]>> = quick_cache::sync::Cache::new(CAPACITY as usize);
    let moka: moka::sync::Cache<String, Arc<[u8]>> = moka::sync::Cache::new(CAPACITY);
    for (key, value) in data.keys.iter().zip(&data.values) {
        ours.insert(key.clone(), value.clone());
        quick.insert(key.clone(), value.clone());
        moka.insert(key.clone(), value.clone());
    }
    moka.run_pending_tasks();
    let held = |get: &dyn Fn(&str) -> bool| data.hits.iter().filter(|key| get(key)).count();
    println!(
        "entries held of {ENTRIES}: inferno {} ({} shards), quick_cache {}, moka {}",
        held(&|key| ours.peek(key).is_some()),
        ours.shard_count(),
        held(&|key| quick.peek(key).is_some()),
        held(&|key| moka.contains_key(key)),
    );

    for (group_name, keys) in [("get_hit", &data.hits), ("get_miss", &data.misses)] {
        let mut group = c.benchmark_group(group_name);
        bench_get(&mut group, "inferno_memory_tier", keys, |key| ours.get(key));
        // The same lookup without counting a read: what the frequency bump costs.
        bench_get(&mut group, "inferno_memory_tier_peek", keys, |key| ours.peek(key));
        bench_get(&mut group, "quick_cache", keys, |key| quick.get(key));
        bench_get(&mut group, "moka", keys, |key| moka.get(key));
        group.finish();
    }
}

/// A Zipf(s) sampler over `0..n` by inverse CDF.
fn zipf_trace(n: usize, s: f64, len: usize, rng: &mut Rng) -> Vec<u64> {
    let mut total = 0.0;
    let mut cdf: Vec<f64> = (1..=n)
        .map(|rank| {
            total += 1.0 / (rank as f64).powf(s);
            total
        })
        .collect();
    cdf.iter_mut().for_each(|c| *c /= total);
    (0..len)
        .map(|_| {
            let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
            cdf.partition_point(|&c| c < u) as u64
        })
        .collect()
}

/// Prints the hit ratio of each cache replaying Zipf traces (a miss inserts), the way the tier is used:
/// not timed, counted. 100,000 keys, 1,000,000 lookups, capacities of 1% and 10% of the keys.
fn hit_ratios(_: &mut Criterion) {
    let mut rng = Rng(9);
    println!(
        "hit ratio on Zipf traces (100k keys, 1M lookups): s, capacity, inferno S3-FIFO, strict LRU, quick_cache"
    );
    for s in [0.8, 0.9, 1.0, 1.1] {
        let trace = zipf_trace(100_000, s, 1_000_000, &mut rng);
        for capacity in [1_000u64, 10_000] {
            let ours: MemoryTier<u64, u64> = MemoryTier::new(capacity, u64::MAX, |_, _| 1);
            let mut lru = lru::LruCache::new(std::num::NonZeroUsize::new(capacity as usize).unwrap());
            let quick: quick_cache::sync::Cache<u64, u64> = quick_cache::sync::Cache::new(capacity as usize);
            let (mut ours_hits, mut lru_hits, mut quick_hits) = (0u64, 0u64, 0u64);
            for &key in &trace {
                match ours.get(&key) {
                    Some(_) => ours_hits += 1,
                    None => drop(ours.insert(key, key)),
                }
                match lru.get(&key) {
                    Some(_) => lru_hits += 1,
                    None => drop(lru.put(key, key)),
                }
                match quick.get(&key) {
                    Some(_) => quick_hits += 1,
                    None => quick.insert(key, key),
                }
            }
            let ratio = |hits: u64| hits as f64 / trace.len() as f64;
            println!(
                "  s={s} capacity={capacity}: {:.4} {:.4} {:.4}",
                ratio(ours_hits),
                ratio(lru_hits),
                ratio(quick_hits)
            );
        }
    }
}

fn codecs(c: &mut Criterion) {
    let mut rng = Rng(7);
    let values: Vec<Vec<u8>> = (0..CODEC_SAMPLES).map(|i| response(&mut rng, i)).collect();
    let mut group = c.benchmark_group("codec");
    for (name, algorithm, level) in
        [("zstd3", CompressionAlgorithm::Zstd, 3), ("gzip6", CompressionAlgorithm::Gzip, 6)]
    {
        let codec = Codec::new(
            &CompressionConfig { enabled: true, algorithm, level, ..CompressionConfig::default() },
            0,
        );
        let mut scratch = Vec::new();
        let encoded: Vec<_> = values
            .iter()
            .map(|raw| {
                let (id, stored) = codec.encode(raw, &mut scratch);
                (id, stored.to_vec())
            })
            .collect();
        let stored: usize = encoded.iter().map(|(_, stored)| stored.len()).sum();
        println!(
            "{name}: {CODEC_SAMPLES} values of {VALUE_LEN} B, ratio {:.2} (raw/stored), {:.0} B stored on average",
            (CODEC_SAMPLES * VALUE_LEN) as f64 / stored as f64,
            stored as f64 / CODEC_SAMPLES as f64
        );

        let mut i = 0;
        group.bench_function(format!("{name}_compress"), |b| {
            b.iter(|| {
                i = (i + 1) % values.len();
                black_box(codec.encode(black_box(&values[i]), &mut scratch).1.len())
            })
        });
        let mut out = Vec::new();
        group.bench_function(format!("{name}_decompress"), |b| {
            b.iter(|| {
                i = (i + 1) % encoded.len();
                let (id, stored) = &encoded[i];
                black_box(Codec::decode(*id, black_box(stored), VALUE_LEN, &mut out).map(<[u8]>::len))
            })
        });
    }
    // Baselines: a fresh compression context per value, which is what the codec's per-thread reuse avoids.
    group.bench_function("zstd3_compress_new_context", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % values.len();
            black_box(zstd::bulk::compress(black_box(&values[i]), 3).map(|out| out.len()))
        })
    });
    group.bench_function("gzip6_compress_new_gzencoder", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % values.len();
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
            encoder.write_all(black_box(&values[i])).and_then(|()| encoder.finish()).map(|out| out.len())
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = lookups, hit_ratios, codecs
}
criterion_main!(benches);
