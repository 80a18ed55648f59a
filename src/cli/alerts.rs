//! `inferno cache alerts test [--channel NAME]` (send a test alert through each configured channel now) and
//! `inferno cache alerts status` (each rule's state, figure and threshold: from the running server through its
//! admin socket, else from the recorded history); and the alert lines of `cache status` and `cache report`.

use std::fmt::Write as _;

use clap::{Args, Subcommand};
use serde_json::json;

use crate::alerts::alert::{host_name, now_ms, rfc3339};
use crate::alerts::channels::{Channels, Delivery, Retry};
use crate::alerts::engine::{channel_views, view_from_history};
use crate::alerts::history::{self, Entry};
use crate::alerts::{Alert, AlertsView, Notice};
use crate::config::{self, AlertChannel, AlertsConfig, LoadOptions};

use super::UsageError;
use super::live::LiveServer;
use super::output;

/// `inferno cache alerts ...` commands.
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Send a test alert through each configured channel now; exit 1 if any delivery failed.
    Test(TestArgs),
    /// Each rule's state, current value and threshold (from the running server, else from the history).
    Status,
}

/// Flags of `cache alerts test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Only this channel: webhook, slack or email.
    #[arg(long, value_name = "NAME")]
    channel: Option<String>,
}

/// Runs an `inferno cache alerts` command.
pub fn run(options: &LoadOptions, command: &AlertsCommand, json: bool) -> anyhow::Result<()> {
    match command {
        AlertsCommand::Test(args) => test(options, args, json),
        AlertsCommand::Status => status(options, json),
    }
}

fn test(options: &LoadOptions, args: &TestArgs, json: bool) -> anyhow::Result<()> {
    let config = config::load(options)?.config;
    let mut alerts = config.cache.alerts.clone();
    if let Some(name) = &args.channel {
        let channel: AlertChannel =
            name.parse().map_err(|e: String| UsageError(format!("--channel: {e}")))?;
        alerts.channels = vec![channel];
    }
    if alerts.channels.is_empty() {
        anyhow::bail!("no alert channel is named: set cache.alerts.channels (docs/alerts.md)");
    }
    let alert = test_alert(&alerts, &config.cache.base_dir.display().to_string());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let channels = Channels::new(&alerts, None, Retry::ONCE);
    let deliveries = runtime.block_on(channels.deliver(&alert));
    if config.cache.base_dir.is_dir() {
        let entry = Entry { time_ms: now_ms(), alert, deliveries: deliveries.clone() };
        if let Err(e) = history::record(&config.cache.base_dir, &entry) {
            tracing::warn!("cannot record the test alert: {e}");
        }
    }
    let not_configured = channels.not_configured();
    if json {
        let missing: Vec<&str> = not_configured.iter().map(|c| c.name()).collect();
        output::print_json(&json!({ "deliveries": deliveries, "not_configured": missing }))?;
    } else {
        let mut out = String::new();
        for d in &deliveries {
            writeln!(out, "{}", delivery_line(d))?;
        }
        for c in not_configured {
            writeln!(
                out,
                "{}: not configured: add a [cache.alerts.{}] table (docs/alerts.md)",
                c.name(),
                c.name()
            )?;
        }
        output::print(&out)?;
    }
    let failed = deliveries.iter().filter(|d| !d.ok).count();
    if failed > 0 {
        anyhow::bail!("{failed} of {} alert channels failed", deliveries.len());
    }
    if deliveries.is_empty() {
        anyhow::bail!("no alert channel is configured, so nothing was sent");
    }
    Ok(())
}

fn test_alert(alerts: &AlertsConfig, cache_dir: &str) -> Alert {
    let now = now_ms();
    let host = host_name();
    Alert {
        version: 1,
        rule: "test".into(),
        state: Notice::Test,
        repeat: false,
        value: None,
        threshold: None,
        window_seconds: alerts.window_minutes.duration().as_secs(),
        summary: format!("test alert from inferno on {host}: this channel works"),
        host,
        cache_dir: cache_dir.into(),
        started_at: rfc3339(now),
        ended_at: None,
    }
}

/// `webhook: delivered (1 attempt)` or `email: FAILED after 4 attempts: ...`.
fn delivery_line(d: &Delivery) -> String {
    let attempts = if d.attempts == 1 { "1 attempt".to_string() } else { format!("{} attempts", d.attempts) };
    match &d.error {
        None => format!("{}: delivered ({attempts})", d.channel),
        Some(e) => format!("{}: FAILED after {attempts}: {e}", d.channel),
    }
}

fn status(options: &LoadOptions, json: bool) -> anyhow::Result<()> {
    let config = config::load(options)?.config;
    let view: AlertsView = match LiveServer::find(&config.cache.base_dir) {
        Some(server) => server.get("/v1/cache/alerts")?,
        None => view_from_history(&config),
    };
    if json {
        return output::print_json(&serde_json::to_value(&view)?);
    }
    let a = &config.cache.alerts;
    let mut out = String::new();
    if view.enabled {
        writeln!(
            out,
            "Alerts: enabled: evaluated every {} over the last {}, at least {} requests, firing after {}, \
             repeated every {}",
            humantime::format_duration(a.evaluation_interval_seconds.duration()),
            humantime::format_duration(a.window_minutes.duration()),
            a.min_samples,
            humantime::format_duration(a.for_minutes.duration()),
            humantime::format_duration(a.repeat_interval_minutes.duration()),
        )?;
    } else {
        writeln!(out, "Alerts: disabled (cache.alerts.enabled = false)")?;
    }
    writeln!(out, "Channels: {}", channels_text(a))?;
    let source = if view.source == "server" { "the running server" } else { "the recorded history" };
    writeln!(out, "Rules (from {source}):")?;
    writeln!(
        out,
        "  {:<18} {:<9} {:>10} {:>10} {:>8}  since / note",
        "rule", "state", "value", "threshold", "samples"
    )?;
    for r in &view.rules {
        let value = r.value.map_or("-".to_string(), |v| format!("{v:.3}"));
        let samples = r.samples.map_or("-".to_string(), |n| n.to_string());
        let state = serde_json::to_value(r.state)?.as_str().unwrap_or("").to_string();
        let tail = [r.since.clone(), r.note.clone()].into_iter().flatten().collect::<Vec<_>>().join("; ");
        writeln!(
            out,
            "  {:<18} {:<9} {:>10} {:>10} {:>8}  {tail}",
            r.rule.name(),
            state,
            value,
            format!("{}", r.threshold),
            samples
        )?;
    }
    Ok(output::print(&out)?)
}

/// `webhook, email (not configured)`, or `none`.
pub fn channels_text(alerts: &AlertsConfig) -> String {
    let views = channel_views(alerts);
    if views.is_empty() {
        return "none".into();
    }
    let names: Vec<String> = views
        .iter()
        .map(|v| {
            if v.configured {
                v.channel.name().to_string()
            } else {
                format!("{} (not configured: no [cache.alerts.{}] table)", v.channel.name(), v.channel.name())
            }
        })
        .collect();
    names.join(", ")
}

/// The notifications of `entries` as text lines for `cache report`.
pub fn history_text(entries: &[Entry]) -> String {
    let mut out = String::new();
    if entries.is_empty() {
        out.push_str("Alerts: none sent in the period\n");
        return out;
    }
    out.push_str(&format!("Alerts ({} notifications):\n", entries.len()));
    for e in entries {
        let delivered: Vec<String> = e
            .deliveries
            .iter()
            .map(|d| if d.ok { d.channel.clone() } else { format!("{} FAILED", d.channel) })
            .collect();
        let to = if delivered.is_empty() { "no channel".to_string() } else { delivered.join(", ") };
        out.push_str(&format!(
            "  {}  {:<18} {:<8} -> {to}: {}\n",
            rfc3339(e.time_ms),
            e.alert.rule,
            e.alert.state.name(),
            e.alert.summary
        ));
    }
    out
}
