//! The admin API of a running `inferno serve`: where its Unix socket is, and the request and reply bodies of
//! its `/v1/cache/...` routes.
//!
//! The server (`serve::admin`) answers with these types and the CLI (`cli::live`) reads them, and the CLI's
//! `--json` output of the same command is the same document, so a command prints the same thing whether it
//! ran on the cache itself or through the server. docs/serve.md, "Admin API", describes the routes. The
//! operations themselves are written once, in [`ops`].

pub mod ops;
mod views;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cache::{Filter, Kind};
use crate::config::units::{SECOND, parse_duration};

pub use views::{
    BackupView, CompactView, DamagedView, KindCount, LiveStats, RangeView, RemoteClearView, RemovalView,
    ServerInfo, VerifyView,
};

/// The header of an answer whose action the server recorded in the audit.
pub const AUDITED_HEADER: &str = "x-inferno-audited";

/// Name of the server's admin socket in the cache directory.
pub const SOCKET_FILE: &str = "admin.sock";

/// The admin socket of the cache in `base_dir`.
pub fn socket_path(base_dir: &Path) -> PathBuf {
    base_dir.join(SOCKET_FILE)
}

/// What `DELETE /v1/cache` removes, from its query string (`?type=response&pattern=llama*`) or a JSON body
/// with the same fields. At least one selector is required; `all` stands alone.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClearRequest {
    /// Remove every entry.
    pub all: bool,
    /// Only the entry stored under exactly this key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Only entries whose name or key matches this glob.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Only these kinds, comma-separated: `response`, `model`, `metadata`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kinds: Option<String>,
    /// Only entries created longer ago than this: seconds, or a duration such as `24h` or `7d`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub older_than: Option<String>,
    /// Leave the remote tier alone (`cache cleanup`: Redis expires entries by their own TTLs).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub local_only: bool,
}

impl ClearRequest {
    /// The request for these selectors (`older_than` travels in milliseconds).
    pub fn new(
        kinds: &[Kind],
        key: Option<&str>,
        pattern: Option<&str>,
        older_than: Option<Duration>,
    ) -> Self {
        let kinds = (!kinds.is_empty()).then(|| kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(","));
        Self {
            all: false,
            key: key.map(str::to_string),
            pattern: pattern.map(str::to_string),
            kinds,
            older_than: older_than.map(|d| format!("{}ms", d.as_millis())),
            local_only: false,
        }
    }

    /// The entries it selects, or why it is not a valid request.
    pub fn filter(&self) -> Result<Filter, String> {
        let selectors = self.key.is_some() || self.pattern.is_some() || self.kinds.is_some();
        let selectors = selectors || self.older_than.is_some();
        if self.all && selectors {
            return Err("`all` removes every entry; give it alone, or give selectors without it".into());
        }
        if !self.all && !selectors {
            return Err("say what to remove: all=true, or key, pattern, type and/or older_than".into());
        }
        let pattern = match &self.pattern {
            Some(p) => Some(glob::Pattern::new(p).map_err(|e| format!("pattern {p:?}: {e}"))?),
            None => None,
        };
        let kinds = match &self.kinds {
            Some(text) => text.split(',').map(str::parse).collect::<Result<Vec<Kind>, String>>()?,
            None => Vec::new(),
        };
        let older_than = match &self.older_than {
            Some(text) => {
                Some(parse_duration(text, SECOND).map_err(|e| format!("older_than {text:?}: {e}"))?)
            }
            None => None,
        };
        Ok(Filter { kinds, key: self.key.clone(), pattern, older_than })
    }

    /// The request as a URL query string, without the `?`.
    pub fn query_string(&self) -> String {
        let mut pairs = Vec::new();
        if self.all {
            pairs.push("all=true".to_string());
        }
        let fields = [("key", &self.key), ("pattern", &self.pattern), ("type", &self.kinds)];
        for (name, value) in fields.into_iter().chain([("older_than", &self.older_than)]) {
            if let Some(value) = value {
                pairs.push(format!("{name}={}", percent_encode(value)));
            }
        }
        if self.local_only {
            pairs.push("local_only=true".to_string());
        }
        pairs.join("&")
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `POST /v1/cache/warm`: the model to warm and keep loaded. Over HTTP, a name in `models.dir`; over the
/// admin socket, also a path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmRequest {
    /// A model's name (its file stem) in `models.dir`, or (admin socket only) a path.
    pub model: String,
}

/// `POST /v1/cache/verify`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerifyRequest {
    /// Quarantine what is damaged.
    pub fix: bool,
}

/// `POST /v1/cache/backup` (admin socket only: it writes files where the caller says).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    /// Folder to write the backup to (created; must be new or empty). Absolute, or relative to the server's
    /// working directory.
    pub destination: PathBuf,
    /// Compress the files with zstd.
    #[serde(default)]
    pub compress: bool,
    /// Read the backup back and check every checksum.
    #[serde(default)]
    pub verify: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_requests_round_trip_through_a_query_string() {
        let request = ClearRequest::new(
            &[Kind::Response],
            Some("k 1"),
            Some("llama*[ab]"),
            Some(Duration::from_secs(90)),
        );
        let query = request.query_string();
        assert_eq!(query, "key=k%201&pattern=llama%2A%5Bab%5D&type=response&older_than=90000ms");
        let filter = request.filter().unwrap();
        assert_eq!(filter.kinds, [Kind::Response]);
        assert_eq!(filter.key.as_deref(), Some("k 1"));
        assert_eq!(filter.older_than, Some(Duration::from_secs(90)));
        assert_eq!(ClearRequest { all: true, ..ClearRequest::default() }.query_string(), "all=true");
    }

    #[test]
    fn clear_requests_need_exactly_one_way_of_selecting() {
        assert!(ClearRequest::default().filter().unwrap_err().contains("say what to remove"));
        let both = ClearRequest { all: true, key: Some("k".into()), ..ClearRequest::default() };
        assert!(both.filter().unwrap_err().contains("alone"));
        let all = ClearRequest { all: true, ..ClearRequest::default() }.filter().unwrap();
        assert!(all.kinds.is_empty() && all.key.is_none() && all.pattern.is_none());
        let bad = ClearRequest { kinds: Some("response,nope".into()), ..ClearRequest::default() };
        assert!(bad.filter().unwrap_err().contains("unknown cache type"));
        let age = ClearRequest { older_than: Some("7d".into()), ..ClearRequest::default() };
        assert_eq!(age.filter().unwrap().older_than, Some(Duration::from_secs(7 * 86400)));
    }
}
