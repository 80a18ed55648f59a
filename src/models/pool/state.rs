//! The cache's bookkeeping under its lock: one slot per canonical path, holding a loaded model with its use
//! or a load in flight, and the choices made from them (occupancy, eviction victim).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use super::{CachedModel, ModelCacheCounters, PoolError};
use crate::config::PreloadStrategy;
use crate::models::file::ModelFile;

/// A loaded model in the cache, with its use.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) model: Arc<CachedModel>,
    /// Times handed out, the load included.
    pub(super) uses: u64,
    pub(super) last_use: Instant,
}

impl Entry {
    /// True while a caller holds the model (the cache holds one reference itself).
    pub(super) fn in_use(&self) -> bool {
        Arc::strong_count(&self.model) > 1
    }
}

/// The outcome of a load in flight, for the callers waiting on it.
#[derive(Debug, Default)]
pub(super) struct PendingLoad {
    outcome: Mutex<Option<Result<Arc<CachedModel>, PoolError>>>,
    done: Condvar,
}

impl PendingLoad {
    pub(super) fn complete(&self, outcome: Result<Arc<CachedModel>, PoolError>) {
        *self.outcome.lock() = Some(outcome);
        self.done.notify_all();
    }

    pub(super) fn wait(&self) -> Result<Arc<CachedModel>, PoolError> {
        let mut outcome = self.outcome.lock();
        loop {
            if let Some(outcome) = outcome.as_ref() {
                return outcome.clone();
            }
            self.done.wait(&mut outcome);
        }
    }
}

/// What the cache holds for one canonical path.
#[derive(Debug)]
pub(super) enum Slot {
    Loaded(Entry),
    /// A load in flight; `reserved` is its resident estimate once it was admitted within the limits.
    Loading {
        pending: Arc<PendingLoad>,
        reserved: Option<u64>,
    },
}

#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) slots: HashMap<PathBuf, Slot>,
    pub(super) counters: ModelCacheCounters,
}

impl State {
    pub(super) fn entries(&self) -> impl Iterator<Item = (&PathBuf, &Entry)> {
        self.slots.iter().filter_map(|(path, slot)| match slot {
            Slot::Loaded(entry) => Some((path, entry)),
            Slot::Loading { .. } => None,
        })
    }

    /// Models loaded or admitted to load, and their resident estimates together.
    pub(super) fn occupancy(&self) -> (usize, u64) {
        self.slots.values().fold((0, 0), |(count, bytes), slot| match slot {
            Slot::Loaded(entry) => (count + 1, bytes.saturating_add(entry.model.resident_bytes)),
            Slot::Loading { reserved: Some(reserved), .. } => (count + 1, bytes.saturating_add(*reserved)),
            Slot::Loading { reserved: None, .. } => (count, bytes),
        })
    }

    /// True while some load admitted within the limits is in flight (its end may free room).
    pub(super) fn admitted_loads(&self) -> bool {
        self.slots.values().any(|slot| matches!(slot, Slot::Loading { reserved: Some(_), .. }))
    }

    /// The loaded model `strategy` unloads first (ties broken by path, so the choice is deterministic).
    pub(super) fn victim(&self, strategy: PreloadStrategy) -> Option<PathBuf> {
        let entries = self.entries();
        let chosen = match strategy {
            PreloadStrategy::Lru => entries.min_by_key(|(path, e)| (e.last_use, *path)),
            PreloadStrategy::Mru => entries.max_by_key(|(path, e)| (e.last_use, *path)),
            PreloadStrategy::Frequency => entries.min_by_key(|(path, e)| (e.uses, e.last_use, *path)),
        };
        chosen.map(|(path, _)| path.clone())
    }

    /// Removes the loaded models `unload` picks; returns them.
    pub(super) fn remove_loaded(&mut self, mut unload: impl FnMut(&Entry) -> bool) -> Vec<Arc<CachedModel>> {
        let paths: Vec<PathBuf> = self.entries().filter(|(_, e)| unload(e)).map(|(p, _)| p.clone()).collect();
        paths.iter().filter_map(|path| self.remove_entry(path)).collect()
    }

    /// The loaded model of `file` when its stamp still matches, counted as a hit and a use at `now`.
    pub(super) fn hit(&mut self, file: &ModelFile, now: Instant) -> Option<Arc<CachedModel>> {
        match self.slots.get_mut(&file.path) {
            Some(Slot::Loaded(entry)) if entry.model.file.stamp == file.stamp => {
                entry.uses += 1;
                entry.last_use = entry.last_use.max(now);
                self.counters.hits += 1;
                Some(entry.model.clone())
            }
            _ => None,
        }
    }

    pub(super) fn remove_entry(&mut self, path: &Path) -> Option<Arc<CachedModel>> {
        match self.slots.remove(path)? {
            Slot::Loaded(entry) => Some(entry.model),
            loading @ Slot::Loading { .. } => {
                self.slots.insert(path.to_path_buf(), loading);
                None
            }
        }
    }
}
