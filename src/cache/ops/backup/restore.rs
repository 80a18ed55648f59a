//! Checking a backup (`backup --verify`) and restoring one (`restore`), both streaming every file, so a
//! restore's memory does not grow with the size of the cache.
//!
//! A restore takes the writer lock, streams each file into `<base_dir>/restore.tmp/` while checking it
//! against the manifest (a mismatch deletes the staging folder and leaves the cache as it was), fsyncs it,
//! then swaps it in for `data/` with two synced renames (`disk::swap_in`). A crash at any point leaves the
//! old data or the new data; the next open finishes or undoes an interrupted swap (`disk::recover`).

use std::io::{BufWriter, Write};
use std::path::Path;

use super::stream::{copy_checked, create_file};
use super::{BackupError, Manifest, io, read_manifest};
use crate::cache::disk::{self, RESTORE_STAGING};
use crate::cache::observe::stats::COUNTERS_FILE;
use crate::config::CacheConfig;

/// Re-reads every file of a backup and checks its size and checksum.
pub fn verify(backup: &Path) -> Result<Manifest, BackupError> {
    let manifest = read_manifest(backup)?;
    for file in &manifest.files {
        copy_checked(backup, manifest.compressed, file, &mut std::io::sink(), Path::new("(check)"))?;
    }
    Ok(manifest)
}

/// Replaces the cache's data with the backup's. Every file is checked as it is copied to a staging folder,
/// before anything the cache reads is touched; a damaged backup is refused and changes nothing. Takes the
/// writer lock, so no other process may be writing.
pub fn restore(config: &CacheConfig, backup: &Path) -> Result<Manifest, BackupError> {
    let manifest = read_manifest(backup)?;
    let base = &config.base_dir;
    crate::cache::private::create_dir_all(base).map_err(io(base))?;
    let _lock = disk::lock_dir(base)?;
    // Finishes or undoes an earlier interrupted restore and removes its staging folder.
    disk::recover(base)?;
    let staging = base.join(RESTORE_STAGING);
    let staged = stage(backup, &manifest, &staging);
    if let Err(err) = staged {
        if let Err(cleanup) = std::fs::remove_dir_all(&staging) {
            tracing::warn!(path = %staging.display(), "cannot remove the staging folder: {cleanup}");
        }
        return Err(err);
    }
    crash_point("staged");
    disk::swap_in(base, &staging.join(disk::DATA_DIR), crash_point)?;
    let counters = staging.join(COUNTERS_FILE);
    if counters.exists() {
        let target = base.join(COUNTERS_FILE);
        std::fs::rename(&counters, &target).map_err(io(&target))?;
        disk::sync_dir(base)?;
    }
    std::fs::remove_dir_all(&staging).map_err(io(&staging))?;
    Ok(manifest)
}

/// Copies and checks every file of the backup into `staging` (created anew), fsynced.
fn stage(backup: &Path, manifest: &Manifest, staging: &Path) -> Result<(), BackupError> {
    let data = staging.join(disk::DATA_DIR);
    crate::cache::private::create_dir_all(&data).map_err(io(&data))?;
    for (i, file) in manifest.files.iter().enumerate() {
        let target = staging.join(&file.path);
        let mut out = BufWriter::new(create_file(&target).map_err(io(&target))?);
        copy_checked(backup, manifest.compressed, file, &mut out, &target)?;
        out.flush().map_err(io(&target))?;
        out.get_ref().sync_all().map_err(io(&target))?;
        if i == 0 {
            crash_point("copying");
        }
    }
    disk::sync_dir(&data)?;
    disk::sync_dir(staging)?;
    Ok(())
}

/// The environment variable that makes a restore kill itself (SIGKILL) at a named step: `copying` (after the
/// first file is staged), `staged`, `old-moved` (between the two renames), `new-in` (after them). Only the
/// crash tests set it.
pub const CRASH_AT_ENV: &str = "INFERNO_TEST_RESTORE_CRASH_AT";

fn crash_point(step: &str) {
    if std::env::var_os(CRASH_AT_ENV).is_some_and(|at| at == step) {
        tracing::warn!("{CRASH_AT_ENV}={step}: killing this process");
        // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
