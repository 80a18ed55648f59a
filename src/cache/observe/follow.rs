//! The reading side of `cache trace`'s protocol (see [`super::trace`]): asks the process writing the cache
//! to record operations, keeps the request's heartbeat fresh, and tails the events file as it grows.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::trace::{EVENTS_FILE, Op, REQUEST_FILE, TraceEvent, TraceRequest};
use crate::cache::clock::now_ms;
use crate::cache::disk::holder;

/// Why following could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FollowError {
    /// No process holds the writer lock.
    #[error(
        "no process is writing the cache in {}; trace shows the operations of a running writer (such as `inferno serve`)",
        .0.display()
    )]
    NoWriter(PathBuf),
    /// The request or events file could not be written or read.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A trace being followed. Dropping it withdraws the request, so the writer stops recording.
#[derive(Debug)]
pub struct TraceFollower {
    dir: PathBuf,
    pid: u32,
    ops: Vec<Op>,
    offset: u64,
    last_beat: Instant,
}

/// What one [`TraceFollower::poll`] found.
#[derive(Debug)]
pub enum Polled {
    /// Events appended since the last poll: each as its JSON line and decoded.
    Events(Vec<(String, TraceEvent)>),
    /// The writer exited.
    WriterGone,
}

impl TraceFollower {
    /// Asks the writer of the cache in `dir` to record `ops`; events already in the file are skipped.
    pub fn start(dir: &Path, ops: Vec<Op>) -> Result<Self, FollowError> {
        let pid = holder(dir).ok_or_else(|| FollowError::NoWriter(dir.to_path_buf()))?;
        let offset = std::fs::metadata(dir.join(EVENTS_FILE)).map_or(0, |m| m.len());
        TraceRequest { ops: ops.clone(), heartbeat_ms: now_ms() }.save(dir)?;
        Ok(Self { dir: dir.to_path_buf(), pid, ops, offset, last_beat: Instant::now() })
    }

    /// The writer's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Reads the complete lines appended since the last poll (lines that do not decode are skipped), and
    /// refreshes the heartbeat once a second.
    pub fn poll(&mut self) -> Result<Polled, FollowError> {
        let events_path = self.dir.join(EVENTS_FILE);
        let mut events = Vec::new();
        if let Ok(mut file) = std::fs::File::open(&events_path) {
            let len = file.metadata()?.len();
            if len < self.offset {
                // The writer removed the file and began a new one.
                self.offset = 0;
            }
            file.seek(SeekFrom::Start(self.offset))?;
            let mut text = String::new();
            file.read_to_string(&mut text)?;
            let complete = text.rfind('\n').map_or(0, |i| i + 1);
            self.offset += complete as u64;
            for raw in text[..complete].lines() {
                if let Ok(event) = serde_json::from_str::<TraceEvent>(raw) {
                    events.push((raw.to_string(), event));
                }
            }
        }
        if events.is_empty() && holder(&self.dir) != Some(self.pid) {
            return Ok(Polled::WriterGone);
        }
        if self.last_beat.elapsed() >= Duration::from_secs(1) {
            TraceRequest { ops: self.ops.clone(), heartbeat_ms: now_ms() }.save(&self.dir)?;
            self.last_beat = Instant::now();
        }
        Ok(Polled::Events(events))
    }
}

impl Drop for TraceFollower {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.dir.join(REQUEST_FILE));
    }
}
