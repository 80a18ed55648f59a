//! The prompt-prefix cache's identities: the compatibility fingerprint of a model's slots (what a saved
//! sequence state depends on, so that a state is only ever restored where llama.cpp would have computed the
//! same one) and the block-hash chain over a prompt's tokens (the keys states are stored under).
//!
//! Pure functions over plain values; the slots read the values from llama.cpp's context parameters. The
//! layout of both is documented in docs/kv-cache.md.

/// Version of the prefix cache's format: of the fingerprint's inputs, the chain and the record
/// (`prefix_record.rs`). Bumping it makes every stored state unreachable (its keys change).
pub(super) const FORMAT_VERSION: u32 = 1;

/// The llama-cpp-sys-2 version this build compiles llama.cpp from (Cargo.lock pins it; a test checks). The
/// state bytes are llama.cpp's own serialization, so another llama.cpp build is another fingerprint.
pub(super) const LLAMA_CPP_SYS_VERSION: &str = "0.1.161";

/// What a sequence state depends on besides the model file: the context parameters of the slots that change
/// the bytes `llama_state_seq_get_data_ext` writes or what they mean.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct CacheLayout {
    /// Tokens of the context (cells of the KV cache).
    pub n_ctx: u32,
    /// Whether all sequences share one KV stream (`kv_unified`).
    pub kv_unified: bool,
    /// KV streams: 1 when unified, else one per sequence (`n_seq_max`).
    pub n_stream: u32,
    /// ggml types of the K and V caches.
    pub type_k: u32,
    pub type_v: u32,
    /// The flash-attention policy asked for (auto, on, off); it decides whether V is stored transposed.
    pub flash_attn: i32,
    /// Whether SWA layers keep the full context.
    pub swa_full: bool,
    /// RoPE and YaRN parameters of the context (0 = the model's own); keys are stored rotated.
    pub rope_scaling_type: i32,
    pub rope_freq_base: f32,
    pub rope_freq_scale: f32,
    pub yarn_ext_factor: f32,
    pub yarn_attn_factor: f32,
    pub yarn_beta_fast: f32,
    pub yarn_beta_slow: f32,
    pub yarn_orig_ctx: u32,
}

/// The 32-byte compatibility fingerprint: BLAKE3 over the format version, the llama.cpp build, the model
/// file's content fingerprint (`blake3:…`) and the cache layout, each field length-prefixed or fixed-size.
pub(super) fn fingerprint(file_fingerprint: &str, layout: &CacheLayout) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"inferno kv prefix fingerprint\0");
    h.update(&FORMAT_VERSION.to_le_bytes());
    for text in [LLAMA_CPP_SYS_VERSION, file_fingerprint] {
        h.update(&(text.len() as u64).to_le_bytes());
        h.update(text.as_bytes());
    }
    let l = layout;
    for word in [l.n_ctx, u32::from(l.kv_unified), l.n_stream, l.type_k, l.type_v, u32::from(l.swa_full)] {
        h.update(&word.to_le_bytes());
    }
    for word in [l.flash_attn, l.rope_scaling_type] {
        h.update(&word.to_le_bytes());
    }
    for float in [
        l.rope_freq_base,
        l.rope_freq_scale,
        l.yarn_ext_factor,
        l.yarn_attn_factor,
        l.yarn_beta_fast,
        l.yarn_beta_slow,
    ] {
        h.update(&float.to_bits().to_le_bytes());
    }
    h.update(&l.yarn_orig_ctx.to_le_bytes());
    *h.finalize().as_bytes()
}

/// The chain key of every whole block of `block_tokens` tokens in `tokens` (a partial last block has none):
/// `key_i = BLAKE3(key_{i-1} ‖ fingerprint ‖ block i's token ids as i32 LE)`, with 32 zero bytes before the
/// first block. Key `i` names the prefix of `(i + 1) · block_tokens` tokens.
pub(super) fn block_keys(fingerprint: &[u8; 32], tokens: &[i32], block_tokens: usize) -> Vec<[u8; 32]> {
    let block_tokens = block_tokens.max(1);
    let mut previous = [0u8; 32];
    let mut bytes = Vec::with_capacity(block_tokens * 4);
    tokens
        .chunks_exact(block_tokens)
        .map(|block| {
            bytes.clear();
            bytes.extend(block.iter().flat_map(|t| t.to_le_bytes()));
            let mut h = blake3::Hasher::new();
            h.update(&previous);
            h.update(fingerprint);
            h.update(&bytes);
            previous = *h.finalize().as_bytes();
            previous
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> CacheLayout {
        CacheLayout {
            n_ctx: 4096,
            kv_unified: true,
            n_stream: 1,
            type_k: 1,
            type_v: 1,
            flash_attn: -1,
            swa_full: true,
            rope_scaling_type: -1,
            rope_freq_base: 0.0,
            rope_freq_scale: 0.0,
            yarn_ext_factor: -1.0,
            yarn_attn_factor: -1.0,
            yarn_beta_fast: -1.0,
            yarn_beta_slow: -1.0,
            yarn_orig_ctx: 0,
        }
    }

    #[test]
    fn the_llama_cpp_version_is_the_one_cargo_lock_pins() {
        let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock")).unwrap();
        let entry = lock.split("[[package]]").find(|p| p.contains("name = \"llama-cpp-sys-2\"")).unwrap();
        let version = entry.lines().find_map(|l| l.strip_prefix("version = ")).unwrap().trim_matches('"');
        assert_eq!(version, LLAMA_CPP_SYS_VERSION, "update LLAMA_CPP_SYS_VERSION with the llama.cpp build");
    }

    #[test]
    fn every_input_changes_the_fingerprint() {
        let file = "blake3:00ff";
        let base = fingerprint(file, &layout());
        assert_eq!(base, fingerprint(file, &layout()), "deterministic");
        assert_ne!(base, fingerprint("blake3:00fe", &layout()));
        let changed: [fn(&mut CacheLayout); 15] = [
            |l| l.n_ctx = 2048,
            |l| l.kv_unified = false,
            |l| l.n_stream = 16,
            |l| l.type_k = 8,
            |l| l.type_v = 8,
            |l| l.flash_attn = 1,
            |l| l.swa_full = false,
            |l| l.rope_scaling_type = 2,
            |l| l.rope_freq_base = 10_000.0,
            |l| l.rope_freq_scale = 0.5,
            |l| l.yarn_ext_factor = 1.0,
            |l| l.yarn_attn_factor = 1.0,
            |l| l.yarn_beta_fast = 32.0,
            |l| l.yarn_beta_slow = 1.0,
            |l| l.yarn_orig_ctx = 8192,
        ];
        let mut seen = vec![base];
        for change in changed {
            let mut l = layout();
            change(&mut l);
            let f = fingerprint(file, &l);
            assert!(!seen.contains(&f), "{l:?}");
            seen.push(f);
        }
    }

    #[test]
    fn chain_keys_name_whole_prefixes() {
        let fp = [7u8; 32];
        let tokens: Vec<i32> = (0..10).collect();
        let keys = block_keys(&fp, &tokens, 4);
        assert_eq!(keys.len(), 2, "the partial third block has no key");
        // A prompt that shares the first block shares its key, and only that.
        let mut other = tokens.clone();
        other[5] = 99;
        let other_keys = block_keys(&fp, &other, 4);
        assert_eq!(other_keys[0], keys[0]);
        assert_ne!(other_keys[1], keys[1]);
        // The second key depends on the first block: same second block after another first one differs.
        let mut shifted = tokens.clone();
        shifted[0] = 42;
        assert_ne!(block_keys(&fp, &shifted, 4)[1], keys[1]);
        // And on the fingerprint.
        assert_ne!(block_keys(&[8u8; 32], &tokens, 4)[0], keys[0]);
        // The first key by hand.
        let mut h = blake3::Hasher::new();
        h.update(&[0u8; 32]);
        h.update(&fp);
        for t in 0..4i32 {
            h.update(&t.to_le_bytes());
        }
        assert_eq!(keys[0], *h.finalize().as_bytes());
    }
}
