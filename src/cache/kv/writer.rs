//! The KV store's background writer: states put by a model's decode thread wait in a bounded queue and a
//! thread of their own writes them to the manager (compression, sealing, the disk write) and then keeps the
//! states' disk budget. A queued state is already visible: `contains` and `get` find it in the queue.
//!
//! The queue is bounded by states and by bytes ([`QueueLimits`]); a state that does not fit is dropped and
//! counted (`kv_writes_dropped`), never waited for, so a slow disk costs the decode thread nothing but the
//! state's copy. A write the disk tier refuses (a full disk, an I/O error) is counted and logged by the disk
//! tier, as for every kind; the state is then simply not stored.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use parking_lot::Mutex;

use super::{Shared, key_hex};
use crate::cache::kind::Kind;
use crate::config::KvCacheConfig;

/// How much the writer queue holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLimits {
    /// Most states waiting.
    pub states: usize,
    /// Most bytes of states waiting.
    pub bytes: u64,
}

/// Most states waiting for the writer.
const QUEUE_STATES: usize = 8;
/// The fewest bytes the queue takes, whatever `memory_limit_gb` says (so one large state always fits).
const QUEUE_MIN_BYTES: u64 = 512 << 20;

impl QueueLimits {
    /// 8 states and `max(cache.kv.memory_limit_gb, 512 MiB)` bytes: the queue never holds more than the
    /// states' own memory budget, except that a single state of up to 512 MiB always fits.
    pub fn for_config(kv: &KvCacheConfig) -> Self {
        Self { states: QUEUE_STATES, bytes: kv.memory_limit_gb.bytes().max(QUEUE_MIN_BYTES) }
    }
}

/// One job of the writer thread.
enum Job {
    /// Store this state (it is in `Pending` until written).
    Put([u8; 32], Arc<[u8]>),
    /// Answer once every job before this one is done.
    Flush(SyncSender<()>),
}

/// States queued and not yet written, by key, with their total bytes.
#[derive(Default)]
struct Pending {
    states: HashMap<[u8; 32], Arc<[u8]>>,
    bytes: u64,
}

/// The queue's front end, held by the store.
pub(super) struct Writer {
    sender: Option<SyncSender<Job>>,
    pending: Arc<Mutex<Pending>>,
    limits: QueueLimits,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer thread.
    pub(super) fn start(shared: Arc<Shared>, limits: QueueLimits) -> std::io::Result<Self> {
        // The channel holds the flush markers too; the state bound is kept by `Pending`.
        let (sender, receiver) = sync_channel(limits.states + 4);
        let pending = Arc::new(Mutex::new(Pending::default()));
        let thread = {
            let (shared, pending) = (Arc::clone(&shared), Arc::clone(&pending));
            std::thread::Builder::new()
                .name("inferno-kv-writer".into())
                .spawn(move || run(&shared, &pending, &receiver))?
        };
        Ok(Self { sender: Some(sender), pending, limits, shared, thread: Some(thread) })
    }

    /// The state under `key` while it waits to be written.
    pub(super) fn pending(&self, key: &[u8; 32]) -> Option<Arc<[u8]>> {
        self.pending.lock().states.get(key).cloned()
    }

    /// Queues a copy of `bytes` under `key`, or drops it (counted) when the queue is full.
    pub(super) fn push(&self, key: [u8; 32], bytes: &[u8]) {
        let len = bytes.len() as u64;
        let dropped = || self.shared.manager.counters().kv_writes_dropped.fetch_add(1, Ordering::Relaxed);
        let state: Arc<[u8]> = {
            let mut pending = self.pending.lock();
            let full = pending.states.len() >= self.limits.states || pending.bytes + len > self.limits.bytes;
            if full && !pending.states.contains_key(&key) {
                drop(pending);
                dropped();
                return;
            }
            let state: Arc<[u8]> = bytes.into();
            if let Some(old) = pending.states.insert(key, Arc::clone(&state)) {
                pending.bytes -= old.len() as u64;
            }
            pending.bytes += len;
            state
        };
        let sent = match &self.sender {
            Some(sender) => sender.try_send(Job::Put(key, state)),
            None => return,
        };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = sent {
            self.forget(&key);
            dropped();
        }
    }

    /// Drops the queued state under `key`, if any (it will not be written).
    pub(super) fn forget(&self, key: &[u8; 32]) {
        let mut pending = self.pending.lock();
        if let Some(old) = pending.states.remove(key) {
            pending.bytes -= old.len() as u64;
        }
    }

    /// Waits until every job queued so far is done.
    pub(super) fn flush(&self) {
        let Some(sender) = &self.sender else { return };
        let (done, wait) = sync_channel(1);
        if sender.send(Job::Flush(done)).is_ok() {
            let _ = wait.recv();
        }
    }
}

impl Drop for Writer {
    /// Writes what is queued, then stops the thread.
    fn drop(&mut self) {
        self.sender = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer thread: until the store is dropped, writes each queued state and keeps the budget.
fn run(shared: &Shared, pending: &Mutex<Pending>, jobs: &Receiver<Job>) {
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Flush(done) => {
                let _ = done.send(());
            }
            Job::Put(key, state) => {
                // A state removed (or replaced) while it waited is not written, or written by its own job.
                let current = pending.lock().states.get(&key).is_some_and(|s| Arc::ptr_eq(s, &state));
                if current {
                    write(shared, &key, &state);
                    let mut pending = pending.lock();
                    if pending.states.get(&key).is_some_and(|s| Arc::ptr_eq(s, &state)) {
                        pending.states.remove(&key);
                        pending.bytes -= state.len() as u64;
                    }
                }
                shared.keep_budget();
            }
        }
    }
}

fn write(shared: &Shared, key: &[u8; 32], state: &[u8]) {
    let hex = key_hex(key);
    match shared.manager.put(Kind::Kv, &hex, "", state, None) {
        Ok(()) => shared.recency.touch(hex),
        // Counted and logged (at most every few seconds) by the disk tier, as for every kind.
        Err(err) if err.is_write_failure() => {}
        Err(err) => tracing::warn!(key = %hex, "storing a KV state failed: {err}"),
    }
}
