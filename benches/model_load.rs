//! Model loading: how long a GGUF model takes to load and produce its first token with its file cold (not in
//! the OS page cache) and warm, and how long warming the file takes.
//!
//! "Load" is `GgufModel::load` plus generating one token, what a server's first request waits for. The
//! llama.cpp in use (llama-cpp-sys-2 0.1.161) maps the file with `MAP_POPULATE` on Linux, so `load` itself
//! reads the whole file (the bench prints how long `load` alone took and how much was cached after it); with
//! a loader that maps lazily, the first token would fault the weights in instead, and the measurement holds
//! either way. The models:
//!
//! - `synthetic-1g.gguf`: `write_synthetic(path, 1 GB)`, a llama of all-zero F32 weights (1024 wide, 18
//!   blocks), written once to `target/bench-models/` under the crate and reused while it has the expected
//!   shape and length. Zero weights give all-zero logits, so greedy decoding picks token 0 and the one token
//!   is always generated.
//! - `tiny.gguf`: the 0.5 MB tiny llama, a baseline for the fixed costs (llama.cpp's load, a context, two
//!   decodes).
//!
//! Benchmarks (criterion, flat sampling, 20 samples, 5 s each, so one to a few iterations per sample):
//!
//! 1. `model_load/tiny_cold` and `model_load/synthetic_1g_cold`: the file is dropped from the page cache
//!    before every iteration ([`pages::drop_from_page_cache`], checked with [`pages::residency`]); the drop
//!    and the check are not timed, nor is dropping the loaded model.
//! 2. `model_load/synthetic_1g_warm`: the file was read by [`pages::warm`] beforehand; each iteration checks
//!    (untimed) that it is still fully resident.
//! 3. `warm/synthetic_1g_cold_file`: [`pages::warm`] itself, a sequential read and BLAKE3 of the whole file,
//!    from a dropped file; `warm/synthetic_1g_cached` the same on a file already in the page cache (the
//!    hashing and copying alone).
//!
//! 4. `model_load/synthetic_1g_model_cache_hit`: the model already loaded in a [`ModelPool`], timed from the
//!    lookup to the first token — what a server's request pays once the model is resident; and
//!    `model_load/model_cache_lookup`, the lookup alone (a stat to compare the file's stamp, a map lookup).
//!
//! Run with `cargo bench --bench model_load` (under a minute once built; the first run also writes the 1 GB
//! file). `docs/performance.md` has the last numbers and the machine. Last run, medians: tiny cold 1.48 ms;
//! 1 GB cold 309.7 ms, warm 52.0 ms (5.96×); `pages::warm` 370.9 ms from a dropped file, 122.6 ms cached.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use inferno::config::ModelCacheConfig;
use inferno::models::gguf::GgufHeader;
use inferno::models::gguf::tiny::{synthetic_shape, write_synthetic, write_tiny_llama};
use inferno::models::llama::{GenerateParams, GgufModel};
use inferno::models::pages;
use inferno::models::pool::ModelPool;

const SYNTHETIC_BYTES: u64 = 1_000_000_000;
/// A drop counts as cold when at most this share of the file stays cached.
const COLD_AT_MOST: f64 = 0.02;

/// Where the bench keeps its model files: `target/bench-models/` under the crate.
fn models_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-models");
    std::fs::create_dir_all(&dir).expect("create target/bench-models");
    dir
}

/// The ~1 GB synthetic model, written unless a complete one of the expected shape is already there.
fn synthetic_model() -> PathBuf {
    let path = models_dir().join("synthetic-1g.gguf");
    let shape = synthetic_shape(SYNTHETIC_BYTES);
    let complete = |path: &Path| {
        let Ok(header) = GgufHeader::read_path(path) else { return false };
        let Ok(meta) = std::fs::metadata(path) else { return false };
        let data_end = header
            .tensors()
            .iter()
            .map(|t| header.data_offset() + t.offset + t.byte_size().unwrap_or(u64::MAX / 2))
            .max()
            .unwrap_or(0);
        header.parameter_count() == shape.parameter_count()
            && header.embedding_length() == Some(shape.n_embd)
            && header.block_count() == Some(shape.n_layer)
            && meta.len() == data_end
    };
    if complete(&path) {
        eprintln!("reusing {}", path.display());
    } else {
        eprintln!("writing {} ({shape:?})", path.display());
        let partial = path.with_extension("gguf.partial");
        write_synthetic(&partial, SYNTHETIC_BYTES).expect("write the synthetic model");
        std::fs::rename(&partial, &path).expect("rename the synthetic model");
        assert!(complete(&path), "{} was just written but does not check out", path.display());
    }
    path
}

fn tiny_model() -> PathBuf {
    let path = models_dir().join("tiny.gguf");
    write_tiny_llama(&path).expect("write the tiny model");
    path
}

/// Loads the model and generates one token; returns the model so that dropping it is not timed.
fn load_and_generate(path: &Path) -> GgufModel {
    let model = GgufModel::load(path).expect("load");
    let params = GenerateParams { max_tokens: 1, n_ctx: 64, ..GenerateParams::default() };
    let out = model.generate("a", &params).expect("generate");
    assert_eq!(out.completion_tokens, 1, "{} generated {out:?}", path.display());
    model
}

/// Drops `path` from the page cache and checks that it is (nearly) gone.
fn make_cold(path: &Path) {
    pages::drop_from_page_cache(path).expect("drop from the page cache");
    let r = pages::residency(path).expect("residency");
    assert!(r.fraction() <= COLD_AT_MOST, "{} still cached after the drop: {r:?}", path.display());
}

/// Checks that `path` is entirely in the page cache, warming it if not.
fn make_warm(path: &Path) {
    if !pages::residency(path).expect("residency").is_full() {
        let report = pages::warm(path, |_, _| {}).expect("warm");
        assert!(report.resident_after.is_full(), "{report:?}");
    }
}

/// What a cold load reads, printed once: the time of `load` alone and residency after it, then of the first
/// token.
fn show_what_loading_reads(path: &Path) {
    make_cold(path);
    let started = Instant::now();
    let model = GgufModel::load(path).expect("load");
    let load = started.elapsed();
    let after_load = pages::residency(path).expect("residency");
    let params = GenerateParams { max_tokens: 1, n_ctx: 64, ..GenerateParams::default() };
    let started = Instant::now();
    let out = model.generate("a", &params).expect("generate");
    let token = started.elapsed();
    let after_token = pages::residency(path).expect("residency");
    eprintln!(
        "{}: {} bytes, {} tensor bytes; one cold load: `load` {load:.1?}, cached after it {:.1}%; \
         first token {:?} in {token:.1?}, cached after it {:.1}%",
        path.display(),
        after_load.total_bytes,
        model.size(),
        after_load.fraction() * 100.0,
        out.text,
        after_token.fraction() * 100.0,
    );
}

fn model_load(c: &mut Criterion) {
    let tiny = tiny_model();
    let synthetic = synthetic_model();
    show_what_loading_reads(&synthetic);

    let mut group = c.benchmark_group("model_load");
    group.sampling_mode(SamplingMode::Flat).sample_size(20);
    group.bench_function("tiny_cold", |b| {
        b.iter_batched(|| make_cold(&tiny), |()| load_and_generate(&tiny), BatchSize::PerIteration)
    });
    group.bench_function("synthetic_1g_cold", |b| {
        b.iter_batched(|| make_cold(&synthetic), |()| load_and_generate(&synthetic), BatchSize::PerIteration)
    });
    make_warm(&synthetic);
    group.bench_function("synthetic_1g_warm", |b| {
        b.iter_batched(|| make_warm(&synthetic), |()| load_and_generate(&synthetic), BatchSize::PerIteration)
    });
    // Model-cache hit: the model already loaded in the model cache, timed from the lookup to the first token;
    // and the lookup alone (a stat of the file to compare its stamp, and a map lookup).
    let cache = ModelPool::new(&ModelCacheConfig::default());
    cache.get_or_load(&synthetic).expect("load into the model cache");
    let params = GenerateParams { max_tokens: 1, n_ctx: 64, ..GenerateParams::default() };
    group.bench_function("synthetic_1g_model_cache_hit", |b| {
        b.iter(|| {
            let cached = cache.get_or_load(&synthetic).expect("hit");
            let model = cached.model().gguf().expect("a GGUF model");
            assert_eq!(model.generate("a", &params).expect("generate").completion_tokens, 1);
        })
    });
    group.sample_size(100).sampling_mode(SamplingMode::Auto);
    group.bench_function("model_cache_lookup", |b| b.iter(|| cache.get_or_load(&synthetic).expect("hit")));
    group.finish();
}

fn warm(c: &mut Criterion) {
    let synthetic = synthetic_model();
    let len = std::fs::metadata(&synthetic).expect("stat").len();
    let mut group = c.benchmark_group("warm");
    group.sampling_mode(SamplingMode::Flat).sample_size(20).throughput(Throughput::Bytes(len));
    group.bench_function("synthetic_1g_cold_file", |b| {
        b.iter_batched(
            || make_cold(&synthetic),
            |()| pages::warm(&synthetic, |_, _| {}).expect("warm"),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("synthetic_1g_cached", |b| {
        b.iter_batched(
            || make_warm(&synthetic),
            |()| pages::warm(&synthetic, |_, _| {}).expect("warm"),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5));
    targets = model_load, warm
}
criterion_main!(benches);
