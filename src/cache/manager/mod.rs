//! The cache manager: the one type the CLI and the server use. It composes the memory tier, the disk tier,
//! the codec and content dedup according to `[cache]`, applies TTLs, and counts what happens.
//!
//! `type = memory` keeps entries in RAM only; `disk` reads and writes the disk tier only; `persistent`
//! (the default) keeps a RAM tier in front of the disk tier and writes behind: every put is appended at once
//! (compressed on the caller's thread) and made durable by a background flush every
//! `persistence.sync_interval_seconds`, by [`Manager::flush`], and when the manager is dropped.
//!
//! With `cache.distributed.enabled`, a writable manager also runs the remote tier (Redis) for response
//! entries only: asked after a local miss (a hit fills the local tiers), written behind every response put.
//! Models and metadata stay local.
//!
//! Saved KV states (kind `kv`, `[cache.kv]`) have a memory tier of their own, bounded by
//! `cache.kv.memory_limit_gb`, so that states of hundreds of MB never crowd responses out of theirs; they are
//! stored whole (no dedup chunks) with the codec `cache.kv.compression` picks. `cache/kv_store.rs` adds
//! their disk budget and the background writer. See `remote.rs` here and `cache/remote`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::clock::{Expiry, now_ms};
use super::codec::Codec;
use super::dedup::hash::ContentHasher;
use super::disk::{DiskError, DiskStore, StoreOptions};
use super::kind::Kind;
use super::memory::MemoryTier;
use super::observe::stats::{CounterSnapshot, Counters};
use super::observe::trace::{Op, Tracer};
use super::remote::RemoteTier;
use crate::config::{CacheConfig, CacheType};

mod dictionary;
#[cfg(test)]
mod dictionary_tests;
mod filter;
mod housekeeping;
mod maintenance;
mod reencode;
mod rekey;
mod remote;
#[cfg(test)]
mod tests;
mod values;

pub use dictionary::{DICTIONARY_KIND, DictionaryReport, TrainReport};
pub use filter::{Filter, Removal};
pub use housekeeping::HousekeepingReport;
pub use rekey::ResealReport;

/// Errors of the cache engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The disk tier failed.
    #[error(transparent)]
    Disk(#[from] DiskError),
    /// The operation needs a disk tier and `cache.type = memory` has none.
    #[error("cache.type = memory has no disk tier to {operation}")]
    NoDiskTier {
        /// What was asked, e.g. "verify".
        operation: &'static str,
    },
    /// The background flush thread could not be started.
    #[error("cannot start the cache's background flush thread: {0}")]
    Thread(#[source] std::io::Error),
    /// A value or record could not be decoded although its checksum was right (a bug or a newer format).
    #[error("entry {key} of kind {kind} could not be decoded: {reason}")]
    Decode {
        /// Entry kind.
        kind: Kind,
        /// Entry key.
        key: String,
        /// What failed.
        reason: String,
    },
    /// A sealed value could not be opened: another key's, or changed without the key.
    #[error("entry {key} of kind {kind}: {why}")]
    Sealed {
        /// Entry kind.
        kind: Kind,
        /// Entry key.
        key: String,
        /// Why.
        why: super::seal::OpenError,
    },
    /// The configured key (or an unfinished rekey's) cannot be used.
    #[error(transparent)]
    Key(#[from] super::seal::SetupError),
    /// A zstd dictionary could not be trained.
    #[error("cannot train a zstd dictionary: {reason}")]
    Dictionary {
        /// Why.
        reason: String,
    },
}

impl CacheError {
    /// Whether this is a disk write that failed (a full disk, an I/O error): counted and logged by the disk
    /// tier already, so callers need not warn again.
    pub fn is_write_failure(&self) -> bool {
        matches!(self, Self::Disk(DiskError::Io { .. }))
    }
}

/// Whether the manager may write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Take the writer lock; fails if another process holds it.
    ReadWrite,
    /// Read what is on disk without the lock (works while a writer runs).
    ReadOnly,
}

/// A value in the memory tier.
#[derive(Clone, Debug)]
struct Cached {
    bytes: Arc<[u8]>,
    name: Arc<str>,
    created_ms: u64,
    expires: Expiry,
}

/// Most states the KV memory tier holds: below 2048 the tier keeps one shard, so one state may use the whole
/// byte budget (a sharded tier gives each shard a share and refuses heavier values).
const KV_MEMORY_MAX_ENTRIES: u64 = 2047;

fn weigh(key: &Arc<str>, value: &Cached) -> u64 {
    (key.len() + value.name.len() + value.bytes.len() + 64) as u64
}

/// One live entry, as listed by [`Manager::entries`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct EntryInfo {
    /// Its kind.
    pub kind: Kind,
    /// Its key.
    pub key: String,
    /// The name pattern filters match (model name or file name).
    pub name: String,
    /// Creation time, ms since the Unix epoch.
    pub created_ms: u64,
    /// When it stops being served (`expires_ms` in JSON: ms since the Unix epoch, 0 = never).
    #[serde(rename = "expires_ms")]
    pub expires: Expiry,
    /// Size of the value in bytes, before compression and dedup.
    pub size: u64,
}

/// The kind and key of a memory-tier key made by [`memory_key`].
fn split_memory_key(mkey: &str) -> Option<(Kind, &str)> {
    let code = mkey.as_bytes().first()?.checked_sub(b'0')?;
    Some((Kind::from_code(code)?, mkey.get(2..)?))
}

fn memory_key(kind: Kind, key: &str) -> String {
    let mut k = String::with_capacity(key.len() + 2);
    k.push(char::from(b'0' + kind.code()));
    k.push(':');
    k.push_str(key);
    k
}

/// A value to store and its per-key byte ranges (see [`Manager::put_split`]).
#[derive(Clone, Copy)]
struct SplitValue<'a> {
    bytes: &'a [u8],
    per_key: &'a [std::ops::Range<usize>],
}

/// The cache.
pub struct Manager {
    config: CacheConfig,
    memory: Option<Arc<MemoryTier<Arc<str>, Cached>>>,
    /// The memory tier of KV states (`cache.kv.memory_limit_gb`); `None` when that is 0 or without RAM tier.
    kv_memory: Option<Arc<MemoryTier<Arc<str>, Cached>>>,
    disk: Option<Arc<DiskStore>>,
    codec: Codec,
    /// How KV states are stored (`cache.kv.compression`).
    kv_codec: Codec,
    hasher: Option<ContentHasher>,
    sealer: Option<Arc<super::seal::Sealer>>,
    /// Puts and removes hold it shared; a re-seal holds it alone while it reads an entry and writes it back,
    /// so it never writes an older value over a newer put or brings back a removed entry.
    rewrite_gate: Arc<parking_lot::RwLock<()>>,
    /// The trained zstd dictionaries (`dictionary.rs`).
    dictionaries: Arc<dictionary::DictionaryState>,
    counters: Arc<Counters>,
    last_history: Arc<parking_lot::Mutex<Option<(super::observe::history::Snapshot, bool)>>>,
    tracer: Arc<Tracer>,
    flusher: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
    remote: Option<RemoteTier>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("type", &self.config.kind)
            .field("disk", &self.disk)
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

impl Manager {
    /// Opens the cache described by `config`.
    pub fn open(config: &CacheConfig, access: Access) -> Result<Self, CacheError> {
        let memory = match config.kind {
            CacheType::Disk => None,
            CacheType::Memory | CacheType::Persistent => {
                let bytes = config.response.max_size_gb.bytes().min(config.max_size_gb.bytes());
                Some(Arc::new(MemoryTier::new(config.response.max_entries, bytes, weigh)))
            }
        };
        let kv_memory = match config.kind {
            CacheType::Memory | CacheType::Persistent if config.kv.memory_limit_gb.bytes() > 0 => {
                let bytes = config.kv.memory_limit_gb.bytes();
                Some(Arc::new(MemoryTier::new(KV_MEMORY_MAX_ENTRIES, bytes, weigh)))
            }
            _ => None,
        };
        let disk = match config.kind {
            CacheType::Memory => None,
            CacheType::Disk | CacheType::Persistent => {
                let options = StoreOptions {
                    read_only: access == Access::ReadOnly,
                    write_buffer_size: config.persistence.write_buffer_size.bytes() as usize,
                    verify_checksums: config.persistence.enable_checksums,
                    ..StoreOptions::new(&config.base_dir)
                };
                Some(Arc::new(DiskStore::open(options)?))
            }
        };
        let sealer = super::seal::from_config(&config.security, &config.base_dir)?.map(Arc::new);
        let hasher = config.deduplication.enabled.then(|| {
            let hasher = ContentHasher::new(&config.deduplication);
            match sealer.as_deref().filter(|s| s.seals()) {
                Some(sealer) => hasher.keyed(sealer.dedup_key()),
                None => hasher,
            }
        });
        let counters = Arc::new(Counters::default());
        if let Some(saved) = CounterSnapshot::load(&config.base_dir) {
            counters.restore(&saved);
        }
        let remote = remote::start(config, access, sealer.as_ref(), &counters).map_err(CacheError::Thread)?;
        let codec = Codec::from_cache_config(config);
        let dictionaries = Arc::new(dictionary::DictionaryState::default());
        if let Some(disk) = &disk {
            dictionaries.load(disk, sealer.as_deref(), codec.level(), config.compression.dictionary_samples);
        }
        let mut manager = Self {
            config: config.clone(),
            memory,
            kv_memory,
            disk,
            codec,
            kv_codec: Codec::for_kv_states(config.kv.compression),
            hasher,
            sealer,
            rewrite_gate: Arc::default(),
            dictionaries,
            counters,
            last_history: Arc::default(),
            tracer: Arc::default(),
            flusher: None,
            remote,
        };
        if access == Access::ReadWrite
            && let Some(keeper) = manager.housekeeper()
        {
            // The starting point, so the history shows what this process does.
            keeper.record_history(keeper.counters.snapshot());
            let interval = config.persistence.sync_interval_seconds.duration();
            manager.flusher = Some(spawn_flusher(keeper, interval).map_err(CacheError::Thread)?);
        }
        Ok(manager)
    }

    /// The configuration the cache was opened with.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// Counters: totals since the cache directory was created (see `stats.rs`).
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The memory tier's own figures, when the cache type has one.
    pub fn memory_stats(&self) -> Option<super::memory::MemoryStats> {
        self.memory.as_ref().map(|m| m.stats())
    }

    /// The figures of the KV states' own memory tier, when there is one.
    pub fn kv_memory_stats(&self) -> Option<super::memory::MemoryStats> {
        self.kv_memory.as_ref().map(|m| m.stats())
    }

    /// The memory tier entries of `kind` live in: KV states have their own; semantic vectors stay out of
    /// memory (the server keeps its own index of them, and they would push responses out of the memory
    /// tier), so without a disk tier they are not stored at all.
    fn memory_of(&self, kind: Kind) -> Option<&Arc<MemoryTier<Arc<str>, Cached>>> {
        match kind {
            Kind::Kv => self.kv_memory.as_ref(),
            Kind::Semantic => None,
            Kind::Response | Kind::Model | Kind::Metadata => self.memory.as_ref(),
        }
    }

    /// Whether entries of `kind` are cached: `cache.enabled` and the kind's own `enabled` key.
    pub fn is_enabled(&self, kind: Kind) -> bool {
        self.config.kind_enabled(kind)
    }

    /// The TTL for a new entry of `kind` when the caller gives none; `None` = never expires.
    pub fn default_ttl(&self, kind: Kind) -> Option<Duration> {
        let ttl = match kind {
            Kind::Response | Kind::Semantic => self.config.response.ttl_hours.duration(),
            Kind::Metadata => self.config.metadata.ttl_hours.duration(),
            Kind::Model => self.config.default_ttl_hours.duration(),
            // A state stays valid as long as its model and llama.cpp build do (the key says which).
            Kind::Kv => Duration::ZERO,
        };
        (!ttl.is_zero()).then_some(ttl)
    }

    /// Stores `value` under `kind`/`key`. `name` is what `--pattern` filters match besides the key (the model
    /// name for responses, the file name for models). `ttl: None` uses the kind's default TTL. With dedup the
    /// whole value is the shared payload.
    pub fn put(
        &self,
        kind: Kind,
        key: &str,
        name: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        self.put_split(kind, key, name, value, &[], ttl)
    }

    /// [`put`](Self::put) for a value whose bytes in `per_key` (sorted, non-overlapping ranges) belong to this
    /// key alone: with dedup they are kept in the entry's own record and only the bytes between them form the
    /// shared payload (see `dedup/splice.rs`), so values that differ only there share their storage. A get
    /// returns `value` exactly.
    pub fn put_split(
        &self,
        kind: Kind,
        key: &str,
        name: &str,
        value: &[u8],
        per_key: &[std::ops::Range<usize>],
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        if !self.is_enabled(kind) {
            return Ok(());
        }
        let now = now_ms();
        let expires = Expiry::after(now, ttl.or_else(|| self.default_ttl(kind)));
        if let Some(disk) = &self.disk {
            let value = SplitValue { bytes: value, per_key };
            let entry = values::NewEntry { kind, key, name, value, created_ms: now, expires };
            let _no_reseal = self.rewrite_gate.read();
            self.write_disk(disk, self.writing(), &entry)?;
        }
        if let Some(memory) = self.memory_of(kind) {
            let cached = Cached { bytes: value.into(), name: name.into(), created_ms: now, expires };
            let evicted = memory.insert(memory_key(kind, key).into(), cached);
            self.note_evicted(evicted);
        }
        if kind == Kind::Response
            && let Some(remote) = &self.remote
        {
            remote.put(key, name, value, now, expires);
        }
        self.counters.kind(kind).puts.fetch_add(1, Ordering::Relaxed);
        if kind == Kind::Response {
            self.dictionaries.note_response_put();
        }
        self.tracer.record(Op::Write, kind, key, None, None, value.len() as u64);
        self.counters.bytes_put.fetch_add(value.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// The value under `kind`/`key`, or `None` when absent, expired or damaged (damage is counted and the
    /// record quarantined by the disk tier).
    pub fn get(&self, kind: Kind, key: &str) -> Result<Option<Arc<[u8]>>, CacheError> {
        let started = std::time::Instant::now();
        let found = self.lookup(kind, key);
        self.counters.lookups.fetch_add(1, Ordering::Relaxed);
        self.counters.lookup_nanos.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        found
    }

    fn lookup(&self, kind: Kind, key: &str) -> Result<Option<Arc<[u8]>>, CacheError> {
        let found = self.lookup_tiers(kind, key)?;
        if found.is_none() {
            self.tracer.record(Op::Read, kind, key, None, Some(false), 0);
        }
        Ok(found)
    }

    /// Counts memory-tier evictions and traces them.
    fn note_evicted(&self, evicted: Vec<(Arc<str>, Cached)>) {
        self.counters.evictions.fetch_add(evicted.len() as u64, Ordering::Relaxed);
        if self.tracer.wants(Op::Evict) {
            for (mkey, cached) in evicted {
                if let Some((kind, key)) = split_memory_key(&mkey) {
                    self.tracer.record(Op::Evict, kind, key, Some("memory"), None, cached.bytes.len() as u64);
                }
            }
        }
    }

    fn lookup_tiers(&self, kind: Kind, key: &str) -> Result<Option<Arc<[u8]>>, CacheError> {
        let counters = self.counters.kind(kind);
        if !self.is_enabled(kind) {
            counters.misses.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        if let Some(memory) = self.memory_of(kind) {
            let mkey = memory_key(kind, key);
            if let Some(cached) = memory.get(mkey.as_str()) {
                if cached.expires.is_live(now_ms()) {
                    counters.memory_hits.fetch_add(1, Ordering::Relaxed);
                    self.tracer.record(
                        Op::Read,
                        kind,
                        key,
                        Some("memory"),
                        Some(true),
                        cached.bytes.len() as u64,
                    );
                    return Ok(Some(cached.bytes));
                }
                memory.remove(mkey.as_str());
                counters.expired.fetch_add(1, Ordering::Relaxed);
            }
        }
        let Some(disk) = &self.disk else {
            return Ok(self.read_through(kind, key));
        };
        let Some(mut stored) = disk.get(kind.code(), key.as_bytes())? else {
            return Ok(self.read_through(kind, key));
        };
        let decoded = match values::take_plain(&mut stored) {
            Some(value) => Ok(value),
            None => self.decode(self.sealer.as_deref(), kind, key, &stored).map(Arc::from),
        };
        let bytes = match decoded {
            Ok(bytes) => bytes,
            Err(err @ (CacheError::Sealed { .. } | CacheError::Decode { .. })) => {
                // Another key's value, a forged one, or one whose dictionary is gone: never served, counted
                // as a miss.
                counters.misses.fetch_add(1, Ordering::Relaxed);
                return Err(err);
            }
            Err(err) => return Err(err),
        };
        counters.disk_hits.fetch_add(1, Ordering::Relaxed);
        self.tracer.record(Op::Read, kind, key, Some("disk"), Some(true), bytes.len() as u64);
        if let Some(memory) = self.memory_of(kind) {
            let cached = Cached {
                bytes: bytes.clone(),
                name: stored.name.as_str().into(),
                created_ms: stored.created_ms,
                expires: stored.expires,
            };
            let evicted = memory.insert(memory_key(kind, key).into(), cached);
            self.note_evicted(evicted);
        }
        Ok(Some(bytes))
    }

    /// True when a live entry exists under `kind`/`key`. Counts nothing and changes no recency; the value is
    /// not read, so a damaged entry still counts as present until a get finds the damage.
    pub fn contains(&self, kind: Kind, key: &str) -> bool {
        let now = now_ms();
        if let Some(memory) = self.memory_of(kind)
            && memory.peek(memory_key(kind, key).as_str()).is_some_and(|c| c.expires.is_live(now))
        {
            return true;
        }
        self.disk
            .as_ref()
            .is_some_and(|disk| disk.expiry(kind.code(), key.as_bytes()).is_some_and(|e| e.is_live(now)))
    }

    /// Removes an entry from every tier; returns true when it existed.
    pub fn remove(&self, kind: Kind, key: &str) -> Result<bool, CacheError> {
        let _no_reseal = self.rewrite_gate.read();
        let in_memory =
            self.memory_of(kind).is_some_and(|m| m.remove(memory_key(kind, key).as_str()).is_some());
        let on_disk = match &self.disk {
            Some(disk) => disk.remove(kind.code(), key.as_bytes())?,
            None => false,
        };
        if in_memory || on_disk {
            self.tracer.record(Op::Remove, kind, key, None, None, 0);
        }
        Ok(in_memory || on_disk)
    }

    /// Live (unexpired) entries, of one kind or all; from the disk tier's index, or from the memory tier when
    /// the cache type is `memory`.
    pub fn entries(&self, kind: Option<Kind>) -> Vec<EntryInfo> {
        let now = now_ms();
        let mut out = Vec::new();
        if let Some(disk) = &self.disk {
            return disk_entries(disk, kind);
        }
        for memory in self.memory.iter().chain(&self.kv_memory) {
            memory.retain(|mkey, cached| {
                let (code, key) = mkey.split_at(1);
                let k = Kind::from_code(code.as_bytes()[0] - b'0');
                if let Some(k) = k.filter(|k| kind.is_none_or(|want| want == *k))
                    && cached.expires.is_live(now)
                {
                    out.push(EntryInfo {
                        kind: k,
                        key: key[1..].to_string(),
                        name: cached.name.to_string(),
                        created_ms: cached.created_ms,
                        expires: cached.expires,
                        size: cached.bytes.len() as u64,
                    });
                }
                true
            });
        }
        out.sort_by(|a, b| (a.kind, a.created_ms, &a.key).cmp(&(b.kind, b.created_ms, &b.key)));
        out
    }

    /// Makes every write so far durable, and saves the counters. With a remote tier, first waits (a few
    /// seconds at most) for the writes queued for Redis.
    pub fn flush(&self) -> Result<(), CacheError> {
        if let Some(remote) = &self.remote {
            remote.drain(Duration::from_secs(3));
        }
        match self.housekeeper() {
            Some(keeper) if !keeper.disk.options().read_only => keeper.sync(),
            _ => Ok(()),
        }
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        if let Some((stop, handle)) = self.flusher.take() {
            stop.store(true, Ordering::Relaxed);
            handle.thread().unpark();
            let _ = handle.join();
        }
        if let Err(err) = self.flush() {
            tracing::error!("flushing the cache on close failed: {err}");
        }
    }
}

/// Live (unexpired) entries of the disk tier, of one kind or all, oldest first.
fn disk_entries(disk: &DiskStore, kind: Option<Kind>) -> Vec<EntryInfo> {
    let now = now_ms();
    let mut out: Vec<EntryInfo> = disk
        .entries()
        .into_iter()
        .filter(|(_, _, slot)| slot.expires.is_live(now))
        .filter_map(|(code, key, slot)| {
            let k = Kind::from_code(code).filter(|k| kind.is_none_or(|want| want == *k))?;
            Some(EntryInfo {
                kind: k,
                key: String::from_utf8_lossy(&key).into_owned(),
                name: slot.name.to_string(),
                created_ms: slot.created_ms,
                expires: slot.expires,
                size: slot.logical_len(),
            })
        })
        .collect();
    out.sort_by(|a, b| (a.kind, a.created_ms, &a.key).cmp(&(b.kind, b.created_ms, &b.key)));
    out
}

/// Until `stop` is set: about once a second, publishes the live figures (`live.json`, counters); every
/// `interval`, flushes the disk tier, records a history snapshot and runs a housekeeping pass.
fn spawn_flusher(
    keeper: housekeeping::Housekeeper,
    interval: Duration,
) -> std::io::Result<(Arc<AtomicBool>, JoinHandle<()>)> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let tick = interval.min(Duration::from_secs(1));
    let handle = std::thread::Builder::new().name("inferno-cache-sync".into()).spawn(move || {
        // Background flushes, housekeeping and compaction yield the CPU to request threads.
        maintenance::lower_priority();
        let mut last_sync = std::time::Instant::now();
        let mut last_published = None;
        while !flag.load(Ordering::Relaxed) {
            std::thread::park_timeout(tick);
            if flag.load(Ordering::Relaxed) {
                break;
            }
            last_published = keeper.publish_live(last_published);
            keeper.tracer.poll(&keeper.config.base_dir);
            if last_sync.elapsed() >= interval {
                last_sync = std::time::Instant::now();
                if let Err(err) = keeper.sync() {
                    tracing::error!("background cache flush failed: {err}");
                }
                if let Err(err) = keeper.run() {
                    tracing::error!("background cache housekeeping failed: {err}");
                }
            }
        }
    })?;
    Ok((stop, handle))
}
