//! The Prometheus text exposition of a [`CacheReport`], built with the `prometheus` crate. Used by
//! `inferno cache export --format prometheus` and by `inferno serve`'s `/metrics`.
//!
//! Metrics (labels in braces):
//! - `inferno_cache_hits_total{type,tier}` counter — gets answered, tier `memory`, `disk` or `remote`
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
//! - `inferno_cache_write_errors_total{reason}` counter — disk writes that failed since the process opened
//!   the cache: `no_space`, `io_error`, `read_only`, `short_write`, `other`
//! - `inferno_cache_dropped_records_total` counter — records dropped because the write carrying them failed
//! - `inferno_cache_degraded` gauge — 1 while the last disk write failed (writes resume on their own)
//! - `inferno_cache_dedup_collisions_total` counter — values stored whole because a weak hash matched other
//!   bytes
//! - `inferno_cache_lookups_total` counter and `inferno_cache_lookup_seconds_total` counter — timed gets and
//!   their summed time; their rates' quotient is the mean lookup time that
//!   `cache.alerts.thresholds.response_time_max_ms` is about
//!
//! The prompt-prefix KV cache (kind `kv`; its hits and misses are `inferno_cache_hits_total{type="kv"}` and
//! `inferno_cache_misses_total{type="kv"}`):
//! - `inferno_cache_kv_tokens_reused_total` counter — prompt tokens restored instead of prefilled
//! - `inferno_prefill_seconds_saved_total` counter — prefill time those restores spared, as the slots estimate
//! - `inferno_cache_kv_bytes` gauge — bytes of saved states; `inferno_cache_kv_max_bytes` gauge — their budget
//! - `inferno_cache_kv_dropped_writes_total` counter — states not stored: the background writer was full
//! - `inferno_cache_kv_evictions_total` counter — states removed, least recently used first, for the budget
//!
//! With the remote tier (`[cache.distributed]`):
//! - `inferno_cache_remote_lookups_total{result}` counter — `hit`, `miss`, `error` (failed or timed out),
//!   `corrupt` (bad checksum or format), `skipped` (Redis unreachable); all but `hit` are misses
//! - `inferno_cache_remote_writes_total{result}` counter — `ok`, `error`, `dropped` (queue full or Redis
//!   unreachable)
//! - `inferno_cache_remote_under_replicated_writes_total` counter — writes acknowledged by fewer replicas
//!   than `replication_factor - 1`
//! - `inferno_cache_remote_lookup_seconds` histogram — time of lookups sent to Redis
//! - `inferno_cache_remote_up` gauge — 1 when a seed answered at the last look, else 0
//! - `inferno_cache_remote_replicas` gauge — the fewest healthy replicas any primary has
//! - `inferno_cache_remote_queued_writes` gauge — writes waiting for the background writer
//!
//! With the semantic cache (`[cache.semantic]`, docs/semantic-cache.md), counters:
//! - `inferno_cache_semantic_lookups_total`, `inferno_cache_semantic_hits_total` — exact misses searched,
//!   and answered by a near-duplicate
//! - `inferno_cache_semantic_embeddings_total`, `inferno_cache_semantic_embedding_seconds_total` — texts
//!   embedded and their summed time
//! - `inferno_cache_semantic_embedding_failures_total` — embeddings that failed (exact cache only)
//! - `inferno_cache_semantic_too_long_total` — last user messages over `max_prompt_tokens`
//! - `inferno_cache_semantic_guard_refusals_total` — candidates over the threshold refused by a guard
//! - `inferno_cache_semantic_stale_dropped_total` — vectors dropped because their answer was gone
//! - `inferno_cache_semantic_vectors_stored_total` — vectors added
//! - `inferno_cache_semantic_false_hit_reports_total` — false hits reported (`cache semantic forget`)
//!
//! Counters are totals since the cache directory was created (see `stats.rs`). The compression and dedup
//! ratios are absent while there is nothing to measure them on (no disk tier, or nothing stored yet).

use prometheus::{
    Counter, Encoder, Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use std::fmt::Write;

use super::report::{CacheReport, KvReport, RemoteReport};
use crate::cache::disk::WriteFaultSnapshot;
use crate::cache::remote::LATENCY_BOUNDS_US;
use crate::cache::semantic::counters::SemanticSnapshot;

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
        if report.remote.is_some() {
            hits.with_label_values(&[name, "remote"]).inc_by(k.remote_hits);
        }
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
        register_writes(&registry, &disk.writes)?;
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
        let collisions = IntCounter::new(
            "inferno_cache_dedup_collisions_total",
            "Values stored whole because a weak content hash matched a chunk with other bytes.",
        )?;
        collisions.inc_by(dedup.collisions);
        registry.register(Box::new(collisions))?;
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
    register_kv(&registry, &report.kv)?;
    if let Some(remote) = &report.remote {
        register_remote(&registry, remote)?;
    }
    if let Some(semantic) = &report.semantic {
        register_semantic(&registry, &semantic.counters)?;
    }
    let mut out = Vec::new();
    TextEncoder::new().encode(&registry.gather(), &mut out)?;
    let mut text = String::from_utf8_lossy(&out).into_owned();
    if let Some(remote) = &report.remote {
        latency_histogram(remote, &mut text);
    }
    Ok(text)
}

fn register_kv(registry: &Registry, kv: &KvReport) -> Result<(), prometheus::Error> {
    let int_counter = |name: &str, help: &str, value: u64| -> Result<(), prometheus::Error> {
        let c = IntCounter::new(name, help)?;
        c.inc_by(value);
        registry.register(Box::new(c))
    };
    int_counter(
        "inferno_cache_kv_tokens_reused_total",
        "Prompt tokens restored from saved KV states instead of being prefilled.",
        kv.tokens_reused,
    )?;
    int_counter(
        "inferno_cache_kv_dropped_writes_total",
        "KV states not stored because the background writer's queue was full.",
        kv.writes_dropped,
    )?;
    int_counter(
        "inferno_cache_kv_evictions_total",
        "KV states removed, least recently used first, to stay under cache.kv.max_size_gb.",
        kv.evictions,
    )?;
    let saved = Counter::new(
        "inferno_prefill_seconds_saved_total",
        "Prefill time spared by restoring saved KV states, in seconds (estimated by the model's slots).",
    )?;
    saved.inc_by(kv.prefill_seconds_saved);
    registry.register(Box::new(saved))?;
    for (name, help, value) in [
        ("inferno_cache_kv_bytes", "Bytes of saved KV states.", kv.bytes),
        ("inferno_cache_kv_max_bytes", "The KV states' disk budget (cache.kv.max_size_gb).", kv.max_bytes),
    ] {
        let g = IntGauge::new(name, help)?;
        g.set(value as i64);
        registry.register(Box::new(g))?;
    }
    Ok(())
}

fn register_semantic(registry: &Registry, c: &SemanticSnapshot) -> Result<(), prometheus::Error> {
    let counters = [
        ("inferno_cache_semantic_lookups_total", "Exact misses searched in the semantic index.", c.lookups),
        ("inferno_cache_semantic_hits_total", "Semantic lookups answered by a near-duplicate.", c.hits),
        ("inferno_cache_semantic_embeddings_total", "Texts embedded by the semantic cache.", c.embeddings),
        (
            "inferno_cache_semantic_embedding_failures_total",
            "Embeddings that failed; those requests used the exact cache only.",
            c.embedding_failures,
        ),
        (
            "inferno_cache_semantic_too_long_total",
            "Last user messages over cache.semantic.max_prompt_tokens, matched exactly only.",
            c.too_long,
        ),
        (
            "inferno_cache_semantic_guard_refusals_total",
            "Candidates over the similarity threshold refused by a guard.",
            c.guard_refusals,
        ),
        (
            "inferno_cache_semantic_stale_dropped_total",
            "Semantic vectors dropped because their answer or entry was gone.",
            c.stale_dropped,
        ),
        ("inferno_cache_semantic_vectors_stored_total", "Vectors added to the semantic index.", c.stored),
        (
            "inferno_cache_semantic_false_hit_reports_total",
            "False semantic hits reported.",
            c.false_hit_reports,
        ),
    ];
    for (name, help, value) in counters {
        let counter = IntCounter::new(name, help)?;
        counter.inc_by(value);
        registry.register(Box::new(counter))?;
    }
    let seconds = Counter::new(
        "inferno_cache_semantic_embedding_seconds_total",
        "Summed time of the semantic cache's embeddings, in seconds.",
    )?;
    seconds.inc_by(c.embedding_nanos as f64 / 1e9);
    registry.register(Box::new(seconds))?;
    Ok(())
}

fn register_writes(registry: &Registry, writes: &WriteFaultSnapshot) -> Result<(), prometheus::Error> {
    let errors = IntCounterVec::new(
        Opts::new("inferno_cache_write_errors_total", "Disk writes that failed, by reason."),
        &["reason"],
    )?;
    registry.register(Box::new(errors.clone()))?;
    for (reason, n) in &writes.errors {
        errors.with_label_values(&[reason.as_str()]).inc_by(*n);
    }
    let dropped = IntCounter::new(
        "inferno_cache_dropped_records_total",
        "Records dropped because the disk write carrying them failed.",
    )?;
    dropped.inc_by(writes.dropped_records);
    registry.register(Box::new(dropped))?;
    let degraded = IntGauge::new("inferno_cache_degraded", "1 while the last disk write failed.")?;
    degraded.set(i64::from(writes.current.is_some()));
    registry.register(Box::new(degraded))?;
    Ok(())
}

fn register_remote(registry: &Registry, remote: &RemoteReport) -> Result<(), prometheus::Error> {
    let c = &remote.counters;
    let lookups = IntCounterVec::new(
        Opts::new("inferno_cache_remote_lookups_total", "Remote-tier lookups, by result."),
        &["result"],
    )?;
    registry.register(Box::new(lookups.clone()))?;
    for (result, n) in [
        ("hit", c.hits),
        ("miss", c.misses),
        ("error", c.errors),
        ("corrupt", c.corrupt),
        ("skipped", c.skipped),
    ] {
        lookups.with_label_values(&[result]).inc_by(n);
    }
    let writes = IntCounterVec::new(
        Opts::new("inferno_cache_remote_writes_total", "Remote-tier writes, by result."),
        &["result"],
    )?;
    registry.register(Box::new(writes.clone()))?;
    for (result, n) in [("ok", c.writes), ("error", c.write_errors), ("dropped", c.dropped_writes)] {
        writes.with_label_values(&[result]).inc_by(n);
    }
    let under = prometheus::IntCounter::new(
        "inferno_cache_remote_under_replicated_writes_total",
        "Remote writes acknowledged by fewer replicas than replication_factor - 1.",
    )?;
    under.inc_by(c.under_replicated);
    registry.register(Box::new(under))?;
    if let Some(status) = &remote.status {
        let up = IntGauge::new("inferno_cache_remote_up", "1 when a Redis seed answered at the last look.")?;
        up.set(i64::from(status.reachable));
        registry.register(Box::new(up))?;
        if let Some(replicas) = status.replicas_seen {
            let g = IntGauge::new(
                "inferno_cache_remote_replicas",
                "The fewest healthy replicas any primary has.",
            )?;
            g.set(i64::from(replicas));
            registry.register(Box::new(g))?;
        }
        if let Some(queued) = status.queued_writes {
            let g = IntGauge::new("inferno_cache_remote_queued_writes", "Remote writes waiting to be sent.")?;
            g.set(queued as i64);
            registry.register(Box::new(g))?;
        }
    }
    Ok(())
}

/// The lookup latency histogram, written by hand from the saved buckets (the `prometheus` crate only builds
/// histograms from live observations).
fn latency_histogram(remote: &RemoteReport, out: &mut String) {
    let c = &remote.counters;
    let name = "inferno_cache_remote_lookup_seconds";
    let _ = writeln!(out, "# HELP {name} Time of remote-tier lookups sent to Redis.");
    let _ = writeln!(out, "# TYPE {name} histogram");
    let mut seen = 0;
    for (i, bound) in LATENCY_BOUNDS_US.iter().enumerate() {
        seen += c.latency_buckets.get(i).copied().unwrap_or(0);
        let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {seen}", *bound as f64 / 1e6);
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", c.lookups());
    let _ = writeln!(out, "{name}_sum {}", c.lookup_nanos as f64 / 1e9);
    let _ = writeln!(out, "{name}_count {}", c.lookups());
}
