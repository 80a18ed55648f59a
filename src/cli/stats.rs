//! `inferno cache stats [--detailed] [--deduplication]` and `inferno cache metrics`: print the measured
//! [`CacheReport`]. While `inferno serve` holds the cache, the report comes from the server (its live
//! counters, and its own figures); otherwise the cache is opened read-only.

use std::fmt::Write;

use bytesize::ByteSize;
use clap::Args;

use crate::admin::{LiveStats, ServerInfo};
use crate::cache::disk::WriteFaultSnapshot;
use crate::cache::observe::report::{KvReport, RemoteReport, SemanticReport};
use crate::cache::{Access, CacheReport, DictionaryReport};
use crate::config::LoadOptions;

use super::live::LiveServer;
use super::output;
use super::transfer::open_cache;

/// Flags of `cache stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Per-kind counters, the memory tier and disk-tier details.
    #[arg(long)]
    detailed: bool,
    /// Only the deduplication figures.
    #[arg(long, conflicts_with = "detailed")]
    deduplication: bool,
}

fn bytes(n: u64) -> String {
    ByteSize(n).display().si().to_string()
}

fn percent(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "n/a".to_string(), |r| format!("{:.1}%", r * 100.0))
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The report: the running server's when one holds the cache (with its own figures), else measured on a
/// read-only open of the cache.
pub(super) fn measure(options: &LoadOptions) -> anyhow::Result<(CacheReport, Option<ServerInfo>)> {
    if let Some(server) = LiveServer::for_options(options)? {
        let live: LiveStats = server.get("/v1/cache/stats")?;
        return Ok((live.report, Some(live.server)));
    }
    let cache = open_cache(options, Access::ReadOnly)?;
    let mut report = CacheReport::measure(&cache);
    if let Some(remote) = report.remote.as_mut().filter(|r| r.status.is_none()) {
        remote.status = cache.remote_status(true);
    }
    Ok((report, None))
}

fn micros(us: Option<u64>) -> String {
    match us {
        None => "n/a".into(),
        Some(us) if us >= 1_000 => format!("{} ms", us / 1_000),
        Some(us) => format!("{us} µs"),
    }
}

/// The remote tier's lines: its status, then its counters (all processes since the cache was created).
fn remote_section(remote: &RemoteReport, out: &mut String) -> anyhow::Result<()> {
    if let Some(status) = &remote.status {
        writeln!(out, "{}", super::status::remote_line(status))?;
    }
    let c = &remote.counters;
    writeln!(
        out,
        "  lookups: {} hits, {} misses, {} errors, {} corrupt, {} skipped (unreachable); latency p50 {}, p99 {}",
        thousands(c.hits),
        thousands(c.misses),
        thousands(c.errors),
        thousands(c.corrupt),
        thousands(c.skipped),
        micros(remote.p50_latency_us),
        micros(remote.p99_latency_us)
    )?;
    writeln!(
        out,
        "  writes: {} ok, {} failed, {} dropped, {} under-replicated",
        thousands(c.writes),
        thousands(c.write_errors),
        thousands(c.dropped_writes),
        thousands(c.under_replicated)
    )?;
    Ok(())
}

/// The dictionaries and the ratio with and without them, measured on the same values.
fn dictionary_line(d: &DictionaryReport, out: &mut String) -> anyhow::Result<()> {
    let ratio = |r: Option<f64>| r.map_or("n/a".to_string(), |r| format!("{r:.2}x"));
    writeln!(
        out,
        "Dictionary: {} stored ({}), current {}; compression {} with it, {} without (measured on {} values)",
        d.dictionaries,
        bytes(d.dictionary_bytes),
        d.current_id.map_or("none".to_string(), |id| id.to_string()),
        ratio(d.ratio_with_dictionary),
        ratio(d.ratio_without_dictionary),
        thousands(d.measured_values)
    )?;
    Ok(())
}

/// Runs `cache stats`.
pub fn stats(options: &LoadOptions, args: &StatsArgs, json: bool) -> anyhow::Result<()> {
    let (report, server) = measure(options)?;
    if json {
        return output::print_json(&match server {
            Some(server) => serde_json::to_value(LiveStats { report, server })?,
            None => serde_json::to_value(&report)?,
        });
    }
    let mut out = String::new();
    if args.deduplication {
        dedup_section(&report, &mut out)?;
        return Ok(output::print(&out)?);
    }
    let kind = format!("{:?}", report.cache_type).to_lowercase();
    writeln!(out, "Cache: {kind} in {}", report.base_dir.display())?;
    let (hits, misses) = report.totals();
    let total_ratio = (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64);
    for k in &report.kinds {
        writeln!(out, "  {:<9} {:>9} entries  {:>10}", k.kind.name(), thousands(k.entries), bytes(k.bytes))?;
    }
    writeln!(
        out,
        "Requests: {} hits, {} misses, hit ratio {}",
        thousands(hits),
        thousands(misses),
        percent(total_ratio)
    )?;
    if let Some(disk) = &report.disk {
        let compression = disk.compression_ratio.map_or("n/a".to_string(), |r| format!("{r:.2}x"));
        writeln!(
            out,
            "Disk: {} of {} ({}), compression ratio {compression}",
            bytes(disk.record_bytes),
            bytes(disk.max_bytes),
            percent(Some(disk.usage_ratio))
        )?;
        write_faults(&disk.writes, &mut out)?;
    }
    if let Some(dictionary) = &report.dictionary {
        dictionary_line(dictionary, &mut out)?;
    }
    if let Some(dedup) = &report.dedup {
        writeln!(
            out,
            "Deduplication: {} values, {} unique, {} saved",
            thousands(dedup.total_values),
            thousands(dedup.unique_values),
            bytes(dedup.bytes_saved)
        )?;
    }
    writeln!(
        out,
        "Evictions: memory {}, disk {}",
        report.memory.evictions,
        report.disk.as_ref().map_or(0, |d| d.evictions)
    )?;
    kv_section(&report.kv, &mut out)?;
    if let Some(server) = &server {
        server_section(server, &mut out)?;
    }
    if let Some(remote) = &report.remote {
        remote_section(remote, &mut out)?;
    }
    if let Some(semantic) = &report.semantic {
        semantic_section(semantic, &mut out)?;
    }
    if args.detailed {
        detailed(&report, if server.is_some() { "the server's" } else { "this process" }, &mut out)?;
    }
    Ok(output::print(&out)?)
}

/// The prompt-prefix KV cache: states and their budget, hits, and what restoring them spared.
fn kv_section(kv: &KvReport, out: &mut String) -> anyhow::Result<()> {
    let ratio = (kv.hits + kv.misses > 0).then(|| kv.hits as f64 / (kv.hits + kv.misses) as f64);
    writeln!(
        out,
        "KV states: {} ({} of {}; {} in RAM of {}), {} hits, {} misses ({}), {} tokens reused, {:.1} s of prefill saved",
        thousands(kv.states),
        bytes(kv.bytes),
        bytes(kv.max_bytes),
        bytes(kv.memory_bytes),
        bytes(kv.memory_max_bytes),
        thousands(kv.hits),
        thousands(kv.misses),
        percent(ratio),
        thousands(kv.tokens_reused),
        kv.prefill_seconds_saved
    )?;
    if kv.writes_dropped + kv.evictions > 0 {
        writeln!(
            out,
            "  {} states not stored (writer queue full or larger than the budget), {} evicted for the budget",
            thousands(kv.writes_dropped),
            thousands(kv.evictions)
        )?;
    }
    Ok(())
}

/// The semantic cache's lines (all processes since the cache was created).
fn semantic_section(semantic: &SemanticReport, out: &mut String) -> anyhow::Result<()> {
    let c = &semantic.counters;
    let state = if semantic.enabled { format!("on, threshold {}", semantic.threshold) } else { "off".into() };
    writeln!(
        out,
        "Semantic: {state}; {} lookups, {} hits ({}), {} guard refusals, {} false-hit reports",
        thousands(c.lookups),
        thousands(c.hits),
        percent(semantic.hit_ratio),
        thousands(c.guard_refusals),
        thousands(c.false_hit_reports)
    )?;
    let mean = semantic.mean_embedding_ms.map_or("n/a".to_string(), |ms| format!("{ms:.1} ms"));
    writeln!(
        out,
        "  embeddings {} (mean {mean}), failed {}, too long {}; vectors stored {}, dropped as stale {}",
        thousands(c.embeddings),
        thousands(c.embedding_failures),
        thousands(c.too_long),
        thousands(c.stored),
        thousands(c.stale_dropped)
    )?;
    Ok(())
}

/// The running server's figures: requests answered, response-cache results, loaded models.
fn server_section(server: &ServerInfo, out: &mut String) -> anyhow::Result<()> {
    let results: Vec<String> = server.responses.iter().map(|(result, n)| format!("{n} {result}")).collect();
    let results = if results.is_empty() { "none yet".to_string() } else { results.join(", ") };
    writeln!(
        out,
        "Server: inferno serve {} (pid {}), {} requests answered; completions: {results}",
        server.version,
        server.pid,
        thousands(server.requests)
    )?;
    let models = &server.models;
    let names: Vec<String> = models
        .models
        .iter()
        .map(|m| match &m.slots {
            Some(s) => format!(
                "{} ({}; slots {}/{} busy, {} queued, {:.1} tokens/s)",
                m.name,
                bytes(m.resident_bytes),
                s.busy,
                s.parallel,
                s.queued,
                s.tokens_per_second()
            ),
            None => format!("{} ({})", m.name, bytes(m.resident_bytes)),
        })
        .collect();
    writeln!(
        out,
        "Models loaded: {} of {} max, {} of {}{}{}",
        models.loaded,
        models.max_models,
        bytes(models.resident_bytes),
        bytes(models.memory_limit_bytes),
        if names.is_empty() { "" } else { ": " },
        names.join(", ")
    )?;
    Ok(())
}

fn dedup_section(report: &CacheReport, out: &mut String) -> anyhow::Result<()> {
    match &report.dedup {
        None => writeln!(
            out,
            "Deduplication is off (cache.deduplication.enabled = false) or there is no disk tier."
        )?,
        Some(d) => {
            writeln!(out, "Total values (all kinds): {}", thousands(d.total_values))?;
            writeln!(out, "Unique values: {}", thousands(d.unique_values))?;
            writeln!(out, "Deduplication ratio: {}", percent(d.ratio))?;
            writeln!(
                out,
                "Space saved: {} ({} stored for {} of payloads)",
                bytes(d.bytes_saved),
                bytes(d.unique_bytes),
                bytes(d.logical_bytes)
            )?;
        }
    }
    Ok(())
}

fn detailed(report: &CacheReport, whose: &str, out: &mut String) -> anyhow::Result<()> {
    writeln!(out, "\nPer kind (counts since the cache was created):")?;
    writeln!(
        out,
        "  {:<9} {:>10} {:>10} {:>10} {:>10} {:>10} {:>9}",
        "kind", "mem hits", "disk hits", "misses", "expired", "puts", "hit ratio"
    )?;
    for k in &report.kinds {
        writeln!(
            out,
            "  {:<9} {:>10} {:>10} {:>10} {:>10} {:>10} {:>9}",
            k.kind.name(),
            k.memory_hits,
            k.disk_hits,
            k.misses,
            k.expired,
            k.puts,
            percent(k.hit_ratio)
        )?;
    }
    let m = &report.memory;
    writeln!(
        out,
        "\nMemory tier ({whose}): {} entries, {} (limits {} entries, {})",
        m.entries,
        bytes(m.bytes),
        thousands(m.max_entries),
        bytes(m.max_bytes)
    )?;
    if let Some(d) = &report.disk {
        writeln!(out, "Disk tier: {} segments, {} in files", d.segments, bytes(d.file_bytes))?;
        writeln!(
            out,
            "  live records {}, all records {} (the difference is reclaimed by `compact`)",
            bytes(d.live_bytes),
            bytes(d.record_bytes)
        )?;
        writeln!(out, "  values {} decoded, {} stored", bytes(d.raw_bytes), bytes(d.stored_bytes))?;
        if d.damaged_ranges > 0 {
            writeln!(
                out,
                "  {} damaged byte ranges found at open: run `inferno cache verify`",
                d.damaged_ranges
            )?;
        }
    }
    if let Some(us) = report.mean_lookup_us {
        writeln!(out, "Mean lookup time: {us:.1} µs")?;
    }
    Ok(())
}

/// Runs `cache metrics`: the key figures, one per line.
pub fn metrics(options: &LoadOptions, json: bool) -> anyhow::Result<()> {
    let (report, _) = measure(options)?;
    if json {
        return output::print_json(&serde_json::to_value(&report)?);
    }
    let (hits, misses) = report.totals();
    let hit_ratio = (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64);
    let mut out = String::new();
    writeln!(out, "Hit ratio: {}", percent(hit_ratio))?;
    writeln!(out, "Miss ratio: {}", percent(hit_ratio.map(|r| 1.0 - r)))?;
    let lookup = report.mean_lookup_us.map_or("n/a".to_string(), |us| format!("{us:.1} µs"));
    writeln!(out, "Average lookup time: {lookup}")?;
    if let Some(d) = &report.disk {
        writeln!(out, "Cache size: {} / {}", bytes(d.record_bytes), bytes(d.max_bytes))?;
        let compression = d.compression_ratio.map_or("n/a".to_string(), |r| format!("{r:.2}x"));
        writeln!(out, "Compression ratio: {compression}")?;
    }
    if let Some(d) = &report.dedup {
        let saved = (d.logical_bytes > 0).then(|| d.bytes_saved as f64 / d.logical_bytes as f64);
        writeln!(out, "Deduplication savings: {}", percent(saved))?;
    }
    Ok(output::print(&out)?)
}

/// The disk writes that failed, when any did: counts by reason, records dropped, and the failure in progress.
fn write_faults(writes: &WriteFaultSnapshot, out: &mut String) -> std::fmt::Result {
    let failed: u64 = writes.errors.values().sum();
    if failed == 0 {
        return Ok(());
    }
    let reasons: Vec<String> =
        writes.errors.iter().filter(|(_, n)| **n > 0).map(|(r, n)| format!("{n} {r}")).collect();
    writeln!(
        out,
        "Disk writes failed: {failed} ({}), {} records dropped",
        reasons.join(", "),
        thousands(writes.dropped_records)
    )?;
    if let Some(fault) = &writes.current {
        writeln!(out, "DEGRADED: cache writes are failing: {}", fault.message)?;
    }
    Ok(())
}
