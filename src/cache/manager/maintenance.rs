//! The disk tier's maintenance as the manager offers it: verify, compact, what the tier holds, and the live
//! entry count per kind. Front doors call these instead of reaching into the disk tier; a cache without one
//! (`cache.type = memory`) answers [`CacheError::NoDiskTier`].

use super::reencode::Reencoder;
use super::{CacheError, Manager};
use crate::cache::Kind;
use crate::cache::disk::{
    CompactReport, DamagedRecord, DiskStats, EntrySlot, FileUsage, SegmentUsage, Selection, VerifyReport,
    WriteFaultSnapshot,
};

impl Manager {
    fn disk_for(&self, operation: &'static str) -> Result<&crate::cache::disk::DiskStore, CacheError> {
        self.disk.as_deref().ok_or(CacheError::NoDiskTier { operation })
    }

    /// Write failures of the disk tier since open, and the one in progress; `None` without a disk tier.
    pub fn write_faults(&self) -> Option<WriteFaultSnapshot> {
        self.disk.as_ref().map(|d| d.write_faults())
    }

    /// Whether the cache type has a disk tier.
    pub fn has_disk(&self) -> bool {
        self.disk.is_some()
    }

    /// Checks every record's checksum, then that every value stored under a zstd dictionary has its
    /// dictionary and decodes with it; with `fix`, quarantines damaged records (and those) and drops damaged
    /// ranges.
    pub fn verify(&self, fix: bool) -> Result<VerifyReport, CacheError> {
        let disk = self.disk_for("verify")?;
        let mut report = disk.verify(fix)?;
        let unreadable = self.entries_without_dictionary(disk, &report);
        for (kind, key, loc, reason) in unreadable {
            if fix {
                disk.quarantine(kind, &key)?;
                report.fixed = true;
            }
            let key = String::from_utf8_lossy(&key).into_owned();
            report.damaged.push(DamagedRecord {
                kind,
                key,
                segment: loc.segment,
                offset: loc.offset,
                reason,
            });
        }
        Ok(report)
    }

    /// Rewrites the disk tier without dead records, on a thread of its own at low CPU priority (`nice` 10),
    /// so that a server's request threads keep the CPU while it copies. Response values are re-encoded under
    /// the current zstd dictionary as they are copied; then the dictionaries no copied record uses are deleted
    /// (`dictionary.rs` says why that is safe).
    pub fn compact(&self) -> Result<CompactReport, CacheError> {
        let disk = self.disk_for("compact")?;
        // No dictionary is trained while the pass notes which ones records use.
        let _no_training = self.dictionaries.training.lock();
        let dictionaries = self.dictionaries.snapshot();
        let hook = Reencoder::new(&self.config, &dictionaries, self.sealer.as_deref(), self.writing().sealer);
        let pass = std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("inferno-compact".into())
                .spawn_scoped(scope, || {
                    lower_priority();
                    disk.compact_with(Selection::All, Some(&hook))
                })
                .map_err(CacheError::Thread)?
                .join()
                .map_err(|_| CacheError::Thread(std::io::Error::other("the compaction thread panicked")))
        })?;
        let pass = pass?;
        let seen = hook.seen.into_inner();
        if !seen.unknown {
            let unused: Vec<u32> =
                dictionaries.all().map(|d| d.id()).filter(|id| !seen.used.contains(id)).collect();
            self.delete_dictionaries(&unused)?;
        }
        Ok(pass)
    }

    /// What the disk tier stores, counted from its index; `None` without a disk tier.
    pub fn disk_stats(&self) -> Option<DiskStats> {
        self.disk.as_ref().map(|d| d.stats())
    }

    /// Bytes of the disk tier's segment and hint files (0 without a disk tier).
    pub fn disk_file_bytes(&self) -> u64 {
        self.disk.as_ref().map_or(0, |d| d.file_bytes())
    }

    /// The cache directory's files by class, and the record bytes of each segment.
    pub fn disk_usage(&self) -> Result<(FileUsage, Vec<(u32, SegmentUsage)>), CacheError> {
        let disk = self.disk_for("report the disk usage of")?;
        Ok((disk.file_usage(), disk.segment_usage()))
    }

    /// (live, total) bytes of the disk tier's records (zeros without a disk tier).
    pub fn disk_record_bytes(&self) -> (u64, u64) {
        self.disk.as_ref().map_or((0, 0), |d| d.usage())
    }

    /// Every entry of the disk tier's index as stored (kind code, key, slot), expired ones included: for
    /// figures and tests that check what the tier really holds.
    pub fn disk_index_entries(&self) -> Vec<(u8, Vec<u8>, EntrySlot)> {
        self.disk.as_ref().map(|d| d.entries()).unwrap_or_default()
    }

    /// Live (unexpired) entries per kind, every kind listed.
    pub fn entry_counts(&self) -> Vec<(Kind, u64)> {
        let all = self.entries(None);
        Kind::ALL.into_iter().map(|k| (k, all.iter().filter(|e| e.kind == k).count() as u64)).collect()
    }
}

/// Lowers the calling thread's CPU priority (Linux: `setpriority` on the thread id). Best effort.
pub(super) fn lower_priority() {
    // SAFETY: gettid and setpriority take no pointers; failure only leaves the priority as it was.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}
