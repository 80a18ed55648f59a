//! Append-only JSON-lines files kept under a size cap, owner-only (0600): the counter history and the alert
//! history. Past the cap, the older half of the lines is dropped (rewritten through a temp file and a
//! rename) before the next line is appended; lines that do not parse (a torn last write) are skipped on read.

use std::io::Write;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Appends `value` as one line to `path`, first halving the file when it is over `max_bytes`.
pub fn append<T: Serialize>(path: &Path, max_bytes: u64, value: &T) -> std::io::Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() > max_bytes) {
        let text = std::fs::read_to_string(path)?;
        let lines: Vec<&str> = text.lines().collect();
        let keep = lines[lines.len() / 2..].join("\n") + "\n";
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        tmp.write_all(keep.as_bytes())?;
        tmp.persist(path).map_err(|e| e.error)?;
    }
    let mut line = serde_json::to_vec(value)?;
    line.push(b'\n');
    crate::cache::private::append(path)?.write_all(&line)
}

/// Every line of `path` that parses as `T`, in file order; nothing when the file is missing.
pub fn read<T: DeserializeOwned>(path: &Path) -> Vec<T> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    text.lines().filter_map(|line| serde_json::from_str::<T>(line).ok()).collect()
}
