//! The store of saved prompt-prefix KV states (kind `kv`, `[cache.kv]`): the cache engine's side of
//! [`PrefixStore`], which a GGUF model's slots use to restore a prompt's longest saved prefix and to save new
//! ones.
//!
//! A state is kept under its 32-byte key, written as 64 hex digits, as an entry of kind `kv` in the
//! [`Manager`]: the disk tier's checksums and quarantine, encryption at rest (`[cache.security]`) and
//! `cache.kv.compression` come from there, and hot states live in the manager's KV memory tier, bounded by
//! `cache.kv.memory_limit_gb` and apart from the response memory tier. What this module adds:
//!
//! - the states' own disk budget, `cache.kv.max_size_gb`, kept by evicting the least recently used states
//!   first (`budget.rs`);
//! - a background writer (`writer.rs`), so that a put costs the decode thread one copy of the state and a
//!   queue push, never a disk write; a state that finds the queue full is dropped and counted;
//! - the counters of what restores spared (tokens reused, prefill seconds saved).
//!
//! Every method is infallible for the caller, as the trait asks: failures are counted and logged (by key,
//! never by content), and the request goes on with a normal prefill.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::cache::kind::Kind;
use crate::cache::{CacheError, Manager};
use crate::models::prefix::{PrefixConfig, PrefixStore};

mod budget;
#[cfg(test)]
mod tests;
mod writer;

pub use writer::QueueLimits;

use budget::Recency;
use writer::Writer;

/// Saved KV states in the cache engine.
pub struct KvStore {
    shared: Arc<Shared>,
    writer: Writer,
}

/// What the store and its writer thread share.
struct Shared {
    manager: Arc<Manager>,
    /// `cache.kv.max_size_gb` (at most `cache.max_size_gb`), in bytes.
    budget_bytes: u64,
    recency: Recency,
}

impl std::fmt::Debug for KvStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvStore").field("budget_bytes", &self.shared.budget_bytes).finish_non_exhaustive()
    }
}

/// The key of a state as stored: 64 lowercase hex digits.
pub fn key_hex(key: &[u8; 32]) -> String {
    use std::fmt::Write;
    key.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

impl KvStore {
    /// A store over `manager`'s kind `kv`, with the writer queue [`QueueLimits::for_config`] gives.
    pub fn new(manager: Arc<Manager>) -> std::io::Result<Self> {
        let limits = QueueLimits::for_config(&manager.config().kv);
        Self::with_queue(manager, limits)
    }

    /// A store whose writer queue holds at most `limits`.
    pub fn with_queue(manager: Arc<Manager>, limits: QueueLimits) -> std::io::Result<Self> {
        let config = manager.config();
        let budget_bytes = config.kv.budget_bytes(config.max_size_gb.bytes());
        let shared = Arc::new(Shared { manager, budget_bytes, recency: Recency::default() });
        let writer = Writer::start(Arc::clone(&shared), limits)?;
        Ok(Self { shared, writer })
    }

    /// The store for `manager`'s states, when the cache and `cache.kv` are enabled and the cache type has
    /// somewhere to keep them (`None` otherwise). A writer thread that cannot start is logged and leaves
    /// the slots without a store.
    pub fn for_manager(manager: &Arc<Manager>) -> Option<Arc<Self>> {
        if !manager.is_enabled(Kind::Kv) {
            return None;
        }
        if !manager.has_disk() && manager.kv_memory_stats().is_none() {
            tracing::warn!(
                "the prompt-prefix KV cache is off: cache.type = memory with cache.kv.memory_limit_gb = 0 \
                 leaves nowhere to keep states"
            );
            return None;
        }
        match Self::new(Arc::clone(manager)) {
            Ok(store) => Some(Arc::new(store)),
            Err(e) => {
                tracing::error!("the prompt-prefix KV cache is off: cannot start its writer thread: {e}");
                None
            }
        }
    }

    /// What a model's slots are given to use this store (`[cache.kv]`'s block size and minimum prefix).
    pub fn prefix_config(self: &Arc<Self>) -> PrefixConfig {
        let kv = &self.shared.manager.config().kv;
        PrefixConfig {
            store: Arc::clone(self) as Arc<dyn PrefixStore>,
            block_tokens: kv.block_tokens,
            min_prefix_tokens: kv.min_prefix_tokens,
        }
    }

    /// Waits until every state queued so far is written (and the budget kept).
    pub fn flush(&self) {
        self.writer.flush();
    }

    /// The manager the states are kept in.
    pub fn manager(&self) -> &Manager {
        &self.shared.manager
    }
}

impl PrefixStore for KvStore {
    fn contains(&self, key: &[u8; 32]) -> bool {
        self.writer.pending(key).is_some() || self.shared.manager.contains(Kind::Kv, &key_hex(key))
    }

    fn get(&self, key: &[u8; 32]) -> Option<Arc<[u8]>> {
        let manager = &self.shared.manager;
        if let Some(bytes) = self.writer.pending(key) {
            // Still on its way to the disk tier: served from the queue, a memory hit.
            manager.counters().kind(Kind::Kv).memory_hits.fetch_add(1, Ordering::Relaxed);
            self.shared.recency.touch(key_hex(key));
            return Some(bytes);
        }
        let hex = key_hex(key);
        match manager.get(Kind::Kv, &hex) {
            Ok(Some(bytes)) => {
                self.shared.recency.touch(hex);
                Some(bytes)
            }
            Ok(None) => None,
            Err(err) => {
                // A sealed value that does not open was counted as a miss by the manager; anything else
                // (a record that cannot be decoded, a read error) is counted here. Either way it is dropped.
                if !matches!(err, CacheError::Sealed { .. }) {
                    manager.counters().kind(Kind::Kv).misses.fetch_add(1, Ordering::Relaxed);
                }
                tracing::warn!(key = %hex, "a saved KV state could not be read and is dropped: {err}");
                self.remove(key);
                None
            }
        }
    }

    fn put(&self, key: &[u8; 32], bytes: &[u8]) {
        if bytes.len() as u64 > self.shared.budget_bytes {
            tracing::debug!(len = bytes.len(), "a KV state larger than cache.kv.max_size_gb is not stored");
            self.shared.manager.counters().kv_writes_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.writer.push(*key, bytes);
    }

    fn remove(&self, key: &[u8; 32]) {
        self.writer.forget(key);
        let hex = key_hex(key);
        self.shared.recency.forget(&hex);
        if let Err(err) = self.shared.manager.remove(Kind::Kv, &hex) {
            tracing::warn!(key = %hex, "removing a saved KV state failed: {err}");
        }
    }

    fn reused(&self, tokens: u64, seconds_saved: f64) {
        let counters = self.shared.manager.counters();
        counters.kv_tokens_reused.fetch_add(tokens, Ordering::Relaxed);
        let micros = (seconds_saved.max(0.0) * 1e6).round() as u64;
        counters.kv_prefill_micros_saved.fetch_add(micros, Ordering::Relaxed);
    }
}
