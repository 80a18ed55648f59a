//! `inferno cache status`: the effective configuration, where each value came from (like
//! `git config --show-origin`), which settings are stored but not active yet, and — with
//! `cache.distributed.enabled` — how the remote tier looks from here (nodes, cluster or standalone, replicas,
//! reachable or not), and the security state (`security.rs`: permissions, audit, keys).

use std::fmt::Write;

use serde_json::json;

use crate::cache::remote::RemoteStatus;
use crate::cache::{Access, Kind, Manager, disk};
use crate::config::{self, CacheConfig, LoadOptions, keys};

use super::live::LiveServer;
use super::output;
use super::security;
use crate::warm::progress::{self, JobState, Progress};

/// Runs `cache status`.
pub fn run(options: &LoadOptions, json: bool) -> anyhow::Result<()> {
    let resolved = config::load(options)?;
    let rows: Vec<(&keys::Key, String, &config::Origin)> = keys::KEYS
        .iter()
        .map(|key| {
            let setting = &resolved.settings[key.path];
            (key, shown(key, &setting.value), &setting.origin)
        })
        .collect();

    let cache = &resolved.config.cache;
    let remote = cache.distributed.enabled.then(|| crate::cache::remote::probe(&cache.distributed));
    let mut summary = summary(cache, remote.as_ref());
    summary["security"] = security::summary(&resolved);
    if json {
        let settings: Vec<_> = rows
            .iter()
            .map(|(key, _, origin)| {
                json!({
                    "key": key.path,
                    "value": if keys::is_secret(key.path) {
                        json!(shown(key, &resolved.settings[key.path].value))
                    } else {
                        json!(redacted(key, &resolved.settings[key.path].value))
                    },
                    "origin": origin,
                    "active": key.active,
                    "no_effect": key.no_effect,
                })
            })
            .collect();
        return output::print_json(&json!({
            "cache": summary,
            "alerts": {
                "enabled": cache.alerts.enabled,
                "channels": crate::alerts::engine::channel_views(&cache.alerts),
            },
            "config_files": resolved.files,
            "settings": settings,
        }));
    }

    let mut out = String::new();
    let enabled = summary["enabled_types"].as_array().map_or(0, Vec::len);
    let types: Vec<&str> =
        summary["enabled_types"].as_array().into_iter().flatten().filter_map(|v| v.as_str()).collect();
    if enabled == 0 {
        writeln!(out, "Cache: disabled")?;
    } else {
        writeln!(
            out,
            "Cache: enabled for {} ({}, compression {}, dedup {})",
            types.join(", "),
            summary["type"].as_str().unwrap_or(""),
            summary["compression"].as_str().unwrap_or(""),
            summary["deduplication"].as_str().unwrap_or("")
        )?;
    }
    writeln!(out, "Directory: {}", summary["base_dir"].as_str().unwrap_or(""))?;
    match (summary["writer_pid"].as_u64(), summary["admin_socket"].as_str()) {
        (Some(pid), Some(socket)) => {
            writeln!(out, "Writer: process {pid} (inferno serve, admin socket {socket}) holds the cache")?
        }
        (Some(pid), None) => writeln!(out, "Writer: process {pid} holds the cache")?,
        (None, Some(socket)) => writeln!(out, "Writer: inferno serve, admin socket {socket}")?,
        (None, None) => writeln!(out, "Writer: none running")?,
    }
    if let Some(entries) = summary["entries"].as_object() {
        let parts: Vec<String> = entries.iter().map(|(k, v)| format!("{v} {k}")).collect();
        writeln!(out, "Entries: {}", parts.join(", "))?;
    }
    if let Some(fault) = summary["degraded"].as_object() {
        let message = fault.get("message").and_then(|m| m.as_str()).unwrap_or_default();
        writeln!(out, "DEGRADED: the running server's cache writes are failing: {message}")?;
    }
    if let Some(models) = summary["slots"].as_array() {
        let parts: Vec<String> = models
            .iter()
            .map(|m| {
                format!(
                    "{} {}/{} busy, {} queued, {:.1} tokens/s",
                    m["model"].as_str().unwrap_or_default(),
                    m["busy"],
                    m["slots"],
                    m["queued"],
                    m["tokens_per_second"].as_f64().unwrap_or_default()
                )
            })
            .collect();
        let parts = if parts.is_empty() { "no model loaded".to_string() } else { parts.join("; ") };
        writeln!(out, "Slots: {parts}")?;
    }
    if let Some(status) = &remote {
        writeln!(out, "{}", remote_line(status))?;
    }
    security::lines(&mut out, &summary["security"])?;
    if let Some(job) = progress::read(&resolved.config.cache.base_dir) {
        writeln!(out, "{}", warm_line(&job))?;
    }
    let alerts = &resolved.config.cache.alerts;
    let state = if alerts.enabled { "enabled" } else { "disabled" };
    writeln!(out, "Alerts: {state}; channels: {}", super::alerts::channels_text(alerts))?;
    writeln!(out)?;
    writeln!(out, "Config files, lowest priority first:")?;
    for file in &resolved.files {
        let state = if file.loaded { "loaded" } else { "not found" };
        writeln!(
            out,
            "  {:<8} {}  ({state})",
            format!("{:?}", file.role).to_lowercase(),
            file.path.display()
        )?;
    }
    writeln!(out)?;
    let key_width = rows.iter().map(|(k, _, _)| k.path.len()).max().unwrap_or(0);
    let value_width = rows.iter().map(|(_, v, _)| v.len()).max().unwrap_or(0).min(40);
    writeln!(out, "Effective settings (value, then where it came from):")?;
    for (key, value, origin) in &rows {
        let mark = match (key.active, key.no_effect) {
            (true, _) => "",
            (false, Some(_)) => "  (no effect)",
            (false, None) => "  *",
        };
        writeln!(out, "  {:<key_width$}  {:<value_width$}  {}{mark}", key.path, value, origin.short())?;
    }
    for (key, _, _) in rows.iter().filter(|(key, _, _)| !key.active) {
        if let Some(why) = key.no_effect {
            writeln!(out)?;
            writeln!(
                out,
                "(no effect) {}: accepted and validated, but it changes nothing: {why}.",
                key.path
            )?;
        }
    }
    if rows.iter().any(|(key, _, _)| !key.active && key.no_effect.is_none()) {
        writeln!(out)?;
        writeln!(
            out,
            "* not active yet: stored and validated, but the behaviour behind it is not built yet."
        )?;
    }
    Ok(output::print(&out)?)
}

/// A setting's value for display: secrets show only whether they are set, Redis addresses no password.
fn shown(key: &keys::Key, value: &toml::Value) -> String {
    match redacted(key, value) {
        toml::Value::String(s) if keys::is_secret(key.path) => {
            if s.is_empty() {
                "(not set)".into()
            } else {
                "(set)".into()
            }
        }
        value => value.to_string(),
    }
}

/// The value with the passwords of Redis addresses masked (`redis://user:***@host`).
fn redacted(key: &keys::Key, value: &toml::Value) -> toml::Value {
    match value {
        toml::Value::Array(nodes) if key.path == "cache.distributed.cluster_nodes" => toml::Value::Array(
            nodes
                .iter()
                .map(|n| {
                    n.as_str().map_or_else(|| n.clone(), |s| toml::Value::String(config::redact_node(s)))
                })
                .collect(),
        ),
        value => value.clone(),
    }
}

/// What is cached and where, measured now (the entry counts come from a read-only open of the cache).
fn summary(cache: &CacheConfig, remote: Option<&RemoteStatus>) -> serde_json::Value {
    let live = live_stats(&cache.base_dir);
    let types: Vec<&str> = Kind::ALL.into_iter().filter(|k| cache.kind_enabled(*k)).map(Kind::name).collect();
    let c = &cache.compression;
    let compression = if c.enabled && c.algorithm != config::CompressionAlgorithm::None {
        format!("{:?} level {}", c.algorithm, c.level).to_lowercase()
    } else {
        "none".into()
    };
    let d = &cache.deduplication;
    let dedup = if d.enabled { format!("{:?}", d.algorithm).to_lowercase() } else { "off".into() };
    let entries = (cache.kind != config::CacheType::Memory
        && disk::data_dir_for_reading(&cache.base_dir).exists())
    .then(|| Manager::open(cache, Access::ReadOnly).ok())
    .flatten()
    .map(|m| {
        m.entry_counts()
            .into_iter()
            .map(|(k, n)| (k.name().to_string(), json!(n)))
            .collect::<serde_json::Map<_, _>>()
    });
    json!({
        "enabled_types": types,
        "type": format!("{:?}", cache.kind).to_lowercase(),
        "base_dir": cache.base_dir,
        "compression": compression,
        "deduplication": dedup,
        "writer_pid": disk::holder(&cache.base_dir),
        "admin_socket": LiveServer::find(&cache.base_dir).map(|_| crate::admin::socket_path(&cache.base_dir)),
        "entries": entries,
        "degraded": live.as_ref().and_then(|l| l.report.disk.as_ref()?.writes.current.clone()),
        "slots": live.as_ref().map(live_slots),
        "warm": progress::read(&cache.base_dir),
        "remote": remote,
    })
}

/// The remote tier in one line (two when something is wrong), as `status` and `stats` print it.
pub fn remote_line(s: &RemoteStatus) -> String {
    let seeds = s.nodes.join(", ");
    if !s.reachable {
        let why = s.error.as_deref().unwrap_or("no answer");
        return format!(
            "Remote tier: unreachable (seeds {seeds}): {why}\n  serving from the local tiers; start Redis or fix \
             cache.distributed.cluster_nodes"
        );
    }
    let mode = s.mode.map_or("?".to_string(), |m| format!("{m:?}").to_lowercase());
    let replicas = s.replicas_seen.unwrap_or(0);
    let mut line = format!(
        "Remote tier: reachable, {mode}, {} primar{}, at least {replicas} replica{} each (replication_factor {}); \
         seeds {seeds}",
        s.primaries,
        if s.primaries == 1 { "y" } else { "ies" },
        if replicas == 1 { "" } else { "s" },
        s.replication_factor
    );
    if let Some(queued) = s.queued_writes {
        line.push_str(&format!("; {queued} writes queued"));
    }
    if let Some(error) = &s.error {
        line.push_str(&format!("\n  warning: {error}"));
    }
    line
}

/// The warm job line: what the running job is doing, or how the last one ended.
fn warm_line(job: &Progress) -> String {
    let steps = format!("{}/{} steps", job.done_steps, job.total_steps);
    let counts = format!(
        "{} models warmed, {} responses stored, {} already cached, {} errors",
        job.models_warmed,
        job.responses_stored,
        job.responses_cached,
        job.errors.len()
    );
    let log = job.log.as_ref().map_or(String::new(), |l| format!("; log {}", l.display()));
    match job.state {
        JobState::Running => {
            let now = job.current.as_deref().map_or(String::new(), |c| format!(", now {c}"));
            let mode = if job.background { "background, " } else { "" };
            format!("Warm job: running ({mode}pid {}): {steps}{now}; {counts}{log}", job.pid)
        }
        JobState::Interrupted => {
            format!("Warm job: interrupted (pid {} is gone) after {steps}; {counts}{log}", job.pid)
        }
        JobState::Done | JobState::Failed => {
            let state = if job.state == JobState::Done { "done" } else { "finished with errors" };
            let at = humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(job.updated_ms),
            );
            format!("Last warm job: {state} at {at}: {counts}{log}")
        }
    }
}

/// The running server's live figures, asked through its admin socket; `None` when no server answers.
fn live_stats(base_dir: &std::path::Path) -> Option<crate::admin::LiveStats> {
    LiveServer::find(base_dir)?.get("/v1/cache/stats").ok()
}

/// The slots of each GGUF model the running server has loaded.
fn live_slots(live: &crate::admin::LiveStats) -> serde_json::Value {
    let models = live.server.models.models.iter().filter_map(|m| {
        let s = m.slots?;
        Some(json!({
            "model": m.name,
            "slots": s.parallel,
            "busy": s.busy,
            "queued": s.queued,
            "queue_size": s.queue_size,
            "rejected": s.rejected,
            "tokens_per_second": s.tokens_per_second(),
        }))
    });
    json!(models.collect::<Vec<_>>())
}
