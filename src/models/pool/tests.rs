//! Tests of the model cache with real models: tiny llamas written to several paths (llama.cpp loads each in
//! under a millisecond) and the tiny ONNX MLP. Time is passed in as synthetic `Instant`s, so no test sleeps
//! except the concurrency tests, which slow loads down to make callers overlap.

use std::path::{Path, PathBuf};
#[cfg(feature = "llama")]
use std::time::{Duration, Instant};

use super::*;
use crate::config::units::{Size, Span};
use crate::models::gguf::tiny::{LlamaShape, TINY, write_tiny_llama};
use crate::models::gguf::{GgufHeader, GgufWriter};

/// The tiny llama's KV cache: 128 tokens × 2 blocks × (2 × 16 × 4) × 2 bytes.
const TINY_KV_BYTES: u64 = 128 * 2 * (2 * 16 * 4) * 2;

fn config(
    max_models: u32,
    memory_limit: u64,
    strategy: PreloadStrategy,
    policy: UnloadPolicy,
) -> ModelCacheConfig {
    ModelCacheConfig {
        max_models,
        memory_limit_gb: Size(memory_limit),
        preload_strategy: strategy,
        unload_policy: policy,
        keep_alive_minutes: Span::units(5),
        ..ModelCacheConfig::default()
    }
}

/// A cache with room for `max_models` tiny models and plenty of memory.
fn new_cache(max_models: u32, strategy: PreloadStrategy, policy: UnloadPolicy) -> ModelPool {
    ModelPool::new(&config(max_models, 1 << 30, strategy, policy))
}

/// The tiny llama written to `a.gguf`, `b.gguf`, `c.gguf` and `d.gguf` in a temporary directory.
fn four_models() -> (tempfile::TempDir, [PathBuf; 4]) {
    let dir = tempfile::tempdir().unwrap();
    let paths = ["a", "b", "c", "d"].map(|name| dir.path().join(format!("{name}.gguf")));
    for path in &paths {
        write_tiny_llama(path).unwrap();
    }
    (dir, paths)
}

/// The names of the loaded models, sorted.
#[cfg(feature = "llama")]
fn loaded(cache: &ModelPool) -> Vec<String> {
    let mut names: Vec<String> = cache.stats().models.into_iter().map(|m| m.name).collect();
    names.sort();
    names
}

/// Loads (or hits) `path` at `now` and lets go of the model at once.
#[cfg(feature = "llama")]
fn touch(cache: &ModelPool, path: &Path, now: Instant) {
    cache.get_or_load_at(path, now).unwrap();
}

#[cfg(feature = "llama")]
fn minutes(n: u64) -> Duration {
    Duration::from_secs(60 * n)
}

#[test]
fn the_cache_can_be_shared_between_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<ModelPool>();
    shared::<CachedModel>();
}

#[test]
fn estimates_follow_the_header() {
    let (_dir, [a, ..]) = four_models();
    let file = ModelFile::open(&a).unwrap();
    assert_eq!(kv_cache_bytes(&GgufHeader::read_path(&a).unwrap()), TINY_KV_BYTES);
    assert_eq!(resident_estimate(&file).unwrap(), file.stamp.size + TINY_KV_BYTES);

    // Grouped-query attention: half the KV heads, half the KV cache.
    let gqa = LlamaShape { n_head_kv: 2, ..TINY };
    let header_only = a.with_file_name("gqa.gguf");
    gqa.metadata("gqa").unwrap().write_path(&header_only).unwrap();
    assert_eq!(kv_cache_bytes(&GgufHeader::read_path(&header_only).unwrap()), TINY_KV_BYTES / 2);
    // A file that does not describe a transformer has no KV cache to count.
    let bare = a.with_file_name("bare.gguf");
    GgufWriter::new().write_path(&bare).unwrap();
    assert_eq!(kv_cache_bytes(&GgufHeader::read_path(&bare).unwrap()), 0);

    let onnx = ModelFile::open(&onnx_path()).unwrap();
    assert_eq!(resident_estimate(&onnx).unwrap(), std::fs::metadata(onnx_path()).unwrap().len());
}

fn onnx_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/models/tiny-mlp.onnx")
}

#[cfg(not(feature = "llama"))]
#[test]
fn without_the_llama_feature_gguf_is_a_clear_error() {
    let (_dir, [a, ..]) = four_models();
    let cache = new_cache(2, PreloadStrategy::Lru, UnloadPolicy::SizeBased);
    let err = cache.get_or_load(&a).unwrap_err();
    assert!(matches!(err, PoolError::FeatureMissing { feature: "llama", .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("a.gguf") && text.contains("built without the `llama` feature"), "{text}");
    assert_eq!(cache.stats().counters.load_failures, 1);
}

#[cfg(not(feature = "onnx"))]
#[test]
fn without_the_onnx_feature_onnx_is_a_clear_error() {
    let cache = new_cache(2, PreloadStrategy::Lru, UnloadPolicy::SizeBased);
    let err = cache.get_or_load(&onnx_path()).unwrap_err().to_string();
    assert!(err.contains("tiny-mlp.onnx") && err.contains("built without the `onnx` feature"), "{err}");
}

/// Uses at t1..t6: a, a, a, b, c, then d needs room. a is the least recent but the most used; b and c are
/// used once each, b less recently; c is the most recent.
#[cfg(feature = "llama")]
#[test]
fn each_strategy_evicts_a_different_victim() {
    let (_dir, [a, b, c, d]) = four_models();
    let t0 = Instant::now();
    for (strategy, victim) in
        [(PreloadStrategy::Lru, "a"), (PreloadStrategy::Mru, "c"), (PreloadStrategy::Frequency, "b")]
    {
        let cache = new_cache(3, strategy, UnloadPolicy::SizeBased);
        for (i, path) in [&a, &a, &a, &b, &c, &d].into_iter().enumerate() {
            touch(&cache, path, t0 + Duration::from_secs(i as u64 + 1));
        }
        let mut expected: Vec<String> = ["a", "b", "c", "d"].map(String::from).into();
        expected.retain(|name| name != victim);
        assert_eq!(loaded(&cache), expected, "{strategy:?} evicts {victim}");
        assert!(!cache.is_loaded(&a.with_file_name(format!("{victim}.gguf"))));
        let counters = cache.stats().counters;
        assert_eq!((counters.loads, counters.hits, counters.evictions), (4, 2, 1), "{strategy:?}");
    }
}

#[cfg(feature = "llama")]
#[test]
fn the_memory_limit_counts_resident_estimates() {
    let (_dir, [a, b, c, _]) = four_models();
    let estimate = resident_estimate(&ModelFile::open(&a).unwrap()).unwrap();
    let limit = estimate * 5 / 2;
    let cache = ModelPool::new(&config(10, limit, PreloadStrategy::Lru, UnloadPolicy::SizeBased));
    let t0 = Instant::now();
    let model = cache.get_or_load_at(&a, t0).unwrap();
    assert_eq!(model.resident_bytes(), estimate);
    drop(model);
    touch(&cache, &b, t0 + minutes(1));
    let stats = cache.stats();
    assert_eq!((stats.loaded, stats.resident_bytes, stats.counters.evictions), (2, 2 * estimate, 0));
    touch(&cache, &c, t0 + minutes(2));
    let stats = cache.stats();
    assert_eq!(loaded(&cache), ["b", "c"], "a third model does not fit 2.5 models' memory: a goes");
    assert_eq!(
        (stats.resident_bytes, stats.memory_limit_bytes, stats.counters.evictions),
        (2 * estimate, limit, 1)
    );
}

#[cfg(feature = "llama")]
#[test]
fn a_model_larger_than_the_limit_is_an_error() {
    let (_dir, [a, ..]) = four_models();
    let estimate = resident_estimate(&ModelFile::open(&a).unwrap()).unwrap();
    let cache = ModelPool::new(&config(4, estimate - 1, PreloadStrategy::Lru, UnloadPolicy::SizeBased));
    let err = cache.get_or_load(&a).unwrap_err();
    assert!(matches!(err, PoolError::TooLarge { estimate: e, .. } if e == estimate), "{err}");
    let text = err.to_string();
    assert!(text.contains("a.gguf") && text.contains("memory_limit_gb"), "{text}");
    let stats = cache.stats();
    assert_eq!((stats.loaded, stats.counters.loads, stats.counters.load_failures), (0, 0, 1));

    let none = ModelPool::new(&config(0, 1 << 30, PreloadStrategy::Lru, UnloadPolicy::SizeBased));
    let err = none.get_or_load(&a).unwrap_err().to_string();
    assert!(err.contains("a.gguf") && err.contains("max_models is 0"), "{err}");
}

#[cfg(feature = "llama")]
#[test]
fn the_manual_policy_refuses_and_unloading_makes_room() {
    let (_dir, [a, b, c, _]) = four_models();
    let cache = new_cache(2, PreloadStrategy::Lru, UnloadPolicy::Manual);
    let t0 = Instant::now();
    touch(&cache, &a, t0);
    touch(&cache, &b, t0 + minutes(1));
    let err = cache.get_or_load_at(&c, t0 + minutes(2)).unwrap_err();
    assert!(matches!(err, PoolError::NoRoom { loaded: 2, max_models: 2, .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("c.gguf") && text.contains("unload a model first"), "{text}");
    assert_eq!(loaded(&cache), ["a", "b"], "nothing was evicted");

    assert!(cache.unload(&a));
    assert!(!cache.unload(&a), "a is no longer loaded");
    touch(&cache, &c, t0 + minutes(3));
    assert_eq!(loaded(&cache), ["b", "c"]);
    assert_eq!(cache.unload_all(), 2);
    let counters = cache.stats().counters;
    assert_eq!((counters.manual_unloads, counters.evictions, counters.load_failures), (3, 0, 1));
    assert!(loaded(&cache).is_empty());
}

#[cfg(feature = "llama")]
#[test]
fn time_based_unloads_idle_models_that_nobody_holds() {
    let (_dir, [a, b, ..]) = four_models();
    let cache = new_cache(4, PreloadStrategy::Lru, UnloadPolicy::TimeBased);
    let t0 = Instant::now();
    touch(&cache, &a, t0);
    touch(&cache, &b, t0 + minutes(4));
    assert!(cache.unload_idle(t0 + minutes(5) - Duration::from_secs(1)).is_empty());
    assert_eq!(cache.unload_idle(t0 + minutes(5)), [ModelFile::open(&a).unwrap().path]);
    assert_eq!(loaded(&cache), ["b"]);

    let held = cache.get_or_load_at(&b, t0 + minutes(6)).unwrap();
    assert!(cache.unload_idle(t0 + minutes(30)).is_empty(), "b is held, so in use");
    assert!(cache.stats().models[0].in_use);
    drop(held);
    assert_eq!(cache.unload_idle(t0 + minutes(30)).len(), 1);
    assert!(loaded(&cache).is_empty());
    assert_eq!(cache.stats().counters.idle_unloads, 2);

    // Under the other policies idle models stay.
    let size_based = new_cache(4, PreloadStrategy::Lru, UnloadPolicy::SizeBased);
    touch(&size_based, &a, t0);
    assert!(size_based.unload_idle(t0 + minutes(600)).is_empty());
    assert_eq!(loaded(&size_based), ["a"]);
}

#[cfg(feature = "llama")]
#[test]
fn two_spellings_of_one_file_are_one_entry() {
    let (dir, [a, ..]) = four_models();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let link = dir.path().join("link.gguf");
    std::os::unix::fs::symlink(&a, &link).unwrap();
    let cache = new_cache(4, PreloadStrategy::Lru, UnloadPolicy::SizeBased);
    let first = cache.get_or_load(&a).unwrap();
    let second = cache.get_or_load(&dir.path().join("sub/../a.gguf")).unwrap();
    let third = cache.get_or_load(&link).unwrap();
    assert!(Arc::ptr_eq(&first, &second) && Arc::ptr_eq(&first, &third));
    let stats = cache.stats();
    let counters = &stats.counters;
    assert_eq!((counters.loads, counters.misses, counters.hits), (1, 1, 2));
    assert_eq!((stats.loaded, stats.models[0].uses), (1, 3));
    assert_eq!((first.name().as_str(), first.format()), ("a", ModelFormat::Gguf));
    assert_eq!(first.path(), std::fs::canonicalize(&a).unwrap());

    // It is a real model: it generates the tiny llama's alphabet.
    let params = crate::models::llama::GenerateParams { max_tokens: 4, n_ctx: 64, ..Default::default() };
    let gguf = first.model().gguf().expect("a GGUF model");
    assert_eq!(gguf.generate("abc", &params).unwrap().text, "defg");
}

#[cfg(feature = "llama")]
#[test]
fn get_loaded_finds_only_loaded_unchanged_models_and_counts_them_as_hits() {
    let (dir, [a, b, ..]) = four_models();
    let cache = new_cache(4, PreloadStrategy::Lru, UnloadPolicy::SizeBased);
    assert!(cache.get_loaded(&a).is_none(), "not loaded yet");
    assert!(cache.get_loaded(&dir.path().join("missing.gguf")).is_none());
    let model = cache.get_or_load(&a).unwrap();
    let other_spelling = dir.path().join(".").join("a.gguf");
    assert!(Arc::ptr_eq(&model, &cache.get_loaded(&other_spelling).unwrap()));
    assert!(cache.get_loaded(&b).is_none(), "another file");
    let stats = cache.stats();
    assert_eq!((stats.counters.hits, stats.counters.misses, stats.counters.loads), (1, 1, 1));
    assert_eq!(stats.models[0].uses, 2);

    let mut bytes = std::fs::read(&a).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    let aside = a.with_extension("part");
    std::fs::write(&aside, &bytes).unwrap();
    std::fs::rename(&aside, &a).unwrap();
    assert!(cache.get_loaded(&a).is_none(), "a changed file is for get_or_load to reload");
    assert_eq!(cache.stats().counters.hits, 1, "misses count nothing");
}

#[cfg(feature = "llama")]
#[test]
fn a_rewritten_file_is_loaded_again_with_its_new_fingerprint() {
    let (_dir, [a, ..]) = four_models();
    let cache = new_cache(4, PreloadStrategy::Lru, UnloadPolicy::SizeBased);
    let old = cache.get_or_load(&a).unwrap();
    let mut bytes = std::fs::read(&a).unwrap();
    assert_eq!(old.fingerprint(), format!("blake3:{}", blake3::hash(&bytes).to_hex()));
    // Replace the file as downloads do: write aside, rename over (one weight's last byte differs).
    *bytes.last_mut().unwrap() ^= 1;
    let aside = a.with_extension("part");
    std::fs::write(&aside, &bytes).unwrap();
    std::fs::rename(&aside, &a).unwrap();

    let new = cache.get_or_load(&a).unwrap();
    assert!(!Arc::ptr_eq(&old, &new));
    assert_eq!(new.fingerprint(), format!("blake3:{}", blake3::hash(&bytes).to_hex()));
    assert_ne!(new.fingerprint(), old.fingerprint());
    let stats = cache.stats();
    let counters = &stats.counters;
    assert_eq!((counters.loads, counters.misses, counters.reloads, counters.hits), (2, 2, 1, 0));
    assert_eq!((stats.loaded, stats.models[0].fingerprint.as_str()), (1, new.fingerprint()));
    assert!(Arc::ptr_eq(&new, &cache.get_or_load(&a).unwrap()), "then it is a hit again");
}

#[cfg(feature = "llama")]
#[test]
fn damaged_and_foreign_files_are_errors_naming_the_file() {
    let (dir, [a, ..]) = four_models();
    let bytes = std::fs::read(&a).unwrap();
    let truncated = dir.path().join("truncated.gguf");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let garbage = dir.path().join("garbage.gguf");
    std::fs::write(&garbage, b"GGUF\x03\0\0\0 and then nonsense").unwrap();
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, b"hello").unwrap();
    let missing = dir.path().join("missing.gguf");
    let cache = new_cache(4, PreloadStrategy::Lru, UnloadPolicy::SizeBased);
    for path in [&truncated, &garbage, &notes, &missing] {
        let err = cache.get_or_load(path).unwrap_err().to_string();
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(err.contains(name), "{err}");
    }
    let err = cache.get_or_load(&truncated).unwrap_err().to_string();
    assert!(err.contains("truncated.gguf") && err.contains("but the file has"), "{err}");
    let stats = cache.stats();
    let counters = &stats.counters;
    assert_eq!((counters.misses, counters.load_failures, counters.loads, stats.loaded), (5, 5, 0, 0));

    // Failures are not remembered: once the file is whole, it loads.
    std::fs::write(&truncated, &bytes).unwrap();
    assert_eq!(cache.get_or_load(&truncated).unwrap().name(), "truncated");
}

#[cfg(feature = "llama")]
#[test]
fn concurrent_loads_of_one_file_load_it_once() {
    let (_dir, [a, ..]) = four_models();
    let mut cache = new_cache(4, PreloadStrategy::Lru, UnloadPolicy::SizeBased);
    cache.load_delay = Duration::from_millis(300);
    let barrier = std::sync::Barrier::new(8);
    let models: Vec<Arc<CachedModel>> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    cache.get_or_load(&a).unwrap()
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert!(models.iter().all(|m| Arc::ptr_eq(m, &models[0])));
    let stats = cache.stats();
    let counters = &stats.counters;
    assert_eq!((counters.loads, counters.misses, counters.hits), (1, 1, 7));
    assert_eq!(stats.models[0].uses, 8);

    // A failed load is shared the same way: one failure, every caller gets the error.
    let bad = a.with_file_name("bad.gguf");
    std::fs::write(&bad, b"GGUF nonsense").unwrap();
    let barrier = std::sync::Barrier::new(4);
    let errors: Vec<String> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    cache.get_or_load(&bad).unwrap_err().to_string()
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert!(errors.iter().all(|e| e.contains("bad.gguf")), "{errors:?}");
    let counters = cache.stats().counters;
    assert_eq!((counters.misses, counters.load_failures), (2, 1));
}

#[cfg(feature = "llama")]
#[test]
fn concurrent_loads_of_different_files_respect_max_models() {
    let (_dir, [a, b, ..]) = four_models();
    let mut cache = new_cache(1, PreloadStrategy::Lru, UnloadPolicy::SizeBased);
    cache.load_delay = Duration::from_millis(200);
    let barrier = std::sync::Barrier::new(2);
    std::thread::scope(|scope| {
        for path in [&a, &b] {
            let (cache, barrier) = (&cache, &barrier);
            scope.spawn(move || {
                barrier.wait();
                cache.get_or_load(path).unwrap();
            });
        }
    });
    let stats = cache.stats();
    let counters = &stats.counters;
    assert_eq!((stats.loaded, counters.loads, counters.evictions), (1, 2, 1), "never two loaded at once");
}

#[cfg(all(feature = "llama", feature = "onnx"))]
#[test]
fn the_onnx_model_loads_and_counts_too() {
    let (_dir, [a, b, ..]) = four_models();
    let cache = new_cache(2, PreloadStrategy::Lru, UnloadPolicy::SizeBased);
    let t0 = Instant::now();
    touch(&cache, &a, t0);
    let mlp = cache.get_or_load_at(&onnx_path(), t0 + minutes(1)).unwrap();
    assert_eq!((mlp.name().as_str(), mlp.format()), ("tiny-mlp", ModelFormat::Onnx));
    assert_eq!(mlp.resident_bytes(), std::fs::metadata(onnx_path()).unwrap().len());
    let onnx = mlp.model().onnx().expect("an ONNX model");
    let out = onnx.run(&[("x", vec![1, 4], vec![1.0, 2.0, 3.0, 4.0])]).unwrap();
    assert_eq!(out[0].1, [1, 3]);
    assert!(Arc::ptr_eq(&mlp, &cache.get_or_load_at(&onnx_path(), t0 + minutes(2)).unwrap()));
    drop(mlp);

    touch(&cache, &b, t0 + minutes(3));
    assert_eq!(loaded(&cache), ["b", "tiny-mlp"], "a was the least recently used");
    let counters = cache.stats().counters;
    assert_eq!((counters.loads, counters.hits, counters.evictions), (3, 1, 1));
}

#[cfg(feature = "llama")]
#[test]
fn stats_serialize_for_json() {
    let (_dir, [a, ..]) = four_models();
    let cache = new_cache(4, PreloadStrategy::Lru, UnloadPolicy::SizeBased);
    let t0 = Instant::now();
    touch(&cache, &a, t0);
    let json = serde_json::to_value(cache.stats_at(t0 + Duration::from_millis(1500))).unwrap();
    let model = &json["models"][0];
    assert_eq!((model["name"].as_str(), model["format"].as_str()), (Some("a"), Some("gguf")));
    assert_eq!(model["idle_ms"].as_f64(), Some(1500.0));
    assert_eq!(model["uses"].as_u64(), Some(1));
    assert!(model["fingerprint"].as_str().unwrap().starts_with("blake3:"));
    assert_eq!(json["loaded"].as_u64(), Some(1));
    assert_eq!(json["resident_bytes"], model["resident_bytes"]);
    assert_eq!(json["counters"]["loads"].as_u64(), Some(1));
    assert!(json["counters"]["total_load_ms"].as_f64().unwrap() > 0.0);
}
