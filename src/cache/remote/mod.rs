//! The remote tier. Its one job: share response entries between `inferno serve` replicas through Redis
//! (one server or a Redis Cluster), behind the memory and disk tiers, without ever slowing or failing a
//! request.
//!
//! - Read-through: the manager asks here after a local miss, and fills its local tiers with what it gets.
//!   A read has [`READ_TIMEOUT`] per attempt and [`READ_RETRIES`] retries; any error, timeout or damaged
//!   value is a miss (and counted). While Redis is unreachable reads are not sent at all.
//! - Write-behind: a put queues the entry (bounded, [`QUEUE_LEN`]); a background task writes it with
//!   `SET key value EX ttl`, followed in the same pipeline by `WAIT replication_factor-1` when the factor
//!   is above 1. Fewer acknowledgements are counted and logged as under-replicated, never an error. A full
//!   queue drops the write (counted).
//! - Everything runs on a small tokio runtime on its own thread (`inferno-remote`), so the manager keeps
//!   its synchronous API. Reads and writes use separate connections, so a `WAIT` never delays a read.
//! - A maintenance task finds the deployment (`INFO cluster` on the first seed that answers: cluster or
//!   standalone), checks the replica count against `replication_factor` (a warning when short), and
//!   refreshes that picture every few seconds; it reconnects when Redis comes back.
//!
//! Keys and values: `value.rs`; login and TLS: `endpoint.rs`; connections and topology: `conn.rs`; `cache clear`: `clear.rs`; counters:
//! `stats.rs`. docs/distributed.md describes deployment and failure behaviour.

mod clear;
mod conn;
mod endpoint;
mod notify;
mod stats;
mod task;
mod value;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

pub use clear::{Peeked, RemoteRemoval};
pub use conn::{Mode, NodeInfo, READ_RETRIES, READ_TIMEOUT, Topology, WAIT_MS};
pub use notify::{CLEAR_CHANNEL, ClearNotice};
pub use stats::{LATENCY_BOUNDS_US, RemoteCounters, RemoteSnapshot};
pub use value::{KEY_PREFIX, RemoteEntry, remote_key};

use crate::cache::clock::{Expiry, now_ms};
use crate::cache::codec::Codec;
use crate::cache::seal::Sealer;
use crate::config::DistributedConfig;
use endpoint::Endpoints;

/// Writes that may wait for the background writer; more are dropped (and counted).
pub const QUEUE_LEN: usize = 4_096;
/// How long closing the tier waits for queued writes.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);
/// Consecutive failed reads after which reads pause for [`PAUSE`].
const FAILURES_BEFORE_PAUSE: u32 = 5;
const PAUSE: Duration = Duration::from_secs(1);

/// One queued write.
struct WriteJob {
    key: String,
    name: String,
    value: Vec<u8>,
    created_ms: u64,
    expires: Expiry,
}

/// What the tier and its background tasks share.
struct Shared {
    endpoints: Arc<Endpoints>,
    replication_factor: u32,
    codec: Codec,
    /// Seals values written and requires sealed values read, when a cache key is configured.
    sealer: Option<Arc<Sealer>>,
    counters: Arc<RemoteCounters>,
    /// Read and write connections, once connected.
    conns: RwLock<Option<(conn::Conn, conn::Conn)>>,
    topology: RwLock<Option<Topology>>,
    last_error: Mutex<Option<String>>,
    reachable: AtomicBool,
    /// The first connection attempt has finished (either way).
    attempted: AtomicBool,
    /// Writes queued or in flight.
    pending: AtomicU64,
    failures: AtomicU32,
    paused_until_ms: AtomicU64,
}

/// How the remote tier stands: the configured seeds and what the last look at Redis found.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct RemoteStatus {
    /// `cache.distributed.cluster_nodes`.
    pub nodes: Vec<String>,
    /// `cache.distributed.replication_factor`.
    pub replication_factor: u32,
    /// Whether a seed answered.
    pub reachable: bool,
    /// Cluster or standalone, once a seed answered.
    pub mode: Option<Mode>,
    /// Primaries serving keys.
    pub primaries: usize,
    /// The fewest healthy replicas any primary has.
    pub replicas_seen: Option<u32>,
    /// Every node the answering seed knows of.
    pub topology: Vec<NodeInfo>,
    /// Why Redis is unreachable, or what else is wrong (too few replicas).
    pub error: Option<String>,
    /// Writes waiting for the background writer (a running tier only).
    pub queued_writes: Option<u64>,
}

impl RemoteStatus {
    fn new(config: &DistributedConfig, found: Result<&Topology, String>) -> Self {
        let (reachable, topology, mut error) = match found {
            Ok(t) => (true, Some(t), None),
            Err(e) => (false, None, Some(e)),
        };
        let wanted = config.replication_factor.saturating_sub(1);
        if let Some(t) = topology
            && t.min_replicas < wanted
        {
            error = Some(short_of_replicas(config.replication_factor, t.min_replicas));
        }
        Self {
            nodes: config.cluster_nodes.iter().map(|n| crate::config::redact_node(n)).collect(),
            replication_factor: config.replication_factor,
            reachable,
            mode: topology.map(|t| t.mode),
            primaries: topology.map_or(0, |t| t.primaries().len()),
            replicas_seen: topology.map(|t| t.min_replicas),
            topology: topology.map(|t| t.nodes.clone()).unwrap_or_default(),
            error,
            queued_writes: None,
        }
    }
}

fn short_of_replicas(factor: u32, seen: u32) -> String {
    format!(
        "replication_factor = {factor} needs {} replicas per primary but the fewest seen is {seen}: writes will \
         be counted as under-replicated; add replicas or lower cache.distributed.replication_factor",
        factor - 1
    )
}

/// Looks at the deployment `config` names, from this process (at most a few seconds).
pub fn probe(config: &DistributedConfig) -> RemoteStatus {
    let endpoints = match Endpoints::load(config) {
        Ok(endpoints) => endpoints,
        Err(err) => return RemoteStatus::new(config, Err(err)),
    };
    let found = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => {
            let found = rt.block_on(async {
                let discover = conn::discover(&endpoints);
                match tokio::time::timeout(Duration::from_secs(3), discover).await {
                    Ok(found) => found,
                    Err(_) => Err("no seed answered within 3 s".into()),
                }
            });
            // A name lookup still running on a blocking thread is left behind rather than waited for.
            rt.shutdown_background();
            found
        }
        Err(err) => Err(err.to_string()),
    };
    RemoteStatus::new(config, found.as_ref().map_err(Clone::clone))
}

/// The running remote tier.
pub struct RemoteTier {
    shared: Arc<Shared>,
    id: String,
    handle: tokio::runtime::Handle,
    writes: Option<mpsc::Sender<WriteJob>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RemoteTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteTier").field("endpoints", &self.shared.endpoints).finish_non_exhaustive()
    }
}

impl RemoteTier {
    /// Starts the tier's thread and tasks; connecting happens in the background (see [`Self::wait_ready`]).
    /// A password or TLS file that cannot be read is an error.
    pub fn start(
        config: &DistributedConfig,
        codec: Codec,
        sealer: Option<Arc<Sealer>>,
        counters: Arc<RemoteCounters>,
    ) -> std::io::Result<Self> {
        let endpoints = Endpoints::load(config).map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            endpoints: Arc::new(endpoints),
            replication_factor: config.replication_factor.max(1),
            codec,
            sealer,
            counters,
            conns: RwLock::new(None),
            topology: RwLock::new(None),
            last_error: Mutex::new(None),
            reachable: AtomicBool::new(false),
            attempted: AtomicBool::new(false),
            pending: AtomicU64::new(0),
            failures: AtomicU32::new(0),
            paused_until_ms: AtomicU64::new(0),
        });
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name("inferno-remote".into()).spawn(move || {
            runtime.block_on(async {
                let _ = stopped.await;
            });
            // Tasks still waiting (a reconnect, a name lookup) are dropped, not waited for.
            runtime.shutdown_background();
        })?;
        let (writes, queue) = mpsc::channel(QUEUE_LEN);
        handle.spawn(task::maintain(Arc::clone(&shared)));
        handle.spawn(task::writer(Arc::clone(&shared), queue));
        let id = format!("{}-{}", std::process::id(), now_ms());
        Ok(Self { shared, id, handle, writes: Some(writes), stop: Some(stop), thread: Some(thread) })
    }

    /// Waits until the first connection attempt has finished, at most `limit`; true when Redis answered.
    pub fn wait_ready(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while !self.shared.attempted.load(Ordering::Acquire) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.shared.reachable.load(Ordering::Acquire)
    }

    /// The entry under response key `key`, or `None` (absent, expired, damaged, failed or timed out: every
    /// case but absence is counted as such).
    pub fn get(&self, key: &str) -> Option<RemoteEntry> {
        let c = &self.shared.counters;
        let reader = self.shared.conns.read().as_ref().map(|(read, _)| read.clone());
        let paused = now_ms() < self.shared.paused_until_ms.load(Ordering::Relaxed);
        let Some(reader) = reader.filter(|_| !paused && self.shared.reachable.load(Ordering::Relaxed)) else {
            RemoteCounters::bump(&c.skipped);
            return None;
        };
        let started = Instant::now();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(task::read(reader, remote_key(key), tx));
        let limit = READ_TIMEOUT * (READ_RETRIES + 1) + Duration::from_millis(200);
        let result = rx.recv_timeout(limit);
        c.observe(started.elapsed());
        match result {
            Ok(Ok(Some(bytes))) => {
                self.shared.failures.store(0, Ordering::Relaxed);
                match value::decode(key, &bytes, self.shared.sealer.as_deref()) {
                    Ok(entry) if entry.expires.is_live(now_ms()) => {
                        RemoteCounters::bump(&c.hits);
                        Some(entry)
                    }
                    Ok(_) => {
                        RemoteCounters::bump(&c.misses);
                        None
                    }
                    Err(reason) => {
                        RemoteCounters::bump(&c.corrupt);
                        tracing::warn!(
                            key,
                            "damaged, unsealed or foreign value in the remote tier, treated as a miss: {reason}"
                        );
                        None
                    }
                }
            }
            Ok(Ok(None)) => {
                self.shared.failures.store(0, Ordering::Relaxed);
                RemoteCounters::bump(&c.misses);
                None
            }
            Ok(Err(err)) => {
                self.read_failed(&err);
                None
            }
            Err(_) => {
                self.read_failed(&"timed out");
                None
            }
        }
    }

    fn read_failed(&self, err: &dyn std::fmt::Display) {
        RemoteCounters::bump(&self.shared.counters.errors);
        let failures = self.shared.failures.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!("remote tier read failed (a miss): {err}");
        if failures >= FAILURES_BEFORE_PAUSE {
            self.shared.failures.store(0, Ordering::Relaxed);
            self.shared.paused_until_ms.store(now_ms() + PAUSE.as_millis() as u64, Ordering::Relaxed);
            tracing::warn!(
                "remote tier: {failures} reads failed in a row ({err}); pausing reads for {PAUSE:?}"
            );
        }
    }

    /// Queues `value` to be written under response key `key`; never blocks. Dropped (and counted) when the
    /// queue is full or Redis is known to be unreachable (a put while the first connection is still being
    /// made is queued: the writer waits for it).
    pub fn put(&self, key: &str, name: &str, value: &[u8], created_ms: u64, expires: Expiry) {
        let c = &self.shared.counters;
        let attempted = self.shared.attempted.load(Ordering::Acquire);
        if attempted && !self.shared.reachable.load(Ordering::Relaxed) {
            RemoteCounters::bump(&c.dropped_writes);
            return;
        }
        let Some(writes) = &self.writes else { return };
        let job = WriteJob { key: key.into(), name: name.into(), value: value.to_vec(), created_ms, expires };
        self.shared.pending.fetch_add(1, Ordering::AcqRel);
        if writes.try_send(job).is_err() {
            self.shared.pending.fetch_sub(1, Ordering::AcqRel);
            let dropped = c.dropped_writes.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped == 1 || dropped.is_multiple_of(1_000) {
                tracing::warn!("remote tier: the write queue is full; {dropped} writes dropped so far");
            }
        }
    }

    /// Waits until every queued write is done, at most `limit`; true when none is left.
    pub fn drain(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.shared.pending.load(Ordering::Acquire) > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }

    /// Removes the remote entries `select` picks (see `clear.rs`). Waits up to 3 s for a connection.
    pub fn clear(
        &self,
        peek: bool,
        select: Arc<dyn Fn(&Peeked) -> bool + Send + Sync>,
    ) -> Result<RemoteRemoval, String> {
        if !self.wait_ready(Duration::from_secs(3)) {
            let why = self.shared.last_error.lock().clone().unwrap_or_else(|| "no answer yet".into());
            return Err(format!("Redis is unreachable ({why})"));
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let endpoints = Arc::clone(&self.shared.endpoints);
        self.handle.spawn(async move {
            let _ = tx.send(clear::clear(&endpoints, peek, &*select).await);
        });
        rx.recv_timeout(Duration::from_secs(600)).unwrap_or_else(|_| Err("timed out after 10 minutes".into()))
    }

    /// Announces a clear to the other replicas (`notify.rs`); waits up to 2 s so a short-lived CLI process
    /// does not exit before the notice is out. A failure is logged: the other replicas then keep their local
    /// copies until those expire.
    pub fn announce_clear(&self, mut notice: ClearNotice) {
        notice.from = self.id.clone();
        let endpoints = Arc::clone(&self.shared.endpoints);
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(notify::publish(&endpoints, &notice).await);
        });
        match rx.recv_timeout(Duration::from_secs(2)) {
            Ok(Ok(())) => tracing::debug!("clear announced on {CLEAR_CHANNEL}"),
            Ok(Err(e)) => tracing::warn!("cannot announce the clear to the other replicas: {e}"),
            Err(_) => tracing::warn!("cannot announce the clear to the other replicas: timed out"),
        }
    }

    /// The clears other replicas announce, from now on.
    pub fn clear_notices(&self) -> mpsc::UnboundedReceiver<ClearNotice> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.handle.spawn(notify::subscribe(Arc::clone(&self.shared.endpoints), self.id.clone(), tx));
        rx
    }

    /// How the tier stands now, as this process sees it.
    pub fn status(&self, config: &DistributedConfig) -> RemoteStatus {
        let topology = self.shared.topology.read().clone();
        let reachable = self.shared.reachable.load(Ordering::Relaxed);
        let found = match (&topology, reachable) {
            (Some(t), true) => Ok(t),
            _ => Err(self.shared.last_error.lock().clone().unwrap_or_else(|| "not connected yet".into())),
        };
        let mut status = RemoteStatus::new(config, found);
        status.queued_writes = Some(self.shared.pending.load(Ordering::Relaxed));
        status
    }
}

impl Drop for RemoteTier {
    fn drop(&mut self) {
        if !self.drain(DRAIN_TIMEOUT) {
            let left = self.shared.pending.load(Ordering::Relaxed);
            tracing::warn!("remote tier: closing with {left} writes not done");
        }
        self.writes.take();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
