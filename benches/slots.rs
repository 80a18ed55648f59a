//! Inference slots: what a request costs beyond its prefill, and what batching concurrent requests buys,
//! against llama-cpp-2 driven directly in the same run.
//!
//! The model is issue 15's synthetic llama, written by the bench to `target/bench-models/slots-34m.gguf`:
//! n_embd 512, 8 blocks, 8 heads, n_ff 2048, context 4096, F32 weights (all zero: llama.cpp computes the
//! same matmuls whatever the values; greedy decoding then always picks token 0, so every request generates
//! exactly the tokens asked for).
//!
//! Benchmarks (criterion, flat sampling, 10 samples):
//!
//! 1. `request/slots_one_token`: [`GgufModel::generate`] through the slots, prompt `"a"` (3 tokens: BOS, `▁`,
//!    `a`), one token out — queue, decode thread, channel and all. `request/direct_one_token`: the same
//!    prefill and sample on a long-lived llama-cpp-2 context (its sequences' cells removed first), the floor.
//!    `request/fresh_context_one_token`: the same with a new 4096-token context per request, what `serve` did
//!    before the slots. Overhead = slots − direct.
//! 2. `decode/slots_1_stream` and `decode/slots_16_streams`: one request, and 16 concurrent requests (16
//!    threads), of 32 new tokens each after an 8-token prompt, through the slots; throughput in generated
//!    tokens. `decode/direct_1_seq` and `decode/direct_16_seqs`: the baseline, llama-cpp-2 directly with one
//!    context, the 16 prompts prefilled in one batch, then 32 steps of one 16-token batch (greedy).
//!
//! Run with `cargo bench --bench slots` (about a minute once built). `docs/performance.md` has the numbers.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use inferno::models::gguf::tiny::LlamaShape;
use inferno::models::llama::{GenerateParams, GgufModel, SlotConfig, backend};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;

const SHAPE: LlamaShape =
    LlamaShape { n_ctx: 4096, n_embd: 512, n_ff: 2048, n_head: 8, n_head_kv: 8, n_layer: 8 };
const STREAMS: usize = 16;
const NEW_TOKENS: u32 = 32;

/// The bench model, written unless already there.
fn model_path() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-models");
    std::fs::create_dir_all(&dir).expect("create target/bench-models");
    let path = dir.join("slots-34m.gguf");
    if !path.exists() {
        let mut writer = SHAPE.metadata("inferno-slots-bench").expect("metadata");
        for (name, dims) in SHAPE.tensors() {
            writer.add_zero_f32_tensor(&name, &dims).expect("tensor");
        }
        writer.write_path(&path).expect("write the bench model");
    }
    path
}

/// 16 different 8-token prompts (BOS, `▁` and six letters).
fn prompts() -> Vec<String> {
    (0..STREAMS as u8).map(|i| format!("{}bcdef", (b'a' + i) as char)).collect()
}

fn context_params(n_seq: u32) -> LlamaContextParams {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as i32;
    LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(SHAPE.n_ctx))
        .with_n_batch(512)
        .with_n_ubatch(512)
        .with_n_seq_max(n_seq)
        .with_kv_unified(true)
        .with_n_threads(threads)
        .with_n_threads_batch(threads)
}

/// Prefills each of `prompts` into its own sequence in one batch, then decodes `new_tokens` steps of one
/// token per sequence, greedily; returns the tokens generated.
fn direct(ctx: &mut LlamaContext<'_>, prompts: &[Vec<LlamaToken>], new_tokens: u32) -> usize {
    // The cells of every sequence removed, as the slots do for one (`clear_kv_cache` would also zero the
    // whole 4096-cell buffer, tens of megabytes, and make this floor slower than the slots).
    let _ = ctx.clear_kv_cache_seq(None, None, None);
    let mut batch = LlamaBatch::new(512, 1);
    let mut at = Vec::with_capacity(prompts.len());
    for (seq, tokens) in prompts.iter().enumerate() {
        for (i, token) in tokens.iter().enumerate() {
            let last = i + 1 == tokens.len();
            if last {
                at.push(batch.n_tokens());
            }
            batch.add(*token, i as i32, &[seq as i32], last).expect("fits");
        }
    }
    ctx.decode(&mut batch).expect("prefill");
    let mut samplers: Vec<LlamaSampler> = prompts.iter().map(|_| LlamaSampler::greedy()).collect();
    let mut positions: Vec<i32> = prompts.iter().map(|p| p.len() as i32).collect();
    let mut generated = 0;
    for step in 0..new_tokens {
        let tokens: Vec<LlamaToken> = samplers.iter_mut().zip(&at).map(|(s, &i)| s.sample(ctx, i)).collect();
        generated += tokens.len();
        if step + 1 == new_tokens {
            break;
        }
        batch.clear();
        at.clear();
        for (seq, token) in tokens.into_iter().enumerate() {
            at.push(batch.n_tokens());
            batch.add(token, positions[seq], &[seq as i32], true).expect("fits");
            positions[seq] += 1;
        }
        ctx.decode(&mut batch).expect("decode");
    }
    generated
}

fn slots(c: &mut Criterion) {
    let path = model_path();
    let config =
        SlotConfig { parallel: STREAMS as u32, queue_size: 512, max_context: SHAPE.n_ctx, prefix: None };
    let model = GgufModel::load_with(&path, &config).expect("load through the slots");
    let backend = backend().expect("backend");
    let raw = LlamaModel::load_from_file(backend, &path, &LlamaModelParams::default()).expect("load");
    let mut ctx = raw.new_context(backend, context_params(STREAMS as u32)).expect("context");
    let tokenize = |p: &str| raw.vocab().tokenize(p.as_bytes(), true, false);
    let one_token = GenerateParams { max_tokens: 1, ..GenerateParams::default() };
    assert_eq!(tokenize("a").len(), 3);

    let mut group = c.benchmark_group("request");
    group.sampling_mode(SamplingMode::Flat).sample_size(10).warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("slots_one_token", |b| {
        b.iter(|| assert_eq!(model.generate("a", &one_token).unwrap().completion_tokens, 1))
    });
    let a = [tokenize("a")];
    group.bench_function("direct_one_token", |b| b.iter(|| assert_eq!(direct(&mut ctx, &a, 1), 1)));
    group.bench_function("fresh_context_one_token", |b| {
        b.iter(|| {
            let mut fresh = raw.new_context(backend, context_params(1)).expect("context");
            assert_eq!(direct(&mut fresh, &a, 1), 1);
        })
    });
    group.finish();
    // The fastest of 30 requests each way: the overhead when the request gets the CPUs at once (the
    // medians above include waits for a core on a shared machine).
    let fastest = |f: &mut dyn FnMut()| {
        (0..30)
            .map(|_| {
                let started = Instant::now();
                f();
                started.elapsed()
            })
            .min()
            .expect("30 runs")
    };
    let slots_min =
        fastest(&mut || assert_eq!(model.generate("a", &one_token).unwrap().completion_tokens, 1));
    let direct_min = fastest(&mut || assert_eq!(direct(&mut ctx, &a, 1), 1));
    println!(
        "request, fastest of 30: slots {:.2} ms, direct {:.2} ms, overhead {:.2} ms",
        slots_min.as_secs_f64() * 1e3,
        direct_min.as_secs_f64() * 1e3,
        (slots_min.as_secs_f64() - direct_min.as_secs_f64()) * 1e3
    );

    let prompts = prompts();
    let tokens: Vec<Vec<LlamaToken>> = prompts.iter().map(|p| tokenize(p)).collect();
    assert!(tokens.iter().all(|t| t.len() == 8));
    let params = GenerateParams { max_tokens: NEW_TOKENS, ..GenerateParams::default() };
    let mut group = c.benchmark_group("decode");
    group.sampling_mode(SamplingMode::Flat).sample_size(10).warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(u64::from(NEW_TOKENS)));
    group.bench_function("slots_1_stream", |b| {
        b.iter(|| assert_eq!(model.generate(&prompts[0], &params).unwrap().completion_tokens, 32))
    });
    group.bench_function("direct_1_seq", |b| b.iter(|| direct(&mut ctx, &tokens[..1], NEW_TOKENS)));
    group.throughput(Throughput::Elements(u64::from(NEW_TOKENS) * STREAMS as u64));
    group.bench_function("slots_16_streams", |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                let handles: Vec<_> = prompts
                    .iter()
                    .map(|p| {
                        let (model, params) = (&model, &params);
                        s.spawn(move || model.generate(p, params).unwrap().completion_tokens)
                    })
                    .collect();
                let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
                assert_eq!(total, STREAMS * NEW_TOKENS as usize);
            })
        })
    });
    group.bench_function("direct_16_seqs", |b| b.iter(|| direct(&mut ctx, &tokens, NEW_TOKENS)));
    group.finish();
    let stats = model.slot_stats();
    println!(
        "slots: {} requests admitted, at most {} sequences in one batch, {:.1} generated tokens/s of decoding",
        stats.admitted,
        stats.peak_busy,
        stats.tokens_per_second()
    );
}

criterion_group!(benches, slots);
criterion_main!(benches);
