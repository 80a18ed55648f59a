//! `alerts.jsonl` in the cache directory: one line per notification (fired, repeated, resolved, test) with
//! where it was delivered and how. `cache report` and `cache alerts status` (without a server) read it. Kept
//! under 1 MiB by dropping the oldest half when it grows past that.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Alert;
use super::channels::Delivery;
use crate::cache::observe::jsonl;

/// The file in the cache directory.
pub const ALERTS_FILE: &str = "alerts.jsonl";
const MAX_BYTES: u64 = 1 << 20;

/// One notification and its deliveries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// When it was sent, ms since the Unix epoch.
    pub time_ms: u64,
    /// What was sent.
    pub alert: Alert,
    /// Per channel, what happened.
    pub deliveries: Vec<Delivery>,
}

/// Appends `entry` to the history in `dir` (owner-only, capped like the counter history).
pub fn record(dir: &Path, entry: &Entry) -> std::io::Result<()> {
    jsonl::append(&dir.join(ALERTS_FILE), MAX_BYTES, entry)
}

/// Entries in `dir` sent at or after `since_ms`, oldest first; unreadable lines are skipped.
pub fn load(dir: &Path, since_ms: u64) -> Vec<Entry> {
    let all: Vec<Entry> = jsonl::read(&dir.join(ALERTS_FILE));
    all.into_iter().filter(|e| e.time_ms >= since_ms).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::Notice;

    #[test]
    fn entries_round_trip_and_filter_by_time() {
        let dir = tempfile::tempdir().unwrap();
        let alert = Alert {
            version: 1,
            rule: "hit_ratio".into(),
            state: Notice::Firing,
            repeat: false,
            value: Some(0.1),
            threshold: Some(0.8),
            window_seconds: 60,
            host: "h".into(),
            cache_dir: "/c".into(),
            started_at: "1970-01-01T00:00:00Z".into(),
            ended_at: None,
            summary: "s".into(),
        };
        let delivery = Delivery { channel: "webhook".into(), ok: true, attempts: 1, error: None };
        for time_ms in [10, 20] {
            record(dir.path(), &Entry { time_ms, alert: alert.clone(), deliveries: vec![delivery.clone()] })
                .unwrap();
        }
        let mut file = std::fs::OpenOptions::new().append(true).open(dir.path().join(ALERTS_FILE)).unwrap();
        std::io::Write::write_all(&mut file, b"{torn").unwrap();
        assert_eq!(load(dir.path(), 0).len(), 2);
        assert_eq!(load(dir.path(), 15)[0].time_ms, 20);
    }
}
