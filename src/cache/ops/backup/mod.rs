//! Backups of a cache directory: a consistent snapshot (even while a writer runs), a manifest with a BLAKE3
//! checksum per file, optional zstd compression, verification, restore, and rotation.
//!
//! A backup is a folder: `inferno-backup.json` (the manifest, written last — a folder without it is an
//! unfinished backup) and the files it lists, relative to the cache directory (`data/seg-*.log`,
//! `counters.json`), each with a `.zst` suffix when compressed. Hint files are not copied; a restored cache
//! rebuilds them at its first open. Backups made by this cache are listed in `<base_dir>/backups.json`.
//!
//! This file holds the manifest and its checks, writing a backup and rotation; [`stream`] moves the bytes,
//! [`restore`] checks and restores.

mod restore;
mod stream;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cache::DICTIONARY_KIND;
use crate::cache::clock::now_ms;
use crate::cache::disk::{self, DiskError, DiskStore, StoreOptions};
use crate::cache::observe::stats::COUNTERS_FILE;
use crate::config::CacheConfig;

/// The manifest's file name inside a backup folder.
pub const MANIFEST_FILE: &str = "inferno-backup.json";
/// The list of backups made from a cache, in its directory.
pub const REGISTRY_FILE: &str = "backups.json";
const FORMAT: u32 = 1;
/// The largest manifest read: ample for any cache (one line per 64 MiB segment), and a bound on what a
/// hostile file can make a restore allocate.
const MAX_MANIFEST_LEN: u64 = 16 << 20;

pub use restore::{CRASH_AT_ENV, restore, verify};

/// Errors of backup and restore.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// A file operation failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The disk tier failed.
    #[error(transparent)]
    Disk(#[from] DiskError),
    /// The destination exists and is not empty.
    #[error("{} already exists and is not empty; choose a new destination", .0.display())]
    DestinationInUse(PathBuf),
    /// The folder holds no manifest (not a backup, or an unfinished one).
    #[error("{} is not an inferno backup (no {MANIFEST_FILE}); check the path", .0.display())]
    NotABackup(PathBuf),
    /// The manifest cannot be read or names a path outside the cache directory.
    #[error("backup manifest {}: {reason}", .path.display())]
    BadManifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file does not match its checksum or size in the manifest.
    #[error("backup file {} does not match the manifest ({reason}); the backup is damaged and was not used", .path.display())]
    Checksum {
        /// The file.
        path: PathBuf,
        /// What differs.
        reason: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io { path: path.to_path_buf(), source }
}

/// The manifest of one backup.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Backup format version.
    pub format: u32,
    /// When it was made, ms since the Unix epoch.
    pub created_ms: u64,
    /// The cache directory it was made from.
    pub source: PathBuf,
    /// Whether files are zstd-compressed (stored with a `.zst` suffix).
    pub compressed: bool,
    /// Live entries in the cache when the backup was made.
    pub entries: u64,
    /// The files, relative to the cache directory.
    pub files: Vec<FileEntry>,
}

/// One file of a backup.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the cache directory, `/`-separated.
    pub path: String,
    /// Size before compression.
    pub size: u64,
    /// BLAKE3 of the content before compression, hex.
    pub blake3: String,
}

impl Manifest {
    /// Bytes of all files before compression.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// A backup recorded in the cache's registry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Registered {
    /// The backup folder.
    pub path: PathBuf,
    /// When it was made.
    pub created_ms: u64,
    /// Entries it holds.
    pub entries: u64,
    /// Bytes before compression.
    pub bytes: u64,
    /// Whether its files are compressed.
    pub compressed: bool,
}

fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(path))?;
    tmp.write_all(bytes).map_err(io(path))?;
    tmp.as_file().sync_all().map_err(io(path))?;
    tmp.persist(path).map_err(|e| io(path)(e.error))?;
    Ok(())
}

fn stored_name(entry_path: &str, compressed: bool) -> String {
    if compressed { format!("{entry_path}.zst") } else { entry_path.to_string() }
}

/// Writes a backup of the cache in `config.base_dir` into `dest` (created; must be new or empty), streaming
/// each file. The backup is complete when this returns; it is not yet recorded (see [`register`]), so
/// rotation cannot delete an older backup before the caller has checked this one.
pub fn write(config: &CacheConfig, dest: &Path, compress: bool) -> Result<Manifest, BackupError> {
    if std::fs::read_dir(dest).is_ok_and(|mut d| d.next().is_some()) {
        return Err(BackupError::DestinationInUse(dest.to_path_buf()));
    }
    crate::cache::private::create_dir_all(dest).map_err(io(dest))?;
    // An empty folder made beforehand is the backup's own from now on: owner-only, like the cache.
    std::fs::set_permissions(
        dest,
        std::os::unix::fs::PermissionsExt::from_mode(crate::cache::private::DIR_MODE),
    )
    .map_err(io(dest))?;
    let base = &config.base_dir;
    let mut files = Vec::new();
    disk::consistent_segments(&disk::data_dir_for_reading(base), |name, bytes| {
        let entry = stream::write_file(dest, &format!("{}/{name}", disk::DATA_DIR), bytes, compress)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        files.push(entry);
        Ok(())
    })?;
    if let Ok(counters) = std::fs::read(base.join(COUNTERS_FILE)) {
        files.push(stream::write_file(dest, COUNTERS_FILE, &counters, compress)?);
    }
    let entries = match DiskStore::open(StoreOptions { read_only: true, ..StoreOptions::new(base) }) {
        // Cache entries: the stored zstd dictionaries are copied too, but are not entries.
        Ok(store) => store.entries().iter().filter(|(kind, _, _)| *kind != DICTIONARY_KIND).count() as u64,
        Err(_) => 0,
    };
    let manifest = Manifest {
        format: FORMAT,
        created_ms: now_ms(),
        source: base.clone(),
        compressed: compress,
        entries,
        files,
    };
    let text = serde_json::to_vec_pretty(&manifest).map_err(|e| io(dest)(e.into()))?;
    // The files' names are durable before the manifest that promises them, and the manifest's after it.
    let data = dest.join(disk::DATA_DIR);
    if data.is_dir() {
        disk::sync_dir(&data)?;
    }
    atomic_write(&dest.join(MANIFEST_FILE), &text)?;
    disk::sync_dir(dest)?;
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        disk::sync_dir(parent)?;
    }
    Ok(manifest)
}

/// Backups recorded for the cache in `base_dir`, oldest first.
pub fn list(base_dir: &Path) -> Vec<Registered> {
    std::fs::read(base_dir.join(REGISTRY_FILE))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Records the complete (and, when asked, verified) backup in `dest` in the cache's registry, then deletes
/// the oldest recorded backups beyond `persistence.backup_copies`. Deleting removes a backup's manifest
/// first (a folder without it is not a backup) and then only the files its manifest lists; a failure to
/// delete is logged, since the new backup is made.
pub fn register(config: &CacheConfig, dest: &Path, manifest: &Manifest) -> Result<(), BackupError> {
    let base = &config.base_dir;
    crate::cache::private::create_dir_all(base).map_err(io(base))?;
    let dest = std::fs::canonicalize(dest).unwrap_or_else(|_| dest.to_path_buf());
    let mut all = list(base);
    all.retain(|b| b.path != dest);
    all.push(Registered {
        path: dest,
        created_ms: manifest.created_ms,
        entries: manifest.entries,
        bytes: manifest.bytes(),
        compressed: manifest.compressed,
    });
    let keep = (config.persistence.backup_copies as usize).max(1);
    let dropped: Vec<Registered> = all.drain(..all.len().saturating_sub(keep)).collect();
    let text = serde_json::to_vec_pretty(&all).map_err(|e| io(base)(e.into()))?;
    atomic_write(&base.join(REGISTRY_FILE), &text)?;
    for old in dropped {
        tracing::info!(path = %old.path.display(), "removing an old backup (persistence.backup_copies)");
        if let Err(err) = remove(&old.path) {
            tracing::warn!(path = %old.path.display(), "cannot remove an old backup: {err}");
        }
    }
    Ok(())
}

/// Deletes the backup in `dir`: its manifest, then the files it lists, then the folders they leave empty.
/// Anything else in `dir` stays. A folder without a manifest is left alone.
fn remove(dir: &Path) -> Result<(), BackupError> {
    let manifest = match read_manifest(dir) {
        Ok(manifest) => manifest,
        Err(BackupError::NotABackup(_)) => return Ok(()),
        Err(err) => return Err(err),
    };
    let path = dir.join(MANIFEST_FILE);
    std::fs::remove_file(&path).map_err(io(&path))?;
    for file in &manifest.files {
        let path = dir.join(stored_name(&file.path, manifest.compressed));
        match std::fs::remove_file(&path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(io(&path)(err)),
            _ => {}
        }
    }
    // Only empty folders are removed; a folder holding anything else stays.
    let _ = std::fs::remove_dir(dir.join(disk::DATA_DIR));
    let _ = std::fs::remove_dir(dir);
    Ok(())
}

/// Reads a backup's manifest and checks that every path stays inside the cache directory.
pub fn read_manifest(backup: &Path) -> Result<Manifest, BackupError> {
    let path = backup.join(MANIFEST_FILE);
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(BackupError::NotABackup(backup.into()));
        }
        Err(err) => return Err(io(&path)(err)),
    };
    let bad = |reason: String| BackupError::BadManifest { path: path.clone(), reason };
    let mut bytes = Vec::new();
    file.take(MAX_MANIFEST_LEN + 1).read_to_end(&mut bytes).map_err(io(&path))?;
    if bytes.len() as u64 > MAX_MANIFEST_LEN {
        return Err(bad(format!("larger than {MAX_MANIFEST_LEN} bytes; not a manifest this build wrote")));
    }
    let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    if manifest.format != FORMAT {
        return Err(bad(format!("format {} is not supported (this build reads {FORMAT})", manifest.format)));
    }
    let mut seen = std::collections::HashSet::new();
    for file in &manifest.files {
        let segment = file
            .path
            .strip_prefix(&format!("{}/", disk::DATA_DIR))
            .is_some_and(|name| disk::parse_segment_name(name).is_some());
        if !(segment || file.path == COUNTERS_FILE) {
            return Err(bad(format!(
                "refusing path {:?}: a backup holds only data/seg-<id>.log and {COUNTERS_FILE}",
                file.path
            )));
        }
        if !seen.insert(file.path.as_str()) {
            return Err(bad(format!("{:?} is listed twice", file.path)));
        }
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_with_a_segment(base: &Path, copies: u32) -> CacheConfig {
        drop(DiskStore::open(StoreOptions::new(base)).unwrap());
        let mut config = crate::config::Config::default().cache;
        config.base_dir = base.to_path_buf();
        config.persistence.backup_copies = copies;
        config
    }

    #[test]
    fn rotation_waits_for_register_and_deletes_only_what_the_manifest_lists() {
        let root = tempfile::tempdir().unwrap();
        let config = cache_with_a_segment(&root.path().join("cache"), 1);
        let (b1, b2) = (root.path().join("b1"), root.path().join("b2"));
        let first = write(&config, &b1, false).unwrap();
        register(&config, &b1, &first).unwrap();
        std::fs::write(b1.join("notes.txt"), "mine").unwrap();

        // A written backup that has not been recorded (not yet verified, or failing to) rotates nothing.
        let second = write(&config, &b2, true).unwrap();
        assert!(b1.join(MANIFEST_FILE).is_file());
        std::fs::write(b2.join("data/seg-0000000001.log.zst"), b"damaged").unwrap();
        assert!(verify(&b2).is_err());
        assert!(b1.join(MANIFEST_FILE).is_file(), "a failed verification deletes nothing");
        assert_eq!(list(&config.base_dir).len(), 1);

        register(&config, &b2, &second).unwrap();
        assert!(!b1.join(MANIFEST_FILE).exists() && !b1.join("data").exists());
        assert_eq!(std::fs::read_to_string(b1.join("notes.txt")).unwrap(), "mine", "other files stay");
        let listed: Vec<PathBuf> = list(&config.base_dir).into_iter().map(|b| b.path).collect();
        assert_eq!(listed, vec![std::fs::canonicalize(&b2).unwrap()]);
    }
}
