//! The Prometheus text exposition of a [`CacheReport`], built with the `prometheus` crate. Used by
//! `inferno cache export --format prometheus` and by `inferno serve`'s `/metrics`.
//!
//! Metrics (labels in braces):
//! - `inferno_cache_hits_total{type,tier}` counter — gets answered, tier `memory` or `disk`
//! - `inferno_cache_misses_total{type}` counter — gets that found nothing
//! - `inferno_cache_expired_total{type}` counter — gets that found an expired entry
//! - `inferno_cache_puts_total{type}` counter
//! - `inferno_cache_evictions_total{tier}` counter — `memory` for room, `disk` for `max_size_gb`
//! - `inferno_cache_entries{type}` gauge
//! - `inferno_cache_size_bytes{tier}` gauge — memory: bytes held; disk: bytes of records
//! - `inferno_cache_max_size_bytes` gauge — `cache.max_size_gb`
//! - `inferno_cache_compression_ratio` gauge — decoded bytes / stored bytes
//! - `inferno_cache_deduplication_ratio` gauge — share of deduplicated values that were duplicates
//! - `inferno_cache_deduplication_saved_bytes` gauge
//! - `inferno_cache_lookups_total` counter and `inferno_cache_lookup_seconds_total` counter — timed gets and
//!   their summed time; their rates' quotient is the mean lookup time that
//!   `cache.alerts.thresholds.response_time_max_ms` is about
//!
//! Counters are totals since the cache directory was created (see `stats.rs`). The compression and dedup
//! ratios are absent while there is nothing to measure them on (no disk tier, or nothing stored yet).

use prometheus::{
    Counter, Encoder, Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use super::report::CacheReport;

/// The report in Prometheus text format.
pub fn encode(report: &CacheReport) -> Result<String, prometheus::Error> {
    let registry = Registry::new();
    let counter = |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
        let c = IntCounterVec::new(Opts::new(name, help), labels)?;
        registry.register(Box::new(c.clone()))?;
        Ok(c)
    };
    let hits = counter(
        "inferno_cache_hits_total",
        "Cache gets answered, by entry type and tier.",
        &["type", "tier"],
    )?;
    let misses = counter("inferno_cache_misses_total", "Cache gets that found nothing.", &["type"])?;
    let expired =
        counter("inferno_cache_expired_total", "Cache gets that found an expired entry.", &["type"])?;
    let puts = counter("inferno_cache_puts_total", "Entries stored.", &["type"])?;
    let evictions =
        counter("inferno_cache_evictions_total", "Entries evicted for room, by tier.", &["tier"])?;
    let entries = IntGaugeVec::new(Opts::new("inferno_cache_entries", "Live entries, by type."), &["type"])?;
    registry.register(Box::new(entries.clone()))?;
    for k in &report.kinds {
        let name = k.kind.name();
        hits.with_label_values(&[name, "memory"]).inc_by(k.memory_hits);
        hits.with_label_values(&[name, "disk"]).inc_by(k.disk_hits);
        misses.with_label_values(&[name]).inc_by(k.misses);
        expired.with_label_values(&[name]).inc_by(k.expired);
        puts.with_label_values(&[name]).inc_by(k.puts);
        entries.with_label_values(&[name]).set(k.entries as i64);
    }
    evictions.with_label_values(&["memory"]).inc_by(report.memory.evictions);
    let size = IntGaugeVec::new(Opts::new("inferno_cache_size_bytes", "Bytes held, by tier."), &["tier"])?;
    registry.register(Box::new(size.clone()))?;
    size.with_label_values(&["memory"]).set(report.memory.bytes as i64);
    if let Some(disk) = &report.disk {
        evictions.with_label_values(&["disk"]).inc_by(disk.evictions);
        size.with_label_values(&["disk"]).set(disk.record_bytes as i64);
        let max = IntGauge::new("inferno_cache_max_size_bytes", "The disk size limit (cache.max_size_gb).")?;
        max.set(disk.max_bytes as i64);
        registry.register(Box::new(max))?;
        if let Some(ratio) = disk.compression_ratio {
            let g = Gauge::new("inferno_cache_compression_ratio", "Decoded bytes / stored bytes on disk.")?;
            g.set(ratio);
            registry.register(Box::new(g))?;
        }
    }
    if let Some(dedup) = &report.dedup {
        if let Some(ratio) = dedup.ratio {
            let g = Gauge::new(
                "inferno_cache_deduplication_ratio",
                "Share of deduplicated values that were duplicates.",
            )?;
            g.set(ratio);
            registry.register(Box::new(g))?;
        }
        let saved = IntGauge::new(
            "inferno_cache_deduplication_saved_bytes",
            "Payload bytes not stored thanks to dedup.",
        )?;
        saved.set(dedup.bytes_saved as i64);
        registry.register(Box::new(saved))?;
    }
    let lookups = IntCounter::new("inferno_cache_lookups_total", "Cache gets timed (lookup, read, decode).")?;
    lookups.inc_by(report.lookups);
    registry.register(Box::new(lookups))?;
    let lookup_seconds = Counter::new(
        "inferno_cache_lookup_seconds_total",
        "Summed time of the timed cache gets, in seconds.",
    )?;
    lookup_seconds.inc_by(report.lookup_seconds);
    registry.register(Box::new(lookup_seconds))?;
    let mut out = Vec::new();
    TextEncoder::new().encode(&registry.gather(), &mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}
