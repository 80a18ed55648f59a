//! Tracing cache operations of a running writer for `inferno cache trace`.
//!
//! The protocol uses two files in the cache directory. `trace.request` is written by `cache trace`: the
//! operations wanted and a heartbeat it refreshes every second. The writer's background thread reads it
//! about once a second; while the request is fresh (heartbeat under 5 s old) the manager records matching
//! operations in memory and the thread appends them to `trace.jsonl`, one JSON object per line, which
//! `cache trace` tails. When the request goes stale or disappears, tracing stops and the events file is
//! removed. Events carry keys, kinds, tiers and sizes — never prompt or response text.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::cache::clock::now_ms;
use crate::cache::kind::Kind;

/// The request file `cache trace` writes.
pub const REQUEST_FILE: &str = "trace.request";
/// The events file the writer appends to.
pub const EVENTS_FILE: &str = "trace.jsonl";
/// A request whose heartbeat is older than this is ignored.
pub const STALE_AFTER_MS: u64 = 5_000;

/// An operation that can be traced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// A get, hit or miss.
    Read,
    /// A put.
    Write,
    /// An eviction for room (memory) or for the size limit (disk).
    Evict,
    /// A removal (clear, cleanup, overwrite by remove).
    Remove,
}

impl Op {
    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// What `cache trace` asks for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceRequest {
    /// Operations to record.
    pub ops: Vec<Op>,
    /// When the requester last confirmed it is still listening, ms since the epoch.
    pub heartbeat_ms: u64,
}

impl TraceRequest {
    /// Writes the request to `dir` atomically.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        serde_json::to_writer(&mut tmp, self)?;
        tmp.persist(dir.join(REQUEST_FILE)).map_err(|e| e.error)?;
        Ok(())
    }
}

/// One traced operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceEvent {
    /// When, ms since the epoch.
    pub time_ms: u64,
    /// The operation.
    pub op: Op,
    /// The entry kind.
    pub kind: Kind,
    /// The entry key.
    pub key: String,
    /// `memory` or `disk` for reads that hit and for evictions.
    pub tier: Option<String>,
    /// For reads: whether it hit.
    pub hit: Option<bool>,
    /// Size of the value in bytes, when known.
    pub bytes: u64,
}

/// The recording side, owned by a manager.
#[derive(Debug, Default)]
pub struct Tracer {
    mask: AtomicU8,
    buffer: Mutex<Vec<TraceEvent>>,
}

impl Tracer {
    /// True when `op` is being traced (one atomic load; cheap on the hot path).
    pub fn wants(&self, op: Op) -> bool {
        self.mask.load(Ordering::Relaxed) & op.bit() != 0
    }

    /// Records an event if its operation is traced. A read also leaves its tier for [`take_last_read`].
    pub fn record(&self, op: Op, kind: Kind, key: &str, tier: Option<&str>, hit: Option<bool>, bytes: u64) {
        if matches!(op, Op::Read) {
            let tier = match tier {
                Some("memory") => Some("memory"),
                Some("disk") => Some("disk"),
                Some("remote") => Some("remote"),
                _ => None,
            };
            LAST_READ.with(|last| last.set(Some(tier)));
        }
        if self.wants(op) {
            let event = TraceEvent {
                time_ms: now_ms(),
                op,
                kind,
                key: key.to_string(),
                tier: tier.map(str::to_string),
                hit,
                bytes,
            };
            self.buffer.lock().push(event);
        }
    }

    /// Reads the request in `dir`, switches recording on or off, and appends buffered events to the events
    /// file. Called about once a second by the writer's background thread.
    pub fn poll(&self, dir: &Path) {
        let request = std::fs::read(dir.join(REQUEST_FILE))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<TraceRequest>(&bytes).ok())
            .filter(|r| now_ms().saturating_sub(r.heartbeat_ms) < STALE_AFTER_MS);
        let mask = request.as_ref().map_or(0, |r| r.ops.iter().fold(0, |m, op| m | op.bit()));
        let was = self.mask.swap(mask, Ordering::Relaxed);
        let events = std::mem::take(&mut *self.buffer.lock());
        let path = dir.join(EVENTS_FILE);
        if mask == 0 {
            if was != 0 {
                let _ = std::fs::remove_file(&path);
            }
            return;
        }
        if events.is_empty() {
            return;
        }
        let mut text = Vec::new();
        for event in &events {
            if serde_json::to_writer(&mut text, event).is_ok() {
                text.push(b'\n');
            }
        }
        let written = crate::cache::private::append(&path).and_then(|mut f| f.write_all(&text));
        if let Err(err) = written {
            tracing::warn!(path = %path.display(), "cannot write trace events: {err}");
        }
    }
}

thread_local! {
    static LAST_READ: std::cell::Cell<Option<Option<&'static str>>> = const { std::cell::Cell::new(None) };
}

/// The outcome of this thread's last cache read since the previous call: `Some(Some(tier))` for a hit in
/// `memory`, `disk` or `remote`, `Some(None)` for a miss, `None` when there was none. The server's audit of
/// lookups (`cache.audit.log_reads`) reads it right after a lookup on the same thread.
pub fn take_last_read() -> Option<Option<&'static str>> {
    LAST_READ.with(|last| last.take())
}
