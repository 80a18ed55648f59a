//! Keeping the cache within its limits: removing old entries (`[cache.cleanup]`) and bounding disk use by
//! `cache.max_size_gb`, with compaction to give the space back.
//!
//! Runs from the manager's background thread after each flush (so a long-running server stays in bounds),
//! and when a writing CLI command finishes. The time of the last age-based cleanup is kept in
//! `<base_dir>/cleanup.last` so that short-lived CLI processes honour `cleanup_interval_hours` too.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;

use super::dictionary::{DictionaryState, Trainer};
use super::reencode::Reencoder;
use super::{CacheError, Cached, Manager, disk_entries, memory_key};
use crate::cache::clock::now_ms;
use crate::cache::disk::{CompactReport, DiskStore, Selection};
use crate::cache::kind::Kind;
use crate::cache::memory::MemoryTier;
use crate::cache::observe::history::{self, Live, Snapshot};
use crate::cache::observe::stats::{CounterSnapshot, Counters};
use crate::config::CacheConfig;

/// The share of dead bytes that makes a segment worth rewriting in the background.
pub const DEAD_RATIO: f64 = 0.5;

/// File holding the time (ms since the epoch) of the last age-based cleanup.
pub const LAST_CLEANUP_FILE: &str = "cleanup.last";

/// What one housekeeping pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HousekeepingReport {
    /// Entries removed for being older than the age threshold.
    pub removed_old: u64,
    /// Entries removed, oldest first, to bring disk use under the size threshold.
    pub evicted_for_size: u64,
    /// Bytes of segment and hint files before and after compaction, when it ran.
    pub compacted: Option<(u64, u64)>,
}

/// The parts of a manager housekeeping needs, shareable with the background thread.
pub(super) struct Housekeeper {
    pub(super) config: CacheConfig,
    pub(super) disk: Arc<DiskStore>,
    pub(super) memory: Option<Arc<MemoryTier<Arc<str>, Cached>>>,
    pub(super) kv_memory: Option<Arc<MemoryTier<Arc<str>, Cached>>>,
    pub(super) counters: Arc<Counters>,
    /// The last history snapshot this manager recorded (counters, entries, bytes), to skip duplicates.
    pub(super) last_history: Arc<parking_lot::Mutex<Option<(Snapshot, bool)>>>,
    pub(super) tracer: Arc<crate::cache::observe::trace::Tracer>,
    pub(super) codec: crate::cache::codec::Codec,
    pub(super) sealer: Option<Arc<crate::cache::seal::Sealer>>,
    pub(super) dictionaries: Arc<DictionaryState>,
    pub(super) rewrite_gate: Arc<parking_lot::RwLock<()>>,
}

impl Manager {
    pub(super) fn housekeeper(&self) -> Option<Housekeeper> {
        Some(Housekeeper {
            config: self.config.clone(),
            disk: self.disk.clone()?,
            memory: self.memory.clone(),
            kv_memory: self.kv_memory.clone(),
            counters: self.counters.clone(),
            last_history: self.last_history.clone(),
            tracer: self.tracer.clone(),
            codec: self.codec,
            sealer: self.sealer.clone(),
            dictionaries: self.dictionaries.clone(),
            rewrite_gate: self.rewrite_gate.clone(),
        })
    }

    /// Removes entries older than `age` (by creation time), of one kind or all; returns how many.
    pub fn remove_older_than(&self, age: Duration, kind: Option<Kind>) -> Result<u64, CacheError> {
        match self.housekeeper() {
            Some(keeper) => keeper.remove_older_than(age, kind),
            None => {
                let cutoff = now_ms().saturating_sub(age.as_millis() as u64);
                let old: Vec<_> = self.entries(kind).into_iter().filter(|e| e.created_ms < cutoff).collect();
                for entry in &old {
                    self.remove(entry.kind, &entry.key)?;
                }
                Ok(old.len() as u64)
            }
        }
    }

    /// One housekeeping pass (see [`Housekeeper::run`]); nothing to do without a writable disk tier.
    pub fn housekeeping(&self) -> Result<HousekeepingReport, CacheError> {
        match self.housekeeper() {
            Some(keeper) if !keeper.disk.options().read_only => keeper.run(),
            _ => Ok(HousekeepingReport::default()),
        }
    }

    /// `size_threshold_percent` of `max_size_gb`, in bytes: the disk use that triggers compaction.
    pub fn size_threshold_bytes(&self) -> u64 {
        size_threshold_bytes(&self.config)
    }
}

fn size_threshold_bytes(config: &CacheConfig) -> u64 {
    (config.max_size_gb.bytes() as u128 * config.cleanup.size_threshold_percent as u128 / 100) as u64
}

impl Housekeeper {
    /// Makes every write durable, saves the counters and appends a history snapshot. Failing to save
    /// statistics is logged, not fatal: they are not cache data.
    pub(super) fn sync(&self) -> Result<(), CacheError> {
        self.disk.flush()?;
        let dir = &self.config.base_dir;
        let counters = self.counters.snapshot();
        if let Err(err) = counters.save(dir) {
            tracing::warn!(dir = %dir.display(), "cannot save the cache counters: {err}");
        }
        self.record_history(counters);
        Ok(())
    }

    /// Appends a history snapshot unless nothing changed since the last one this manager recorded. The
    /// first call (at open) only remembers the starting point; it is written just before the first snapshot
    /// that differs, so a command that changes nothing leaves the history as it was.
    pub(super) fn record_history(&self, counters: CounterSnapshot) {
        let (_, record_bytes) = self.disk.usage();
        let entries = self.disk.entry_count();
        let now = Snapshot { time_ms: now_ms(), counters, entries, record_bytes };
        let mut last = self.last_history.lock();
        let Some((previous, written)) = last.as_mut() else {
            *last = Some((now, false));
            return;
        };
        let same = previous.counters == now.counters
            && previous.entries == now.entries
            && previous.record_bytes == now.record_bytes;
        if same {
            return;
        }
        let dir = &self.config.base_dir;
        let baseline = (!*written).then(|| previous.clone());
        for snapshot in baseline.iter().chain([&now]) {
            if let Err(err) = history::record(dir, snapshot) {
                tracing::warn!(dir = %dir.display(), "cannot record cache history: {err}");
            }
        }
        *last = Some((now, true));
    }

    /// Writes `live.json` when the counters changed since `last`; returns what was published.
    pub(super) fn publish_live(&self, last: Option<CounterSnapshot>) -> Option<CounterSnapshot> {
        let counters = self.counters.snapshot();
        if last.as_ref() == Some(&counters) {
            return last;
        }
        let disk = self.disk.counters();
        let live = Live {
            pid: std::process::id(),
            time_ms: now_ms(),
            counters: counters.clone(),
            memory_entries: 0,
            memory_bytes: 0,
            disk_bytes_written: disk.bytes_written.load(Ordering::Relaxed),
            disk_reads: disk.reads.load(Ordering::Relaxed),
            disk_syncs: disk.syncs.load(Ordering::Relaxed),
        }
        .with_memory(self.memory.as_ref().map(|m| m.stats()));
        if let Err(err) = live.save(&self.config.base_dir) {
            tracing::warn!("cannot publish live cache figures: {err}");
        }
        Some(counters)
    }

    fn remove(&self, kind: Kind, key: &str) -> Result<bool, CacheError> {
        let memory = if kind == Kind::Kv { &self.kv_memory } else { &self.memory };
        if let Some(memory) = memory {
            memory.remove(memory_key(kind, key).as_str());
        }
        let removed = self.disk.remove(kind.code(), key.as_bytes())?;
        if removed {
            self.tracer.record(crate::cache::observe::trace::Op::Remove, kind, key, None, None, 0);
        }
        Ok(removed)
    }

    fn remove_older_than(&self, age: Duration, kind: Option<Kind>) -> Result<u64, CacheError> {
        let cutoff = now_ms().saturating_sub(age.as_millis() as u64);
        let mut removed = 0;
        for entry in disk_entries(&self.disk, kind).into_iter().filter(|e| e.created_ms < cutoff) {
            if self.remove(entry.kind, &entry.key)? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The periodic age-based cleanup when it is due (`cleanup.auto_cleanup`, `cleanup_interval_hours`,
    /// `age_threshold_days`); then size control before compaction, since eviction needs no free space and
    /// compaction needs about a segment's: when live data passes `size_threshold_percent` of
    /// `max_size_gb`, the oldest entries (by creation time) are removed down to 90% of that threshold.
    /// Then compaction by dead bytes: segments at least half dead are rewritten (response values re-encoded
    /// under the current dictionary as they are copied), and when the files still pass the threshold, every
    /// segment. First of all, a zstd dictionary is trained when its rule says so (`dictionary.rs`).
    pub(super) fn run(&self) -> Result<HousekeepingReport, CacheError> {
        let mut report = HousekeepingReport::default();
        if let Some(Err(err)) = self.trainer().maybe_train() {
            tracing::warn!("training a zstd dictionary failed: {err}");
        }
        let cleanup = &self.config.cleanup;
        if cleanup.auto_cleanup && self.cleanup_due(cleanup.cleanup_interval_hours.duration()) {
            report.removed_old = self.remove_older_than(cleanup.age_threshold_days.duration(), None)?;
            self.record_cleanup();
        }
        let limit = size_threshold_bytes(&self.config);
        if self.disk.usage().0 > limit {
            report.evicted_for_size = self.evict_oldest(limit / 10 * 9)?;
        }
        let (live, total) = self.disk.usage();
        let dead = total - live.min(total);
        if dead > 0 && (total >= limit || dead * 2 >= total) {
            let dictionaries = self.dictionaries.snapshot();
            let writing = self.sealer.as_deref().filter(|s| s.seals());
            let hook = Reencoder::new(&self.config, &dictionaries, self.sealer.as_deref(), writing);
            let mut compacted = self.disk.compact_with(Selection::DeadRatio(DEAD_RATIO), Some(&hook))?;
            if self.disk.usage().1 >= limit {
                let all = self.disk.compact_with(Selection::All, Some(&hook))?;
                compacted = CompactReport { bytes_after: all.bytes_after, ..compacted };
            }
            report.compacted = Some((compacted.bytes_before, compacted.bytes_after));
        }
        if report != HousekeepingReport::default() {
            tracing::info!(?report, "cache housekeeping");
        }
        Ok(report)
    }

    fn trainer(&self) -> Trainer<'_> {
        Trainer {
            config: &self.config,
            disk: &self.disk,
            reading: self.sealer.as_deref(),
            writing: self.sealer.as_deref().filter(|s| s.seals()),
            codec: self.codec,
            state: &self.dictionaries,
            gate: &self.rewrite_gate,
        }
    }

    fn evict_oldest(&self, target: u64) -> Result<u64, CacheError> {
        let mut evicted = 0;
        let mut entries = disk_entries(&self.disk, None);
        entries.sort_by_key(|e| e.created_ms);
        for entry in entries {
            if self.disk.usage().0 <= target {
                break;
            }
            if self.remove(entry.kind, &entry.key)? {
                evicted += 1;
                self.tracer.record(
                    crate::cache::observe::trace::Op::Evict,
                    entry.kind,
                    &entry.key,
                    Some("disk"),
                    None,
                    entry.size,
                );
            }
        }
        self.counters.disk_evictions.fetch_add(evicted, Ordering::Relaxed);
        Ok(evicted)
    }

    fn cleanup_due(&self, interval: Duration) -> bool {
        let path = self.config.base_dir.join(LAST_CLEANUP_FILE);
        let last = std::fs::read_to_string(path).ok().and_then(|t| t.trim().parse::<u64>().ok());
        match last {
            Some(last) => now_ms().saturating_sub(last) >= interval.as_millis() as u64,
            None => {
                // First pass in this directory: start the clock rather than clean at once.
                self.record_cleanup();
                false
            }
        }
    }

    fn record_cleanup(&self) {
        let path = self.config.base_dir.join(LAST_CLEANUP_FILE);
        if let Err(err) = crate::cache::private::write(&path, now_ms().to_string()) {
            tracing::warn!(path = %path.display(), "cannot record the cleanup time: {err}");
        }
    }
}
