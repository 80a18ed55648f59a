//! One measured picture of the cache — entries and bytes per kind and tier, hit/miss/eviction counts,
//! compression and dedup figures, disk use against the limit — built from the manager's counters and the
//! disk tier's index. `cache stats`, `cache metrics` and `cache export --format json|prometheus` all print
//! this; nothing is computed for display only.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::cache::disk::{KindStats, WriteFaultSnapshot};
use crate::cache::kind::Kind;
use crate::cache::manager::{DICTIONARY_KIND, DictionaryReport, Manager};
use crate::cache::remote::{RemoteSnapshot, RemoteStatus};
use crate::cache::semantic::counters::SemanticSnapshot;
use crate::config::CacheType;

/// The whole picture.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CacheReport {
    /// `cache.type`.
    pub cache_type: CacheType,
    /// `cache.enabled`.
    pub enabled: bool,
    /// The cache directory.
    pub base_dir: PathBuf,
    /// Per kind.
    pub kinds: Vec<KindReport>,
    /// The memory tier of this process.
    pub memory: MemoryReport,
    /// The disk tier, when the cache type has one.
    pub disk: Option<DiskReport>,
    /// Content dedup of payloads, when enabled and there is a disk tier.
    pub dedup: Option<DedupReport>,
    /// The trained zstd dictionaries and the compression ratio with and without them, when there are any.
    #[serde(default)]
    pub dictionary: Option<DictionaryReport>,
    /// Mean time of a cache get (lookup, read, checksum, decompression), in microseconds; `None` before the
    /// first get.
    pub mean_lookup_us: Option<f64>,
    /// Timed gets (all processes, since the cache was created): the count behind `mean_lookup_us`.
    #[serde(skip)]
    pub lookups: u64,
    /// Their summed time, in seconds.
    #[serde(skip)]
    pub lookup_seconds: f64,
    /// The remote tier (Redis), when `cache.distributed.enabled` or it has ever been used.
    pub remote: Option<RemoteReport>,
    /// The prompt-prefix KV cache (kind `kv`).
    #[serde(default)]
    pub kv: KvReport,
    /// The semantic cache, when `cache.semantic.enabled` or it has ever been used.
    #[serde(default)]
    pub semantic: Option<SemanticReport>,
}

/// The prompt-prefix KV cache: saved states, their budgets, and what restoring them spared.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct KvReport {
    /// Saved states (live entries of kind `kv`).
    pub states: u64,
    /// Their bytes, before compression.
    pub bytes: u64,
    /// The states' disk budget: `cache.kv.max_size_gb` (at most `cache.max_size_gb`) in bytes.
    pub max_bytes: u64,
    /// States held now in this process's KV memory tier.
    pub memory_states: u64,
    /// Their bytes (as the tier weighs them).
    pub memory_bytes: u64,
    /// `cache.kv.memory_limit_gb` in bytes.
    pub memory_max_bytes: u64,
    /// Gets that found a state (any tier; all processes, since the cache was created).
    pub hits: u64,
    /// Gets that found none usable.
    pub misses: u64,
    /// Prompt tokens restored instead of prefilled.
    pub tokens_reused: u64,
    /// Prefill time spared, in seconds (as the model's slots estimate it).
    pub prefill_seconds_saved: f64,
    /// States not stored because the background writer's queue was full.
    pub writes_dropped: u64,
    /// States removed, least recently used first, to stay under `max_bytes`.
    pub evictions: u64,
}

/// The semantic cache: its counters (all processes, since the cache was created) and settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SemanticReport {
    /// `cache.semantic.enabled`.
    pub enabled: bool,
    /// `cache.semantic.threshold`.
    pub threshold: f64,
    /// Lookups, hits, embeddings and their time, failures, guard refusals, ...
    #[serde(flatten)]
    pub counters: SemanticSnapshot,
    /// Hits over lookups.
    pub hit_ratio: Option<f64>,
    /// Mean time of an embedding, in milliseconds.
    pub mean_embedding_ms: Option<f64>,
}

/// The remote tier: its counters (all processes, since the cache was created) and its status.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RemoteReport {
    /// Counters: hits, misses, errors, corrupt values, skipped reads, writes and their failures.
    #[serde(flatten)]
    pub counters: RemoteSnapshot,
    /// Mean time of a lookup sent to Redis, in microseconds.
    pub mean_latency_us: Option<f64>,
    /// Median lookup time (upper bound of its histogram bucket), in microseconds.
    pub p50_latency_us: Option<u64>,
    /// 99th percentile lookup time (upper bound of its histogram bucket), in microseconds.
    pub p99_latency_us: Option<u64>,
    /// Nodes, cluster or standalone, replicas seen, reachable or not; `None` when not looked at.
    pub status: Option<RemoteStatus>,
}

/// One kind.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KindReport {
    /// The kind.
    pub kind: Kind,
    /// Live entries on disk (or in memory for `type = memory`).
    pub entries: u64,
    /// Their size before compression and dedup.
    pub bytes: u64,
    /// Gets answered by the memory tier (all processes, since the cache was created).
    pub memory_hits: u64,
    /// Gets answered by the disk tier.
    pub disk_hits: u64,
    /// Gets answered by the remote tier.
    pub remote_hits: u64,
    /// Gets that found nothing.
    pub misses: u64,
    /// Gets that found an expired entry.
    pub expired: u64,
    /// Puts.
    pub puts: u64,
    /// Hits / (hits + misses); `None` before the first get.
    pub hit_ratio: Option<f64>,
}

/// The memory tier.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemoryReport {
    /// Entries held now by this process.
    pub entries: u64,
    /// Bytes held now by this process.
    pub bytes: u64,
    /// `response.max_entries`.
    pub max_entries: u64,
    /// The byte bound (`response.max_size_gb`, at most `max_size_gb`).
    pub max_bytes: u64,
    /// Entries evicted for room (all processes).
    pub evictions: u64,
}

/// The disk tier.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DiskReport {
    /// Bytes of segment and hint files on disk.
    pub file_bytes: u64,
    /// Bytes of records still needed.
    pub live_bytes: u64,
    /// Bytes of all records, including garbage awaiting compaction.
    pub record_bytes: u64,
    /// `cache.max_size_gb` in bytes.
    pub max_bytes: u64,
    /// `record_bytes / max_bytes`.
    pub usage_ratio: f64,
    /// Segment files.
    pub segments: u64,
    /// Decoded bytes of every stored value and chunk (the dictionaries themselves are not values: their size
    /// is in `dictionary.dictionary_bytes`).
    pub raw_bytes: u64,
    /// Their stored (compressed) bytes.
    pub stored_bytes: u64,
    /// `raw_bytes / stored_bytes`; `None` when nothing is stored.
    pub compression_ratio: Option<f64>,
    /// Entries removed, oldest first, to stay under the size limit (all processes).
    pub evictions: u64,
    /// Damaged byte ranges found when the cache was opened.
    pub damaged_ranges: u64,
    /// Writes that failed since this process opened the cache, by reason (`no_space`, `io_error`,
    /// `read_only`, `short_write`, `other`), the records they dropped, and the failure in progress.
    #[serde(default)]
    pub writes: WriteFaultSnapshot,
}

/// Dedup of payloads.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DedupReport {
    /// Entries whose payload is stored as shared chunks.
    pub total_values: u64,
    /// Distinct payloads among them.
    pub unique_values: u64,
    /// `1 - unique_values / total_values`: the share of values that were duplicates.
    pub ratio: Option<f64>,
    /// Payload bytes summed over entries (what would be stored without dedup).
    pub logical_bytes: u64,
    /// Bytes of the chunks actually stored for them.
    pub unique_bytes: u64,
    /// `logical_bytes - unique_bytes`.
    pub bytes_saved: u64,
    /// Values stored whole because a weak hash (xxh32, xxh64) matched a chunk holding other bytes.
    #[serde(default)]
    pub collisions: u64,
}

fn kinds_of(kinds: &[KindReport], kind: Kind) -> Option<&KindReport> {
    kinds.iter().find(|k| k.kind == kind)
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

impl CacheReport {
    /// Measures `manager` now.
    pub fn measure(manager: &Manager) -> Self {
        let config = manager.config();
        let counters = manager.counters().snapshot();
        let disk_stats = manager.disk_stats();
        let memory_entries = if !manager.has_disk() { manager.entries(None) } else { Vec::new() };
        let kinds: Vec<KindReport> = counters
            .kinds
            .iter()
            .map(|c| {
                let (entries, bytes) = match &disk_stats {
                    Some(stats) => {
                        let k = stats.kinds.get(&c.kind.code()).copied().unwrap_or_default();
                        (k.entries, k.logical_bytes)
                    }
                    None => {
                        let of_kind = memory_entries.iter().filter(|e| e.kind == c.kind);
                        of_kind.fold((0, 0), |(n, b), e| (n + 1, b + e.size))
                    }
                };
                KindReport {
                    kind: c.kind,
                    entries,
                    bytes,
                    memory_hits: c.memory_hits,
                    disk_hits: c.disk_hits,
                    remote_hits: c.remote_hits,
                    misses: c.misses,
                    expired: c.expired,
                    puts: c.puts,
                    hit_ratio: c.hit_ratio(),
                }
            })
            .collect();
        let memory_stats = manager.memory_stats();
        let memory = MemoryReport {
            entries: memory_stats.as_ref().map_or(0, |m| m.entries),
            bytes: memory_stats.as_ref().map_or(0, |m| m.bytes),
            max_entries: config.response.max_entries,
            max_bytes: config.response.max_size_gb.bytes().min(config.max_size_gb.bytes()),
            evictions: counters.evictions,
        };
        let disk = disk_stats.as_ref().map(|stats| {
            let values = stats.kinds.iter().filter(|(code, _)| **code != DICTIONARY_KIND).map(|(_, k)| k);
            let values: KindStats = values.fold(KindStats::default(), |mut acc, k| {
                acc.value_raw_bytes += k.value_raw_bytes;
                acc.value_stored_bytes += k.value_stored_bytes;
                acc
            });
            let raw_bytes = values.value_raw_bytes + stats.blob_raw_bytes;
            let stored_bytes = values.value_stored_bytes + stats.blob_stored_bytes;
            let max_bytes = config.max_size_gb.bytes();
            DiskReport {
                file_bytes: manager.disk_file_bytes(),
                live_bytes: stats.live_bytes,
                record_bytes: stats.record_bytes,
                max_bytes,
                usage_ratio: ratio(stats.record_bytes, max_bytes).unwrap_or(0.0),
                segments: stats.segments,
                raw_bytes,
                stored_bytes,
                compression_ratio: ratio(raw_bytes, stored_bytes),
                evictions: counters.disk_evictions,
                damaged_ranges: stats.damaged_ranges,
                writes: manager.write_faults().unwrap_or_default(),
            }
        });
        let dedup = disk_stats.as_ref().filter(|_| config.deduplication.enabled).map(|stats| {
            let (total, unique) = stats
                .kinds
                .values()
                .fold((0, 0), |(t, u), k| (t + k.payload_entries, u + k.distinct_payloads));
            DedupReport {
                total_values: total,
                unique_values: unique,
                ratio: ratio(total - unique, total),
                logical_bytes: stats.referenced_payload_bytes,
                unique_bytes: stats.referenced_blob_raw_bytes,
                bytes_saved: stats.referenced_payload_bytes.saturating_sub(stats.referenced_blob_raw_bytes),
                collisions: manager.counters().dedup_collisions.load(std::sync::atomic::Ordering::Relaxed),
            }
        });
        let kv = {
            let of_kv = kinds_of(&kinds, Kind::Kv);
            let memory = manager.kv_memory_stats().unwrap_or_default();
            KvReport {
                states: of_kv.map_or(0, |k| k.entries),
                bytes: of_kv.map_or(0, |k| k.bytes),
                max_bytes: config.kv.budget_bytes(config.max_size_gb.bytes()),
                memory_states: memory.entries,
                memory_bytes: memory.bytes,
                memory_max_bytes: config.kv.memory_limit_gb.bytes(),
                hits: of_kv.map_or(0, |k| k.memory_hits + k.disk_hits + k.remote_hits),
                misses: of_kv.map_or(0, |k| k.misses),
                tokens_reused: counters.kv.tokens_reused,
                prefill_seconds_saved: counters.kv.prefill_seconds_saved(),
                writes_dropped: counters.kv.writes_dropped,
                evictions: counters.kv.evictions,
            }
        };
        Self {
            kv,
            cache_type: config.kind,
            enabled: config.enabled,
            base_dir: config.base_dir.clone(),
            kinds,
            memory,
            disk,
            dedup,
            dictionary: manager.dictionary_report(),
            mean_lookup_us: ratio(counters.lookup_nanos, counters.lookups).map(|ns| ns / 1000.0),
            lookups: counters.lookups,
            lookup_seconds: counters.lookup_nanos as f64 / 1e9,
            remote: (config.distributed.enabled || counters.remote != RemoteSnapshot::default()).then(|| {
                let r = &counters.remote;
                RemoteReport {
                    mean_latency_us: ratio(r.lookup_nanos, r.lookups()).map(|ns| ns / 1000.0),
                    p50_latency_us: r.latency_quantile_us(0.5),
                    p99_latency_us: r.latency_quantile_us(0.99),
                    counters: r.clone(),
                    status: manager.remote_status(false),
                }
            }),
            semantic: (config.semantic.enabled || !counters.semantic.is_empty()).then(|| SemanticReport {
                enabled: config.semantic.enabled,
                threshold: config.semantic.threshold,
                hit_ratio: counters.semantic.hit_ratio(),
                mean_embedding_ms: counters.semantic.mean_embedding_ms(),
                counters: counters.semantic.clone(),
            }),
        }
    }

    /// Hits and misses over all kinds.
    pub fn totals(&self) -> (u64, u64) {
        self.kinds
            .iter()
            .fold((0, 0), |(h, m), k| (h + k.memory_hits + k.disk_hits + k.remote_hits, m + k.misses))
    }
}
