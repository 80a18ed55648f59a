//! Re-sealing the disk tier: `cache rekey` (every value under a new key) and the re-seal that `cache compact`
//! runs first with encryption on (plain values and other keys' values under the configured key).
//!
//! Crash safety: nothing is overwritten. Each entry is read, opened and written again as a new record sealed
//! with the target key (its chunks under the target key's dedup hash, so they are new records too); the old
//! records become dead and a full compaction deletes them at the end. A rekey first writes the journal
//! (`seal/journal.rs`) naming both key files, and deletes it only after that compaction: while it exists
//! every open loads both keys for reading, so a rekey killed at any point leaves a cache that opens with
//! either key and loses nothing, and running `rekey` again finishes it.

use std::path::Path;

use super::values::{NewEntry, Writing};
use super::{CacheError, Manager, SplitValue, disk_entries};
use crate::cache::Kind;
use crate::cache::dedup::hash::ContentHasher;
use crate::cache::disk::StoredEntry;
use crate::cache::response_store;
use crate::cache::seal::journal::Journal;
use crate::cache::seal::{self, Algorithm, CacheKey, KeyId, Sealer, SetupError};
use crate::config::Encryption;

/// What a rekey or re-seal did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ResealReport {
    /// Live entries looked at.
    pub entries: u64,
    /// Entries written again under the target key (the others already were).
    pub resealed: u64,
    /// The key everything is now sealed with.
    pub key_id: String,
    /// Bytes of the disk tier's files before and after the compaction that deleted the old records (a
    /// rekey's; `cache compact` runs its own).
    pub compacted: Option<(u64, u64)>,
}

/// Called after each entry with (done, total).
pub type Progress<'a> = &'a dyn Fn(u64, u64);

impl Manager {
    /// Re-seals every entry under the key in `new_key_file` and deletes the old records (see the module
    /// doc). The caller holds the writer lock (a read-write manager).
    pub fn rekey(&self, new_key_file: &Path, progress: Progress<'_>) -> Result<ResealReport, CacheError> {
        let base = &self.config.base_dir;
        let io = |source: std::io::Error| {
            CacheError::Key(SetupError::Journal { dir: base.display().to_string(), source })
        };
        let new_key_file = std::path::absolute(new_key_file).map_err(io)?;
        let new_key = CacheKey::load(&new_key_file).map_err(SetupError::Key)?;
        let journal = match Journal::load(base).map_err(io)? {
            Some(j) if j.new_key_id != new_key.id().to_string() => {
                return Err(CacheError::Key(SetupError::Unfinished {
                    key_id: j.new_key_id,
                    file: j.new_key_file.display().to_string(),
                }));
            }
            Some(j) => j,
            None => Journal {
                old_key_file: self.config.security.key_file.clone(),
                new_key_file: new_key_file.clone(),
                new_key_id: new_key.id().to_string(),
            },
        };
        journal.save(base).map_err(io)?;
        let algorithm = match self.config.security.encryption {
            Encryption::ChaCha20Poly1305 => Algorithm::XChaCha20Poly1305,
            Encryption::Aes256Gcm | Encryption::None => Algorithm::Aes256Gcm,
        };
        let mut target = Sealer::new(algorithm, new_key);
        if let Some(current) = &self.sealer {
            target = target.with_keys_of(current);
        }
        let mut report = self.reseal_with(&target, progress)?;
        // Always, even when nothing needed re-sealing: a rekey killed after its last write left the old
        // records for this compaction to delete.
        let pass = self.compact()?;
        report.compacted = Some((pass.bytes_before, pass.bytes_after));
        Journal::remove(base).map_err(io)?;
        Ok(report)
    }

    /// With encryption on, re-seals under the configured key every entry that is plain or sealed with
    /// another key this cache can open (the first step of `cache compact`); `None` with encryption off.
    pub fn reseal(&self, progress: Progress<'_>) -> Result<Option<ResealReport>, CacheError> {
        let Some(sealer) = self.sealer.as_deref().filter(|s| s.seals()) else { return Ok(None) };
        self.reseal_with(sealer, progress).map(Some)
    }

    fn reseal_with(&self, target: &Sealer, progress: Progress<'_>) -> Result<ResealReport, CacheError> {
        let disk = self.disk.as_deref().ok_or(CacheError::NoDiskTier { operation: "re-seal" })?;
        let hasher = self
            .config
            .deduplication
            .enabled
            .then(|| ContentHasher::new(&self.config.deduplication).keyed(target.dedup_key()));
        let with = Writing { sealer: Some(target), hasher: hasher.as_ref() };
        // Dictionaries first: the values compressed with them must stay readable once the old key goes.
        let mut resealed = self.reseal_dictionaries(target)?;
        let entries = disk_entries(disk, None);
        let total = entries.len() as u64;
        for (done, info) in entries.iter().enumerate() {
            // Alone between reading the entry and writing it back: a put or remove in between would be undone.
            let _alone = self.rewrite_gate.write();
            if let Some(stored) = disk.get(info.kind.code(), info.key.as_bytes())?
                && !sealed_with(&stored, target.id())
            {
                let value = self.decode(Some(target), info.kind, &info.key, &stored)?;
                let per_key = match info.kind {
                    Kind::Response => response_store::per_key_ranges(&value).unwrap_or_default(),
                    Kind::Model | Kind::Metadata | Kind::Kv | Kind::Semantic => Vec::new(),
                };
                let entry = NewEntry {
                    kind: info.kind,
                    key: &info.key,
                    name: &stored.name,
                    value: SplitValue { bytes: &value, per_key: &per_key },
                    created_ms: stored.created_ms,
                    expires: stored.expires,
                };
                self.write_disk(disk, with, &entry)?;
                resealed += 1;
            }
            progress(done as u64 + 1, total);
        }
        disk.flush()?;
        Ok(ResealReport { entries: total, resealed, key_id: target.id().to_string(), compacted: None })
    }
}

/// Whether the entry's head and every chunk are sealed with the key `id`.
fn sealed_with(stored: &StoredEntry, id: KeyId) -> bool {
    let by =
        |codec: u8, bytes: &[u8]| seal::is_sealed(codec) && seal::header(bytes).is_ok_and(|(_, k)| k == id);
    by(stored.codec, &stored.value) && stored.chunks.iter().all(|c| by(c.codec, &c.bytes))
}
