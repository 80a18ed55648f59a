//! Reading the audit back: both generations of the file (`audit.jsonl.1`, then `audit.jsonl`), oldest
//! first, filtered by time and action (`inferno cache audit`). Lines that do not parse are counted, not
//! fatal: the file is append-only text that a crash may have cut short.

use std::path::Path;

use super::{Record, rotated};

/// What was read.
#[derive(Debug, Default)]
pub struct Read {
    /// Matching records, oldest first.
    pub records: Vec<Record>,
    /// Lines that were not records.
    pub unreadable: usize,
}

/// Which records to keep.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// Only records at or after this time (ms since the epoch).
    pub since_ms: Option<u64>,
    /// Only these actions.
    pub actions: Vec<String>,
}

impl Query {
    fn keeps(&self, record: &Record) -> bool {
        self.since_ms.is_none_or(|since| record.time_ms >= since)
            && (self.actions.is_empty() || self.actions.contains(&record.action))
    }
}

/// The records of the audit file at `path` (and its rotated generation) that `query` keeps.
pub fn read(path: &Path, query: &Query) -> std::io::Result<Read> {
    let mut out = Read::default();
    for file in [rotated(path), path.to_path_buf()] {
        let text = match std::fs::read(&file) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(std::io::Error::new(e.kind(), format!("{}: {e}", file.display()))),
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<Record>(line) {
                Ok(record) if query.keeps(&record) => out.records.push(record),
                Ok(_) => {}
                Err(_) => out.unreadable += 1,
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Outcome, Who};

    #[test]
    fn both_generations_oldest_first_filtered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let line = |action: &str, ms: u64| {
            let mut r = Record::now(action, serde_json::Value::Null, Outcome::Ok, Who::default());
            r.time_ms = ms;
            serde_json::to_string(&r).unwrap() + "\n"
        };
        std::fs::write(rotated(&path), line("clear", 1)).unwrap();
        std::fs::write(&path, line("compact", 2) + "{cut short\n" + &line("clear", 3)).unwrap();
        let all = read(&path, &Query::default()).unwrap();
        let ms: Vec<u64> = all.records.iter().map(|r| r.time_ms).collect();
        assert_eq!((ms, all.unreadable), (vec![1, 2, 3], 1));
        let query = Query { since_ms: Some(2), actions: vec!["clear".into()] };
        assert_eq!(read(&path, &query).unwrap().records.len(), 1);
        assert!(read(&dir.path().join("none"), &query).unwrap().records.is_empty());
    }
}
