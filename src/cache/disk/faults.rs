//! Write failures of the disk tier — a full disk, an I/O error, a filesystem gone read-only, a short
//! write — kept loud and bounded.
//!
//! Appends collect in the writer's buffer (`write_buffer_size` bytes) and reach the file when it fills or
//! on a flush. When that write or the fsync after it fails, the records that did not reach the file (or,
//! after a failed fsync, that may not have) are dropped: the file is cut back to the last good length,
//! their lines leave the hint and their entries leave the index, so the store never serves or indexes
//! bytes that are not there, and the buffer never grows past its bound. Each failure is counted by reason,
//! with the records it dropped, and logged at warn — at most once every [`LOG_EVERY`] per reason, naming
//! the file and the OS error. While the last write failed the store reports itself degraded
//! ([`WriteFaults::current`]); the next write that reaches the file clears it, so writes resume on their
//! own when space returns.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::hint::HintMark;
use super::index::Loc;
use super::{DiskStore, Writer};
use crate::cache::clock::now_ms;
use crate::cache::record;

/// The shortest time between two warnings for the same reason.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Why a write failed, as counted (`inferno_cache_write_errors_total{reason}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FailureReason {
    /// ENOSPC or EDQUOT: the filesystem or the quota is full.
    NoSpace,
    /// EIO: the device failed.
    Io,
    /// EROFS: the filesystem was remounted read-only.
    ReadOnly,
    /// The OS accepted fewer bytes than given and then none.
    ShortWrite,
    /// Anything else.
    Other,
}

impl FailureReason {
    /// Every reason, in counter order.
    pub const ALL: [FailureReason; 5] =
        [Self::NoSpace, Self::Io, Self::ReadOnly, Self::ShortWrite, Self::Other];

    /// The reason of an OS error.
    pub fn of(error: &std::io::Error) -> Self {
        match error.kind() {
            ErrorKind::StorageFull | ErrorKind::QuotaExceeded => Self::NoSpace,
            ErrorKind::ReadOnlyFilesystem => Self::ReadOnly,
            ErrorKind::WriteZero => Self::ShortWrite,
            _ if error.raw_os_error() == Some(5) => Self::Io,
            _ => Self::Other,
        }
    }

    /// The label: `no_space`, `io_error`, `read_only`, `short_write`, `other`.
    pub fn label(self) -> &'static str {
        match self {
            Self::NoSpace => "no_space",
            Self::Io => "io_error",
            Self::ReadOnly => "read_only",
            Self::ShortWrite => "short_write",
            Self::Other => "other",
        }
    }
}

/// The failure the store is in now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteFault {
    /// The reason's label.
    pub reason: String,
    /// The file and the OS error, e.g. `/cache/data/seg-0000000003.log: No space left on device (os error 28)`.
    pub message: String,
    /// When the first failure of this run happened, ms since the Unix epoch.
    pub since_ms: u64,
}

/// What [`WriteFaults::snapshot`] reports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteFaultSnapshot {
    /// Failed writes by reason label (every reason listed).
    pub errors: BTreeMap<String, u64>,
    /// Records dropped because the write that carried them failed.
    pub dropped_records: u64,
    /// The failure in progress, when the last write failed.
    pub current: Option<WriteFault>,
}

/// Counters and state of write failures since the store was opened.
#[derive(Debug, Default)]
pub struct WriteFaults {
    errors: [AtomicU64; 5],
    dropped_records: AtomicU64,
    current: Mutex<Option<WriteFault>>,
    last_logged: Mutex<[Option<(Instant, u64)>; 5]>,
}

impl WriteFaults {
    /// Counts a failed write of `path` that dropped `dropped` records, and logs it (rate-limited).
    pub fn record(&self, path: &Path, error: &std::io::Error, dropped: u64) {
        let reason = FailureReason::of(error);
        let i = reason as usize;
        self.errors[i].fetch_add(1, Ordering::Relaxed);
        self.dropped_records.fetch_add(dropped, Ordering::Relaxed);
        let message = format!("{}: {error}", path.display());
        {
            let mut current = self.current.lock();
            let since_ms = current.as_ref().map_or_else(now_ms, |c| c.since_ms);
            *current = Some(WriteFault { reason: reason.label().into(), message: message.clone(), since_ms });
        }
        let mut logged = self.last_logged.lock();
        match &mut logged[i] {
            Some((at, suppressed)) if at.elapsed() < LOG_EVERY => *suppressed += 1,
            slot => {
                let suppressed = slot.map_or(0, |(_, n)| n);
                *slot = Some((Instant::now(), 0));
                tracing::warn!(
                    reason = reason.label(),
                    dropped_records = dropped,
                    similar_failures_not_logged = suppressed,
                    "cache write failed: {message}; the records it carried were dropped (the cache keeps serving; writes resume when the disk takes them)"
                );
            }
        }
    }

    /// A write reached the file: the failure in progress, if any, is over.
    pub fn clear(&self) {
        if let Some(fault) = self.current.lock().take() {
            tracing::info!(reason = %fault.reason, "cache writes resumed");
        }
    }

    /// The failure in progress, if the last write failed.
    pub fn current(&self) -> Option<WriteFault> {
        self.current.lock().clone()
    }

    /// The counts and the failure in progress.
    pub fn snapshot(&self) -> WriteFaultSnapshot {
        WriteFaultSnapshot {
            errors: FailureReason::ALL
                .iter()
                .map(|r| (r.label().to_string(), self.errors[*r as usize].load(Ordering::Relaxed)))
                .collect(),
            dropped_records: self.dropped_records.load(Ordering::Relaxed),
            current: self.current(),
        }
    }
}

impl DiskStore {
    /// Writes the buffer to the file; when that fails, drops what it held (see the module doc).
    pub(super) fn write_out_or_drop(&self, w: &mut Writer) -> Result<(), super::DiskError> {
        match w.write_out() {
            Ok(wrote) => {
                if wrote {
                    self.faults.clear();
                }
                Ok(())
            }
            Err(error) => {
                let (from, mark) = (w.flushed, w.flushed_mark);
                self.drop_unwritten(w, from, mark, &error);
                Err(super::io_err(&w.path)(error))
            }
        }
    }

    /// Fsyncs the segment; when that fails, what was not yet synced may be lost, so it is dropped.
    pub(super) fn sync_or_drop(&self, w: &mut Writer) -> Result<(), super::DiskError> {
        match w.file.sync() {
            Ok(()) => {
                w.synced = w.flushed;
                w.synced_mark = w.flushed_mark;
                w.undo.clear();
                Ok(())
            }
            Err(error) => {
                let (from, mark) = (w.synced, w.synced_mark);
                self.drop_unwritten(w, from, mark, &error);
                Err(super::io_err(&w.path)(error))
            }
        }
    }

    /// Cuts the active segment back to `from` bytes and forgets every record from there on.
    fn drop_unwritten(&self, w: &mut Writer, from: u64, mark: HintMark, error: &std::io::Error) {
        let end = w.len();
        if let Err(cut) = w.file.set_len(from) {
            tracing::warn!(segment = %w.path.display(), "cannot cut the segment back after a failed write: {cut}");
        }
        w.buf.clear();
        w.flushed = from;
        w.synced = w.synced.min(from);
        w.flushed_mark = mark;
        w.hint.rewind(mark);
        let dropped = self.state.write().index.forget_from(w.id, from, end);
        self.restore_replaced(w, from);
        self.faults.record(&w.path, error, dropped);
    }

    /// Puts back in the index the entries and tombstones that records from `from` on had replaced: for
    /// each key, the state before the first dropped record of that key.
    fn restore_replaced(&self, w: &mut Writer, from: u64) {
        let cut = w.undo.partition_point(|(offset, ..)| *offset < from);
        let mut seen = std::collections::HashSet::new();
        let mut restore = Vec::new();
        for (_, key, entry, tombstone) in w.undo.drain(cut..) {
            if seen.insert(key) {
                let kept = |loc: &Loc| loc.segment != w.id || loc.offset < from;
                restore.extend([tombstone, entry].into_iter().flatten().filter(kept));
            }
        }
        for loc in restore {
            match self.raw_record(loc) {
                Some(bytes) => match record::decode(&bytes, true) {
                    Ok(rec) => self.state.write().index.apply(&rec, loc),
                    Err(_) => tracing::warn!(
                        segment = loc.segment,
                        offset = loc.offset,
                        "a replaced record could not be restored"
                    ),
                },
                None => tracing::warn!(
                    segment = loc.segment,
                    offset = loc.offset,
                    "a replaced record could not be restored"
                ),
            }
        }
    }

    /// Write failures since open, and the one in progress.
    pub fn write_faults(&self) -> WriteFaultSnapshot {
        self.faults.snapshot()
    }
}
