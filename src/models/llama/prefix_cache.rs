//! The prompt-prefix KV cache of one model's slots: finding and verifying a saved state for a prompt (on the
//! request's own thread, before it queues), restoring it into the request's sequence and saving a sequence's
//! state after prefill (on the decode thread, which owns the context), and writing records to the store (on
//! a saver thread, off the decode loop).
//!
//! Policy (docs/kv-cache.md): prompts of at least `min_prefix_tokens` tokens and one whole block are looked
//! up; the longest stored block key wins, its record's fingerprint and token ids are compared with the
//! request's, and the longest common prefix, leaving at least one prompt token to decode, is restored. After
//! prefill, a prompt whose last whole block is not stored yet saves the state of its whole prompt under that
//! block's key, with alias records under its earlier block keys, so a later prompt that shares any whole
//! block finds the state and truncates it to what it shares. Records that do not read, do not match or that
//! llama.cpp refuses are removed from the store; nothing is counted here (the store counts).

use std::num::NonZeroU32;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::session::LlamaStateSeqFlags;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use parking_lot::Mutex;

use super::prefix_chain::{CacheLayout, block_keys, fingerprint};
use super::prefix_record::{self, Record, StateRecord, StateRecordWriter};
use super::prefix_saver::{SaveJob, Saver};
use crate::models::prefix::{PrefixConfig, PrefixStore};

/// Most bytes of verified records that requests may hold between their lookup and their restore (while they
/// wait for a slot). A request that would hold more is prefilled normally, so a long queue of requests with
/// distinct long prefixes cannot pile up their states in memory. One record is always allowed.
const MAX_HELD_BYTES: usize = 2 << 30;

/// Prompt tokens a decode step must hold to count towards the measured prefill speed.
const MIN_MEASURED_PROMPT_TOKENS: usize = 32;

/// Architectures whose attention is causal over the whole context in llama.cpp 0.1.161 (no sliding window,
/// no recurrent layer), so a restored state truncated to its first M tokens is exactly the state of those M
/// tokens. States of other models are restored only whole.
const TRUNCATABLE_ARCHITECTURES: &[&str] = &[
    "llama",
    "qwen2",
    "qwen2moe",
    "qwen3",
    "qwen3moe",
    "mistral3",
    "gemma",
    "granite",
    "deepseek2",
    "glm4",
    "phi2",
    "starcoder2",
];

/// The prefix cache of one model's slots, shared by the callers (lookups) and the decode thread.
pub(super) struct PrefixCache {
    store: Arc<dyn PrefixStore>,
    block_tokens: usize,
    min_prefix_tokens: usize,
    fingerprint: [u8; 32],
    truncatable: bool,
    saver: Saver,
    /// Prompt tokens decoded and the seconds attributed to them, for `seconds_saved`.
    prefill: Mutex<(f64, f64)>,
    /// Bytes of the records that planned restores hold now.
    held: Arc<AtomicUsize>,
}

/// What the prefix cache does for one request, decided before it queues.
pub(super) struct PrefixPlan {
    /// The chain key of each whole block of the prompt.
    keys: Vec<[u8; 32]>,
    /// A verified state to restore, if one was found.
    pub restore: Option<Restore>,
    /// Whether the state after prefill is saved.
    pub save: bool,
}

/// A verified record, to be restored when the request gets its sequence.
pub(super) struct Restore {
    record: Arc<[u8]>,
    state: Range<usize>,
    /// Tokens in the saved state.
    n_tokens: usize,
    /// Tokens restored: the state is truncated to these when it holds more.
    keep: usize,
    /// The keys whose records led here, removed if llama.cpp refuses the state.
    keys: Vec<[u8; 32]>,
    /// The record's share of [`MAX_HELD_BYTES`], given back when the restore is dropped.
    _held: Held,
}

/// What a state record offers a prompt: where its state is, how many tokens it holds and how many of them
/// the prompt shares.
struct Usable {
    state: Range<usize>,
    n_tokens: usize,
    common: usize,
}

/// Bytes counted in a shared total until dropped.
struct Held {
    bytes: usize,
    total: Arc<AtomicUsize>,
}

impl Held {
    /// Counts `bytes` in `total` unless that would pass `MAX_HELD_BYTES` (and something is held already).
    fn take(total: &Arc<AtomicUsize>, bytes: usize) -> Option<Self> {
        let before = total.fetch_add(bytes, Ordering::Relaxed);
        if before > 0 && before + bytes > MAX_HELD_BYTES {
            total.fetch_sub(bytes, Ordering::Relaxed);
            return None;
        }
        Some(Self { bytes, total: Arc::clone(total) })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.total.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

impl Restore {
    /// The prompt tokens this restore gives the request.
    pub(super) fn tokens(&self) -> usize {
        self.keep
    }
}

impl PrefixCache {
    /// The prefix cache of a model's slots with context `params`, its model file fingerprinted
    /// `file_fingerprint`; `None` for recurrent and hybrid models, whose states cannot be truncated or checked
    /// cell by cell (they are never looked up or saved).
    pub(super) fn start(
        model: &LlamaModel,
        config: &PrefixConfig,
        file_fingerprint: &str,
        params: &LlamaContextParams,
    ) -> Option<Self> {
        if model.is_recurrent() || model.is_hybrid() {
            tracing::info!("the prompt-prefix cache is off for this model: its memory is recurrent");
            return None;
        }
        let architecture = model.meta_val_str("general.architecture").unwrap_or_default();
        let fingerprint = fingerprint(file_fingerprint, &layout(params));
        let saver = Saver::start(Arc::clone(&config.store), fingerprint)?;
        Some(Self {
            store: Arc::clone(&config.store),
            block_tokens: config.block_tokens.max(1) as usize,
            min_prefix_tokens: config.min_prefix_tokens as usize,
            fingerprint,
            truncatable: TRUNCATABLE_ARCHITECTURES.contains(&architecture.as_str()),
            saver,
            prefill: Mutex::new((0.0, 0.0)),
            held: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The plan for a prompt of `tokens` that may occupy `reserve` cells: `None` when the prompt is too short
    /// to be looked up (nothing touches the store then). Reads and verifies the record on the caller's
    /// thread; removes records that do not read or do not match.
    pub(super) fn plan(&self, tokens: &[LlamaToken], reserve: usize) -> Option<PrefixPlan> {
        if tokens.len() < self.min_prefix_tokens.max(2) || tokens.len() < self.block_tokens {
            return None;
        }
        let ids: Vec<i32> = tokens.iter().map(|t| t.0).collect();
        let keys = block_keys(&self.fingerprint, &ids, self.block_tokens);
        let hit = (0..keys.len()).rev().find(|&block| self.store.contains(&keys[block]));
        let restore =
            hit.and_then(|block| self.verified(&keys[block], (block + 1) * self.block_tokens, &ids));
        let restore = restore.filter(|r| r.n_tokens <= reserve && (self.truncatable || r.keep == r.n_tokens));
        // The prompt's whole blocks are stored unless its last block key was hit (and its record kept).
        let last = keys.len() - 1;
        let save = hit != Some(last) || !self.store.contains(&keys[last]);
        Some(PrefixPlan { keys, restore, save })
    }

    /// The record under `key` (following an alias), when it reads, has this fingerprint and holds at least
    /// the `shared` tokens the key names; records that fail are removed. Each record is parsed, and its
    /// checksum computed, once.
    fn verified(&self, key: &[u8; 32], shared: usize, prompt: &[i32]) -> Option<Restore> {
        let bytes = self.store.get(key)?;
        let target = match prefix_record::parse(&bytes) {
            Ok(Record::State(state)) => {
                let found = self.matching(&state, shared, prompt);
                return self.restore_of(bytes, found, vec![*key], prompt);
            }
            Ok(Record::Alias { fingerprint, target }) if fingerprint == self.fingerprint => target,
            other => {
                if let Err(e) = other {
                    tracing::debug!("prefix cache: a stored record is unusable ({e}); removed");
                }
                self.store.remove(key);
                return None;
            }
        };
        let Some(target_bytes) = self.store.get(&target) else {
            // The state it points at is gone (evicted, or damaged and dropped by the store).
            self.store.remove(key);
            return None;
        };
        let found = match prefix_record::parse(&target_bytes) {
            Ok(Record::State(state)) => self.matching(&state, shared, prompt),
            Ok(Record::Alias { .. }) => None,
            Err(e) => {
                tracing::debug!("prefix cache: a stored state is unusable ({e}); removed");
                None
            }
        };
        self.restore_of(target_bytes, found, vec![*key, target], prompt)
    }

    /// The state's range, token count and tokens shared with `prompt`, when it has this fingerprint and
    /// shares at least `shared` tokens.
    fn matching(&self, state: &StateRecord<'_>, shared: usize, prompt: &[i32]) -> Option<Usable> {
        if state.fingerprint != self.fingerprint {
            return None;
        }
        let common = state.common_prefix(prompt);
        (common >= shared).then(|| Usable { state: state.state.clone(), n_tokens: state.n_tokens(), common })
    }

    /// The restore of the state record `bytes` that [`matching`](Self::matching) found usable; when it was
    /// not, removes `keys` (the record and the alias that led to it).
    fn restore_of(
        &self,
        bytes: Arc<[u8]>,
        found: Option<Usable>,
        keys: Vec<[u8; 32]>,
        prompt: &[i32],
    ) -> Option<Restore> {
        let Some(Usable { state, n_tokens, common }) = found else {
            keys.iter().for_each(|k| self.store.remove(k));
            return None;
        };
        // The state holds no logits: at least the last prompt token is decoded again.
        let keep = common.min(prompt.len() - 1);
        let held = Held::take(&self.held, bytes.len())?;
        Some(Restore { record: bytes, state, n_tokens, keep, keys, _held: held })
    }

    /// Restores `restore` into sequence `seq` (emptied first by the caller): the tokens now in the sequence,
    /// or `None` when llama.cpp refused the state (its records are removed) or could not truncate it; the
    /// sequence is empty then.
    pub(super) fn restore(&self, ctx: &mut LlamaContext<'_>, seq: i32, restore: &Restore) -> Option<usize> {
        let state = &restore.record[restore.state.clone()];
        // SAFETY: the bytes are those `llama_state_seq_get_data_ext` wrote for a context with this
        // fingerprint (same llama.cpp build, model file and cache layout), checked by the record's checksum;
        // llama.cpp's reader bounds-checks every read against `state.len()` and rejects a mismatch by
        // returning 0 with the sequence cleared.
        let restored = unsafe { ctx.state_seq_set_data_ext(state, seq, LlamaStateSeqFlags::empty()) };
        if !restored {
            tracing::debug!("prefix cache: llama.cpp refused a stored state; removed");
            restore.keys.iter().for_each(|k| self.store.remove(k));
            let _ = ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
            return None;
        }
        if restore.keep < restore.n_tokens
            && ctx.kv_cache_seq_rm(seq, Some(restore.keep as u32), None).is_err()
        {
            let _ = ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
            return None;
        }
        let seconds_saved = self.prefill_seconds(restore.keep);
        self.store.reused(restore.keep as u64, seconds_saved);
        Some(restore.keep)
    }

    /// Copies sequence `seq`'s state (holding exactly `tokens`) into a record and queues it for the saver,
    /// with the alias keys of `plan`. Skipped when the saver is still busy with earlier states.
    pub(super) fn save(&self, ctx: &LlamaContext<'_>, seq: i32, tokens: &[LlamaToken], plan: &PrefixPlan) {
        if self.saver.full() {
            // At most `SAVE_QUEUE` states wait; this one is dropped (a later prompt with its blocks saves it).
            tracing::debug!(
                "prefix cache: the saver is busy; a state of {} tokens is not saved",
                tokens.len()
            );
            return;
        }
        let flags = LlamaStateSeqFlags::empty();
        let size = ctx.state_seq_get_size_ext(seq, flags);
        if size == 0 {
            return;
        }
        let ids: Vec<i32> = tokens.iter().map(|t| t.0).collect();
        let mut record = StateRecordWriter::new(&self.fingerprint, &ids, size);
        let dest = record.state_mut();
        // SAFETY: `dest` is exactly `size` bytes, the size llama.cpp just reported for this sequence, and
        // nothing changes the sequence between the two calls (this thread owns the context).
        let written = unsafe { ctx.state_seq_get_data_ext(dest.as_mut_ptr(), seq, flags) };
        if written != size {
            tracing::debug!("prefix cache: llama.cpp wrote {written} of {size} state bytes; not saved");
            return;
        }
        self.saver.send(SaveJob { record, keys: plan.keys.clone() });
    }

    /// Counts `tokens` prompt tokens decoded in a step of `seconds` (their share of it), for the estimate of
    /// the prefill time a restore saves. Steps with only a few prompt tokens do not count: their speed says
    /// little about a long prefill.
    pub(super) fn count_prefill(&self, tokens: usize, seconds: f64) {
        if tokens >= MIN_MEASURED_PROMPT_TOKENS {
            let mut prefill = self.prefill.lock();
            prefill.0 += tokens as f64;
            prefill.1 += seconds;
        }
    }

    /// Seconds a prefill of `tokens` tokens takes at the speed measured so far on this model; 0 before any
    /// prefill was measured (nothing is claimed that was not measured).
    fn prefill_seconds(&self, tokens: usize) -> f64 {
        let (measured_tokens, seconds) = *self.prefill.lock();
        if measured_tokens > 0.0 { tokens as f64 * seconds / measured_tokens } else { 0.0 }
    }

    /// Waits until every queued state has been written to the store.
    pub(super) fn wait_for_saves(&self) {
        self.saver.wait();
    }
}

/// What the saved states of a context with `params` depend on (see [`CacheLayout`]).
fn layout(params: &LlamaContextParams) -> CacheLayout {
    let kv_unified = params.kv_unified();
    CacheLayout {
        n_ctx: params.n_ctx().map_or(0, NonZeroU32::get),
        kv_unified,
        n_stream: if kv_unified { 1 } else { params.n_seq_max() },
        type_k: params.type_k().into(),
        type_v: params.type_v().into(),
        flash_attn: params.flash_attention_policy(),
        swa_full: params.swa_full(),
        rope_scaling_type: params.rope_scaling_type().into(),
        rope_freq_base: params.rope_freq_base(),
        rope_freq_scale: params.rope_freq_scale(),
        yarn_ext_factor: params.yarn_ext_factor(),
        yarn_attn_factor: params.yarn_attn_factor(),
        yarn_beta_fast: params.yarn_beta_fast(),
        yarn_beta_slow: params.yarn_beta_slow(),
        yarn_orig_ctx: params.yarn_orig_ctx(),
    }
}
