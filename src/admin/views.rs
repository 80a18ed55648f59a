//! The replies of the admin routes: the documents `cache stats|clear|compact|verify|backup --json` print,
//! built from the cache's own reports so the offline command and the server produce the same one.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::cache::disk::{CompactReport, VerifyReport};
use crate::cache::ops::backup::Manifest;
use crate::cache::private::{self, Loose};
use crate::cache::{CacheReport, DICTIONARY_KIND, Kind, Removal};
use crate::models::pool::ModelCacheStats;

/// `GET /v1/cache/stats`: the [`CacheReport`] of the server's open cache (live counters included) and the
/// server's own figures.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LiveStats {
    /// The cache, as `cache stats --json` prints it.
    #[serde(flatten)]
    pub report: CacheReport,
    /// The server that measured it.
    pub server: ServerInfo,
}

/// What a running server reports about itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServerInfo {
    /// Its process id (the one in the cache's lock file).
    pub pid: u32,
    /// The version of inferno it runs.
    pub version: String,
    /// HTTP requests answered since it started (the admin socket's are not counted).
    pub requests: u64,
    /// Completion requests by response-cache result: `HIT`, `MISS`, `BYPASS`.
    pub responses: BTreeMap<String, u64>,
    /// Its model cache: the loaded models, limits and counters.
    pub models: ModelCacheStats,
}

/// Entries of one kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindCount {
    /// The kind.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// How many.
    pub entries: u64,
}

/// `DELETE /v1/cache` and `cache clear|cleanup --json`: what was removed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovalView {
    /// Entries removed, per kind.
    pub removed: Vec<KindCount>,
    /// Entries removed in total.
    pub entries: u64,
    /// Their size before compression and dedup.
    pub bytes: u64,
    /// Bytes the removal (and the compaction after it) gave back on disk.
    pub bytes_freed_on_disk: u64,
    /// Bytes of cache files before.
    pub file_bytes_before: u64,
    /// Bytes of cache files after.
    pub file_bytes_after: u64,
    /// What clearing the remote tier (Redis) did, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteClearView>,
}

/// The remote tier's part of a removal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RemoteClearView {
    /// Matching keys were removed.
    Cleared {
        /// Keys removed.
        removed: u64,
        /// Keys looked at.
        scanned: u64,
        /// Primary nodes scanned.
        nodes: u64,
    },
    /// Redis could not be reached or refused.
    Failed {
        /// Why.
        error: String,
    },
}

impl RemovalView {
    /// This removal with the outcome of clearing the remote tier (`None`: there is none).
    pub fn with_remote(
        mut self,
        remote: Option<Result<crate::cache::remote::RemoteRemoval, String>>,
    ) -> Self {
        self.remote = remote.map(|r| match r {
            Ok(r) => {
                RemoteClearView::Cleared { removed: r.removed, scanned: r.scanned, nodes: r.nodes as u64 }
            }
            Err(error) => RemoteClearView::Failed { error },
        });
        self
    }
}

impl From<&Removal> for RemovalView {
    fn from(r: &Removal) -> Self {
        Self {
            removed: r.removed.iter().map(|&(kind, entries)| KindCount { kind, entries }).collect(),
            entries: r.total(),
            bytes: r.bytes,
            bytes_freed_on_disk: r.bytes_freed(),
            file_bytes_before: r.file_bytes_before,
            file_bytes_after: r.file_bytes_after,
            remote: None,
        }
    }
}

/// `POST /v1/cache/compact` and `cache compact --json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactView {
    /// Bytes of segment and hint files before.
    pub bytes_before: u64,
    /// Bytes after.
    pub bytes_after: u64,
    /// Records copied.
    pub records_kept: u64,
    /// Damaged records left behind.
    pub damaged_skipped: u64,
    /// Records whose value was re-encoded under the current zstd dictionary.
    #[serde(default)]
    pub reencoded: u64,
}

impl From<&CompactReport> for CompactView {
    fn from(r: &CompactReport) -> Self {
        Self {
            bytes_before: r.bytes_before,
            bytes_after: r.bytes_after,
            records_kept: r.records_kept,
            damaged_skipped: r.damaged_skipped,
            reencoded: r.reencoded,
        }
    }
}

/// One damaged record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DamagedView {
    /// `response`, `model`, `metadata`, `dictionary`, or `chunk`.
    pub kind: String,
    /// Its key (for chunks, the chunk reference).
    pub key: String,
    /// Segment id.
    pub segment: u32,
    /// Offset in the segment.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
}

/// A damaged byte range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeView {
    /// Segment id.
    pub segment: u32,
    /// Offset in the segment.
    pub offset: u64,
    /// Length in bytes.
    pub length: u64,
}

/// `POST /v1/cache/verify` and `cache verify|repair --json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyView {
    /// Entries checked.
    pub entries_checked: u64,
    /// Chunks checked.
    pub chunks_checked: u64,
    /// Damaged records.
    pub damaged: Vec<DamagedView>,
    /// Byte ranges holding no intact record.
    pub damaged_ranges: Vec<RangeView>,
    /// True when damage was found and fixed.
    pub fixed: bool,
    /// Files and directories of the cache more open than 0700 / 0600 (with `fix`: those that were).
    #[serde(default)]
    pub loose_permissions: Vec<Loose>,
    /// True when `loose_permissions` were tightened.
    #[serde(default)]
    pub permissions_fixed: bool,
}

impl VerifyView {
    /// Adds the permission check of the cache directory `base_dir`; with `fix`, tightens what is loose.
    pub fn with_permissions(mut self, base_dir: &std::path::Path, fix: bool) -> std::io::Result<Self> {
        self.loose_permissions = private::check(base_dir)?;
        if fix && !self.loose_permissions.is_empty() {
            private::tighten(&self.loose_permissions)?;
            self.permissions_fixed = true;
        }
        Ok(self)
    }

    /// True when nothing is damaged.
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty() && self.damaged_ranges.is_empty()
    }
}

impl From<&VerifyReport> for VerifyView {
    fn from(r: &VerifyReport) -> Self {
        let damaged = r.damaged.iter().map(|d| DamagedView {
            kind: match d.kind {
                DICTIONARY_KIND => "dictionary",
                code => Kind::from_code(code).map_or("chunk", Kind::name),
            }
            .to_string(),
            key: d.key.clone(),
            segment: d.segment,
            offset: d.offset,
            reason: d.reason.clone(),
        });
        let ranges =
            r.damaged_ranges.iter().map(|&(segment, offset, length)| RangeView { segment, offset, length });
        Self {
            entries_checked: r.entries_checked,
            chunks_checked: r.chunks_checked,
            damaged: damaged.collect(),
            damaged_ranges: ranges.collect(),
            fixed: r.fixed,
            loose_permissions: Vec::new(),
            permissions_fixed: false,
        }
    }
}

/// `POST /v1/cache/backup` and `cache backup --json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupView {
    /// Where the backup is.
    pub destination: PathBuf,
    /// Files in it.
    pub files: usize,
    /// Live entries backed up.
    pub entries: u64,
    /// Bytes of its files before compression.
    pub bytes: u64,
    /// Whether its files are zstd-compressed.
    pub compressed: bool,
    /// Whether it was read back and checked.
    pub verified: bool,
}

impl BackupView {
    /// The view of a backup written to `destination` with `manifest`.
    pub fn new(destination: PathBuf, manifest: &Manifest, verified: bool) -> Self {
        Self {
            destination,
            files: manifest.files.len(),
            entries: manifest.entries,
            bytes: manifest.bytes(),
            compressed: manifest.compressed,
            verified,
        }
    }
}
