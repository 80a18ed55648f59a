//! Turning history into a period summary (`cache report`) and concrete advice (`cache analyze`). Every
//! finding cites the measured numbers it rests on and the configured threshold it was compared with.

use serde::Serialize;

use super::history::Snapshot;
use super::report::CacheReport;
use super::stats::CounterSnapshot;
use crate::config::CacheConfig;

/// Activity between the first and the last snapshot of a period.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PeriodSummary {
    /// Start of the data, ms since the epoch.
    pub from_ms: u64,
    /// End of the data.
    pub to_ms: u64,
    /// Snapshots in the period.
    pub snapshots: usize,
    /// Hits answered by the memory tier.
    pub memory_hits: u64,
    /// Hits answered by the disk tier.
    pub disk_hits: u64,
    /// Misses.
    pub misses: u64,
    /// Gets that found an expired entry.
    pub expired: u64,
    /// Puts.
    pub puts: u64,
    /// Memory-tier evictions.
    pub memory_evictions: u64,
    /// Disk evictions for size.
    pub disk_evictions: u64,
    /// Hits / gets.
    pub hit_ratio: Option<f64>,
    /// Mean get time in the period, µs.
    pub mean_lookup_us: Option<f64>,
    /// Change in live entries.
    pub entries_change: i64,
    /// Change in record bytes on disk.
    pub bytes_change: i64,
}

fn sum(c: &CounterSnapshot, f: impl Fn(&super::stats::KindSnapshot) -> u64) -> u64 {
    c.kinds.iter().map(f).sum()
}

impl PeriodSummary {
    /// The summary of `snapshots` (oldest first); `None` with fewer than two.
    pub fn of(snapshots: &[Snapshot]) -> Option<Self> {
        let (first, last) = (snapshots.first()?, snapshots.last()?);
        if snapshots.len() < 2 {
            return None;
        }
        let delta =
            |f: &dyn Fn(&CounterSnapshot) -> u64| f(&last.counters).saturating_sub(f(&first.counters));
        let memory_hits = delta(&|c| sum(c, |k| k.memory_hits));
        let disk_hits = delta(&|c| sum(c, |k| k.disk_hits));
        let misses = delta(&|c| sum(c, |k| k.misses));
        let gets = memory_hits + disk_hits + misses;
        let lookups = delta(&|c| c.lookups);
        Some(Self {
            from_ms: first.time_ms,
            to_ms: last.time_ms,
            snapshots: snapshots.len(),
            memory_hits,
            disk_hits,
            misses,
            expired: delta(&|c| sum(c, |k| k.expired)),
            puts: delta(&|c| sum(c, |k| k.puts)),
            memory_evictions: delta(&|c| c.evictions),
            disk_evictions: delta(&|c| c.disk_evictions),
            hit_ratio: (gets > 0).then(|| (memory_hits + disk_hits) as f64 / gets as f64),
            mean_lookup_us: (lookups > 0)
                .then(|| delta(&|c| c.lookup_nanos) as f64 / lookups as f64 / 1000.0),
            entries_change: last.entries as i64 - first.entries as i64,
            bytes_change: last.record_bytes as i64 - first.record_bytes as i64,
        })
    }
}

/// One finding of `cache analyze`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Advice {
    /// What was measured and how it compares with the threshold.
    pub finding: String,
    /// What to do, as a command where there is one.
    pub suggestion: String,
}

/// Gets needed before ratios are judged.
const MIN_GETS: u64 = 20;

/// Advice from the period summary (if any) and the current report, against the configured thresholds.
pub fn advise(period: Option<&PeriodSummary>, report: &CacheReport, config: &CacheConfig) -> Vec<Advice> {
    let t = &config.alerts.thresholds;
    let mut out = Vec::new();
    if let Some(p) = period {
        let gets = p.memory_hits + p.disk_hits + p.misses;
        if let Some(ratio) = p.hit_ratio.filter(|r| gets >= MIN_GETS && *r < t.hit_ratio_min) {
            out.push(Advice {
                finding: format!(
                    "hit ratio {:.1}% over {gets} gets is below the {:.0}% target (alerts.thresholds.hit_ratio_min)",
                    ratio * 100.0,
                    t.hit_ratio_min * 100.0
                ),
                suggestion: "see the findings below for why entries are missing; warm the cache with `inferno cache warm`".into(),
            });
        }
        if p.expired > 0 && p.misses > 0 && p.expired * 4 >= p.misses {
            let ttl = humantime::format_duration(config.response.ttl_hours.duration());
            out.push(Advice {
                finding: format!(
                    "{} of {} misses found an expired entry: entries expire before they are reused (response TTL {ttl})",
                    p.expired, p.misses
                ),
                suggestion: "raise the TTL, e.g. `inferno cache configure response --ttl 24h`".into(),
            });
        }
        if p.memory_evictions > 0 && p.misses > 0 {
            out.push(Advice {
                finding: format!(
                    "{} memory-tier evictions while {} gets missed",
                    p.memory_evictions, p.misses
                ),
                suggestion:
                    "raise the memory bounds, e.g. `inferno cache configure response --max-entries 50000`"
                        .into(),
            });
        }
        if p.disk_evictions > 0 {
            out.push(Advice {
                finding: format!("{} entries were evicted to stay under cache.max_size_gb", p.disk_evictions),
                suggestion:
                    "raise the limit, e.g. `inferno cache configure --max-size 20GB`, or compress harder"
                        .into(),
            });
        }
        if let Some(us) = p.mean_lookup_us.filter(|us| *us > t.response_time_max_ms as f64 * 1000.0) {
            out.push(Advice {
                finding: format!("mean lookup time {us:.0} µs is above {} ms (alerts.thresholds.response_time_max_ms)", t.response_time_max_ms),
                suggestion: "use faster compression, e.g. `inferno cache configure --compress zstd --compression-level 1`".into(),
            });
        }
    }
    if let Some(disk) = &report.disk {
        if disk.usage_ratio > t.size_usage_max {
            out.push(Advice {
                finding: format!(
                    "disk use {:.1}% of cache.max_size_gb is above {:.0}% (alerts.thresholds.size_usage_max)",
                    disk.usage_ratio * 100.0,
                    t.size_usage_max * 100.0
                ),
                suggestion: "free space with `inferno cache cleanup --older-than 7d` and `inferno cache compact`, or raise --max-size".into(),
            });
        }
        if let Some(ratio) =
            disk.compression_ratio.filter(|r| disk.raw_bytes > 0 && *r < t.compression_ratio_min)
        {
            let c = &config.compression;
            let now = if c.enabled {
                format!("{:?} level {}", c.algorithm, c.level).to_lowercase()
            } else {
                "off".into()
            };
            out.push(Advice {
                finding: format!(
                    "compression ratio {ratio:.2}x (compression {now}) is below {:.1}x (alerts.thresholds.compression_ratio_min)",
                    t.compression_ratio_min
                ),
                suggestion: "compress harder, e.g. `inferno cache configure --compress zstd --compression-level 9`; values under persistence.compression_threshold_kb are stored raw".into(),
            });
        }
        if disk.record_bytes > 0 && disk.live_bytes * 2 < disk.record_bytes {
            out.push(Advice {
                finding: format!(
                    "only {} of {} bytes on disk are live records",
                    disk.live_bytes, disk.record_bytes
                ),
                suggestion: "reclaim the rest with `inferno cache compact`".into(),
            });
        }
        if disk.damaged_ranges > 0 {
            out.push(Advice {
                finding: format!(
                    "{} damaged byte ranges were found when the cache was opened",
                    disk.damaged_ranges
                ),
                suggestion: "run `inferno cache verify --detailed`, then `inferno cache repair --auto-fix`"
                    .into(),
            });
        }
    }
    out
}
