//! The access audit (`[cache.audit]`, docs/security.md): one JSON line per administrative action — time,
//! action, arguments, outcome, entries and bytes affected, and who (the CLI's user and pid, or the server's
//! client address and key id) — appended to `<cache dir>/audit.jsonl` (0600), rotated by size to
//! `audit.jsonl.1`. With `log_reads`, each lookup of the server adds a `lookup` line (key, kind, tier,
//! client), never prompt or answer text.
//!
//! The process that does the work writes the record: a CLI command run on the cache itself (see
//! [`cli`]), or the server for what it is asked over HTTP or its admin socket.

pub mod access;
pub mod cli;
pub mod read;

use std::io::Write;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::CacheConfig;

/// How an action ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Done.
    Ok,
    /// Tried and failed.
    Error,
    /// Refused before it ran (a missing or wrong key).
    Denied,
}

/// Who asked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Who {
    /// `cli` (a command on this machine), `socket` (the admin socket) or `http`.
    pub via: String,
    /// The user name (CLI and admin socket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The process id (CLI and admin socket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The client's address (HTTP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// Which key let it in: `api` or `admin` (HTTP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// That key's id (never the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

impl Who {
    /// This process, run by its user.
    pub fn this_process() -> Self {
        Self { via: "cli".into(), user: Some(user_name()), pid: Some(std::process::id()), ..Self::default() }
    }
}

/// One line of the audit file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// When, RFC 3339 UTC with milliseconds.
    pub time: String,
    /// The same instant in milliseconds since the epoch (for `--since`).
    pub time_ms: u64,
    /// `clear`, `compact`, `backup`, ..., or `lookup` for a read.
    pub action: String,
    /// What was asked: the command line after `inferno`, or the request's query and body.
    pub arguments: Value,
    /// How it ended.
    pub outcome: Outcome,
    /// The error, when it failed or was denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Entries affected, when the action says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries: Option<u64>,
    /// Bytes affected, when the action says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Who asked.
    pub who: Who,
}

impl Record {
    /// A record stamped now.
    pub fn now(action: &str, arguments: Value, outcome: Outcome, who: Who) -> Self {
        let now = std::time::SystemTime::now();
        let time_ms = now.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        Self {
            time: humantime::format_rfc3339_millis(now).to_string(),
            time_ms,
            action: action.into(),
            arguments,
            outcome,
            error: None,
            entries: None,
            bytes: None,
            who,
        }
    }
}

/// The audit file of one cache, for appending.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    max_size: u64,
    enabled: bool,
    log_reads: bool,
    append: Mutex<()>,
}

impl AuditLog {
    /// The audit log `config` describes.
    pub fn new(config: &CacheConfig) -> Self {
        Self {
            path: config.audit.file(&config.base_dir),
            max_size: config.audit.rotate_size.bytes(),
            enabled: config.audit.enabled,
            log_reads: config.audit.enabled && config.audit.log_reads,
            append: Mutex::new(()),
        }
    }

    /// Where it writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when lookups are recorded too.
    pub fn logs_reads(&self) -> bool {
        self.log_reads
    }

    /// Appends `record` (when the audit is enabled), rotating the file first when it has reached
    /// `max_size`. A failure is logged as a warning and returned: the action itself has happened.
    pub fn write(&self, record: &Record) -> std::io::Result<()> {
        if !self.enabled {
            return Ok(());
        }
        let _one_at_a_time = self.append.lock();
        let result = self.append(record);
        if let Err(e) = &result {
            tracing::warn!(file = %self.path.display(), "cannot write the audit record of `{}`: {e}", record.action);
        }
        result
    }

    fn append(&self, record: &Record) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            crate::cache::private::create_dir_all(dir)?;
        }
        if std::fs::metadata(&self.path).is_ok_and(|m| m.len() >= self.max_size) {
            std::fs::rename(&self.path, rotated(&self.path))?;
        }
        let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        line.push(b'\n');
        // One write of the whole line, in append mode: lines of concurrent writers do not interleave.
        crate::cache::private::append(&self.path)?.write_all(&line)
    }
}

/// The previous generation of an audit file: `audit.jsonl.1`.
pub fn rotated(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// The user running this process: `$USER`, else the password database's name for the uid, else `uid N`.
pub fn user_name() -> String {
    if let Some(user) = std::env::var("USER").ok().filter(|u| !u.is_empty()) {
        return user;
    }
    // SAFETY: getuid cannot fail; getpwuid returns null or a pointer to static storage read at once.
    unsafe {
        let uid = libc::getuid();
        let entry = libc::getpwuid(uid);
        if !entry.is_null() && !(*entry).pw_name.is_null() {
            return std::ffi::CStr::from_ptr((*entry).pw_name).to_string_lossy().into_owned();
        }
        format!("uid {uid}")
    }
}

/// The name of user `uid` from the password database, or `uid N` when it has none. Thread-safe
/// (`getpwuid_r`), for the server, which names callers of the admin socket by the uid the kernel reports.
pub fn user_of_uid(uid: u32) -> String {
    let mut buffer = vec![0u8; 4096];
    // SAFETY: every pointer is to live storage of the stated size; on success `result` points at `entry`,
    // whose string fields point into `buffer`, both read before they go out of scope.
    unsafe {
        let mut entry: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let status = libc::getpwuid_r(uid, &mut entry, buffer.as_mut_ptr().cast(), buffer.len(), &mut result);
        if status == 0 && !result.is_null() && !entry.pw_name.is_null() {
            return std::ffi::CStr::from_ptr(entry.pw_name).to_string_lossy().into_owned();
        }
    }
    format!("uid {uid}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn users_are_named_from_the_password_database() {
        assert_eq!(user_of_uid(0), "root");
        assert_eq!(user_of_uid(3_999_999_999), "uid 3999999999");
    }

    #[test]
    fn records_are_appended_private_and_rotated_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = CacheConfig { base_dir: dir.path().join("cache"), ..CacheConfig::default() };
        config.audit.rotate_size = crate::config::units::Size(300);
        let log = AuditLog::new(&config);
        assert_eq!(log.path(), dir.path().join("cache/audit.jsonl"));
        let record = Record::now("clear", serde_json::json!(["--all"]), Outcome::Ok, Who::this_process());
        for _ in 0..3 {
            log.write(&record).unwrap();
        }
        let current = std::fs::read_to_string(log.path()).unwrap();
        let old = std::fs::read_to_string(rotated(log.path())).unwrap();
        assert_eq!(current.lines().count() + old.lines().count(), 3);
        let back: Record = serde_json::from_str(current.lines().next().unwrap()).unwrap();
        assert_eq!(back, record);
        let mode = std::fs::metadata(log.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        config.audit.enabled = false;
        std::fs::remove_dir_all(dir.path().join("cache")).unwrap();
        AuditLog::new(&config).write(&record).unwrap();
        assert!(!dir.path().join("cache").exists(), "a disabled audit writes nothing");
    }
}
