//! `inferno cache clear | cleanup | compact | verify | repair | disk-usage`: parse, run the operation on
//! its [`Target`] (the running server, or the cache opened here; the work is `admin::ops` either way) and
//! print what was really done, measured.

use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use clap::Args;
use serde_json::json;

use crate::admin::{ClearRequest, RemoteClearView, RemovalView, VerifyRequest, VerifyView};
use crate::cache::disk::QUARANTINE_DIR;
use crate::cache::{Access, Kind};
use crate::config::units::{SECOND, parse_duration};
use crate::config::{self, LoadOptions};

use super::target::Target;
use super::transfer::open_cache;
use super::{UsageError, output};

use super::output::bytes;

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text, SECOND)
}

/// Flags of `cache clear`.
#[derive(Debug, Args)]
pub struct ClearArgs {
    /// Remove every entry.
    #[arg(long, conflicts_with_all = ["kinds", "older_than", "pattern", "key"])]
    all: bool,
    /// Only the entry stored under exactly this key (as `X-Inferno-Cache-Key` shows it).
    #[arg(long, value_name = "KEY")]
    key: Option<String>,
    /// Only these kinds: response, model, metadata, kv, semantic (comma-separated).
    #[arg(long = "type", value_name = "TYPE", value_delimiter = ',')]
    kinds: Vec<Kind>,
    /// Only entries created longer ago than this, e.g. 24h or 7d.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    older_than: Option<Duration>,
    /// Only entries whose name (model name or file name) or key matches this glob, e.g. "llama*".
    #[arg(long, value_name = "GLOB")]
    pattern: Option<String>,
    /// Do not ask for confirmation.
    #[arg(long, short)]
    yes: bool,
}

/// Flags of `cache cleanup`.
#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Remove entries created longer ago than this (default: cache.cleanup.age_threshold_days).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    older_than: Option<Duration>,
}

impl VerifyArgs {
    /// True with `--fix`.
    pub(super) fn fixes(&self) -> bool {
        self.fix
    }
}

/// Flags of `cache verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// List every damaged record.
    #[arg(long)]
    detailed: bool,
    /// Quarantine damaged records into quarantine/ and drop them from the index.
    #[arg(long)]
    fix: bool,
}

/// Flags of `cache repair`.
#[derive(Debug, Args)]
pub struct RepairArgs {
    /// Quarantine damaged records without asking.
    #[arg(long)]
    auto_fix: bool,
}

/// Flags of `cache disk-usage`.
#[derive(Debug, Args)]
pub struct DiskUsageArgs {
    /// Show every segment file.
    #[arg(long)]
    detailed: bool,
}

fn confirm(question: &str) -> anyhow::Result<bool> {
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

fn print_removal(what: &str, removal: &RemovalView, json: bool) -> anyhow::Result<()> {
    crate::audit::cli::affected(removal.entries, removal.bytes);
    if json {
        output::print_json(&serde_json::to_value(removal)?)?;
        return remote_outcome(removal);
    }
    let mut out = String::new();
    if removal.entries == 0 {
        writeln!(out, "{what}: no entries matched")?;
    } else {
        let per_kind: Vec<String> =
            removal.removed.iter().map(|c| format!("{} {}", c.entries, c.kind)).collect();
        writeln!(
            out,
            "{what}: removed {} entries ({}), {} of values",
            removal.entries,
            per_kind.join(", "),
            bytes(removal.bytes)
        )?;
        writeln!(
            out,
            "Disk: {} -> {} ({} freed)",
            bytes(removal.file_bytes_before),
            bytes(removal.file_bytes_after),
            bytes(removal.bytes_freed_on_disk)
        )?;
    }
    match &removal.remote {
        Some(RemoteClearView::Cleared { removed, scanned, nodes }) => writeln!(
            out,
            "Remote tier: removed {removed} of {scanned} entries on {nodes} node{}",
            if *nodes == 1 { "" } else { "s" }
        )?,
        Some(RemoteClearView::Failed { error }) => writeln!(out, "Remote tier: not cleared: {error}")?,
        None => {}
    }
    output::print(&out)?;
    remote_outcome(removal)
}

/// An error when the local tiers were cleared but the remote tier could not be.
fn remote_outcome(removal: &RemovalView) -> anyhow::Result<()> {
    match &removal.remote {
        Some(RemoteClearView::Failed { error }) => {
            anyhow::bail!("the local tiers were cleared but the remote tier was not: {error}")
        }
        _ => Ok(()),
    }
}

/// Removes what `request` selects, on the running server or here.
fn remove(options: &LoadOptions, request: &ClearRequest, json: bool) -> anyhow::Result<RemovalView> {
    let target = Target::for_options(options)?;
    let spinner = output::spinner("removing and compacting", json);
    let removal = target.clear(request);
    spinner.finish_and_clear();
    removal
}

/// Runs `cache clear`.
pub fn clear(options: &LoadOptions, args: &ClearArgs, json: bool) -> anyhow::Result<()> {
    if !args.all
        && args.kinds.is_empty()
        && args.older_than.is_none()
        && args.pattern.is_none()
        && args.key.is_none()
    {
        return Err(UsageError(
            "say what to clear: --all, --type TYPE, --older-than DURATION, --pattern GLOB or --key KEY"
                .into(),
        )
        .into());
    }
    if let Some(p) = &args.pattern {
        glob::Pattern::new(p).map_err(|e| UsageError(format!("--pattern {p:?}: {e}")))?;
    }
    if args.all && !args.yes && std::io::stdin().is_terminal() && !confirm("Remove every cache entry?")? {
        return Err(UsageError(
            "not confirmed; nothing was removed (pass --yes to skip the question)".into(),
        )
        .into());
    }
    let request = if args.all {
        ClearRequest { all: true, ..ClearRequest::default() }
    } else {
        ClearRequest::new(&args.kinds, args.key.as_deref(), args.pattern.as_deref(), args.older_than)
    };
    print_removal("Clear", &remove(options, &request, json)?, json)
}

/// Runs `cache cleanup`.
pub fn cleanup(options: &LoadOptions, args: &CleanupArgs, json: bool) -> anyhow::Result<()> {
    let config = config::load(options)?.config;
    let age = args.older_than.unwrap_or(config.cache.cleanup.age_threshold_days.duration());
    let request = ClearRequest { local_only: true, ..ClearRequest::new(&[], None, None, Some(age)) };
    let removal = remove(options, &request, json)?;
    print_removal(&format!("Cleanup (older than {})", humantime::format_duration(age)), &removal, json)
}

/// Runs `cache compact`.
pub fn compact(options: &LoadOptions, json: bool) -> anyhow::Result<()> {
    let target = Target::for_options(options)?;
    let spinner = output::spinner("compacting", json);
    let report = target.compact();
    spinner.finish_and_clear();
    let report = report?;
    crate::audit::cli::affected(report.records_kept, report.bytes_before.saturating_sub(report.bytes_after));
    if json {
        return output::print_json(&serde_json::to_value(report)?);
    }
    let mut out = format!(
        "Compacted: {} -> {} ({} freed), {} records kept\n",
        bytes(report.bytes_before),
        bytes(report.bytes_after),
        bytes(report.bytes_before.saturating_sub(report.bytes_after)),
        report.records_kept
    );
    if report.reencoded > 0 {
        writeln!(out, "{} values re-encoded under the current zstd dictionary", report.reencoded)?;
    }
    if report.damaged_skipped > 0 {
        writeln!(
            out,
            "{} damaged records were left behind; run `inferno cache verify --detailed`",
            report.damaged_skipped
        )?;
    }
    Ok(output::print(&out)?)
}

fn print_verify(report: &VerifyView, detailed: bool, json: bool) -> anyhow::Result<()> {
    if json {
        return output::print_json(&serde_json::to_value(report)?);
    }
    let mut out =
        format!("Checked {} entries and {} chunks: ", report.entries_checked, report.chunks_checked);
    if report.is_clean() {
        out.push_str("no damage found\n");
        permissions_lines(&mut out, report)?;
        return Ok(output::print(&out)?);
    }
    writeln!(
        out,
        "{} damaged records, {} damaged byte ranges",
        report.damaged.len(),
        report.damaged_ranges.len()
    )?;
    let shown = if detailed { report.damaged.len() } else { report.damaged.len().min(10) };
    for d in &report.damaged[..shown] {
        writeln!(out, "  {} {}: {} (segment {}, offset {})", d.kind, d.key, d.reason, d.segment, d.offset)?;
    }
    if shown < report.damaged.len() {
        writeln!(out, "  ... {} more (--detailed lists all)", report.damaged.len() - shown)?;
    }
    if detailed {
        for r in &report.damaged_ranges {
            writeln!(
                out,
                "  segment {}: {} bytes at offset {} hold no intact record",
                r.segment, r.length, r.offset
            )?;
        }
    }
    if report.fixed && report.damaged.is_empty() {
        writeln!(out, "Dropped the damaged byte ranges; no entry uses them.")?;
    } else if report.fixed {
        writeln!(out, "Quarantined the damaged records into {QUARANTINE_DIR}/; they will not be served.")?;
    } else {
        writeln!(
            out,
            "Run `inferno cache verify --fix` (or `inferno cache repair --auto-fix`) to quarantine them."
        )?;
    }
    permissions_lines(&mut out, report)?;
    Ok(output::print(&out)?)
}

/// The permission check's lines, when something is more open than 0700 / 0600: what, and whether it was
/// tightened. Nothing when every mode is as it should be.
fn permissions_lines(out: &mut String, report: &VerifyView) -> std::fmt::Result {
    let loose = &report.loose_permissions;
    if loose.is_empty() {
        return Ok(());
    }
    let state = if report.permissions_fixed { "tightened" } else { "more open than 0700 / 0600" };
    writeln!(out, "Permissions: {} paths {state}:", loose.len())?;
    for item in loose.iter().take(10) {
        writeln!(out, "  {}", item.describe())?;
    }
    if loose.len() > 10 {
        writeln!(out, "  ... {} more", loose.len() - 10)?;
    }
    if !report.permissions_fixed {
        writeln!(out, "Run `inferno cache verify --fix` to tighten them.")?;
    }
    Ok(())
}

/// Checks every record (and with `fix`, quarantines what is damaged), on the running server or here.
fn check(options: &LoadOptions, fix: bool, json: bool) -> anyhow::Result<VerifyView> {
    let target = Target::for_options(options)?;
    let spinner = output::spinner("verifying every record", json);
    let report = target.verify(&VerifyRequest { fix });
    spinner.finish_and_clear();
    let report = report?;
    if fix {
        crate::audit::cli::affected((report.damaged.len() + report.loose_permissions.len()) as u64, 0);
    }
    Ok(report)
}

/// Runs `cache verify`; fails when damage is found and not fixed.
pub fn verify(options: &LoadOptions, args: &VerifyArgs, json: bool) -> anyhow::Result<()> {
    let report = check(options, args.fix, json)?;
    print_verify(&report, args.detailed, json)?;
    if !report.is_clean() && !report.fixed {
        anyhow::bail!("the cache has damaged records");
    }
    Ok(())
}

/// Runs `cache repair`.
pub fn repair(options: &LoadOptions, args: &RepairArgs, json: bool) -> anyhow::Result<()> {
    let found = check(options, false, json)?;
    if found.is_clean() {
        return print_verify(&found, false, json);
    }
    let go = args.auto_fix
        || (std::io::stdin().is_terminal()
            && confirm(&format!(
                "Quarantine {} damaged records?",
                found.damaged.len() + found.damaged_ranges.len()
            ))?);
    if !go {
        print_verify(&found, true, json)?;
        anyhow::bail!("nothing was repaired (pass --auto-fix to quarantine without asking)");
    }
    let fixed = check(options, true, json)?;
    print_verify(&fixed, true, json)
}

/// Runs `cache disk-usage`.
pub fn disk_usage(options: &LoadOptions, args: &DiskUsageArgs, json: bool) -> anyhow::Result<()> {
    let cache = open_cache(options, Access::ReadOnly)?;
    let (files, segments) = cache.disk_usage()?;
    let stats = cache.disk_stats().unwrap_or_default();
    let base = &cache.config().base_dir;
    let total = files.total();
    let max = cache.config().max_size_gb.bytes();
    let kinds: Vec<(Kind, u64, u64)> = Kind::ALL
        .into_iter()
        .map(|k| {
            let s = stats.kinds.get(&k.code()).copied().unwrap_or_default();
            (k, s.entries, s.stored_bytes)
        })
        .collect();
    if json {
        return output::print_json(&json!({
            "base_dir": base,
            "total_bytes": total,
            "max_bytes": max,
            "files": files.classes().iter().map(|(c, b)| json!({"class": c, "bytes": b})).collect::<Vec<_>>(),
            "kinds": kinds.iter().map(|(k, n, b)| json!({"type": k, "entries": n, "record_bytes": b})).collect::<Vec<_>>(),
            "shared_chunk_bytes": stats.blob_stored_bytes,
            "segments": segments.iter().map(|(id, u)| json!({"id": id, "bytes": u.total, "live_bytes": u.live})).collect::<Vec<_>>(),
        }));
    }
    let mut out = String::new();
    let pct = if max > 0 { total as f64 * 100.0 / max as f64 } else { 0.0 };
    writeln!(out, "{}: {} of {} ({pct:.2}%)", base.display(), bytes(total), bytes(max))?;
    writeln!(out, "By file:")?;
    for (class, b) in files.classes() {
        writeln!(out, "  {class:<11} {:>10}", bytes(b))?;
    }
    writeln!(out, "By type (entry records):")?;
    for (k, n, b) in &kinds {
        writeln!(out, "  {:<11} {:>10}  ({n} entries)", k.name(), bytes(*b))?;
    }
    writeln!(
        out,
        "  {:<11} {:>10}  ({} deduplicated chunks)",
        "chunks",
        bytes(stats.blob_stored_bytes),
        stats.blobs
    )?;
    if args.detailed {
        writeln!(out, "Segments:")?;
        for (id, usage) in &segments {
            writeln!(
                out,
                "  seg-{id:010}.log  {:>10} records, {:>10} live",
                bytes(usage.total),
                bytes(usage.live)
            )?;
        }
    }
    Ok(output::print(&out)?)
}
