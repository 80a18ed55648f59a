//! The prompt-prefix cache's saver: a thread that finishes state records (their checksum) and writes them to
//! the store with their alias records, so neither the hashing nor the store's write runs on the decode loop.
//! At most [`SAVE_QUEUE`] states wait for it; [`Saver::wait`] waits until the queue is written, and dropping
//! the saver writes what is queued, then stops the thread.

use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use super::prefix_record::{self, StateRecordWriter};
use crate::models::prefix::PrefixStore;

/// States waiting for the saver; a state that finds the queue full is not saved.
pub(super) const SAVE_QUEUE: usize = 2;

/// A state record and the chain keys of the prompt it holds (its own key is the last).
pub(super) struct SaveJob {
    pub record: StateRecordWriter,
    pub keys: Vec<[u8; 32]>,
}

/// The saver thread and its queue; dropping it writes what is queued, then stops the thread.
pub(super) struct Saver {
    queue: Option<SyncSender<SaveJob>>,
    pending: Arc<(Mutex<usize>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Saver {
    /// Starts the thread that writes to `store` (alias records under `fingerprint`); `None` if it cannot.
    pub(super) fn start(store: Arc<dyn PrefixStore>, fingerprint: [u8; 32]) -> Option<Self> {
        let (queue, jobs) = mpsc::sync_channel(SAVE_QUEUE);
        let pending = Arc::new((Mutex::new(0), Condvar::new()));
        let thread_pending = Arc::clone(&pending);
        let thread = std::thread::Builder::new()
            .name("inferno-kv-save".into())
            .spawn(move || save_loop(&jobs, store.as_ref(), &fingerprint, &thread_pending))
            .inspect_err(|e| tracing::warn!("the prompt-prefix cache is off: cannot start its saver ({e})"))
            .ok()?;
        Some(Self { queue: Some(queue), pending, thread: Some(thread) })
    }

    /// True when [`SAVE_QUEUE`] states already wait.
    pub(super) fn full(&self) -> bool {
        *self.pending.0.lock() >= SAVE_QUEUE
    }

    /// Queues `job`; dropped when the queue is full.
    pub(super) fn send(&self, job: SaveJob) {
        let Some(queue) = &self.queue else { return };
        *self.pending.0.lock() += 1;
        if queue.try_send(job).is_err() {
            finish_one(&self.pending);
        }
    }

    /// Waits until every queued state is written.
    pub(super) fn wait(&self) {
        let (count, changed) = &*self.pending;
        let mut count = count.lock();
        while *count > 0 {
            changed.wait(&mut count);
        }
    }
}

impl Drop for Saver {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn finish_one(pending: &(Mutex<usize>, Condvar)) {
    let mut count = pending.0.lock();
    *count = count.saturating_sub(1);
    pending.1.notify_all();
}

/// Writes each state record under its prompt's last block key (unless a state is already there) and an alias
/// under each earlier block key that holds nothing yet.
fn save_loop(
    jobs: &Receiver<SaveJob>,
    store: &dyn PrefixStore,
    fingerprint: &[u8; 32],
    pending: &(Mutex<usize>, Condvar),
) {
    while let Ok(SaveJob { record, keys }) = jobs.recv() {
        if let Some((own, earlier)) = keys.split_last() {
            if !store.contains(own) {
                store.put(own, &record.finish());
            }
            let alias = prefix_record::alias(fingerprint, own);
            for key in earlier.iter().filter(|k| !store.contains(k)) {
                store.put(key, &alias);
            }
        }
        finish_one(pending);
    }
}
