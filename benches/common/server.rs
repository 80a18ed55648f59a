//! The real release `inferno serve` binary for the HTTP benches: a sandboxed server with the tiny llama model
//! ([`Server`]), the `inferno` CLI run against the same sandbox ([`Server::cli`]), and a minimal blocking
//! HTTP/1.1 client over one keep-alive connection ([`Connection`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running `inferno serve` in a temporary directory (killed when dropped before [`Server::stop`]).
pub struct Server {
    pub child: Option<Child>,
    pub addr: String,
    pub cache_dir: PathBuf,
    pub models_dir: PathBuf,
    sandbox: Sandbox,
}

/// A temporary directory holding the tiny model, a HOME, XDG dirs and no system config.
pub struct Sandbox {
    dir: tempfile::TempDir,
    /// `INFERNO_*` variables every process of the sandbox gets.
    env: Vec<(String, String)>,
}

impl Sandbox {
    /// A new sandbox with `tiny.gguf` in its models folder.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let models = dir.path().join("models");
        std::fs::create_dir_all(&models).expect("models dir");
        inferno::models::gguf::tiny::write_tiny_llama(&models.join("tiny.gguf")).expect("tiny model");
        Self { dir, env: Vec::new() }
    }

    /// The sandbox's folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The same sandbox, giving every process `name=value` too.
    pub fn with_env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// `inferno ARGS` in the sandbox (`INFERNO_BENCH_BIN` picks another binary), output piped.
    pub fn command(&self) -> Command {
        let bin =
            std::env::var_os("INFERNO_BENCH_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_inferno").into());
        let dir = self.dir.path();
        let mut command = Command::new(bin);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir.join("home"))
            .env("XDG_CONFIG_HOME", dir.join("xdg-config"))
            .env("XDG_CACHE_HOME", dir.join("xdg-cache"))
            .env("INFERNO_SYSTEM_CONFIG", dir.join("no-system-config.toml"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        command
    }
}

impl Server {
    /// `inferno serve --port 0` in a new sandbox.
    pub fn start() -> Self {
        Self::start_in(Sandbox::new())
    }

    /// `inferno serve --port 0 --models-dir SANDBOX/models` in `sandbox`; returns once it listens.
    pub fn start_in(sandbox: Sandbox) -> Self {
        let models_dir = sandbox.path().join("models");
        let mut child = sandbox
            .command()
            .args(["serve", "--port", "0", "--models-dir"])
            .arg(&models_dir)
            .spawn()
            .expect("start inferno serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("address line");
        // inferno serve: listening on http://ADDR (cache: KIND in DIR; models from DIR)
        let addr =
            between(&line, "listening on http://", " ").unwrap_or_else(|| panic!("no address: {line:?}"));
        let cache_dir =
            between(&line, " in ", "; models from").unwrap_or_else(|| panic!("no cache: {line:?}"));
        Self { child: Some(child), addr: addr.into(), cache_dir: cache_dir.into(), models_dir, sandbox }
    }

    /// `inferno ARGS` against this server's sandbox (its config, cache and admin socket).
    pub fn cli(&self, args: &[&str]) -> Command {
        let mut command = self.sandbox.command();
        command.args(args);
        command
    }

    /// SIGTERM, then waits: the server drains and flushes the cache before it exits.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("running");
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait().expect("wait for the server");
        assert!(status.success(), "inferno serve exited with {status}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = &text[text.find(start)? + start.len()..];
    Some(&rest[..rest.find(end)?])
}

/// One keep-alive HTTP/1.1 connection.
pub struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// The parts of a response the benches check.
pub struct Reply {
    pub status: u16,
    pub cache: Option<String>,
    pub key: Option<String>,
    pub body_len: usize,
}

impl Connection {
    pub fn open(addr: &str) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        Self { stream, buf: Vec::with_capacity(8192) }
    }

    /// Sends `request` (whole, as bytes) and reads the response: headers, then `Content-Length` bytes.
    pub fn send(&mut self, request: &[u8]) -> Reply {
        self.stream.write_all(request).expect("write request");
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = self.stream.read(&mut chunk).expect("read response");
            assert!(n > 0, "the server closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).expect("ASCII headers");
        let mut lines = head.split("\r\n");
        let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
        let (mut body_len, mut cache, mut key) = (0, None, None);
        for line in lines {
            let Some((name, value)) = line.split_once(':') else { continue };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                body_len = value.parse().expect("Content-Length");
            } else if name.eq_ignore_ascii_case("x-inferno-cache") {
                cache = Some(value.to_string());
            } else if name.eq_ignore_ascii_case("x-inferno-cache-key") {
                key = Some(value.to_string());
            }
        }
        while self.buf.len() < head_end + body_len {
            let n = self.stream.read(&mut chunk).expect("read body");
            assert!(n > 0, "the server closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(self.buf.len(), head_end + body_len, "no pipelining: nothing after the body");
        Reply { status, cache, key, body_len }
    }

    /// The body of the last reply.
    pub fn body(&self, reply: &Reply) -> &[u8] {
        &self.buf[self.buf.len() - reply.body_len..]
    }
}

/// A `POST PATH` request with a JSON body, as bytes.
pub fn post(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The `p` quantile (0..=1) of sorted samples, nearest rank.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}
