//! The pool of loaded models (the guide's "model cache"): keeps loaded model instances in memory between
//! requests, within `[cache.model]`'s limits, like Ollama's loaded models with their keep-alive.
//!
//! [`ModelPool::get_or_load`] hands out a shared [`CachedModel`] for a model file, loading it on first use.
//! Entries are keyed by the file's canonical path, so two spellings of one file share one instance, and a
//! file whose [`FileStamp`](crate::models::file::FileStamp) changed since it was loaded is loaded again.
//! Before a load, models are evicted by `preload_strategy` until the new one fits `max_models` and
//! `memory_limit_gb` (counted with [`resident_estimate`]); under `unload_policy = "manual"` nothing is
//! evicted and a load that does not fit fails instead. Under `"time_based"` the server calls
//! [`ModelPool::unload_idle`] from a timer.
//!
//! The cache is shared across threads. Its lock is never held while a model loads: a load in flight holds a
//! slot that reserves its room, and other callers asking for the same file wait for it and share its
//! outcome, so each file is loaded once. An unloaded model's memory is freed when the last caller holding
//! its `Arc` drops it.

mod error;
mod loaded;
mod state;
mod stats;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

pub use error::PoolError;
pub use loaded::{LoadedModel, feature_of, is_supported, kv_cache_bytes, resident_estimate};
pub use stats::{LoadedModelInfo, ModelCacheCounters, ModelCacheStats};

use crate::config::{ModelCacheConfig, PreloadStrategy, UnloadPolicy};
use crate::models::file::{ModelFile, ModelFormat};
use crate::models::generate::SlotConfig;
use state::{Entry, PendingLoad, Slot, State};

/// A loaded model and what the cache knows about it, handed out as `Arc<CachedModel>`.
#[derive(Debug)]
pub struct CachedModel {
    file: ModelFile,
    fingerprint: String,
    model: LoadedModel,
    resident_bytes: u64,
    load_time: Duration,
}

impl CachedModel {
    /// The model file as it was when loaded (canonical path, stamp, format).
    pub fn file(&self) -> &ModelFile {
        &self.file
    }

    /// The canonical path of the model file.
    pub fn path(&self) -> &Path {
        &self.file.path
    }

    /// The file's format.
    pub fn format(&self) -> ModelFormat {
        self.file.format
    }

    /// The model's name: the file stem (`models/tiny.gguf` → `tiny`).
    pub fn name(&self) -> String {
        self.file.stem()
    }

    /// `blake3:` + the hash of the file's content when it was loaded.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The model in its runtime.
    pub fn model(&self) -> &LoadedModel {
        &self.model
    }

    /// The resident size estimate the memory limit counts, in bytes (see [`resident_estimate`]).
    pub fn resident_bytes(&self) -> u64 {
        self.resident_bytes
    }

    /// How long loading took (fingerprinting included).
    pub fn load_time(&self) -> Duration {
        self.load_time
    }
}

/// Loaded model instances, shared across threads, within `[cache.model]`'s limits.
#[derive(Debug)]
pub struct ModelPool {
    max_models: u32,
    memory_limit: u64,
    strategy: PreloadStrategy,
    policy: UnloadPolicy,
    keep_alive: Duration,
    /// The slots each GGUF model gets at load.
    slots: SlotConfig,
    state: Mutex<State>,
    /// Signalled whenever a load ends or a model is unloaded: room may have been freed.
    room_changed: Condvar,
    /// Tests slow loads down so that concurrent callers overlap.
    #[cfg(test)]
    load_delay: Duration,
}

impl ModelPool {
    /// An empty cache with `config`'s limits and policies (`enabled` is the caller's business).
    pub fn new(config: &ModelCacheConfig) -> Self {
        Self {
            max_models: config.max_models,
            memory_limit: config.memory_limit_gb.bytes(),
            strategy: config.preload_strategy,
            policy: config.unload_policy,
            keep_alive: config.keep_alive_minutes.duration(),
            slots: SlotConfig::default(),
            state: Mutex::new(State::default()),
            room_changed: Condvar::new(),
            #[cfg(test)]
            load_delay: Duration::ZERO,
        }
    }

    /// The same cache, giving each GGUF model it loads `slots` (`server.parallel`, `server.queue_size`).
    pub fn with_slots(mut self, slots: SlotConfig) -> Self {
        self.slots = slots;
        self
    }

    /// The slots each GGUF model gets at load.
    pub fn slots(&self) -> &SlotConfig {
        &self.slots
    }

    /// The loaded model of the file at `path`, loading it first if it is not loaded or its file changed.
    ///
    /// Unreadable, damaged and foreign files, formats this build cannot run, models larger than the memory
    /// limit, and (under `unload_policy = "manual"`) models that do not fit are errors naming the file.
    /// Blocks while the model loads (or while another caller loads it): callers on an async runtime call it
    /// on a blocking thread.
    pub fn get_or_load(&self, path: &Path) -> Result<Arc<CachedModel>, PoolError> {
        self.get_or_load_at(path, Instant::now())
    }

    /// [`get_or_load`](Self::get_or_load) with the clock read by the caller, so tests can order uses.
    fn get_or_load_at(&self, path: &Path, now: Instant) -> Result<Arc<CachedModel>, PoolError> {
        let file = ModelFile::open(path).inspect_err(|_| self.count_failed_lookup())?;
        let mut stale = None;
        let pending = {
            let mut guard = self.state.lock();
            if let Some(model) = guard.hit(&file, now) {
                return Ok(model);
            }
            let state = &mut *guard;
            match state.slots.get_mut(&file.path) {
                Some(Slot::Loading { pending, .. }) => {
                    let pending = pending.clone();
                    drop(guard);
                    return self.wait_for_load(&file.path, &pending, now);
                }
                Some(Slot::Loaded(_)) => {
                    stale = state.remove_entry(&file.path);
                    state.counters.reloads += 1;
                }
                None => {}
            }
            state.counters.misses += 1;
            let pending = Arc::new(PendingLoad::default());
            let slot = Slot::Loading { pending: pending.clone(), reserved: None };
            state.slots.insert(file.path.clone(), slot);
            pending
        };
        drop(stale);
        let mut load = LoadInFlight { cache: self, path: &file.path, pending, now, finished: false };
        let outcome = self.load(&file);
        load.finish(outcome)
    }

    /// The model of the file at `path` when it is loaded and its file unchanged: the checks of
    /// [`get_or_load`](Self::get_or_load) (the file opened, its stamp compared), counted as the hit
    /// `get_or_load` would count. `None`, counting nothing, in every other case (the file cannot be opened, or
    /// its model is not loaded, is loading, or changed): call `get_or_load` then, which checks again and loads,
    /// waits or reports the error. Never waits for a load, so an async task can call it (the checks are a few
    /// system calls) and leave loads to a blocking thread.
    pub fn get_loaded(&self, path: &Path) -> Option<Arc<CachedModel>> {
        let file = ModelFile::open(path).ok()?;
        self.get_loaded_file(&file)
    }

    /// [`get_loaded`](Self::get_loaded) for a file the caller has already identified (and keeps current).
    pub fn get_loaded_file(&self, file: &ModelFile) -> Option<Arc<CachedModel>> {
        self.state.lock().hit(file, Instant::now())
    }

    /// Counts a lookup whose file could not even be identified: a miss and a failed load.
    fn count_failed_lookup(&self) {
        let mut state = self.state.lock();
        state.counters.misses += 1;
        state.counters.load_failures += 1;
    }

    /// Waits for another caller's load of `path` and shares its outcome.
    fn wait_for_load(
        &self,
        path: &Path,
        pending: &PendingLoad,
        now: Instant,
    ) -> Result<Arc<CachedModel>, PoolError> {
        let model = pending.wait()?;
        let mut guard = self.state.lock();
        let state = &mut *guard;
        state.counters.hits += 1;
        if let Some(Slot::Loaded(entry)) = state.slots.get_mut(path)
            && Arc::ptr_eq(&entry.model, &model)
        {
            entry.uses += 1;
            entry.last_use = entry.last_use.max(now);
        }
        Ok(model)
    }

    /// Estimates, makes room, fingerprints and loads; the caller holds the path's loading slot.
    fn load(&self, file: &ModelFile) -> Result<Arc<CachedModel>, PoolError> {
        let started = Instant::now();
        #[cfg(test)]
        std::thread::sleep(self.load_delay);
        loaded::check_supported(file)?;
        let estimate = resident_estimate(file)?;
        drop(self.admit(file, estimate)?);
        let fingerprint = file.fingerprint()?;
        let model = LoadedModel::load_fingerprinted(file, Some(fingerprint.as_str()), &self.slots)?;
        let load_time = started.elapsed();
        Ok(Arc::new(CachedModel {
            file: file.clone(),
            fingerprint,
            model,
            resident_bytes: estimate,
            load_time,
        }))
    }

    /// Reserves room for `estimate` bytes in `file`'s loading slot, evicting models as the policy allows and
    /// waiting while other admitted loads hold the room; returns the evicted models, to drop unlocked.
    fn admit(&self, file: &ModelFile, estimate: u64) -> Result<Vec<Arc<CachedModel>>, PoolError> {
        let path = file.path.clone();
        if self.max_models == 0 {
            return Err(PoolError::NoModelsAllowed { path });
        }
        if estimate > self.memory_limit {
            return Err(PoolError::TooLarge { path, estimate, limit: self.memory_limit });
        }
        let mut evicted = Vec::new();
        let mut state = self.state.lock();
        loop {
            let (count, resident) = state.occupancy();
            if count < self.max_models as usize && resident.saturating_add(estimate) <= self.memory_limit {
                if let Some(Slot::Loading { reserved, .. }) = state.slots.get_mut(&path) {
                    *reserved = Some(estimate);
                }
                return Ok(evicted);
            }
            if self.policy != UnloadPolicy::Manual
                && let Some(victim) = state.victim(self.strategy)
            {
                evicted.extend(state.remove_entry(&victim));
                state.counters.evictions += 1;
                continue;
            }
            if state.admitted_loads() {
                self.room_changed.wait(&mut state);
                continue;
            }
            let (max_models, limit) = (self.max_models, self.memory_limit);
            return Err(PoolError::NoRoom { path, estimate, loaded: count, max_models, resident, limit });
        }
    }

    /// True when the file at `path` is loaded (a load in flight does not count). Counts no use.
    pub fn is_loaded(&self, path: &Path) -> bool {
        matches!(self.state.lock().slots.get(&cache_key(path)), Some(Slot::Loaded(_)))
    }

    /// Unloads the model of the file at `path`, whatever the policy; false when it was not loaded.
    pub fn unload(&self, path: &Path) -> bool {
        let key = cache_key(path);
        let removed = {
            let mut state = self.state.lock();
            let removed = state.remove_entry(&key);
            state.counters.manual_unloads += u64::from(removed.is_some());
            removed
        };
        self.room_changed.notify_all();
        removed.is_some()
    }

    /// Unloads every loaded model, whatever the policy (loads in flight finish); returns how many.
    pub fn unload_all(&self) -> usize {
        let removed = {
            let mut state = self.state.lock();
            let removed = state.remove_loaded(|_| true);
            state.counters.manual_unloads += removed.len() as u64;
            removed
        };
        self.room_changed.notify_all();
        removed.len()
    }

    /// Under `unload_policy = "time_based"`, unloads the models idle for `keep_alive_minutes` or longer at
    /// `now` and returns their paths; does nothing under the other policies. A model a caller still holds is
    /// in use, not idle. The server calls this from a timer.
    pub fn unload_idle(&self, now: Instant) -> Vec<PathBuf> {
        if self.policy != UnloadPolicy::TimeBased {
            return Vec::new();
        }
        let keep_alive = self.keep_alive;
        let removed = {
            let mut state = self.state.lock();
            let removed = state
                .remove_loaded(|e| !e.in_use() && now.saturating_duration_since(e.last_use) >= keep_alive);
            state.counters.idle_unloads += removed.len() as u64;
            removed
        };
        self.room_changed.notify_all();
        removed.iter().map(|model| model.path().to_path_buf()).collect()
    }

    /// The loaded models (most recently used first), their totals, the limits and the counters.
    pub fn stats(&self) -> ModelCacheStats {
        self.stats_at(Instant::now())
    }

    fn stats_at(&self, now: Instant) -> ModelCacheStats {
        let state = self.state.lock();
        let mut entries: Vec<&Entry> = state.entries().map(|(_, e)| e).collect();
        entries.sort_by(|a, b| b.last_use.cmp(&a.last_use).then_with(|| a.model.path().cmp(b.model.path())));
        let models: Vec<LoadedModelInfo> = entries
            .into_iter()
            .map(|e| LoadedModelInfo {
                path: e.model.path().to_path_buf(),
                name: e.model.name(),
                format: e.model.format(),
                fingerprint: e.model.fingerprint.clone(),
                resident_bytes: e.model.resident_bytes,
                uses: e.uses,
                in_use: e.in_use(),
                idle: now.saturating_duration_since(e.last_use),
                load_time: e.model.load_time,
                slots: e.model.model.slot_stats(),
            })
            .collect();
        ModelCacheStats {
            loaded: models.len(),
            resident_bytes: models.iter().map(|m| m.resident_bytes).sum(),
            models,
            max_models: self.max_models,
            memory_limit_bytes: self.memory_limit,
            counters: state.counters.clone(),
        }
    }
}

/// The key of `path`: its canonical form, or (for a file that is gone) its absolute form.
fn cache_key(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).or_else(|_| std::path::absolute(path)).unwrap_or_else(|_| path.to_path_buf())
}

/// A loading slot held by the caller that loads: finishing it (or dropping it, should the load panic)
/// replaces the slot with the model or removes it, counts the outcome and wakes the waiters.
struct LoadInFlight<'a> {
    cache: &'a ModelPool,
    path: &'a Path,
    pending: Arc<PendingLoad>,
    now: Instant,
    finished: bool,
}

impl LoadInFlight<'_> {
    fn finish(
        &mut self,
        outcome: Result<Arc<CachedModel>, PoolError>,
    ) -> Result<Arc<CachedModel>, PoolError> {
        self.finished = true;
        {
            let mut guard = self.cache.state.lock();
            let state = &mut *guard;
            match &outcome {
                Ok(model) => {
                    let entry = Entry { model: model.clone(), uses: 1, last_use: self.now };
                    state.slots.insert(self.path.to_path_buf(), Slot::Loaded(entry));
                    state.counters.loads += 1;
                    state.counters.total_load_time += model.load_time;
                    state.counters.last_load_time = model.load_time;
                }
                Err(_) => {
                    state.slots.remove(self.path);
                    state.counters.load_failures += 1;
                }
            }
        }
        self.cache.room_changed.notify_all();
        self.pending.complete(outcome.clone());
        outcome
    }
}

impl Drop for LoadInFlight<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let message = "the load was interrupted by a panic";
            self.finish(Err(PoolError::load_message(self.path.to_path_buf(), message))).ok();
        }
    }
}
