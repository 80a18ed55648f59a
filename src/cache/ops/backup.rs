//! Backups of a cache directory: a consistent snapshot (even while a writer runs), a manifest with a BLAKE3
//! checksum per file, optional zstd compression, verification, restore, and rotation.
//!
//! A backup is a folder: `inferno-backup.json` (the manifest, written last — a folder without it is an
//! unfinished backup) and the files it lists, relative to the cache directory (`data/seg-*.log`,
//! `counters.json`), each with a `.zst` suffix when compressed. Hint files are not copied; a restored cache
//! rebuilds them at its first open. Backups made by this cache are listed in `<base_dir>/backups.json`.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cache::clock::now_ms;
use crate::cache::disk::{self, DiskError, DiskStore, StoreOptions};
use crate::cache::observe::stats::COUNTERS_FILE;
use crate::config::CacheConfig;

/// The manifest's file name inside a backup folder.
pub const MANIFEST_FILE: &str = "inferno-backup.json";
/// The list of backups made from a cache, in its directory.
pub const REGISTRY_FILE: &str = "backups.json";
const FORMAT: u32 = 1;

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

fn write_file(dest: &Path, rel: &str, bytes: &[u8], compress: bool) -> Result<FileEntry, BackupError> {
    let target = dest.join(stored_name(rel, compress));
    if let Some(parent) = target.parent() {
        crate::cache::private::create_dir_all(parent).map_err(io(parent))?;
    }
    let stored = if compress { zstd::bulk::compress(bytes, 3).map_err(io(&target))? } else { bytes.to_vec() };
    let mut file = crate::cache::private::create(&target).map_err(io(&target))?;
    file.write_all(&stored).map_err(io(&target))?;
    file.sync_all().map_err(io(&target))?;
    Ok(FileEntry {
        path: rel.to_string(),
        size: bytes.len() as u64,
        blake3: blake3::hash(bytes).to_hex().to_string(),
    })
}

/// Backs up the cache in `config.base_dir` into `dest` (created; must be new or empty), then records it in
/// the registry and deletes the oldest recorded backups beyond `persistence.backup_copies`.
pub fn create(config: &CacheConfig, dest: &Path, compress: bool) -> Result<Manifest, BackupError> {
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
    let data_dir = base.join(disk::DATA_DIR);
    let mut files = Vec::new();
    disk::consistent_segments(&data_dir, |name, bytes| {
        let entry = write_file(dest, &format!("{}/{name}", disk::DATA_DIR), bytes, compress)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        files.push(entry);
        Ok(())
    })?;
    if let Ok(counters) = std::fs::read(base.join(COUNTERS_FILE)) {
        files.push(write_file(dest, COUNTERS_FILE, &counters, compress)?);
    }
    let entries = match DiskStore::open(StoreOptions { read_only: true, ..StoreOptions::new(base) }) {
        Ok(store) => store.entries().len() as u64,
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
    let text = serde_json::to_vec_pretty(&manifest).expect("a manifest serialises");
    atomic_write(&dest.join(MANIFEST_FILE), &text)?;
    register(config, dest, &manifest)?;
    Ok(manifest)
}

/// Backups recorded for the cache in `base_dir`, oldest first.
pub fn list(base_dir: &Path) -> Vec<Registered> {
    std::fs::read(base_dir.join(REGISTRY_FILE))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

fn register(config: &CacheConfig, dest: &Path, manifest: &Manifest) -> Result<(), BackupError> {
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
    let keep = config.persistence.backup_copies as usize;
    while all.len() > keep {
        let old = all.remove(0);
        if old.path.join(MANIFEST_FILE).is_file() {
            tracing::info!(path = %old.path.display(), "removing an old backup (persistence.backup_copies)");
            std::fs::remove_dir_all(&old.path).map_err(io(&old.path))?;
        }
    }
    atomic_write(&base.join(REGISTRY_FILE), &serde_json::to_vec_pretty(&all).expect("serialises"))
}

/// Reads a backup's manifest and checks that every path stays inside the cache directory.
pub fn read_manifest(backup: &Path) -> Result<Manifest, BackupError> {
    let path = backup.join(MANIFEST_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(BackupError::NotABackup(backup.into()));
        }
        Err(err) => return Err(io(&path)(err)),
    };
    let bad = |reason: String| BackupError::BadManifest { path: path.clone(), reason };
    let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    if manifest.format != FORMAT {
        return Err(bad(format!("format {} is not supported (this build reads {FORMAT})", manifest.format)));
    }
    for file in &manifest.files {
        let rel = Path::new(&file.path);
        let safe = rel.components().all(|c| matches!(c, Component::Normal(_)))
            && (file.path == COUNTERS_FILE || file.path.starts_with(&format!("{}/", disk::DATA_DIR)));
        if !safe {
            return Err(bad(format!(
                "refusing path {:?}: it would write outside the cache's data",
                file.path
            )));
        }
    }
    Ok(manifest)
}

/// Reads one file of a backup and checks it against the manifest; returns its content.
fn read_checked(backup: &Path, manifest: &Manifest, file: &FileEntry) -> Result<Vec<u8>, BackupError> {
    let path = backup.join(stored_name(&file.path, manifest.compressed));
    let stored = std::fs::read(&path).map_err(io(&path))?;
    let mismatch = |reason: String| BackupError::Checksum { path: path.clone(), reason };
    let bytes = if manifest.compressed {
        let limit = usize::try_from(file.size).map_err(|_| mismatch("size too large".into()))?;
        zstd::bulk::decompress(&stored, limit).map_err(|e| mismatch(format!("cannot decompress: {e}")))?
    } else {
        stored
    };
    if bytes.len() as u64 != file.size {
        return Err(mismatch(format!("{} bytes, manifest says {}", bytes.len(), file.size)));
    }
    let sum = blake3::hash(&bytes).to_hex().to_string();
    if sum != file.blake3 {
        return Err(mismatch(format!("BLAKE3 {sum}, manifest says {}", file.blake3)));
    }
    Ok(bytes)
}

/// Re-reads every file of a backup and checks its size and checksum.
pub fn verify(backup: &Path) -> Result<Manifest, BackupError> {
    let manifest = read_manifest(backup)?;
    for file in &manifest.files {
        read_checked(backup, &manifest, file)?;
    }
    Ok(manifest)
}

/// Replaces the cache's data with the backup's. Every file is checked before anything in the cache is
/// touched; a damaged backup is refused. Takes the writer lock, so no other process may be writing.
pub fn restore(config: &CacheConfig, backup: &Path) -> Result<Manifest, BackupError> {
    let manifest = read_manifest(backup)?;
    let contents: Vec<(String, Vec<u8>)> = manifest
        .files
        .iter()
        .map(|file| read_checked(backup, &manifest, file).map(|bytes| (file.path.clone(), bytes)))
        .collect::<Result<_, _>>()?;
    let base = &config.base_dir;
    crate::cache::private::create_dir_all(base).map_err(io(base))?;
    let _lock = disk::lock_dir(base)?;
    let staging = base.join("restore.tmp");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io(&staging))?;
    }
    crate::cache::private::create_dir_all(&staging.join(disk::DATA_DIR)).map_err(io(&staging))?;
    for (rel, bytes) in &contents {
        let target = staging.join(rel);
        let mut file = crate::cache::private::create(&target).map_err(io(&target))?;
        file.write_all(bytes).map_err(io(&target))?;
        file.sync_all().map_err(io(&target))?;
    }
    let data = base.join(disk::DATA_DIR);
    let old = base.join("data.old");
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(io(&old))?;
    }
    if data.exists() {
        std::fs::rename(&data, &old).map_err(io(&data))?;
    }
    std::fs::rename(staging.join(disk::DATA_DIR), &data).map_err(io(&data))?;
    if let Some((_, counters)) = contents.iter().find(|(rel, _)| rel == COUNTERS_FILE) {
        atomic_write(&base.join(COUNTERS_FILE), counters)?;
    }
    std::fs::File::open(base).and_then(|d| d.sync_all()).map_err(io(base))?;
    for dir in [&old, &staging] {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(io(dir))?;
        }
    }
    Ok(manifest)
}
