//! The audit record of a CLI command run on the cache itself: [`run`] wraps the command, the command notes
//! what it affected with [`affected`], and a command that had a running server do the work says so with
//! [`delegated`] (the server then wrote the record, so the CLI writes none: one record per action).

use parking_lot::Mutex;
use serde_json::Value;

use super::{AuditLog, Outcome, Record, Who};
use crate::config::CacheConfig;

/// What the command in progress reported.
#[derive(Default)]
struct Pending {
    entries: Option<u64>,
    bytes: Option<u64>,
    delegated: bool,
}

static CURRENT: Mutex<Option<Pending>> = Mutex::new(None);

/// The entries and bytes the command in progress affected (no-op outside [`run`]).
pub fn affected(entries: u64, bytes: u64) {
    if let Some(pending) = CURRENT.lock().as_mut() {
        pending.entries = Some(entries);
        pending.bytes = Some(bytes);
    }
}

/// The entries the command in progress affected, when it cannot say how many bytes.
pub fn affected_entries(entries: u64) {
    if let Some(pending) = CURRENT.lock().as_mut() {
        pending.entries = Some(entries);
    }
}

/// The command in progress was carried out by a running server, which recorded it.
pub fn delegated() {
    if let Some(pending) = CURRENT.lock().as_mut() {
        pending.delegated = true;
    }
}

/// This process's arguments after the program name, with the values of secret-bearing flags masked.
pub fn arguments() -> Value {
    let mut out = Vec::new();
    let mut mask_next = false;
    for arg in std::env::args().skip(1) {
        if mask_next {
            out.push("(masked)".to_string());
            mask_next = false;
            continue;
        }
        let (flag, value) = arg.split_once('=').map_or((arg.as_str(), None), |(f, v)| (f, Some(v)));
        let secret = flag.starts_with("--")
            && ["api-key", "admin-key", "password", "secret"].iter().any(|s| flag.contains(s));
        match (secret, value) {
            (true, Some(_)) => out.push(format!("{flag}=(masked)")),
            (true, None) => {
                out.push(arg.clone());
                mask_next = true;
            }
            (false, _) => out.push(arg.clone()),
        }
    }
    Value::from(out)
}

/// Runs `command` (the CLI's `action`) and records it in the audit of the cache `config` describes, unless
/// a server did it. With no configuration (it did not load: the command reports that itself) nothing is
/// recorded.
pub fn run<T>(
    config: Option<&CacheConfig>,
    action: &str,
    arguments: Value,
    command: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    *CURRENT.lock() = Some(Pending::default());
    let result = command();
    let pending = CURRENT.lock().take().unwrap_or_default();
    // A command refused for how it was called (exit 2) did nothing; only what ran is recorded.
    let refused = result.as_ref().err().is_some_and(|e| {
        e.downcast_ref::<crate::cli::UsageError>().is_some()
            || e.downcast_ref::<crate::config::ConfigError>().is_some_and(|c| c.is_usage())
    });
    if let Some(config) = config
        && !pending.delegated
        && !refused
    {
        let outcome = if result.is_ok() { Outcome::Ok } else { Outcome::Error };
        let mut record = Record::now(action, arguments, outcome, Who::this_process());
        record.error = result.as_ref().err().map(|e| format!("{e:#}"));
        record.entries = pending.entries;
        record.bytes = pending.bytes;
        // A failure to write is a warning (logged by `write`); the command's own result stands.
        let _ = AuditLog::new(config).write(&record);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_record_unless_delegated() {
        let dir = tempfile::tempdir().unwrap();
        let config = CacheConfig { base_dir: dir.path().to_path_buf(), ..CacheConfig::default() };
        run(Some(&config), "clear", Value::Null, || {
            affected(3, 300);
            Ok(())
        })
        .unwrap();
        let failed: anyhow::Result<()> = run(Some(&config), "compact", Value::Null, || anyhow::bail!("boom"));
        assert!(failed.is_err());
        run(Some(&config), "backup", Value::Null, || {
            delegated();
            Ok(())
        })
        .unwrap();
        let text = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
        let records: Vec<Record> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(records.len(), 2, "{text}");
        assert_eq!(
            (records[0].entries, records[0].bytes, records[0].outcome),
            (Some(3), Some(300), Outcome::Ok)
        );
        assert_eq!(records[1].outcome, Outcome::Error);
        assert_eq!(records[1].error.as_deref(), Some("boom"));
        assert_eq!(records[1].who.pid, Some(std::process::id()));
    }
}
