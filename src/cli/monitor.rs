//! `inferno cache monitor`, `report` and `analyze`: live rates from the writer's published figures, and
//! period summaries and advice from the recorded history (`cache::observe::history`, `cache::observe::analysis`).

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use clap::Args;
use serde_json::json;

use crate::cache::CounterSnapshot;
use crate::cache::clock::now_ms;
use crate::cache::disk::holder;
use crate::cache::observe::analysis::{PeriodSummary, advise};
use crate::cache::observe::history::{self, Live};
use crate::cache::{Access, CacheReport};
use crate::config::units::{SECOND, parse_duration};
use crate::config::{self, LoadOptions};

use super::output;
use super::transfer::open_cache;

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text, SECOND)
        .and_then(|d| if d.is_zero() { Err("must be more than 0".into()) } else { Ok(d) })
}

/// Flags of `cache monitor`.
#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// Time between samples, e.g. 5s.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = duration)]
    interval: Duration,
    /// Also show the writer's memory tier.
    #[arg(long)]
    memory: bool,
    /// Also show disk I/O rates.
    #[arg(long)]
    io: bool,
    /// Stop after this many samples (default: run until interrupted).
    #[arg(long, value_name = "N")]
    count: Option<u64>,
}

/// Flags of `cache report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// How far back to look, e.g. 24h.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = duration)]
    period: Duration,
    /// Also write the report, as JSON, to this file.
    #[arg(long, value_name = "FILE")]
    export: Option<PathBuf>,
}

/// Flags of `cache analyze`.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// How far back to look, e.g. 24h.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = duration)]
    period: Duration,
    /// Also print the period summary and the current figures the advice rests on.
    #[arg(long)]
    detailed: bool,
    /// Write the analysis as JSON to this file.
    #[arg(long, value_name = "FILE")]
    export: Option<PathBuf>,
}

/// The newest figures: the writer's live file when a writer holds the cache, else the saved totals.
fn sample(dir: &std::path::Path) -> (Option<Live>, CounterSnapshot) {
    let live = Live::load(dir).filter(|l| holder(dir) == Some(l.pid));
    let counters = match &live {
        Some(l) => l.counters.clone(),
        None => CounterSnapshot::load(dir).unwrap_or_default(),
    };
    (live, counters)
}

fn totals(c: &CounterSnapshot) -> (u64, u64, u64) {
    c.kinds.iter().fold((0, 0, 0), |(h, m, p), k| (h + k.hits(), m + k.misses, p + k.puts))
}

/// The time the two samples' counters are apart: the writer's own timestamps when both come from the same
/// live writer (its figures are published about once a second), else the wall time between the samples.
fn measured_seconds(before: &Option<Live>, after: &Option<Live>, wall: Duration) -> f64 {
    match (before, after) {
        (Some(b), Some(a)) if a.pid == b.pid && a.time_ms > b.time_ms => {
            (a.time_ms - b.time_ms) as f64 / 1000.0
        }
        _ => wall.as_secs_f64().max(0.001),
    }
}

/// Runs `cache monitor`.
pub fn monitor(options: &LoadOptions, args: &MonitorArgs, json: bool) -> anyhow::Result<()> {
    let resolved = config::load(options)?;
    let dir = resolved.config.cache.base_dir.clone();
    let in_place = std::io::stdout().is_terminal() && !json;
    let (mut prev_live, mut prev) = sample(&dir);
    let mut prev_at = std::time::Instant::now();
    let mut n = 0;
    loop {
        std::thread::sleep(args.interval);
        let (live, now) = sample(&dir);
        let secs = measured_seconds(&prev_live, &live, prev_at.elapsed());
        prev_at = std::time::Instant::now();
        let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs;
        let (h1, m1, p1) = totals(&now);
        let (h0, m0, p0) = totals(&prev);
        let written = |l: &Option<Live>| l.as_ref().map_or(0, |l| l.disk_bytes_written);
        let reads = |l: &Option<Live>| l.as_ref().map_or(0, |l| l.disk_reads);
        let mut row = json!({
            "time_ms": now_ms(),
            "interval_s": secs,
            "writer_pid": live.as_ref().map(|l| l.pid),
            "hits_per_s": rate(h1, h0),
            "misses_per_s": rate(m1, m0),
            "writes_per_s": rate(p1, p0),
            "bytes_put_per_s": rate(now.bytes_put, prev.bytes_put),
        });
        if args.memory {
            row["memory_entries"] = json!(live.as_ref().map(|l| l.memory_entries));
            row["memory_bytes"] = json!(live.as_ref().map(|l| l.memory_bytes));
        }
        if args.io {
            row["disk_bytes_written_per_s"] = json!(rate(written(&live), written(&prev_live)));
            row["disk_reads_per_s"] = json!(rate(reads(&live), reads(&prev_live)));
        }
        if json {
            output::print(&format!("{row}\n"))?;
        } else {
            let mut line = format!(
                "hits/s {:.1}  misses/s {:.1}  writes/s {:.1}  put {}/s",
                rate(h1, h0),
                rate(m1, m0),
                rate(p1, p0),
                ByteSize(rate(now.bytes_put, prev.bytes_put) as u64).display().si()
            );
            if args.memory {
                match &live {
                    Some(l) => write!(
                        line,
                        "  memory {} entries, {}",
                        l.memory_entries,
                        ByteSize(l.memory_bytes).display().si()
                    )?,
                    None => line.push_str("  memory n/a"),
                }
            }
            if args.io {
                let w = rate(written(&live), written(&prev_live)) as u64;
                write!(
                    line,
                    "  disk write {}/s, reads/s {:.1}",
                    ByteSize(w).display().si(),
                    rate(reads(&live), reads(&prev_live))
                )?;
            }
            if live.is_none() {
                line.push_str("  (no writer running: saved totals)");
            }
            if in_place {
                output::print(&format!("\x1b[2K\r{line}"))?;
            } else {
                output::print(&format!("{line}\n"))?;
            }
        }
        prev = now;
        prev_live = live;
        n += 1;
        if args.count.is_some_and(|count| n >= count) {
            if in_place {
                output::print("\n")?;
            }
            return Ok(());
        }
    }
}

fn period_summary(
    options: &LoadOptions,
    period: Duration,
) -> anyhow::Result<(Option<PeriodSummary>, CacheReport, config::CacheConfig)> {
    let cache = open_cache(options, Access::ReadOnly)?;
    let since = now_ms().saturating_sub(period.as_millis() as u64);
    let snapshots = history::load(&cache.config().base_dir, since);
    Ok((PeriodSummary::of(&snapshots), CacheReport::measure(&cache), cache.config().clone()))
}

fn summary_text(p: &Option<PeriodSummary>, period: Duration) -> anyhow::Result<String> {
    let mut out = String::new();
    let Some(p) = p else {
        writeln!(
            out,
            "No activity recorded in the last {} (history needs two snapshots; every writing command and every sync interval records one).",
            humantime::format_duration(period)
        )?;
        return Ok(out);
    };
    let span = humantime::format_duration(Duration::from_secs((p.to_ms - p.from_ms) / 1000));
    writeln!(
        out,
        "Last {} ({} snapshots covering {span}):",
        humantime::format_duration(period),
        p.snapshots
    )?;
    let ratio = p.hit_ratio.map_or("n/a".into(), |r| format!("{:.1}%", r * 100.0));
    writeln!(
        out,
        "  gets: {} hits (memory {}, disk {}), {} misses, hit ratio {ratio}",
        p.memory_hits + p.disk_hits,
        p.memory_hits,
        p.disk_hits,
        p.misses
    )?;
    writeln!(out, "  expired on read: {}; puts: {}", p.expired, p.puts)?;
    writeln!(out, "  evictions: memory {}, disk {}", p.memory_evictions, p.disk_evictions)?;
    if let Some(us) = p.mean_lookup_us {
        writeln!(out, "  mean lookup: {us:.1} µs")?;
    }
    writeln!(out, "  entries {:+}, bytes on disk {:+}", p.entries_change, p.bytes_change)?;
    Ok(out)
}

/// Runs `cache report`.
pub fn report(options: &LoadOptions, args: &ReportArgs, json: bool) -> anyhow::Result<()> {
    let (summary, _, config) = period_summary(options, args.period)?;
    let since = now_ms().saturating_sub(args.period.as_millis() as u64);
    let alerts = crate::alerts::history::load(&config.base_dir, since);
    let access = super::audit::access(options, args.period)?;
    let doc = json!({
        "period_seconds": args.period.as_secs(), "summary": summary, "alerts": alerts, "access": access,
    });
    if let Some(path) = &args.export {
        std::fs::write(path, serde_json::to_string_pretty(&doc)? + "\n")
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    if json {
        return output::print_json(&doc);
    }
    let mut out = summary_text(&summary, args.period)?;
    out.push_str(&super::alerts::history_text(&alerts));
    super::audit::access_text(&mut out, access.as_ref())?;
    if let Some(path) = &args.export {
        writeln!(out, "Wrote the report to {}", path.display())?;
    }
    Ok(output::print(&out)?)
}

/// Runs `cache analyze`.
pub fn analyze(options: &LoadOptions, args: &AnalyzeArgs, json: bool) -> anyhow::Result<()> {
    let (summary, report, config) = period_summary(options, args.period)?;
    let advice = advise(summary.as_ref(), &report, &config);
    let doc = json!({ "period_seconds": args.period.as_secs(), "summary": summary, "current": report, "advice": advice });
    if let Some(path) = &args.export {
        std::fs::write(path, serde_json::to_string_pretty(&doc)? + "\n")
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    if json {
        return output::print_json(&doc);
    }
    let mut out = String::new();
    if args.detailed {
        out.push_str(&summary_text(&summary, args.period)?);
    }
    if advice.is_empty() {
        writeln!(out, "No problems found: every figure is within the configured thresholds.")?;
    }
    for a in &advice {
        writeln!(out, "- {}\n  -> {}", a.finding, a.suggestion)?;
    }
    if let Some(path) = &args.export {
        writeln!(out, "Wrote the analysis to {}", path.display())?;
    }
    Ok(output::print(&out)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(pid: u32, time_ms: u64) -> Option<Live> {
        Some(Live {
            pid,
            time_ms,
            counters: CounterSnapshot::default(),
            memory_entries: 0,
            memory_bytes: 0,
            disk_bytes_written: 0,
            disk_reads: 0,
            disk_syncs: 0,
        })
    }

    #[test]
    fn rates_use_the_time_between_the_figures_not_the_nominal_interval() {
        let wall = Duration::from_millis(5_300);
        assert_eq!(measured_seconds(&live(7, 10_000), &live(7, 14_000), wall), 4.0, "the writer's own clock");
        assert_eq!(
            measured_seconds(&live(7, 10_000), &live(8, 14_000), wall),
            5.3,
            "another writer: wall time"
        );
        assert_eq!(measured_seconds(&live(7, 10_000), &live(7, 10_000), wall), 5.3, "not republished yet");
        assert_eq!(measured_seconds(&None, &None, wall), 5.3);
    }
}
