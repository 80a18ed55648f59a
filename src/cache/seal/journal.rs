//! The rekey journal, `<base_dir>/rekey.json`: written (atomically, 0600) before `cache rekey` re-seals the
//! first value and deleted after the last old record is gone. While it exists the cache holds values sealed
//! with either key, so every open loads both key files it names (paths, never key bytes) for reading: a
//! cache whose rekey was killed opens with either key and loses nothing; running `rekey` again finishes it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{CacheKey, KeyFileError};
use crate::cache::private;

const FILE: &str = "rekey.json";

/// An unfinished rekey.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// The key file configured when the rekey began (empty when the cache had no key).
    pub old_key_file: PathBuf,
    /// The key file the cache is being re-sealed with.
    pub new_key_file: PathBuf,
    /// The new key's id, to check that the file still holds that key.
    pub new_key_id: String,
}

impl Journal {
    /// The journal of the cache in `base_dir`, when a rekey is unfinished. An unreadable journal is an
    /// error: ignoring it could hide values sealed with the new key.
    pub fn load(base_dir: &Path) -> std::io::Result<Option<Self>> {
        match std::fs::read(base_dir.join(FILE)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(std::io::Error::other),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes the journal durably (temp file, fsync, rename, fsync of the directory).
    pub fn save(&self, base_dir: &Path) -> std::io::Result<()> {
        let tmp = base_dir.join(format!("{FILE}.tmp"));
        let file = private::create(&tmp)?;
        serde_json::to_writer_pretty(&file, self).map_err(std::io::Error::other)?;
        file.sync_all()?;
        std::fs::rename(&tmp, base_dir.join(FILE))?;
        std::fs::File::open(base_dir)?.sync_all()
    }

    /// Deletes the journal (the rekey is complete).
    pub fn remove(base_dir: &Path) -> std::io::Result<()> {
        match std::fs::remove_file(base_dir.join(FILE)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => std::fs::File::open(base_dir)?.sync_all(),
        }
    }

    /// The keys an open needs for reading while this rekey is unfinished.
    pub fn keys(&self) -> Result<Vec<CacheKey>, KeyFileError> {
        let mut keys = vec![CacheKey::load(&self.new_key_file)?];
        if !self.old_key_file.as_os_str().is_empty() {
            keys.push(CacheKey::load(&self.old_key_file)?);
        }
        Ok(keys)
    }
}
