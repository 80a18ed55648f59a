//! Selecting entries (`--type`, `--pattern`, `--older-than`) and removing them, with the bytes that the
//! removal gave back on disk. `clear` and `cleanup` are built on this.
//!
//! A key selects the one entry stored under exactly that key. A pattern is a shell glob (`*`, `?`, `[abc]`) matched against the entry's name — the model name for
//! responses, the model file name for model and metadata entries — and against its key; either may match.

use std::time::Duration;

use serde::Serialize;

use super::{CacheError, EntryInfo, Manager};
use crate::cache::clock::now_ms;
use crate::cache::kind::Kind;

/// Which entries to select. Empty means all.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only these kinds (empty = every kind).
    pub kinds: Vec<Kind>,
    /// Only the entry stored under exactly this key.
    pub key: Option<String>,
    /// Only entries whose name or key matches this glob.
    pub pattern: Option<glob::Pattern>,
    /// Only entries created longer ago than this.
    pub older_than: Option<Duration>,
}

impl Filter {
    /// True when `entry` is selected.
    pub fn matches(&self, entry: &EntryInfo, now_ms: u64) -> bool {
        if !self.kinds.is_empty() && !self.kinds.contains(&entry.kind) {
            return false;
        }
        if self.key.as_ref().is_some_and(|key| *key != entry.key) {
            return false;
        }
        if let Some(pattern) = &self.pattern
            && !pattern.matches(&entry.name)
            && !pattern.matches(&entry.key)
        {
            return false;
        }
        match self.older_than {
            Some(age) => entry.created_ms < now_ms.saturating_sub(age.as_millis() as u64),
            None => true,
        }
    }
}

/// What [`Manager::remove_matching`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Removal {
    /// Entries removed, per kind.
    pub removed: Vec<(Kind, u64)>,
    /// Their size before compression and dedup.
    pub bytes: u64,
    /// Bytes of cache files before the removal and compaction.
    pub file_bytes_before: u64,
    /// Bytes of cache files after.
    pub file_bytes_after: u64,
}

impl Removal {
    /// Entries removed in total.
    pub fn total(&self) -> u64 {
        self.removed.iter().map(|(_, n)| n).sum()
    }

    /// Bytes the removal freed on disk.
    pub fn bytes_freed(&self) -> u64 {
        self.file_bytes_before.saturating_sub(self.file_bytes_after)
    }
}

impl Manager {
    /// Entries `filter` selects.
    pub fn select(&self, filter: &Filter) -> Vec<EntryInfo> {
        let now = now_ms();
        self.entries(None).into_iter().filter(|e| filter.matches(e, now)).collect()
    }

    /// Removes the entries `filter` selects, then compacts so the space is really given back.
    pub fn remove_matching(&self, filter: &Filter) -> Result<Removal, CacheError> {
        let file_bytes_before = self.disk_file_bytes();
        let mut removal = Removal { file_bytes_before, ..Removal::default() };
        for entry in self.select(filter) {
            if self.remove(entry.kind, &entry.key)? {
                removal.bytes += entry.size;
                match removal.removed.iter_mut().find(|(k, _)| *k == entry.kind) {
                    Some((_, n)) => *n += 1,
                    None => removal.removed.push((entry.kind, 1)),
                }
            }
        }
        if let Some(disk) = self.disk.as_deref() {
            if removal.total() > 0 {
                disk.compact()?;
            }
            disk.flush()?;
            removal.file_bytes_after = disk.file_bytes();
        }
        Ok(removal)
    }
}
