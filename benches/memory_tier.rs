//! Memory-tier lookups against quick_cache and moka, and zstd/gzip on the same values.
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
        // The same lookup without moving the entry to the front: what strict LRU promotion costs.
        bench_get(&mut group, "inferno_memory_tier_peek", keys, |key| ours.peek(key));
        bench_get(&mut group, "quick_cache", keys, |key| quick.get(key));
        bench_get(&mut group, "moka", keys, |key| moka.get(key));
        group.finish();
    }
}

fn codecs(c: &mut Criterion) {
    let mut rng = Rng(7);
    let values: Vec<Vec<u8>> = (0..CODEC_SAMPLES).map(|i| response(&mut rng, i)).collect();
    let mut group = c.benchmark_group("codec");
    for (name, algorithm, level) in
        [("zstd3", CompressionAlgorithm::Zstd, 3), ("gzip6", CompressionAlgorithm::Gzip, 6)]
    {
        let codec = Codec::new(&CompressionConfig { enabled: true, algorithm, level }, 0);
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
    targets = lookups, codecs
}
criterion_main!(benches);
