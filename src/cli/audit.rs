//! `inferno cache audit [--since 24h] [--action clear] [--json]`: the access audit, read back; and which
//! `inferno cache` commands are administrative actions that the audit records (see `crate::audit`).

use std::fmt::Write as _;
use std::time::Duration;

use clap::Args;

use super::output::{self, bytes};
use super::{CacheCommand, UsageError};
use crate::audit::access::{self, Access};
use crate::audit::read::{self, Query};
use crate::audit::{Outcome, Record};
use crate::config::units::{SECOND, parse_duration};
use crate::config::{self, LoadOptions};

/// Flags of `cache audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only records of the last DURATION, e.g. 24h or 7d.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    since: Option<Duration>,
    /// Only these actions (repeatable, or comma-separated): clear, compact, backup, lookup, ...
    #[arg(long, value_name = "ACTION", value_delimiter = ',')]
    action: Vec<String>,
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text, SECOND)
}

/// The audit's name for `command` when it is an administrative action, else `None` (reads, and commands
/// that only look, are not recorded).
pub(super) fn action_of(command: &CacheCommand) -> Option<&'static str> {
    Some(match command {
        CacheCommand::Clear(_) => "clear",
        CacheCommand::Cleanup(_) => "cleanup",
        CacheCommand::Compact => "compact",
        CacheCommand::TrainDictionary => "train-dictionary",
        CacheCommand::Verify(args) if args.fixes() => "verify",
        CacheCommand::Repair(_) => "repair",
        CacheCommand::Backup(args) if !args.is_list() => "backup",
        CacheCommand::Restore(_) => "restore",
        CacheCommand::Rebuild(_) => "rebuild",
        CacheCommand::Import(_) => "import",
        CacheCommand::Configure(_) => "configure",
        CacheCommand::Enable(_) => "enable",
        CacheCommand::Disable(_) => "disable",
        CacheCommand::Persist(_) => "persist",
        CacheCommand::Warm(_) => "warm",
        CacheCommand::Rekey(_) => "rekey",
        _ => return None,
    })
}

/// Runs `cache audit`.
pub fn audit(options: &LoadOptions, args: &AuditArgs, json: bool) -> anyhow::Result<()> {
    let config = config::load(options)?.config;
    let path = config.cache.audit.file(&config.cache.base_dir);
    let now_ms = crate::cache::clock::now_ms();
    let since_ms = args.since.map(|d| now_ms.saturating_sub(d.as_millis() as u64));
    let query = Query { since_ms, actions: args.action.clone() };
    let found = read::read(&path, &query)?;
    if json {
        return output::print_json(&serde_json::json!({
            "file": path,
            "enabled": config.cache.audit.enabled,
            "records": found.records,
            "unreadable_lines": found.unreadable,
        }));
    }
    if !config.cache.audit.enabled && found.records.is_empty() {
        return Err(UsageError(format!(
            "the audit is off (cache.audit.enabled = false) and {} holds no records",
            path.display()
        ))
        .into());
    }
    let mut out = String::new();
    let window =
        args.since.map_or(String::new(), |d| format!(" in the last {}", humantime::format_duration(d)));
    writeln!(out, "Audit {}: {} records{window}", path.display(), found.records.len())?;
    for record in &found.records {
        writeln!(out, "{}", line(record))?;
    }
    if found.unreadable > 0 {
        writeln!(out, "({} lines could not be read)", found.unreadable)?;
    }
    Ok(output::print(&out)?)
}

/// The access section of `cache report` for the last `period`, from the audit; `None` with the audit off.
pub(super) fn access(options: &LoadOptions, period: Duration) -> anyhow::Result<Option<Access>> {
    let config = config::load(options)?.config;
    if !config.cache.audit.enabled {
        return Ok(None);
    }
    let since_ms = crate::cache::clock::now_ms().saturating_sub(period.as_millis() as u64);
    let found = read::read(
        &config.cache.audit.file(&config.cache.base_dir),
        &Query { since_ms: Some(since_ms), actions: vec![] },
    )?;
    Ok(Some(access::summarize(&found.records)))
}

/// The access section as text.
pub(super) fn access_text(out: &mut String, access: Option<&Access>) -> std::fmt::Result {
    let Some(a) = access else {
        return writeln!(out, "Access: the audit is off (cache.audit.enabled = false)");
    };
    writeln!(out, "Access: {} administrative actions, {} requests refused", a.admin_actions, a.denied)?;
    if a.lookups == 0 {
        return writeln!(
            out,
            "  no lookups recorded (turn on cache.audit.log_reads to count requests per client)"
        );
    }
    for c in &a.clients {
        let key = c.key_id.as_deref().map_or("no key".to_string(), |id| format!("key {id}"));
        writeln!(
            out,
            "  {} ({key}): {} requests, {} hits, {} refused",
            c.client, c.requests, c.hits, c.denied
        )?;
    }
    for k in &a.top_keys {
        writeln!(out, "  top key {}: {} hits", k.key, k.hits)?;
    }
    Ok(())
}

/// One record on one line: time, action, outcome, figures, who, arguments.
fn line(r: &Record) -> String {
    let outcome = match r.outcome {
        Outcome::Ok => "ok",
        Outcome::Error => "error",
        Outcome::Denied => "denied",
    };
    let mut figures = Vec::new();
    if let Some(entries) = r.entries {
        figures.push(format!("{entries} entries"));
    }
    if let Some(b) = r.bytes {
        figures.push(bytes(b));
    }
    let w = &r.who;
    let mut who = w.via.clone();
    for part in [&w.user, &w.client].into_iter().flatten() {
        who.push(' ');
        who.push_str(part);
    }
    if let Some(pid) = w.pid {
        who.push_str(&format!(" pid {pid}"));
    }
    if let (Some(key), Some(id)) = (&w.key, &w.key_id) {
        who.push_str(&format!(" {key} key {id}"));
    }
    let arguments = match &r.arguments {
        serde_json::Value::Array(words) => words
            .iter()
            .map(|w| w.as_str().map_or_else(|| w.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(" "),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    let error = r.error.as_ref().map_or(String::new(), |e| format!("  ({e})"));
    format!("{}  {:<9} {:<6} {:<24} {who}  {arguments}{error}", r.time, r.action, outcome, figures.join(", "))
}
