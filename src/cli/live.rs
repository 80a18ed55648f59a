//! Reaching a running `inferno serve` through its admin socket (`<cache dir>/admin.sock`): finding it, and a
//! small blocking HTTP/1.1 client over the Unix socket.
//!
//! A command that would open the cache asks [`LiveServer::find`] first; when a server answers there, the
//! command sends its request to the server and prints the answer exactly as it prints its own result (the
//! bodies are the `crate::admin` types). A stale socket left by a killed server refuses connections, so it
//! is never mistaken for a live one. Commands that cannot go through the server fail with
//! [`explain_lock`]'s message, which names the server and its socket.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::admin;
use crate::cache::CacheError;
use crate::cache::disk::{DiskError, holder};
use crate::cache::ops::backup::BackupError;
use crate::config::{self, LoadOptions};

/// Commands that go through a running server, for messages.
const FORWARDED: &str = "cache stats, metrics, clear, cleanup, compact, train-dictionary, verify, repair, \
                         warm --model/--directory, backup, export --format json|prometheus and semantic forget";

/// A server answering on the admin socket of a cache directory.
#[derive(Debug)]
pub(super) struct LiveServer {
    socket: PathBuf,
    pid: Option<u32>,
}

impl LiveServer {
    /// The server answering on the admin socket of the cache in `base_dir`, if one does.
    pub(super) fn find(base_dir: &Path) -> Option<Self> {
        let socket = admin::socket_path(base_dir);
        UnixStream::connect(&socket).ok()?;
        Some(Self { socket, pid: holder(base_dir) })
    }

    /// [`find`](Self::find) for the cache directory of the configuration in effect.
    pub(super) fn for_options(options: &LoadOptions) -> anyhow::Result<Option<Self>> {
        Ok(Self::find(&config::load(options)?.config.cache.base_dir))
    }

    /// `` `inferno serve` (pid N) on /dir/admin.sock ``, for messages.
    pub(super) fn describe(&self) -> String {
        let pid = self.pid.map_or(String::new(), |p| format!(" (pid {p})"));
        format!("a running `inferno serve`{pid} on {}", self.socket.display())
    }

    /// `GET path`, its JSON answer read as `T`.
    pub(super) fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.call("GET", path, None::<&()>)
    }

    /// `POST path` with `body` as JSON.
    pub(super) fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> anyhow::Result<T> {
        self.call("POST", path, Some(body))
    }

    /// `DELETE path` (the target, query string included).
    pub(super) fn delete<T: DeserializeOwned>(&self, target: &str) -> anyhow::Result<T> {
        self.call("DELETE", target, None::<&()>)
    }

    fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        target: &str,
        body: Option<&impl Serialize>,
    ) -> anyhow::Result<T> {
        tracing::debug!(method, target, socket = %self.socket.display(), "asking the running server");
        let body = body.map(serde_json::to_vec).transpose()?.unwrap_or_default();
        let (status, reply) = self
            .exchange(method, target, &body)
            .with_context(|| format!("cannot talk to {}", self.describe()))?;
        if !(200..300).contains(&status) {
            let message = serde_json::from_slice::<serde_json::Value>(&reply)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&reply).into_owned());
            anyhow::bail!("{} answered {status}: {message}", self.describe());
        }
        serde_json::from_slice(&reply).with_context(|| {
            format!("{} answered {method} {target} with an unreadable body", self.describe())
        })
    }

    /// One request on a fresh connection (`Connection: close`); returns the status and the body.
    fn exchange(&self, method: &str, target: &str, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        let mut stream = UnixStream::connect(&self.socket)?;
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nHost: inferno\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        if !body.is_empty() {
            head.push_str("Content-Type: application/json\r\n");
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(raw.len());
        let audited = format!("\r\n{}:", admin::AUDITED_HEADER);
        if String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase().contains(&audited) {
            // The server recorded this action in the audit; the command must not record it again.
            crate::audit::cli::delegated();
        }
        parse_response(&raw)
            .ok_or_else(|| std::io::Error::other("the server's answer is not an HTTP response"))
    }
}

/// The status and body of a whole HTTP/1.1 response (`Content-Length` or chunked).
fn parse_response(raw: &[u8]) -> Option<(u16, Vec<u8>)> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_ascii_lowercase())
        })
    };
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        return Some((status, dechunk(rest)?));
    }
    let body = match header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        Some(len) => rest.get(..len)?.to_vec(),
        None => rest.to_vec(),
    };
    Some((status, body))
}

/// The body of a chunked transfer coding.
fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

/// When `err` is the writer lock held by a running server, says so: which server, its socket, and what to do.
/// Other errors pass through unchanged.
pub(super) fn explain_lock(err: anyhow::Error) -> anyhow::Error {
    let locked = err.chain().find_map(|cause| {
        let disk = cause
            .downcast_ref::<DiskError>()
            .or_else(|| match cause.downcast_ref::<CacheError>() {
                Some(CacheError::Disk(disk)) => Some(disk),
                _ => None,
            })
            .or_else(|| match cause.downcast_ref::<BackupError>() {
                Some(BackupError::Disk(disk)) => Some(disk),
                _ => None,
            });
        match disk {
            Some(DiskError::Locked { dir, .. }) => Some(dir.clone()),
            _ => None,
        }
    });
    let Some(server) = locked.as_deref().and_then(LiveServer::find) else { return err };
    err.context(format!(
        "{} holds this cache, and this command cannot go through its admin socket; stop the server \
         (SIGTERM flushes the cache) and run the command again. Commands that go through the server: {FORWARDED}",
        server.describe()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_parsed_with_a_length_or_chunked() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(parse_response(plain), Some((200, b"{}".to_vec())));
        let chunked = b"HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked), Some((404, b"abcde".to_vec())));
        assert_eq!(parse_response(b"garbage"), None);
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort"), None);
    }

    #[test]
    fn no_server_means_none_and_errors_pass_through() {
        let dir = tempfile::tempdir().unwrap();
        assert!(LiveServer::find(dir.path()).is_none());
        // A stale socket file (nobody listening) is not a server.
        drop(std::os::unix::net::UnixListener::bind(dir.path().join(admin::SOCKET_FILE)).unwrap());
        assert!(LiveServer::find(dir.path()).is_none());
        let err = anyhow::Error::from(DiskError::Locked { dir: dir.path().to_path_buf(), pid: Some(1) });
        assert!(
            explain_lock(err)
                .to_string()
                .ends_with("is in use by process 1; stop it, or use a read-only command")
        );
    }
}
