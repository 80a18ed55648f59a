//! What follows a restore, and the cure for damaged entries: checking a restored cache (`restore --verify`)
//! and putting damaged entries back from the backups made of this cache (`rebuild --from-backup`). The
//! policy lives here so the CLI only prints.

use crate::cache::clock::now_ms;
use crate::cache::ops::backup::{self, Manifest};
use crate::cache::{Access, CacheError, Kind, Manager};
use crate::config::CacheType;

/// Why a restored cache failed its check, or a rebuild could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RebuildError {
    /// The cache failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The restored cache lost entries to damage.
    #[error(
        "the restored cache has {records} damaged records and {ranges} damaged byte ranges ({readable} of the {expected} backed-up entries are readable); run `inferno cache verify --detailed`"
    )]
    Damaged {
        /// Damaged records found.
        records: usize,
        /// Damaged byte ranges found.
        ranges: usize,
        /// Entries that checked out.
        readable: u64,
        /// Entries the manifest promised.
        expected: u64,
    },
    /// No scratch folder for restoring backups into.
    #[error("cannot create a temporary folder: {0}")]
    Scratch(#[source] std::io::Error),
}

/// Checks every record of a cache just restored from the backup `manifest` describes, and returns how many
/// entries checked out.
///
/// Damaged byte ranges that no entry uses are records the backed-up cache had already quarantined
/// (`verify --fix` drops them from the index but leaves their bytes in the segment, and a backup copies
/// segments as they are): they are dropped with a warning. Anything else damaged is an error.
pub fn check_restored(manager: &Manager, manifest: &Manifest) -> Result<u64, RebuildError> {
    let report = manager.verify(false)?;
    let entries_lost = report.entries_checked < manifest.entries;
    if !report.damaged.is_empty() || (!report.damaged_ranges.is_empty() && entries_lost) {
        return Err(RebuildError::Damaged {
            records: report.damaged.len(),
            ranges: report.damaged_ranges.len(),
            readable: report.entries_checked,
            expected: manifest.entries,
        });
    }
    if !report.damaged_ranges.is_empty() {
        tracing::warn!(
            ranges = report.damaged_ranges.len(),
            "the backup holds damaged byte ranges that no entry uses (records quarantined before the backup); every backed-up entry is intact, the ranges were dropped"
        );
        manager.verify(true)?;
    }
    Ok(report.entries_checked)
}

/// What [`rebuild`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RebuildReport {
    /// Damaged entries found (and quarantined).
    pub damaged: usize,
    /// Of those, entries put back from a backup.
    pub restored: u64,
    /// Entries in no readable backup.
    pub missing: Vec<(Kind, String)>,
}

/// Quarantines the damaged entries of `live`, then puts each back from the newest recorded backup that has
/// it, keeping the time it had left to live.
pub fn rebuild(live: &Manager) -> Result<RebuildReport, RebuildError> {
    let report = live.verify(true)?;
    let mut damaged: Vec<(Kind, String)> =
        report.damaged.iter().filter_map(|d| Kind::from_code(d.kind).map(|k| (k, d.key.clone()))).collect();
    let mut out = RebuildReport { damaged: damaged.len(), ..RebuildReport::default() };
    let scratch = tempfile::tempdir().map_err(RebuildError::Scratch)?;
    for (i, registered) in backup::list(&live.config().base_dir).iter().rev().enumerate() {
        if damaged.is_empty() {
            break;
        }
        let mut config = live.config().clone();
        config.base_dir = scratch.path().join(i.to_string());
        if backup::restore(&config, &registered.path).is_err() {
            tracing::warn!(path = %registered.path.display(), "skipping a backup that is missing or damaged");
            continue;
        }
        config.kind = CacheType::Disk;
        let old = Manager::open(&config, Access::ReadOnly)?;
        let mut still = Vec::new();
        for (kind, key) in damaged {
            let info = old.entries(Some(kind)).into_iter().find(|e| e.key == key);
            match (old.get(kind, &key)?, info) {
                (Some(bytes), Some(info)) => {
                    let left = info.expires.remaining(now_ms());
                    // An entry that expired meanwhile is put back with the shortest TTL, not "never".
                    let ttl = left.map(|d| d.max(std::time::Duration::from_millis(1)));
                    live.put(kind, &key, &info.name, &bytes, ttl)?;
                    out.restored += 1;
                }
                _ => still.push((kind, key)),
            }
        }
        damaged = still;
    }
    live.flush()?;
    out.missing = damaged;
    Ok(out)
}
