//! What a disk store holds, counted from its index: entries and bytes per kind, chunks, live and dead bytes.
//! `cache stats`, `disk-usage` and the dedup figures are built on this, and on [`DiskStore::file_usage`], the
//! walk of the cache directory's files by class.

use std::collections::BTreeMap;

use super::{DiskStore, QUARANTINE_DIR};
use crate::cache::record::BlobRef;

impl DiskStore {
    /// A consistent summary of what is stored.
    pub fn stats(&self) -> DiskStats {
        let state = self.state.read();
        let index = &state.index;
        let mut stats = DiskStats::default();
        let mut payloads: BTreeMap<u8, std::collections::HashSet<&[BlobRef]>> = BTreeMap::new();
        for slot in index.entries() {
            let kind = slot.kind();
            let k = stats.kinds.entry(kind).or_default();
            k.entries += 1;
            k.logical_bytes += slot.logical_len();
            k.stored_bytes += slot.loc().len as u64;
            k.value_raw_bytes += slot.raw_len() as u64;
            k.value_stored_bytes += slot.stored_len() as u64;
            if !slot.refs().is_empty() {
                k.payload_entries += 1;
                k.payload_bytes += slot.payload_len();
                payloads.entry(kind).or_default().insert(slot.refs());
            }
            stats.referenced_payload_bytes += slot.payload_len();
        }
        for (kind, distinct) in payloads {
            stats.kinds.entry(kind).or_default().distinct_payloads = distinct.len() as u64;
        }
        for blob in index.blobs.values().filter(|b| b.loc.is_some()) {
            stats.blobs += 1;
            stats.blob_raw_bytes += blob.raw_len as u64;
            stats.blob_stored_bytes += blob.stored_len as u64;
            if blob.refcount == 0 {
                stats.unreferenced_blobs += 1;
            } else {
                stats.referenced_blob_raw_bytes += blob.raw_len as u64;
                stats.referenced_blob_stored_bytes += blob.stored_len as u64;
            }
        }
        stats.live_bytes = index.live_bytes();
        stats.record_bytes = index.total_bytes();
        stats.segments = index.segments.len() as u64;
        stats.damaged_ranges = state.damage.len() as u64;
        stats
    }

    /// Bytes of the files in the cache directory by class: segments and hints in `data/`, the quarantine,
    /// and everything else at the top level (counters, history, backups list, lock).
    pub fn file_usage(&self) -> FileUsage {
        let base = self.options.dir.as_path();
        let mut usage = FileUsage::default();
        for (dir, class) in
            [(self.data_dir.as_path(), None), (&*base.join(QUARANTINE_DIR), Some(2)), (base, Some(3))]
        {
            let fs = self.fs();
            for name in fs.list(dir).unwrap_or_default() {
                let path = dir.join(&name);
                let Some(len) = (!fs.is_dir(&path)).then(|| fs.len(&path).ok()).flatten() else { continue };
                let hint = name.ends_with(".hint");
                match class.unwrap_or(if hint { 1 } else { 0 }) {
                    0 => usage.segments += len,
                    1 => usage.hints += len,
                    2 => usage.quarantine += len,
                    _ => usage.other += len,
                }
            }
        }
        usage
    }
}

/// Bytes on disk by file class ([`DiskStore::file_usage`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileUsage {
    /// Segment files in `data/`.
    pub segments: u64,
    /// Hint files in `data/`.
    pub hints: u64,
    /// Quarantined records.
    pub quarantine: u64,
    /// Other files at the top of the cache directory.
    pub other: u64,
}

impl FileUsage {
    /// All of them.
    pub fn total(&self) -> u64 {
        self.segments + self.hints + self.quarantine + self.other
    }

    /// `(class name, bytes)` pairs in the order `disk-usage` prints them.
    pub fn classes(&self) -> [(&'static str, u64); 4] {
        [
            ("segments", self.segments),
            ("hints", self.hints),
            ("quarantine", self.quarantine),
            ("other", self.other),
        ]
    }
}

/// What is stored, per kind and overall.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DiskStats {
    /// Per kind code.
    pub kinds: BTreeMap<u8, KindStats>,
    /// Chunks stored.
    pub blobs: u64,
    /// Chunks no live entry refers to (freed by compaction).
    pub unreferenced_blobs: u64,
    /// Decoded bytes of all stored chunks.
    pub blob_raw_bytes: u64,
    /// Stored bytes of all chunks.
    pub blob_stored_bytes: u64,
    /// Decoded payload bytes summed over entries (what storage would hold without dedup).
    pub referenced_payload_bytes: u64,
    /// Decoded bytes of the chunks some live entry refers to (what storage holds with dedup).
    pub referenced_blob_raw_bytes: u64,
    /// Stored bytes of the chunks some live entry refers to.
    pub referenced_blob_stored_bytes: u64,
    /// Bytes of records still needed.
    pub live_bytes: u64,
    /// Bytes of all records (live + garbage awaiting compaction).
    pub record_bytes: u64,
    /// Segment files.
    pub segments: u64,
    /// Damaged byte ranges found when the store was opened.
    pub damaged_ranges: u64,
}

/// Entries of one kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindStats {
    /// Live entries.
    pub entries: u64,
    /// Decoded bytes of their values.
    pub logical_bytes: u64,
    /// Bytes of their entry records (chunks are counted in `DiskStats`).
    pub stored_bytes: u64,
    /// Decoded bytes of the entries' own values (the per-key part when deduplicated).
    pub value_raw_bytes: u64,
    /// Stored (compressed) bytes of the entries' own values.
    pub value_stored_bytes: u64,
    /// Entries whose payload is made of shared chunks.
    pub payload_entries: u64,
    /// Decoded payload bytes of those entries, summed.
    pub payload_bytes: u64,
    /// Distinct payloads among them (entries with the same chunk list share one).
    pub distinct_payloads: u64,
}
