//! `inferno cache backup [list]`, `inferno cache restore` and `inferno cache rebuild --from-backup`: thin
//! wrappers over `admin::ops::backup`, `cache::ops::backup` and `cache::ops::rebuild` that print what was
//! copied, checked and restored. While `inferno serve` holds the cache, `backup` asks the server to flush
//! and back it up, so the backup has everything it has answered.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;

use crate::admin::BackupRequest;
use crate::cache::ops::{backup, rebuild as rebuilding};
use crate::cache::{Access, Manager};
use crate::config::{self, LoadOptions};

use super::target::Target;
use super::transfer::open_cache;
use super::{UsageError, output};

/// Flags of `cache backup`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    /// `list`: the backups made from this cache.
    #[command(subcommand)]
    action: Option<BackupAction>,
    /// Folder to write the backup to (created; must be new or empty).
    #[arg(long, value_name = "DIR")]
    destination: Option<PathBuf>,
    /// Compress the backup's files with zstd.
    #[arg(long)]
    compress: bool,
    /// Re-read the backup afterwards and check every file's checksum.
    #[arg(long)]
    verify: bool,
}

#[derive(Debug, Subcommand)]
enum BackupAction {
    /// List the backups made from this cache (newest last), and whether each is still there.
    List,
}

/// Flags of `cache restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup folder.
    #[arg(long, value_name = "DIR")]
    source: PathBuf,
    /// After restoring, check every record of the restored cache.
    #[arg(long)]
    verify: bool,
}

/// Flags of `cache rebuild`.
#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// Restore damaged entries from the newest backup that has them.
    #[arg(long, required = true)]
    from_backup: bool,
}

use super::output::bytes;

impl BackupArgs {
    /// True for `backup list`, which only reads.
    pub(super) fn is_list(&self) -> bool {
        matches!(self.action, Some(BackupAction::List))
    }
}

/// A time from a manifest or the registry; one that is out of range (a hostile or damaged file) is shown
/// as its raw number rather than overflowing.
fn when(ms: u64) -> String {
    match std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_millis(ms)) {
        Some(t) if ms < 253_402_300_800_000 => humantime::format_rfc3339_seconds(t).to_string(),
        _ => format!("{ms} ms after 1970"),
    }
}

/// Runs `cache backup` and `cache backup list`.
pub fn backup(options: &LoadOptions, args: &BackupArgs, json: bool) -> anyhow::Result<()> {
    let resolved = config::load(options)?;
    let cache = &resolved.config.cache;
    if let Some(BackupAction::List) = args.action {
        let all = backup::list(&cache.base_dir);
        if json {
            let rows: Vec<_> = all
                .iter()
                .map(|b| json!({"path": b.path, "created_ms": b.created_ms, "entries": b.entries, "bytes": b.bytes,
                               "compressed": b.compressed, "present": b.path.join(backup::MANIFEST_FILE).is_file()}))
                .collect();
            return output::print_json(&json!(rows));
        }
        let mut out = String::new();
        if all.is_empty() {
            writeln!(out, "No backups recorded for {}", cache.base_dir.display())?;
        }
        for b in &all {
            let state = if b.path.join(backup::MANIFEST_FILE).is_file() { "" } else { "  (missing)" };
            let zst = if b.compressed { ", compressed" } else { "" };
            writeln!(
                out,
                "{}  {}  {} entries, {}{zst}{state}",
                when(b.created_ms),
                b.path.display(),
                b.entries,
                bytes(b.bytes)
            )?;
        }
        return Ok(output::print(&out)?);
    }
    let Some(dest) = &args.destination else {
        return Err(UsageError("give --destination DIR (or use `inferno cache backup list`)".into()).into());
    };
    let target = Target::for_options(options)?;
    // The server writes where the request says, from its own working directory: send an absolute path.
    let destination = match target {
        Target::Live(_) => std::path::absolute(dest)?,
        Target::Local(_) => dest.clone(),
    };
    let request = BackupRequest { destination, compress: args.compress, verify: args.verify };
    let spinner = output::spinner("backing up", json);
    let made = target.backup(&request);
    spinner.finish_and_clear();
    let made = made?;
    crate::audit::cli::affected(made.entries, made.bytes);
    if json {
        return output::print_json(&serde_json::to_value(&made)?);
    }
    let verified = if made.verified { ", verified" } else { "" };
    let text = format!(
        "Backed up {} entries ({} in {} files{}{verified}) to {}\n",
        made.entries,
        bytes(made.bytes),
        made.files,
        if made.compressed { ", compressed" } else { "" },
        made.destination.display()
    );
    Ok(output::print(&text)?)
}

/// Runs `cache restore`.
pub fn restore(options: &LoadOptions, args: &RestoreArgs, json: bool) -> anyhow::Result<()> {
    let resolved = config::load(options)?;
    let cache = &resolved.config.cache;
    let spinner = output::spinner("checking and restoring", json);
    let manifest = backup::restore(cache, &args.source).context("restore refused")?;
    crate::audit::cli::affected(manifest.entries, manifest.bytes());
    spinner.finish_and_clear();
    let mut verified = None;
    if args.verify {
        let manager = Manager::open(cache, Access::ReadWrite)?;
        verified = Some(rebuilding::check_restored(&manager, &manifest)?);
    }
    if json {
        return output::print_json(&json!({
            "source": args.source, "entries": manifest.entries, "files": manifest.files.len(), "verified_entries": verified,
        }));
    }
    let mut text = format!(
        "Restored {} entries from {} (made {}) into {}\n",
        manifest.entries,
        args.source.display(),
        when(manifest.created_ms),
        cache.base_dir.display()
    );
    if let Some(n) = verified {
        writeln!(text, "Verified {n} entries: no damage")?;
    }
    Ok(output::print(&text)?)
}

/// Runs `cache rebuild --from-backup`: quarantines damaged entries, then puts each back from the newest
/// recorded backup that has it. Fails when some damaged entry is in no backup.
pub fn rebuild(options: &LoadOptions, _args: &RebuildArgs, json: bool) -> anyhow::Result<()> {
    let live = open_cache(options, Access::ReadWrite)?;
    let report = rebuilding::rebuild(&live)?;
    crate::audit::cli::affected(report.restored, 0);
    if json {
        output::print_json(&json!({
            "damaged": report.damaged, "restored": report.restored, "not_in_any_backup": report.missing.len()
        }))?;
    } else {
        let mut text =
            format!("Found {} damaged entries; restored {} from backups\n", report.damaged, report.restored);
        for (kind, key) in &report.missing {
            writeln!(text, "  not in any backup: {kind} {key}")?;
        }
        output::print(&text)?;
    }
    if !report.missing.is_empty() {
        anyhow::bail!("{} damaged entries are in no backup; they were quarantined", report.missing.len());
    }
    Ok(())
}
