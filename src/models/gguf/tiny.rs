//! Test models: the tiny llama whose greedy output is known in advance, and large all-zero llamas for
//! load-time benchmarks. Both are plain llama-architecture GGUF v3 files with F32 weights and a SentencePiece
//! ("llama") vocabulary, so llama.cpp can load them.
//!
//! Vocabulary (296 tokens): `<unk>` (0, type UNKNOWN = 2), `<s>` (1, BOS) and `</s>` (2, EOS) (type CONTROL
//! = 3); the byte-fallback tokens `<0x00>`..`<0xFF>` (3..=258, type BYTE = 6); then `▁` (259), `a`..`z`
//! (260..=285) and `0`..`9` (286..=295), type NORMAL = 1. Every normal token is one character, so the
//! tokenizer never merges: `"abc"` becomes `▁ a b c` after llama's space prefix.
//!
//! Weights of the tiny model (64-wide, 2 blocks, 4 heads, feed-forward 128, about 0.5 MB). Each letter,
//! digit and `▁` gets its own embedding dimension: `token_embd[t]` is the one-hot vector `e_dim(t)` (letters
//! 0..=25, digits 26..=35, `▁` 36; the other tokens share dims 37..=63). `output[succ(t)] = SCALE ·
//! token_embd[t]`, where `succ` is the next letter (`z` → `a`), the next digit (`9` → `0`) and `▁` → `a`.
//! The norms are all ones. Attention and feed-forward inputs (`attn_q/k/v`, `ffn_gate/up`) are
//! pseudo-random in ±0.05, and their output projections (`attn_output`, `ffn_down`) in ±0.001, so each
//! block adds at most a few hundredths to the one-hot residual. The final hidden state after token `t` is
//! therefore ≈ `e_dim(t)`, RMS-normalised to ≈ `8 · e_dim(t)`, so the logit of `succ(t)` is ≈ `8 · SCALE`
//! = 16 and every other logit is near 0: greedy decoding after `"abc"` yields `defghijk…`.
//!
//! Tensor dimensions are in ggml order (`ne0`, the contiguous one, first), as llama.cpp's loader expects:
//! `token_embd`/`output` are `[n_embd, n_vocab]` (one row of `n_embd` per token), `attn_q` is
//! `[n_embd, n_head·head_dim]`, `attn_k`/`attn_v` `[n_embd, n_head_kv·head_dim]`, `attn_output`
//! `[n_head·head_dim, n_embd]`, `ffn_gate`/`ffn_up` `[n_embd, n_ff]`, `ffn_down` `[n_ff, n_embd]`, norms
//! `[n_embd]`.

use std::path::Path;

use super::GgufWriteError;
use super::value::{MetaArray, MetaValue};
use super::writer::GgufWriter;

/// Id of `▁`, the first normal token.
pub const SPACE_ID: u32 = 259;
/// Id of `a`; `b`..`z` follow.
pub const LETTER_A_ID: u32 = 260;
/// Id of `0`; `1`..`9` follow.
pub const DIGIT_0_ID: u32 = 286;
/// The size of the test vocabulary: 3 control tokens, 256 bytes, `▁`, 26 letters and 10 digits.
pub const VOCAB_SIZE: u32 = 296;
/// Weight of `output[succ(t)]` on `t`'s embedding dimension.
pub const SCALE: f32 = 2.0;

/// The hyperparameters of a generated llama model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LlamaShape {
    /// `llama.context_length`.
    pub n_ctx: u32,
    /// `llama.embedding_length`.
    pub n_embd: u64,
    /// `llama.feed_forward_length`.
    pub n_ff: u64,
    /// `llama.attention.head_count`.
    pub n_head: u64,
    /// `llama.attention.head_count_kv`.
    pub n_head_kv: u64,
    /// `llama.block_count`.
    pub n_layer: u64,
}

/// The tiny model's shape.
pub const TINY: LlamaShape =
    LlamaShape { n_ctx: 128, n_embd: 64, n_ff: 128, n_head: 4, n_head_kv: 4, n_layer: 2 };

impl LlamaShape {
    fn head_dim(&self) -> u64 {
        self.n_embd / self.n_head
    }

    /// Every tensor's name and dimensions (ggml order), in the order they are written.
    pub fn tensors(&self) -> Vec<(String, Vec<u64>)> {
        let (e, v, f) = (self.n_embd, u64::from(VOCAB_SIZE), self.n_ff);
        let (q, kv) = (self.n_head * self.head_dim(), self.n_head_kv * self.head_dim());
        let mut out = vec![
            ("token_embd.weight".to_string(), vec![e, v]),
            ("output_norm.weight".into(), vec![e]),
            ("output.weight".into(), vec![e, v]),
        ];
        for b in 0..self.n_layer {
            for (part, dims) in [
                ("attn_norm", vec![e]),
                ("attn_q", vec![e, q]),
                ("attn_k", vec![e, kv]),
                ("attn_v", vec![e, kv]),
                ("attn_output", vec![q, e]),
                ("ffn_norm", vec![e]),
                ("ffn_gate", vec![e, f]),
                ("ffn_up", vec![e, f]),
                ("ffn_down", vec![f, e]),
            ] {
                out.push((format!("blk.{b}.{part}.weight"), dims));
            }
        }
        out
    }

    /// The number of parameters (F32 values) of all tensors.
    pub fn parameter_count(&self) -> u64 {
        self.tensors().iter().map(|(_, dims)| dims.iter().product::<u64>()).sum()
    }

    /// A writer holding this shape's llama metadata and vocabulary, named `name`, without tensors.
    pub fn metadata(&self, name: &str) -> Result<GgufWriter, GgufWriteError> {
        let mut w = GgufWriter::new();
        let u32_of = |v: u64| MetaValue::U32(u32::try_from(v).unwrap_or(u32::MAX));
        w.add_metadata("general.architecture", MetaValue::String("llama".into()))?
            .add_metadata("general.name", MetaValue::String(name.into()))?
            .add_metadata("general.file_type", MetaValue::U32(0))?
            .add_metadata("llama.context_length", MetaValue::U32(self.n_ctx))?
            .add_metadata("llama.embedding_length", u32_of(self.n_embd))?
            .add_metadata("llama.block_count", u32_of(self.n_layer))?
            .add_metadata("llama.feed_forward_length", u32_of(self.n_ff))?
            .add_metadata("llama.attention.head_count", u32_of(self.n_head))?
            .add_metadata("llama.attention.head_count_kv", u32_of(self.n_head_kv))?
            .add_metadata("llama.rope.dimension_count", u32_of(self.head_dim()))?
            .add_metadata("llama.attention.layer_norm_rms_epsilon", MetaValue::F32(1e-5))?;
        let (tokens, scores, types) = vocabulary();
        w.add_metadata("tokenizer.ggml.model", MetaValue::String("llama".into()))?
            .add_metadata("tokenizer.ggml.tokens", MetaValue::Array(MetaArray::String(tokens)))?
            .add_metadata("tokenizer.ggml.scores", MetaValue::Array(MetaArray::F32(scores)))?
            .add_metadata("tokenizer.ggml.token_type", MetaValue::Array(MetaArray::I32(types)))?
            .add_metadata("tokenizer.ggml.bos_token_id", MetaValue::U32(1))?
            .add_metadata("tokenizer.ggml.eos_token_id", MetaValue::U32(2))?
            .add_metadata("tokenizer.ggml.unknown_token_id", MetaValue::U32(0))?
            .add_metadata("tokenizer.ggml.add_bos_token", MetaValue::Bool(true))?
            .add_metadata("tokenizer.ggml.add_eos_token", MetaValue::Bool(false))?;
        Ok(w)
    }
}

/// The test vocabulary's tokens, scores and token types, in id order.
pub fn vocabulary() -> (Vec<String>, Vec<f32>, Vec<i32>) {
    let mut tokens: Vec<String> = ["<unk>", "<s>", "</s>"].map(String::from).into();
    let mut types = vec![2, 3, 3];
    tokens.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
    types.extend([6; 256]);
    tokens.push("▁".into());
    tokens.extend(('a'..='z').chain('0'..='9').map(String::from));
    types.resize(tokens.len(), 1);
    let scores = (0..tokens.len()).map(|i| if types[i] == 1 { -(i as f32) } else { 0.0 }).collect();
    (tokens, scores, types)
}

/// The token greedy decoding should produce after token `id`: the next letter or digit (cyclic), `a` after
/// `▁`, and `None` for control and byte tokens.
pub fn successor(id: u32) -> Option<u32> {
    match id {
        SPACE_ID => Some(LETTER_A_ID),
        LETTER_A_ID..DIGIT_0_ID => Some(LETTER_A_ID + (id - LETTER_A_ID + 1) % 26),
        DIGIT_0_ID..VOCAB_SIZE => Some(DIGIT_0_ID + (id - DIGIT_0_ID + 1) % 10),
        _ => None,
    }
}

/// The embedding dimension that carries token `id` (see the module doc).
fn embedding_dim(id: u32) -> u64 {
    match id {
        SPACE_ID => 36,
        LETTER_A_ID..VOCAB_SIZE => u64::from(id - LETTER_A_ID),
        _ => 37 + u64::from(id) % 27,
    }
}

/// Deterministic values uniform in `±amplitude` (SplitMix64).
fn noise(seed: u64, len: u64, amplitude: f32) -> Vec<f32> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * amplitude
        })
        .collect()
}

/// The tiny llama model as a writer (metadata and tensors), ready to write.
pub fn tiny_llama() -> Result<GgufWriter, GgufWriteError> {
    tiny_llama_with_context(TINY.n_ctx)
}

/// The tiny llama model with a context of `n_ctx` tokens instead of 128 (same weights, same output), for
/// generations long enough to outlast a test's steps.
pub fn tiny_llama_with_context(n_ctx: u32) -> Result<GgufWriter, GgufWriteError> {
    let mut w = LlamaShape { n_ctx, ..TINY }.metadata("inferno-tiny-llama")?;
    let n_embd = TINY.n_embd;
    let mut embd = vec![0.0; (n_embd * u64::from(VOCAB_SIZE)) as usize];
    let mut output = embd.clone();
    for id in 0..VOCAB_SIZE {
        let dim = embedding_dim(id);
        embd[(u64::from(id) * n_embd + dim) as usize] = 1.0;
        if let Some(next) = successor(id) {
            output[(u64::from(next) * n_embd + dim) as usize] = SCALE;
        }
    }
    for (seed, (name, dims)) in TINY.tensors().into_iter().enumerate() {
        let len = dims.iter().product();
        let values = match name.rsplit('.').nth(1).unwrap_or_default() {
            "token_embd" => embd.clone(),
            "output" => output.clone(),
            "output_norm" | "attn_norm" | "ffn_norm" => vec![1.0; len as usize],
            "attn_output" | "ffn_down" => noise(seed as u64, len, 0.001),
            _ => noise(seed as u64, len, 0.05),
        };
        w.add_f32_tensor(&name, &dims, values)?;
    }
    Ok(w)
}

/// Writes the tiny llama model to `path`; returns the file's length.
pub fn write_tiny_llama(path: &Path) -> Result<u64, GgufWriteError> {
    tiny_llama()?.write_path(path)
}

/// The shape [`write_synthetic`] uses for about `approx_bytes`: the widest of 64..=4096 that still gives at
/// least 8 blocks, with as many blocks as come closest to the size (at least 1).
pub fn synthetic_shape(approx_bytes: u64) -> LlamaShape {
    let shape = |n_embd: u64, n_layer: u64| LlamaShape {
        n_ctx: 2048,
        n_embd,
        n_ff: 3 * n_embd,
        n_head: n_embd / 64,
        n_head_kv: n_embd / 64,
        n_layer,
    };
    let target = approx_bytes / 4;
    let fits = |n_embd| shape(n_embd, 8).parameter_count() <= target;
    let n_embd = [4096, 2048, 1024, 512, 256, 128].into_iter().find(|n| fits(*n)).unwrap_or(64);
    let fixed = shape(n_embd, 0).parameter_count();
    let per_block = shape(n_embd, 1).parameter_count() - fixed;
    let blocks = (target.saturating_sub(fixed) + per_block / 2) / per_block;
    shape(n_embd, blocks.max(1))
}

/// Writes an all-zero-weights llama model of roughly `approx_bytes` (within half a block, at most about 1/16
/// of the total beyond 8 blocks) to `path`, streaming the zeros; returns the file's length.
pub fn write_synthetic(path: &Path, approx_bytes: u64) -> Result<u64, GgufWriteError> {
    let shape = synthetic_shape(approx_bytes);
    let mut w = shape.metadata("inferno-synthetic-llama")?;
    for (name, dims) in shape.tensors() {
        w.add_zero_f32_tensor(&name, &dims)?;
    }
    w.write_path(path)
}
