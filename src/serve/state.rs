//! What every request handler shares: the configuration, the cache, the model registry (and, with ONNX, the
//! loaded tokenizers), and the single-flight table that makes identical concurrent requests for an uncached
//! key run inference once.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

use super::metrics::Metrics;
use super::registry::Registry;
use crate::alerts::Engine;
use crate::audit::AuditLog;
use crate::cache::Manager;
use crate::cache::kv::KvStore;
use crate::cache::observe::trace::take_last_read;
use crate::cache::semantic::SemanticCache;
use crate::config::{Config, ServerKeys};
use crate::inference::{CachePlan, Prepared};
use crate::models::generate::SlotConfig;
#[cfg(feature = "onnx")]
use crate::models::tokenizer::TokenizerCache;

/// The server's shared state.
pub struct AppState {
    /// The effective configuration.
    pub config: Config,
    /// The cache, owned by this process (writer lock) for its whole life.
    pub manager: Arc<Manager>,
    /// Named models and the loaded ones.
    pub registry: Registry,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// The alert rules and their channels (idle unless `cache.alerts.enabled`).
    pub alerts: Arc<Engine>,
    /// The keys callers over TCP must send (`auth.rs`).
    pub keys: ServerKeys,
    /// The access audit.
    pub audit: AuditLog,
    /// The store of prompt-prefix KV states the models' slots use, when `cache.kv` is on.
    pub kv_store: Option<Arc<KvStore>>,
    /// The semantic cache, when `cache.semantic.enabled` (its model checked at start).
    pub semantic: Option<Arc<SemanticCache>>,
    /// Tokenizers of ONNX text models, loaded on first use.
    #[cfg(feature = "onnx")]
    pub tokenizers: TokenizerCache,
    /// Keys being generated now, each with a channel that closes when its generation ends.
    in_flight: Mutex<HashMap<String, watch::Receiver<()>>>,
}

/// What [`AppState::lookup_or_lead`] found.
pub enum Lookup {
    /// The cached answer's body (JSON bytes).
    Hit(Vec<u8>),
    /// Generate, holding the guard (if any) until the answer is stored.
    Generate(Option<FlightGuard>),
}

/// What [`AppState::join_flight`] found.
pub enum Flight {
    /// Nobody is generating this key: the caller leads; dropping the guard ends the flight.
    Lead(FlightGuard),
    /// Another request is generating it: wait for this, then look the key up again.
    Follow(watch::Receiver<()>),
}

/// Held by the request generating a key; dropping it wakes the followers.
pub struct FlightGuard {
    state: Arc<AppState>,
    key: String,
    _done: watch::Sender<()>,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        self.state.in_flight.lock().remove(&self.key);
    }
}

impl AppState {
    /// The same state, answering to `keys` (read from key files by `config::ServerKeys::load`).
    pub fn with_keys(mut self, keys: ServerKeys) -> Self {
        self.keys = keys;
        self
    }

    /// The same state, answering exact misses from `semantic` too.
    pub fn with_semantic(mut self, semantic: SemanticCache) -> Self {
        self.semantic = Some(Arc::new(semantic));
        self
    }

    /// Shared state over an open cache.
    pub fn new(config: Config, manager: Arc<Manager>) -> Self {
        let keep_loaded = config.cache.enabled && config.cache.model.enabled;
        // With the cache and `cache.kv` on, every model's slots restore prompt prefixes from the cache.
        let kv_store = KvStore::for_manager(&manager);
        let slots = SlotConfig {
            parallel: config.server.parallel,
            queue_size: config.server.queue_size,
            prefix: kv_store.as_ref().map(KvStore::prefix_config),
            ..SlotConfig::default()
        };
        let registry = Registry::with_slots(&config.models.dir, &config.cache.model, keep_loaded, slots);
        let alerts = Arc::new(Engine::new(&config));
        let keys = ServerKeys::from_text(&config.server.api_key, &config.server.admin_key);
        let audit = AuditLog::new(&config.cache);
        Self {
            config,
            manager,
            registry,
            metrics: Metrics::new(),
            alerts,
            keys,
            audit,
            kv_store,
            semantic: None,
            #[cfg(feature = "onnx")]
            tokenizers: TokenizerCache::default(),
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    /// The cached answer for `prepared`. With a remote tier a lookup may wait on Redis (a few hundred ms at
    /// worst), so it runs on a blocking thread; local lookups stay inline. The tier that answered is noted
    /// for the audit of lookups (`reads.rs`).
    async fn lookup<L: Cached>(self: &Arc<Self>, prepared: &Arc<L>) -> Option<Vec<u8>> {
        let looked = |prepared: &L, manager: &Manager| {
            let _ = take_last_read();
            (prepared.lookup(manager), take_last_read())
        };
        let (hit, read) = if self.manager.has_remote() {
            let (state, owned) = (Arc::clone(self), Arc::clone(prepared));
            tokio::task::spawn_blocking(move || looked(&owned, &state.manager)).await.unwrap_or((None, None))
        } else {
            looked(prepared, &self.manager)
        };
        if let Some(tier) = read {
            super::reads::note(prepared.plan().key(), tier);
        }
        hit
    }

    /// The cached answer of `prepared`, when its plan looks up and one is there; else the flight guard to
    /// generate under (`None` when the plan does not look up). A request that finds another generating its
    /// key waits for it and looks again.
    pub async fn lookup_or_lead<L: Cached>(self: &Arc<Self>, prepared: &Arc<L>) -> Lookup {
        if !prepared.plan().looks_up() {
            return Lookup::Generate(None);
        }
        loop {
            if let Some(hit) = self.lookup(prepared).await {
                return Lookup::Hit(hit);
            }
            match self.join_flight(prepared.plan().key()) {
                Flight::Lead(lead) => return Lookup::Generate(Some(lead)),
                Flight::Follow(rx) => wait_for(rx).await,
            }
        }
    }

    /// Joins the flight for `key`: lead it when nobody generates it, else follow the leader.
    pub fn join_flight(self: &Arc<Self>, key: &str) -> Flight {
        let mut table = self.in_flight.lock();
        if let Some(rx) = table.get(key) {
            return Flight::Follow(rx.clone());
        }
        let (tx, rx) = watch::channel(());
        table.insert(key.to_string(), rx);
        Flight::Lead(FlightGuard { state: Arc::clone(self), key: key.to_string(), _done: tx })
    }
}

/// A request the cache may answer: its plan, and its lookup.
pub trait Cached: Send + Sync + 'static {
    /// How it uses the cache.
    fn plan(&self) -> &CachePlan;
    /// The cached answer's body, when there is one.
    fn lookup(&self, manager: &Manager) -> Option<Vec<u8>>;
}

impl Cached for Prepared {
    fn plan(&self) -> &CachePlan {
        Prepared::plan(self)
    }

    fn lookup(&self, manager: &Manager) -> Option<Vec<u8>> {
        Prepared::lookup(self, manager).map(|answer| answer.body)
    }
}

/// Waits until the leader of a flight is done (its sender dropped).
pub async fn wait_for(mut rx: watch::Receiver<()>) {
    while rx.changed().await.is_ok() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Access;

    fn state(dir: &tempfile::TempDir, kv_enabled: bool, cache_enabled: bool) -> AppState {
        let mut config = Config::default();
        config.cache.base_dir = dir.path().to_path_buf();
        config.cache.kv.enabled = kv_enabled;
        config.cache.kv.block_tokens = 64;
        config.cache.kv.min_prefix_tokens = 128;
        config.cache.enabled = cache_enabled;
        let manager = Arc::new(Manager::open(&config.cache, Access::ReadWrite).unwrap());
        AppState::new(config, manager)
    }

    #[test]
    fn the_slots_get_the_prefix_cache_when_cache_and_kv_are_on() {
        let dir = tempfile::tempdir().unwrap();
        let on = state(&dir, true, true);
        let prefix = on.registry.pool().slots().prefix.as_ref().expect("a prefix cache");
        assert_eq!((prefix.block_tokens, prefix.min_prefix_tokens), (64, 128));
        prefix.store.put(&[7; 32], b"state bytes");
        assert!(prefix.store.contains(&[7; 32]));
        on.kv_store.as_ref().expect("kept for the shutdown flush").flush();
        assert_eq!(on.manager.entries(Some(crate::cache::Kind::Kv)).len(), 1);
        drop(on);
        let off = state(&dir, false, true);
        assert!(off.registry.pool().slots().prefix.is_none(), "cache.kv.enabled = false");
        drop(off);
        assert!(state(&dir, true, false).registry.pool().slots().prefix.is_none(), "cache.enabled = false");
    }
}
