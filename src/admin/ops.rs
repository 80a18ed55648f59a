//! The administrative operations, written once: each takes the open [`Manager`] and answers with the view
//! the admin API sends and the CLI prints. The server's admin routes (`serve::admin`) call these on its own
//! cache; the CLI calls them on a cache it opened itself when no server holds the directory
//! (`cli::target`), so a command does the same work by either road.

use crate::admin::{
    BackupRequest, BackupView, ClearRequest, CompactView, RemovalView, VerifyRequest, VerifyView,
};
use crate::cache::ops::backup::{self, BackupError};
use crate::cache::{CacheError, Manager, TrainReport};
use crate::config::CacheConfig;

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpError {
    /// The request is not valid (a usage error; nothing was done).
    #[error("{0}")]
    Invalid(String),
    /// The cache failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The backup failed.
    #[error("backup failed: {0}")]
    Backup(#[from] BackupError),
    /// The permissions of the cache directory could not be checked or tightened.
    #[error("checking permissions: {0}")]
    Permissions(#[source] std::io::Error),
    /// The backup was written, but reading it back found a mismatch.
    #[error("the backup was written but does not verify: {0}")]
    BackupUnverified(#[source] BackupError),
}

/// Removes what `request` selects, compacts so the space is given back, and (unless `local_only`) clears
/// the matching keys of the remote tier.
pub fn clear(manager: &Manager, request: &ClearRequest) -> Result<RemovalView, OpError> {
    let filter = request.filter().map_err(OpError::Invalid)?;
    let removal = manager.remove_matching(&filter)?;
    let remote = if request.local_only { None } else { manager.clear_remote(&filter) };
    Ok(RemovalView::from(&removal).with_remote(remote))
}

/// Rewrites the disk tier without dead records.
///
/// With encryption on, values stored plain or under another key this cache can open are first re-sealed
/// under the configured key, so the compaction leaves every live value sealed with it.
pub fn compact(manager: &Manager) -> Result<CompactView, OpError> {
    manager.reseal(&|_, _| {})?;
    Ok(CompactView::from(&manager.compact()?))
}

/// Trains a zstd dictionary on the cache's responses and makes it current unless worse than the current one.
pub fn train_dictionary(manager: &Manager) -> Result<TrainReport, OpError> {
    let report = manager.train_dictionary()?;
    manager.flush()?;
    Ok(report)
}

/// Checks every record and the permissions of the cache directory; with `fix`, quarantines what is
/// damaged and tightens what is more open than 0700 / 0600.
pub fn verify(manager: &Manager, request: &VerifyRequest) -> Result<VerifyView, OpError> {
    let view = VerifyView::from(&manager.verify(request.fix)?);
    view.with_permissions(&manager.config().base_dir, request.fix).map_err(OpError::Permissions)
}

/// Writes a backup of the cache `config` describes to `request.destination` (and reads it back when
/// `verify` is set), then records it and rotates the older backups. `writer` is the process's open cache when it holds the directory (the server): it is
/// flushed first, so the backup has everything written so far. A backup needs no open cache otherwise: it
/// copies a consistent set of segments beside any other reader.
pub fn backup(
    config: &CacheConfig,
    writer: Option<&Manager>,
    request: &BackupRequest,
) -> Result<BackupView, OpError> {
    if let Some(manager) = writer {
        manager.flush()?;
    }
    let manifest = backup::write(config, &request.destination, request.compress)?;
    if request.verify {
        backup::verify(&request.destination).map_err(OpError::BackupUnverified)?;
    }
    // Only a complete (and, when asked, verified) backup is recorded, and only then may rotation delete an
    // older one.
    backup::register(config, &request.destination, &manifest)?;
    Ok(BackupView::new(request.destination.clone(), &manifest, request.verify))
}
