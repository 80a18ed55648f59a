//! The prompt-prefix KV cache (issue 16): time to first token for a long shared prefix, cold against restored
//! in-process and restored after a restart; the lookup a request without a reusable prefix pays; and the
//! state copy a save costs the decode thread.
//!
//! The model is issue 16's synthetic llama, written by the bench into a temp dir: n_embd 512, 8 blocks, 8
//! heads, n_ff 2048, context 4096, F32 weights (all zero: llama.cpp computes the same matmuls whatever the
//! values), about 34M parameters. States go to the cache engine's KV store over a `persistent` cache in a temp
//! dir ([`bench_store`]): in process a restore reads the KV memory tier, after a restart the disk tier.
//!
//! Benchmarks (criterion, flat sampling, 10 samples):
//!
//! 1. `ttft/cold`: [`GgufModel::generate`] of one token after a 2,000-token shared prefix and a 20-token
//!    suffix (2,022 tokens with BOS and `▁`), without a prefix cache: the full prefill.
//!    `ttft/restored_in_process`: the same request on a model whose prefix cache holds the prefix (saved by
//!    one earlier request with another suffix): a restore of the 2,002 shared tokens (BOS, `▁`, 2,000 letters),
//!    then the 20-token suffix decoded.
//!    `ttft/restored_after_restart`: the same on a fresh model instance over a freshly opened cache on the
//!    same directory, both opened outside the timing (the state's record is read from the OS page cache).
//!    `ttft/prefix_resident`: llama.cpp's floor for these two, the suffix decoded on a sequence that already
//!    holds the shared tokens (llama-cpp-2 directly, nothing looked up or restored).
//! 2. `lookup/miss_2022_tokens`: [`GgufModel::cached_prefix_tokens`] for a 2,022-token prompt that shares no
//!    block with anything stored (tokenizing, hashing its 7 blocks of 256, 7 index lookups); compare with
//!    `ttft/cold`, the prefill it would precede. `lookup/hit_2022_tokens`: the same for the warm prompt (the
//!    record read and checked too; the restore itself is not run); `lookup/hit_2022_tokens_after_restart`:
//!    the same on a fresh model and cache (the record read from the disk tier, the OS page cache warm).
//! 3. `save/state_copy_2000_tokens`: what a save costs the decode thread: llama.cpp's size query and copy of
//!    a 2,000-token sequence state into a zeroed buffer of that size (llama-cpp-2 directly, on a context
//!    with the slots' parameters); the record's checksum and the write run on the saver thread.
//!
//! Run with `cargo bench --bench kv_prefix`. `docs/performance.md` has the numbers.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use inferno::cache::kv::KvStore;
use inferno::cache::{Access, Manager};
use inferno::config::CacheConfig;
use inferno::models::gguf::tiny::LlamaShape;
use inferno::models::llama::{GenerateParams, GgufModel, SlotConfig, backend};
use inferno::models::prefix::{PrefixConfig, PrefixStore};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::session::LlamaStateSeqFlags;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::token::LlamaToken;

const SHAPE: LlamaShape =
    LlamaShape { n_ctx: 4096, n_embd: 512, n_ff: 2048, n_head: 8, n_head_kv: 8, n_layer: 8 };
const PREFIX_CHARS: usize = 2000;
const SUFFIX_CHARS: usize = 20;

/// The cache engine's store of KV states (`KvStore`, what `inferno serve` gives the slots) over a
/// `persistent` cache in `dir` with the default `[cache.kv]`: states in its own memory tier and on disk.
fn bench_store(dir: &Path) -> Arc<dyn PrefixStore> {
    let config = CacheConfig { base_dir: dir.to_path_buf(), ..CacheConfig::default() };
    let manager = Arc::new(Manager::open(&config, Access::ReadWrite).expect("open the cache"));
    Arc::new(KvStore::new(manager).expect("start the KV store's writer"))
}

/// Writes the bench model into `dir`.
fn write_model(dir: &Path) -> PathBuf {
    let path = dir.join("kv-prefix-34m.gguf");
    let mut writer = SHAPE.metadata("inferno-kv-prefix-bench").expect("metadata");
    for (name, dims) in SHAPE.tensors() {
        writer.add_zero_f32_tensor(&name, &dims).expect("tensor");
    }
    writer.write_path(&path).expect("write the bench model");
    path
}

/// `len` letters and digits (one token each), varied by `seed`.
fn text(len: usize, seed: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len).map(|i| CHARS[(i * 7 + seed * 13 + i / 5) % CHARS.len()] as char).collect()
}

fn load(path: &Path, store: Option<Arc<dyn PrefixStore>>) -> GgufModel {
    let prefix = store.map(|store| PrefixConfig { store, block_tokens: 256, min_prefix_tokens: 256 });
    GgufModel::load_with(path, &SlotConfig { prefix, ..SlotConfig::default() }).expect("load the bench model")
}

fn one_token() -> GenerateParams {
    GenerateParams { max_tokens: 1, ..GenerateParams::default() }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let model_path = write_model(dir.path());
    let store_dir = dir.path().join("states");
    std::fs::create_dir(&store_dir).expect("store dir");
    let prefix = text(PREFIX_CHARS, 0);
    let prompt = |i: usize| format!("{prefix}{}", text(SUFFIX_CHARS, i + 1));
    let params = one_token();

    let mut group = c.benchmark_group("ttft");
    group.sampling_mode(SamplingMode::Flat).sample_size(10).warm_up_time(Duration::from_secs(1));
    let plain = load(&model_path, None);
    let mut i = 0;
    group.bench_function("cold", |b| {
        b.iter(|| {
            i += 1;
            plain.generate(&prompt(i), &params).expect("generate")
        })
    });
    drop(plain);

    let cached = load(&model_path, Some(bench_store(&store_dir)));
    cached.generate(&prompt(0), &params).expect("warm the prefix");
    cached.wait_for_prefix_saves();
    let restored = cached.generate(&prompt(1), &params).expect("generate");
    assert!(
        restored.cached_tokens >= PREFIX_CHARS + 2,
        "the shared prefix (BOS, `▁`, 2,000 letters) is restored"
    );
    group.bench_function("restored_in_process", |b| {
        b.iter(|| {
            i += 1;
            cached.generate(&prompt(i), &params).expect("generate")
        })
    });
    drop(cached);

    group.bench_function("restored_after_restart", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                i += 1;
                let fresh = load(&model_path, Some(bench_store(&store_dir)));
                let started = Instant::now();
                let out = fresh.generate(&prompt(i), &params).expect("generate");
                total += started.elapsed();
                assert!(out.cached_tokens >= PREFIX_CHARS + 2);
            }
            total
        })
    });
    group.finish();

    let mut group = c.benchmark_group("lookup");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    let model = load(&model_path, Some(bench_store(&store_dir)));
    let unrelated = text(PREFIX_CHARS + SUFFIX_CHARS, 99);
    assert_eq!(model.cached_prefix_tokens(&unrelated, false), 0);
    group.bench_function("miss_2022_tokens", |b| b.iter(|| model.cached_prefix_tokens(&unrelated, false)));
    assert!(model.cached_prefix_tokens(&prompt(5), false) >= PREFIX_CHARS + 2);
    group.bench_function("hit_2022_tokens", |b| b.iter(|| model.cached_prefix_tokens(&prompt(5), false)));
    drop(model);
    group.bench_function("hit_2022_tokens_after_restart", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let fresh = load(&model_path, Some(bench_store(&store_dir)));
                let started = Instant::now();
                let found = fresh.cached_prefix_tokens(&prompt(5), false);
                total += started.elapsed();
                assert!(found >= PREFIX_CHARS + 2);
            }
            total
        })
    });
    group.finish();

    bench_direct(c, &model_path, &prefix, &prompt(7));
}

/// A llama-cpp-2 context with the slots' parameters (16 sequences, one unified KV cache, batches of 512).
fn direct_context<'m>(model: &'m LlamaModel) -> LlamaContext<'m> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as i32;
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(SHAPE.n_ctx))
        .with_n_batch(512)
        .with_n_ubatch(512)
        .with_n_seq_max(16)
        .with_kv_unified(true)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    model.new_context(backend().expect("llama.cpp backend"), params).expect("context")
}

/// Decodes `tokens` into sequence 0 from position `from`, in batches of 512; logits for the last one.
fn decode(ctx: &mut LlamaContext<'_>, tokens: &[LlamaToken], from: usize) {
    for (n, chunk) in tokens.chunks(512).enumerate() {
        let mut batch = LlamaBatch::new(512, 1);
        for (i, token) in chunk.iter().enumerate() {
            let at = n * 512 + i;
            batch.add(*token, (from + at) as i32, &[0], at + 1 == tokens.len()).expect("batch");
        }
        ctx.decode(&mut batch).expect("decode");
    }
}

/// llama.cpp's floor for any prefix cache, and the state copy of a save, on llama-cpp-2 contexts with the
/// slots' parameters.
///
/// `ttft/prefix_resident`: the request of `ttft/restored_*` on a sequence that already holds the shared
/// 2,002 tokens in llama.cpp's KV cache (what a prefix kept in RAM in the same slot gives, with nothing to
/// look up, read or restore): the 20-token suffix decoded and the first token picked. No prefix cache can
/// answer faster with this build of llama.cpp.
fn bench_direct(c: &mut Criterion, model_path: &Path, prefix: &str, prompt: &str) {
    let backend = backend().expect("llama.cpp backend");
    let model = LlamaModel::load_from_file(backend, model_path, &LlamaModelParams::default()).expect("load");
    let mut ctx = direct_context(&model);
    let tokens = model.vocab().tokenize(prompt.as_bytes(), true, false);
    let shared_tokens = model.vocab().tokenize(prefix.as_bytes(), true, false);
    let shared = shared_tokens.len();
    assert_eq!(tokens[..shared], shared_tokens[..], "the prompt starts with the shared prefix's tokens");
    assert_eq!(tokens.len(), shared + SUFFIX_CHARS, "the suffix is one token a letter");
    decode(&mut ctx, &tokens[..shared], 0);
    let mut group = c.benchmark_group("ttft");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.bench_function("prefix_resident", |b| {
        b.iter(|| {
            ctx.clear_kv_cache_seq(Some(0), Some(shared as u32), None).expect("drop the last suffix");
            decode(&mut ctx, &tokens[shared..], shared);
            ctx.candidates_ith(SUFFIX_CHARS as i32 - 1).max_by(|a, b| a.logit().total_cmp(&b.logit()))
        })
    });
    group.finish();

    let mut ctx = direct_context(&model);
    decode(&mut ctx, &tokens[..2000], 0);
    let flags = LlamaStateSeqFlags::empty();
    let mut group = c.benchmark_group("save");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.bench_function("state_copy_2000_tokens", |b| {
        b.iter(|| {
            let size = ctx.state_seq_get_size_ext(0, flags);
            let mut bytes = vec![0u8; size];
            // SAFETY: `bytes` holds exactly the size llama.cpp just reported for sequence 0.
            let written = unsafe { ctx.state_seq_get_data_ext(bytes.as_mut_ptr(), 0, flags) };
            assert_eq!(written, size);
            bytes
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
