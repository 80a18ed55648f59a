//! Swapping a whole `data/` folder for another (what `inferno cache restore` does last) so that a crash at
//! any point leaves either the old data or the new data, never none, and the recovery that finishes or
//! undoes an interrupted swap at the next open (docs/format.md, "Backups").
//!
//! The swap is two renames in the cache directory, each followed by an fsync of the directory:
//! `data/` → `data.old/`, then the fully written and fsynced new folder → `data/`; `data.old/` is deleted
//! after. Crash states and what the next writable open does with them:
//!
//! | on disk                                   | meaning                       | recovery                    |
//! |-------------------------------------------|-------------------------------|-----------------------------|
//! | `data/` only                              | no swap, or a finished one    | nothing                     |
//! | `data.old/` only                          | crash between the renames     | rename it back to `data/`   |
//! | `data/` with segments, and `data.old/`    | crash after the second rename | delete `data.old/`          |
//! | `data/` without segments, and `data.old/` | something recreated `data/`   | put `data.old/` back        |
//!
//! A read-only open does not change anything; it reads `data.old/` when `data/` is missing.

use std::path::{Path, PathBuf};

use super::open::list_segments;
use super::storage::{RealFs, Storage};
use super::{DATA_DIR, DiskError, io_err};

/// Where the old `data/` waits while a restore swaps in the new one.
pub const OLD_DATA_DIR: &str = "data.old";
/// Where a restore writes the new data before swapping it in; a leftover one is deleted by [`recover`].
pub const RESTORE_STAGING: &str = "restore.tmp";

/// What [`recover`] found and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// No interrupted swap.
    Clean,
    /// The swap stopped between its renames: the old data was put back.
    RolledBack,
    /// The swap had put the new data in place: the leftover old data was deleted.
    Completed,
}

/// The data folder to read in `base`: `data/`, or `data.old/` while a swap is interrupted between its renames
/// (read-only opens do not repair; the next writable open will).
pub fn data_dir_for_reading(base: &Path) -> PathBuf {
    data_dir_for_reading_in(&RealFs, base)
}

pub(super) fn data_dir_for_reading_in(fs: &dyn Storage, base: &Path) -> PathBuf {
    let data = base.join(DATA_DIR);
    let old = base.join(OLD_DATA_DIR);
    if !fs.exists(&data) && fs.is_dir(&old) { old } else { data }
}

/// Finishes or undoes an interrupted swap in `base`, and deletes the staging folder of an interrupted
/// restore. Call with the writer lock held, before `data/` is read or created.
pub fn recover(base: &Path) -> Result<Recovery, DiskError> {
    recover_in(&RealFs, base)
}

pub(super) fn recover_in(fs: &dyn Storage, base: &Path) -> Result<Recovery, DiskError> {
    let data = base.join(DATA_DIR);
    let old = base.join(OLD_DATA_DIR);
    let staging = base.join(RESTORE_STAGING);
    if fs.exists(&staging) {
        tracing::info!(path = %staging.display(), "deleting the staging folder of an interrupted restore");
        fs.remove_dir_all(&staging).map_err(io_err(&staging))?;
    }
    if !fs.is_dir(&old) {
        return Ok(Recovery::Clean);
    }
    if !fs.exists(&data) {
        tracing::warn!(dir = %base.display(), "a restore stopped between its renames; putting the old data back");
        rename_synced(fs, base, &old, &data)?;
        return Ok(Recovery::RolledBack);
    }
    if list_segments(fs, &data, false)?.is_empty() && !list_segments(fs, &old, false)?.is_empty() {
        // Only a complete new folder is ever renamed to `data/`, and a backup of an empty cache restores as
        // an empty one; putting the old data back is one of the two outcomes a restore allows.
        tracing::warn!(dir = %base.display(), "data/ holds no segment but data.old/ does; putting the old data back");
        let empty = base.join("data.empty.tmp");
        rename_synced(fs, base, &data, &empty)?;
        rename_synced(fs, base, &old, &data)?;
        fs.remove_dir_all(&empty).map_err(io_err(&empty))?;
        return Ok(Recovery::RolledBack);
    }
    tracing::info!(dir = %base.display(), "a restore finished its swap; deleting the old data");
    fs.remove_dir_all(&old).map_err(io_err(&old))?;
    Ok(Recovery::Completed)
}

/// Replaces `base/data/` by `new_data` (a folder on the same filesystem, its files already fsynced) in two
/// synced renames, then deletes the old data. Call with the writer lock held, after [`recover`] (which
/// would delete a `new_data` inside the staging folder). `crash_point` is called between the steps (tests
/// stop the process there).
pub fn swap_in(base: &Path, new_data: &Path, crash_point: impl Fn(&str)) -> Result<(), DiskError> {
    let fs = &RealFs;
    let data = base.join(DATA_DIR);
    let old = base.join(OLD_DATA_DIR);
    sync_dir(new_data)?;
    if fs.exists(&data) {
        rename_synced(fs, base, &data, &old)?;
    }
    crash_point("old-moved");
    rename_synced(fs, base, new_data, &data)?;
    if let Some(parent) = new_data.parent() {
        sync_dir(parent)?;
    }
    crash_point("new-in");
    if fs.exists(&old) {
        fs.remove_dir_all(&old).map_err(io_err(&old))?;
    }
    Ok(())
}

fn rename_synced(fs: &dyn Storage, base: &Path, from: &Path, to: &Path) -> Result<(), DiskError> {
    fs.rename(from, to).map_err(io_err(from))?;
    fs.sync_dir(base).map_err(io_err(base))
}

/// Fsyncs a directory, so the renames and creations in it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), DiskError> {
    RealFs.sync_dir(dir).map_err(io_err(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::disk::segment;

    fn with_segment(dir: &Path, id: u32) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(segment::segment_path(dir, id), segment::file_header(id)).unwrap();
    }

    fn ids(dir: &Path) -> Vec<u32> {
        list_segments(&RealFs, dir, false).unwrap()
    }

    #[test]
    fn every_interrupted_state_recovers_to_old_or_new() {
        let base = tempfile::tempdir().unwrap();
        let (data, old) = (base.path().join(DATA_DIR), base.path().join(OLD_DATA_DIR));
        assert_eq!(recover(base.path()).unwrap(), Recovery::Clean);

        // Between the renames: only data.old/ exists; readers see it, the writer puts it back.
        with_segment(&old, 1);
        assert_eq!(data_dir_for_reading(base.path()), old);
        assert_eq!(recover(base.path()).unwrap(), Recovery::RolledBack);
        assert_eq!(ids(&data), vec![1]);
        assert!(!old.exists());
        assert_eq!(data_dir_for_reading(base.path()), data);

        // After the second rename: the new data stays, the old is deleted.
        std::fs::rename(&data, &old).unwrap();
        with_segment(&data, 7);
        assert_eq!(recover(base.path()).unwrap(), Recovery::Completed);
        assert_eq!(ids(&data), vec![7]);
        assert!(!old.exists());

        // An empty data/ beside an old one with segments (an old build's open recreated data/).
        std::fs::rename(&data, &old).unwrap();
        std::fs::create_dir(&data).unwrap();
        assert_eq!(recover(base.path()).unwrap(), Recovery::RolledBack);
        assert_eq!(ids(&data), vec![7]);
        assert!(!old.exists() && !base.path().join("data.empty.tmp").exists());
    }

    #[test]
    fn swap_in_replaces_data_and_stops_where_told() {
        let base = tempfile::tempdir().unwrap();
        let data = base.path().join(DATA_DIR);
        with_segment(&data, 1);
        let staged = base.path().join("restore.tmp").join(DATA_DIR);
        with_segment(&staged, 2);
        swap_in(base.path(), &staged, |_| {}).unwrap();
        assert_eq!(ids(&data), vec![2]);
        assert!(!base.path().join(OLD_DATA_DIR).exists() && !staged.exists());

        // A swap stopped at each point leaves old or new data after recovery.
        for (stop, expected) in [("old-moved", 2), ("new-in", 3)] {
            with_segment(&staged, 3);
            let stopped = std::panic::catch_unwind(|| {
                swap_in(base.path(), &staged, |at| assert_ne!(at, stop, "stopped")).unwrap();
            });
            assert!(stopped.is_err());
            recover(base.path()).unwrap();
            assert_eq!(ids(&data), vec![expected], "stopped at {stop}");
            if staged.exists() {
                std::fs::remove_dir_all(&staged).unwrap();
            }
        }
    }
}
