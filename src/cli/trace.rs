//! `inferno cache trace --operations read,write,evict`: streams the operations of the process writing the
//! cache, as they happen (see `cache::trace` for the request/events file protocol).

use std::io::{Read, Seek, SeekFrom};
use std::time::{Duration, Instant};

use clap::Args;

use crate::cache::disk::{holder, now_ms};
use crate::cache::trace::{EVENTS_FILE, Op, REQUEST_FILE, TraceEvent, TraceRequest};
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
    let dir = resolved.config.cache.base_dir.clone();
    let Some(pid) = holder(&dir) else {
        anyhow::bail!(
            "no process is writing the cache in {}; trace shows the operations of a running writer (such as `inferno serve`)",
            dir.display()
        );
    };
    let events_path = dir.join(EVENTS_FILE);
    let mut offset = std::fs::metadata(&events_path).map_or(0, |m| m.len());
    let request = |now| TraceRequest { ops: args.operations.clone(), heartbeat_ms: now };
    request(now_ms()).save(&dir)?;
    tracing::info!(pid, "tracing cache operations");
    let started = Instant::now();
    let mut last_beat = Instant::now();
    let mut shown = 0u64;
    let result = (|| -> anyhow::Result<()> {
        loop {
            std::thread::sleep(Duration::from_millis(200));
            if let Ok(mut file) = std::fs::File::open(&events_path) {
                let len = file.metadata()?.len();
                if len < offset {
                    offset = 0;
                }
                file.seek(SeekFrom::Start(offset))?;
                let mut text = String::new();
                file.read_to_string(&mut text)?;
                let complete = text.rfind('\n').map_or(0, |i| i + 1);
                offset += complete as u64;
                for raw in text[..complete].lines() {
                    let Ok(event) = serde_json::from_str::<TraceEvent>(raw) else { continue };
                    output::print(&if json { format!("{raw}\n") } else { line(&event) })?;
                    shown += 1;
                    if args.count.is_some_and(|c| shown >= c) {
                        return Ok(());
                    }
                }
            }
            if args.duration.is_some_and(|d| started.elapsed() >= d) {
                return Ok(());
            }
            if holder(&dir) != Some(pid) {
                tracing::info!(pid, "the writer exited");
                return Ok(());
            }
            if last_beat.elapsed() >= Duration::from_secs(1) {
                request(now_ms()).save(&dir)?;
                last_beat = Instant::now();
            }
        }
    })();
    let _ = std::fs::remove_file(dir.join(REQUEST_FILE));
    result
}
