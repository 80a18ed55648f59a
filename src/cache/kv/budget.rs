//! The KV states' disk budget (`cache.kv.max_size_gb`): after each write, while the states' bytes pass it,
//! the least recently used state goes first.
//!
//! Recency is kept in this process: a state is used when it is stored or read. States this process has not
//! used yet (saved by an earlier run) count as older than any it has used, oldest creation first. Bytes are
//! the states' own sizes, before compression: the budget means the same whatever `cache.kv.compression`
//! says. The states are counted within `cache.max_size_gb` too, whose housekeeping removes the oldest
//! entries of every kind when the whole cache passes it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

use parking_lot::Mutex;

use super::Shared;
use crate::cache::EntryInfo;
use crate::cache::kind::Kind;

/// When each state was last used, as a tick of this process.
#[derive(Default)]
pub(super) struct Recency {
    ticks: Mutex<(u64, HashMap<String, u64>)>,
}

impl Recency {
    /// Marks the state under `hex` as used now.
    pub(super) fn touch(&self, hex: String) {
        let mut guard = self.ticks.lock();
        let (clock, ticks) = &mut *guard;
        *clock += 1;
        ticks.insert(hex, *clock);
    }

    /// Forgets the state under `hex`.
    pub(super) fn forget(&self, hex: &str) {
        self.ticks.lock().1.remove(hex);
    }

    /// `states` in eviction order: never used here (oldest created first), then least recently used first.
    /// Forgets states that are gone.
    fn eviction_order(&self, mut states: Vec<EntryInfo>) -> Vec<EntryInfo> {
        let mut guard = self.ticks.lock();
        let ticks = &mut guard.1;
        let live: HashSet<&str> = states.iter().map(|e| e.key.as_str()).collect();
        ticks.retain(|k, _| live.contains(k.as_str()));
        states.sort_by_key(|e| (ticks.get(&e.key).copied().unwrap_or(0), e.created_ms));
        states
    }
}

impl Shared {
    /// Removes states, least recently used first, until their bytes are within the budget.
    pub(super) fn keep_budget(&self) {
        let states = self.manager.entries(Some(Kind::Kv));
        let mut total: u64 = states.iter().map(|e| e.size).sum();
        let order = self.recency.eviction_order(states);
        let mut evicted = 0;
        for state in order {
            if total <= self.budget_bytes {
                break;
            }
            match self.manager.remove(Kind::Kv, &state.key) {
                Ok(removed) => {
                    total -= state.size;
                    self.recency.forget(&state.key);
                    evicted += u64::from(removed);
                }
                Err(err) => {
                    tracing::warn!(key = %state.key, "evicting a KV state failed: {err}");
                    break;
                }
            }
        }
        self.manager.counters().kv_evictions.fetch_add(evicted, Ordering::Relaxed);
    }
}
