//! The seam between a model's inference slots and the prompt-prefix KV cache (issue 16): what the slots need
//! from a store of saved sequence states ([`PrefixStore`]) and how a model's slots are told to use one
//! ([`PrefixConfig`]).
//!
//! The slots own the llama.cpp side (the block-hash chain over prompt tokens, the compatibility fingerprint,
//! the record holding token ids and state bytes, verifying the tokens before a restore); the store only keeps
//! opaque bytes under 32-byte keys, with the cache engine's checksums, budget, eviction and encryption. Plain
//! types only: nothing here needs llama.cpp.

use std::sync::Arc;

/// Where saved sequence states are kept (the cache engine's `kv` kind). Every method is infallible for the
/// caller: a store that cannot read or write counts and reports the failure itself, and the request goes on
/// with a normal prefill.
pub trait PrefixStore: Send + Sync + std::fmt::Debug {
    /// Whether a state is stored under `key`: an index lookup, no read (the slots walk a prompt's blocks
    /// with it to find the longest stored prefix).
    fn contains(&self, key: &[u8; 32]) -> bool;
    /// The bytes stored under `key`, or `None` when absent or unreadable (damage is counted and quarantined
    /// by the store, never served).
    fn get(&self, key: &[u8; 32]) -> Option<Arc<[u8]>>;
    /// Keeps `bytes` under `key`.
    fn put(&self, key: &[u8; 32], bytes: &[u8]);
    /// Drops the state under `key` (it was found unusable: other tokens, or refused by llama.cpp).
    fn remove(&self, key: &[u8; 32]);
    /// A restore reused `tokens` prompt tokens and spared about `seconds_saved` of prefill.
    fn reused(&self, tokens: u64, seconds_saved: f64);
}

/// The prompt-prefix cache a model's slots use (`[cache.kv]`).
#[derive(Clone, Debug)]
pub struct PrefixConfig {
    /// Where states are kept.
    pub store: Arc<dyn PrefixStore>,
    /// Tokens per block of the hash chain (`cache.kv.block_tokens`); states are saved at block boundaries.
    pub block_tokens: u32,
    /// Prompts shorter than this are neither looked up nor saved (`cache.kv.min_prefix_tokens`).
    pub min_prefix_tokens: u32,
}
