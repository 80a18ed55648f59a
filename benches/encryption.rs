//! Encryption at rest: what sealing costs a disk hit and sustained puts, against the same cache unsealed,
//! in one run.
//!
//! 1. `sealed_get_hit`: 20,000 stored response records of 2 KiB (`common/mod.rs`), zstd-3, default BLAKE3
//!    dedup, `cache.type = disk` (no memory tier, so every get reads, opens and decodes the head and its
//!    chunks), each looked up in shuffled order; with `encryption = none`, `aes-256-gcm` and
//!    `chacha20-poly1305` (XChaCha20-Poly1305).
//! 2. `sealed_put_throughput` (a timed loop, not criterion): 10,000 puts of mostly distinct records then
//!    `flush()`, per round, into a fresh `persistent` cache (zstd-3, dedup); the three settings alternate
//!    over 5 rounds; medians and the ratio to `none` are printed.
//!
//! Run with `cargo bench --no-default-features --bench encryption` (about a minute). `docs/performance.md`
//! has the last numbers (on a loaded machine): AES-256-GCM +1.4 µs per hit and 100.4% of the put rate;
//! XChaCha20-Poly1305 +3.8 µs and 90.0%.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use inferno::cache::{Access, Manager, response_store};
use inferno::config::{CacheConfig, CacheType, Encryption};

mod common;
use common::{Rng, record, selected, with_new_envelope};

const GET_ENTRIES: usize = 20_000;
const PUT_BATCH: usize = 10_000;
const PUT_ROUNDS: usize = 5;
const MODEL: &str = "llama-3.1-8b-instruct-q4_k_m";
const SETTINGS: [(&str, Encryption); 3] = [
    ("none", Encryption::None),
    ("aes-256-gcm", Encryption::Aes256Gcm),
    ("chacha20-poly1305", Encryption::ChaCha20Poly1305),
];

fn cache_config(dir: &Path, kind: CacheType, encryption: Encryption) -> CacheConfig {
    let mut config = common::zstd_cache_config(dir, kind, true);
    if encryption != Encryption::None {
        let key = dir.with_extension("key");
        std::fs::write(&key, [0x5a; 32]).expect("write key");
        config.security.encryption = encryption;
        config.security.key_file = key;
    }
    config
}

fn sealed_get_hit(c: &mut Criterion) {
    if !selected("sealed_get_hit") {
        return;
    }
    let (keys, values, hits) = common::keyed_records(&mut Rng(42), GET_ENTRIES);
    let root = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group("sealed_get_hit");
    for (name, encryption) in SETTINGS {
        let config = cache_config(&root.path().join(name), CacheType::Disk, encryption);
        {
            let manager = Manager::open(&config, Access::ReadWrite).expect("open manager");
            for (key, value) in keys.iter().zip(&values) {
                response_store::put(&manager, key, MODEL, value, None).expect("put");
            }
            manager.flush().expect("flush");
        }
        let manager = Manager::open(&config, Access::ReadWrite).expect("reopen manager");
        group.bench_function(name, |b| {
            let mut i = 0;
            b.iter(|| {
                i = if i + 1 == hits.len() { 0 } else { i + 1 };
                let got = manager.get(inferno::cache::Kind::Response, black_box(&hits[i])).expect("get");
                black_box(got.expect("a hit"))
            })
        });
    }
    group.finish();
}

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    let n = samples.len();
    if n % 2 == 1 { samples[n / 2] } else { (samples[n / 2 - 1] + samples[n / 2]) / 2.0 }
}

fn sealed_put_throughput(_: &mut Criterion) {
    if !selected("sealed_put_throughput") {
        return;
    }
    let mut rng = Rng(7);
    let keys: Vec<String> = (0..PUT_BATCH).map(|_| rng.hex(64)).collect();
    let mut values: Vec<Vec<u8>> = Vec::with_capacity(PUT_BATCH);
    for i in 0..PUT_BATCH {
        if i > 0 && rng.below(10) == 0 {
            let earlier = values[rng.below(i)].clone();
            values.push(with_new_envelope(&earlier, &mut rng, i));
        } else {
            values.push(record(&mut rng, i));
        }
    }
    let root = tempfile::tempdir().expect("temp dir");
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); SETTINGS.len()];
    for round in 0..PUT_ROUNDS {
        for slot in 0..SETTINGS.len() {
            let which = (slot + round) % SETTINGS.len();
            let (name, encryption) = SETTINGS[which];
            let dir = root.path().join(format!("{name}-{round}"));
            let manager =
                Manager::open(&cache_config(&dir, CacheType::Persistent, encryption), Access::ReadWrite)
                    .expect("open manager");
            let start = Instant::now();
            for (key, value) in keys.iter().zip(&values) {
                response_store::put(&manager, key, MODEL, value, None).expect("put");
            }
            manager.flush().expect("flush");
            rates[which].push(PUT_BATCH as f64 / start.elapsed().as_secs_f64());
        }
    }
    let medians: Vec<f64> = rates.iter_mut().map(|r| median(r)).collect();
    println!("{:<22} {:>14} {:>10}", "sealed_put_throughput", "values/s", "of none");
    for ((name, _), rate) in SETTINGS.iter().zip(&medians) {
        println!("{name:<22} {rate:>14.0} {:>9.1}%", 100.0 * rate / medians[0]);
    }
    for ((name, _), samples) in SETTINGS.iter().zip(&rates) {
        let samples: Vec<String> = samples.iter().map(|r| format!("{r:.0}")).collect();
        println!("  {name} per round (sorted): {}", samples.join(", "));
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = sealed_put_throughput, sealed_get_hit
}
criterion_main!(benches);
