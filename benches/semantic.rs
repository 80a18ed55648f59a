//! The semantic cache's cost: what a semantic lookup adds to an exact miss, and that an exact hit pays
//! nothing for it, with the real all-MiniLM-L6-v2 int8 model (`scripts/setup.sh` installs it;
//! `INFERNO_BENCH_MINILM=PATH` points at another copy).
//!
//! The index holds N random unit vectors (384 numbers, MiniLM's width) in **one** scope group — the worst
//! case, every stored request sharing the scope of the one looked up — with N = 10,000 and 100,000. The
//! prompt is a 20-token question (22 with `[CLS]`/`[SEP]`) that matches none of them, so a lookup is an
//! embedding plus a scan of the whole group (random vectors never reach the threshold: no guard or cache read
//! follows; a hit adds one cache read, which `http_hit` measures).
//!
//! Benchmarks (criterion):
//! 1. `semantic/embed_20_tokens`: [`Embedder`] on the prompt (tokenize, ONNX Runtime, mean pooling).
//! 2. `semantic/search_10k`, `semantic/search_100k`: [`Index::search`] of the group, the brute-force scan.
//! 3. `semantic/lookup_miss_10k`, `semantic/lookup_miss_100k`: [`SemanticCache::embed`] then
//!    [`SemanticCache::find`]: the latency a semantic lookup adds to an exact miss.
//! 4. `exact_hit/semantic_off` and `exact_hit/semantic_on`: what the server does for an exact hit apart from
//!    HTTP (`Prepared::with_request`, then the lookup: `response_store::get_fresh` of a memory-tier entry),
//!    with `cache.semantic.enabled` false and true: the semantic cache is consulted only after a miss.
//!
//! Then a timed loop (not criterion): 300 lookups at each size, each timed on its own, printing p50 and p99
//! of the whole lookup and of its two parts (the embedding, then the search with the guards).
//!
//! Run with `cargo bench --bench semantic` (about a minute once built; filling 100,000 vectors takes a few
//! seconds). `docs/performance.md` and `docs/semantic-cache.md` have the numbers.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use inferno::cache::response_store::{self, Endpoint, ModelIdentity};
use inferno::cache::semantic::embedder::Embedder;
use inferno::cache::semantic::index::{Index, normalize};
use inferno::cache::semantic::{Embedded, Query, SemanticCache, TextEmbedder};
use inferno::cache::{Access, Manager};
use inferno::config::{CacheConfig, CacheType};
use inferno::inference::{CacheControl, Prepared};
use serde_json::json;

/// 20 tokens by MiniLM's tokenizer.
const PROMPT: &str =
    "How do I convert a temperature from degrees Fahrenheit to degrees Celsius in a spreadsheet formula?";
const DIMS: usize = 384;
const SIZES: [usize; 2] = [10_000, 100_000];

fn minilm() -> PathBuf {
    std::env::var_os("INFERNO_BENCH_MINILM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/local/share/inferno/models/all-minilm-l6-v2-int8.onnx"))
}

fn embedder() -> Embedder {
    let dir = std::env::temp_dir();
    Embedder::for_lookups(minilm().to_str().unwrap(), &dir, 256).expect("load MiniLM (scripts/setup.sh)")
}

/// `n` random unit vectors, deterministic.
fn random_vectors(n: usize) -> impl Iterator<Item = Vec<f32>> {
    let mut rng = fastrand::Rng::with_seed(17);
    (0..n).map(move |_| {
        let mut v: Vec<f32> = (0..DIMS).map(|_| rng.f32() - 0.5).collect();
        normalize(&mut v);
        v
    })
}

fn memory_manager(dir: &std::path::Path, semantic: bool) -> Manager {
    let mut config =
        CacheConfig { base_dir: dir.join("cache"), kind: CacheType::Memory, ..CacheConfig::default() };
    config.semantic.enabled = semantic;
    config.semantic.model = "all-minilm-l6-v2-int8".into();
    config.semantic.max_entries = 200_000;
    Manager::open(&config, Access::ReadWrite).expect("open the cache")
}

/// A semantic cache over a memory-type cache (vectors in the index only) with `n` vectors in one group.
fn filled(manager: &Manager, n: usize, group: [u8; 32]) -> SemanticCache {
    let cache = SemanticCache::open(manager, Box::new(embedder()));
    for (i, vector) in random_vectors(n).enumerate() {
        let embedded = Embedded { group, text: format!("stored question {i}"), vector };
        cache.remember(manager, &format!("key-{i:06}"), "tiny", &embedded, None);
    }
    assert_eq!(cache.len(), n);
    cache
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn bench(c: &mut Criterion) {
    let model = embedder();
    let prompt = [PROMPT.to_string()];
    let group = [9u8; 32];
    let mut g = c.benchmark_group("semantic");
    g.sample_size(30).measurement_time(Duration::from_secs(4));
    g.bench_function("embed_20_tokens", |b| b.iter(|| black_box(model.embed(black_box(&prompt)).unwrap())));
    // Unit length, as the semantic cache searches with (`SemanticCache::embed` normalizes).
    let mut query = TextEmbedder::embed(&model, PROMPT).unwrap().unwrap();
    assert!(normalize(&mut query));
    let dir = tempfile::tempdir().unwrap();
    let mut samples = Vec::new();
    for n in SIZES {
        let label = format!("{}k", n / 1000);
        let mut index = Index::new(DIMS, n);
        for (i, vector) in random_vectors(n).enumerate() {
            index.insert(group, &format!("key-{i:06}"), "stored", &vector);
        }
        g.bench_function(format!("search_{label}"), |b| {
            b.iter(|| black_box(index.search(&group, black_box(&query), 0.95)))
        });
        drop(index);
        let manager = memory_manager(&dir.path().join(&label), true);
        let cache = filled(&manager, n, group);
        let asked = Query { group, text: PROMPT.into() };
        let lookup = || {
            let embedded = cache.embed(&asked).unwrap();
            cache.find(&manager, &embedded, 0.95, Some("tiny"))
        };
        assert!(lookup().is_none(), "random vectors never reach 0.95");
        g.bench_function(format!("lookup_miss_{label}"), |b| b.iter(|| black_box(lookup())));
        let (mut times, mut embeds, mut finds) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..300 {
            let started = Instant::now();
            let embedded = cache.embed(&asked).unwrap();
            let embedded_at = Instant::now();
            black_box(cache.find(&manager, &embedded, 0.95, Some("tiny")));
            finds.push(embedded_at.elapsed());
            embeds.push(embedded_at - started);
            times.push(started.elapsed());
        }
        for t in [&mut times, &mut embeds, &mut finds] {
            t.sort();
        }
        samples.push((label, [&times, &embeds, &finds].map(|t| (percentile(t, 0.5), percentile(t, 0.99)))));
    }
    g.finish();

    let mut g = c.benchmark_group("exact_hit");
    let identity = ModelIdentity { name: "tiny".into(), fingerprint: "gguf-bench".into() };
    let body = json!({"model": "tiny", "messages": [{"role": "user", "content": PROMPT}], "temperature": 0, "max_tokens": 8});
    let response = br#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"tiny","choices":[{"index":0,"message":{"role":"assistant","content":"Use =(A1-32)*5/9"},"finish_reason":"stop"}],"usage":{"prompt_tokens":22,"completion_tokens":9,"total_tokens":31}}"#;
    for (name, semantic) in [("semantic_off", false), ("semantic_on", true)] {
        let manager = memory_manager(&dir.path().join(name), semantic);
        let prepared =
            Prepared::new(&manager, identity.clone(), Endpoint::Chat, body.clone(), &CacheControl::default())
                .unwrap();
        let record = response_store::record_bytes("tiny", "gguf-bench", prepared.body(), response);
        response_store::put(&manager, prepared.plan().key(), "tiny", &record, None).unwrap();
        assert_eq!(prepared.plan().semantic_threshold().is_some(), semantic);
        g.bench_function(name, |b| {
            b.iter(|| {
                let prepared = Prepared::new(
                    &manager,
                    identity.clone(),
                    Endpoint::Chat,
                    black_box(body.clone()),
                    &CacheControl::default(),
                )
                .unwrap();
                black_box(prepared.lookup(&manager).expect("an exact hit"))
            })
        });
    }
    g.finish();

    println!("\nsemantic lookup on an exact miss, one group, 300 lookups each (timed loop):");
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for (label, [(p50, p99), (embed50, embed99), (find50, find99)]) in samples {
        println!(
            "  {label:>5} vectors: p50 {:.2} ms, p99 {:.2} ms (of which embedding p50 {:.2} / p99 {:.2}, search \
             and guards p50 {:.2} / p99 {:.2})",
            ms(p50),
            ms(p99),
            ms(embed50),
            ms(embed99),
            ms(find50),
            ms(find99)
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
