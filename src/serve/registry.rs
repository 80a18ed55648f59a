//! Which models the server answers for, by name, and the pool that holds the loaded ones.
//!
//! A model's name is its file stem. Models come from `models.dir` (found by name in the in-memory table of
//! `names.rs`, kept current by inotify; clients can never make the server open an arbitrary path) and from
//! `--model` / `server.preload`, which may be paths anywhere.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::names::{Found, ModelNames};
use crate::config::ModelCacheConfig;
use crate::inference::InferenceError;
use crate::models::catalog;
use crate::models::generate::SlotConfig;
use crate::models::pool::{CachedModel, ModelPool, PoolError};

/// Named models and the pool of loaded ones.
pub struct Registry {
    models_dir: PathBuf,
    names: ModelNames,
    /// Models given by path at start, by name.
    pinned: Mutex<BTreeMap<String, PathBuf>>,
    pool: ModelPool,
    /// False with `cache.model.enabled = false` (or the cache off): every request loads its own instance,
    /// dropped when the request ends.
    keep_loaded: bool,
}

impl Registry {
    /// A registry over `models_dir` with the `[cache.model]` limits; `keep_loaded` false keeps no model
    /// loaded between requests.
    pub fn new(models_dir: &Path, config: &ModelCacheConfig, keep_loaded: bool) -> Self {
        Self::with_slots(models_dir, config, keep_loaded, SlotConfig::default())
    }

    /// [`new`](Self::new), giving each GGUF model `slots` (`server.parallel`, `server.queue_size`).
    pub fn with_slots(
        models_dir: &Path,
        config: &ModelCacheConfig,
        keep_loaded: bool,
        slots: SlotConfig,
    ) -> Self {
        Self {
            models_dir: models_dir.to_path_buf(),
            names: ModelNames::new(models_dir),
            pinned: Mutex::new(BTreeMap::new()),
            pool: ModelPool::new(config).with_slots(slots),
            keep_loaded,
        }
    }

    /// Whether loaded models stay in the model cache between requests.
    pub fn keeps_loaded(&self) -> bool {
        self.keep_loaded
    }

    /// The pool of loaded models.
    pub fn pool(&self) -> &ModelPool {
        &self.pool
    }

    /// Adds a model given by name (in `models.dir`) or path, and loads it. Returns its name.
    pub fn preload(&self, name_or_path: &str) -> anyhow::Result<String> {
        let path = catalog::resolve(name_or_path, &self.models_dir)?;
        let model = self.pool.get_or_load(&path)?;
        if !self.keep_loaded {
            self.pool.unload(model.path());
        }
        let name = model.name();
        self.pinned.lock().insert(name.clone(), model.path().to_path_buf());
        Ok(name)
    }

    /// Answers for the model at `path` under `name` from now on (a model warmed through the admin API).
    pub fn pin(&self, name: &str, path: &Path) {
        self.pinned.lock().insert(name.to_string(), path.to_path_buf());
    }

    /// Every model the server can answer for: name and path, sorted by name.
    pub fn list(&self) -> Vec<(String, PathBuf)> {
        let mut all: BTreeMap<String, PathBuf> = BTreeMap::new();
        if let Ok(found) = catalog::discover(&self.models_dir) {
            for path in found {
                let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                all.entry(name).or_insert(path);
            }
        }
        all.extend(self.pinned.lock().clone());
        all.into_iter().collect()
    }

    /// The path of the model called `name`.
    pub fn path_of(&self, name: &str) -> Result<PathBuf, InferenceError> {
        if let Some(path) = self.pinned.lock().get(name) {
            return Ok(path.clone());
        }
        match self.names.find(name) {
            Some(Found::One(path, _)) => Ok(path),
            _ => Err(InferenceError::ModelNotFound { model: name.to_string() }),
        }
    }

    /// The model called `name` when it is loaded and its file unchanged, found as [`get`](Self::get) finds it
    /// (so a model whose file was removed, changed or made ambiguous is not returned) but never loading or
    /// waiting for a load: `None` then, and the caller uses `get` on a blocking thread. A name in
    /// `models.dir` is looked up in the in-memory table (no system call beyond one inotify read); a model
    /// given by path is identified again (its file opened, its stamp compared).
    pub fn get_loaded(&self, name: &str) -> Option<Arc<CachedModel>> {
        if let Some(path) = self.pinned.lock().get(name).cloned() {
            return self.pool.get_loaded(&path);
        }
        match self.names.find(name)? {
            Found::One(_, Some(file)) => self.pool.get_loaded_file(&file),
            _ => None,
        }
    }

    /// The loaded model called `name`, loading it when needed. Blocking: call from a blocking thread.
    pub fn get(&self, name: &str) -> Result<Arc<CachedModel>, InferenceError> {
        let path = self.path_of(name)?;
        let model = self.pool.get_or_load(&path).map_err(|e| load_error(name, e))?;
        if !self.keep_loaded {
            // The caller's handle keeps this instance alive for its request; the cache forgets it.
            self.pool.unload(model.path());
        }
        Ok(model)
    }
}

fn load_error(name: &str, error: PoolError) -> InferenceError {
    match error {
        PoolError::NoRoom { .. } | PoolError::TooLarge { .. } => {
            InferenceError::Unavailable { message: format!("model `{name}` cannot be loaded now: {error}") }
        }
        other => InferenceError::Server { message: format!("model `{name}` failed to load: {other}") },
    }
}
