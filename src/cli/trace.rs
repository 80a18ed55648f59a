//! `inferno cache trace --operations read,write,evict`: streams the operations of the process writing the
//! cache, as they happen (`cache::observe::follow` does the following; this file prints).

use std::time::{Duration, Instant};

use clap::Args;

use crate::cache::observe::follow::{Polled, TraceFollower};
use crate::cache::observe::trace::{Op, TraceEvent};
use crate::config::units::{SECOND, parse_duration};
use crate::config::{self, LoadOptions};

use super::output;

/// Flags of `cache trace`.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// Operations to show (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "read,write,evict,remove")]
    operations: Vec<Op>,
    /// Stop after this long, e.g. 30s (default: until interrupted or the writer exits).
    #[arg(long, value_name = "DURATION", value_parser = |s: &str| parse_duration(s, SECOND))]
    duration: Option<Duration>,
    /// Stop after this many events.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
}

fn line(event: &TraceEvent) -> String {
    let time = humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(event.time_ms));
    let op = format!("{:?}", event.op).to_lowercase();
    let mut text = format!("{time} {op:<6} {} {}", event.kind, event.key);
    match (event.hit, &event.tier) {
        (Some(true), Some(tier)) => text.push_str(&format!(" hit ({tier})")),
        (Some(false), _) => text.push_str(" miss"),
        (None, Some(tier)) => text.push_str(&format!(" ({tier})")),
        _ => {}
    }
    if event.bytes > 0 {
        text.push_str(&format!(" {} bytes", event.bytes));
    }
    text + "\n"
}

/// Runs `cache trace`.
pub fn trace(options: &LoadOptions, args: &TraceArgs, json: bool) -> anyhow::Result<()> {
    let resolved = config::load(options)?;
    let mut follower = TraceFollower::start(&resolved.config.cache.base_dir, args.operations.clone())?;
    tracing::info!(pid = follower.pid(), "tracing cache operations");
    let started = Instant::now();
    let mut shown = 0u64;
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let Polled::Events(events) = follower.poll()? else {
            tracing::info!(pid = follower.pid(), "the writer exited");
            return Ok(());
        };
        for (raw, event) in events {
            output::print(&if json { format!("{raw}\n") } else { line(&event) })?;
            shown += 1;
            if args.count.is_some_and(|c| shown >= c) {
                return Ok(());
            }
        }
        if args.duration.is_some_and(|d| started.elapsed() >= d) {
            return Ok(());
        }
    }
}
