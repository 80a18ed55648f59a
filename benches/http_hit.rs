//! A cached chat completion over HTTP: the real release `inferno serve` binary with the tiny llama model, one
//! keep-alive connection.
//!
//! The bench starts `inferno serve --port 0 --models-dir DIR` (the binary cargo builds for benches, in a
//! sandbox: its own HOME, XDG dirs and cache, no system config) with `tiny.gguf` written by
//! `inferno::models::gguf::tiny::write_tiny_llama`, sends one chat completion with `temperature: 0` (a MISS:
//! the model loads and generates), checks that the second is a HIT, then measures with a minimal blocking
//! HTTP/1.1 client over one `TcpStream` (`TCP_NODELAY`, the connection kept alive, each response read whole
//! by its `Content-Length`):
//!
//! 1. `http/chat_hit` (criterion): `POST /v1/chat/completions` of that request, every answer checked to be
//!    a 200 with `X-Inferno-Cache: HIT`; baseline `http/health`: `GET /health` on the same connection, which
//!    is the HTTP, routing and middleware cost with no handler work.
//! 2. `http_latency` (a timed loop, not criterion): 5 rounds of 4,000 requests of each, alternating, every
//!    request timed on its own; prints p50, p90, p99, p99.9 and the maximum over the 20,000 samples of each.
//! 3. `in_process` (criterion), after the server is stopped with SIGTERM (it flushes the cache): the same
//!    cache opened in this process. `get_fresh`: `response_store::get_fresh` of the request's key (a memory
//!    tier hit, the stored bytes with a fresh `id`/`created`/`model` spliced in, as in the server).
//!    `hit_path`: what the server's handler does for a hit apart from finding the model, from the body bytes
//!    to the response bytes (parse, `Request::parse`, `Prepared::with_request`, the lookup); the bench checks
//!    its key is the server's. `registry_get_loaded`: `Registry::get_loaded("tiny")`, the model lookup the
//!    server does per request on the request's task (the in-memory name table, one inotify read);
//!    `registry_get`: `Registry::get`, the same through the path that can load.
//!
//! Run with `cargo bench --bench http_hit` (about 45 s); a name filter after `--` also selects or skips the
//! timed loop. `INFERNO_BENCH_BIN=PATH` serves with another `inferno` binary (to compare builds back to back;
//! the `in_process` group always runs this tree's library). `scripts/bench-http.sh` measures throughput with
//! a load generator. `docs/performance.md` has the last numbers and the machine.

use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use inferno::cache::response_store::{self, Endpoint, ModelIdentity};
use inferno::cache::{Access, Kind, Manager};
use inferno::config::Config;
use inferno::inference::{CacheControl, Prepared, Request};
use inferno::serve::registry::Registry;
use serde_json::Value;

const CHAT_BODY: &str =
    r#"{"model":"tiny","messages":[{"role":"user","content":"abc"}],"temperature":0,"max_tokens":8}"#;
const LATENCY_ROUNDS: usize = 5;
const LATENCY_PER_ROUND: usize = 4_000;

/// Whether the bench named `name` was selected by the filter arguments (criterion's filters are regexes;
/// a substring match is close enough to decide whether to run the timed loop at all).
fn selected(name: &str) -> bool {
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()) || f.contains(name))
}

/// A running `inferno serve` in a temporary directory (killed when dropped before [`Server::stop`]).
struct Server {
    child: Option<Child>,
    addr: String,
    cache_dir: PathBuf,
    models_dir: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let models_dir = dir.path().join("models");
        std::fs::create_dir_all(&models_dir).expect("models dir");
        inferno::models::gguf::tiny::write_tiny_llama(&models_dir.join("tiny.gguf")).expect("tiny model");
        let bin =
            std::env::var_os("INFERNO_BENCH_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_inferno").into());
        let mut child = Command::new(bin)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir.path().join("home"))
            .env("XDG_CONFIG_HOME", dir.path().join("xdg-config"))
            .env("XDG_CACHE_HOME", dir.path().join("xdg-cache"))
            .env("INFERNO_SYSTEM_CONFIG", dir.path().join("no-system-config.toml"))
            .args(["serve", "--port", "0", "--models-dir"])
            .arg(&models_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start inferno serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("address line");
        // inferno serve: listening on http://ADDR (cache: KIND in DIR; models from DIR)
        let addr =
            between(&line, "listening on http://", " ").unwrap_or_else(|| panic!("no address: {line:?}"));
        let cache_dir =
            between(&line, " in ", "; models from").unwrap_or_else(|| panic!("no cache: {line:?}"));
        Self { child: Some(child), addr: addr.into(), cache_dir: cache_dir.into(), models_dir, _dir: dir }
    }

    /// SIGTERM, then waits: the server drains and flushes the cache before it exits.
    fn stop(&mut self) {
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
struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// The parts of a response the bench checks.
struct Reply {
    status: u16,
    cache: Option<String>,
    key: Option<String>,
    body_len: usize,
}

impl Connection {
    fn open(addr: &str) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        Self { stream, buf: Vec::with_capacity(8192) }
    }

    /// Sends `request` (whole, as bytes) and reads the response: headers, then `Content-Length` bytes.
    fn send(&mut self, request: &[u8]) -> Reply {
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
    fn body(&self, reply: &Reply) -> &[u8] {
        &self.buf[self.buf.len() - reply.body_len..]
    }
}

fn chat_request() -> Vec<u8> {
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{CHAT_BODY}",
        CHAT_BODY.len()
    )
    .into_bytes()
}

fn health_request() -> Vec<u8> {
    b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec()
}

/// Sends `request` and checks the reply is a 200 (and a HIT when `hit`).
fn checked(conn: &mut Connection, request: &[u8], hit: bool) -> usize {
    let reply = conn.send(request);
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(conn.body(&reply)));
    if hit {
        assert_eq!(reply.cache.as_deref(), Some("HIT"));
    }
    reply.body_len
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn print_latencies(name: &str, samples: &mut [u64]) {
    samples.sort_unstable();
    let us = |ns: u64| ns as f64 / 1000.0;
    let mean = samples.iter().sum::<u64>() as f64 / samples.len() as f64;
    println!(
        "{name:<10} n={} p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {:.1} µs, mean {:.1} µs",
        samples.len(),
        us(percentile(samples, 0.50)),
        us(percentile(samples, 0.90)),
        us(percentile(samples, 0.99)),
        us(percentile(samples, 0.999)),
        us(*samples.last().expect("samples")),
        mean / 1000.0,
    );
}

fn benches(c: &mut Criterion) {
    let mut server = Server::start();
    let mut conn = Connection::open(&server.addr);
    let (chat, health) = (chat_request(), health_request());
    let first = conn.send(&chat);
    assert_eq!((first.status, first.cache.as_deref()), (200, Some("MISS")), "the first request generates");
    let key = first.key.clone().expect("X-Inferno-Cache-Key");
    let second = conn.send(&chat);
    assert_eq!((second.status, second.cache.as_deref()), (200, Some("HIT")));
    println!(
        "server {} (pid {}); cached answer {} B: {}",
        server.addr,
        server.child.as_ref().expect("running").id(),
        second.body_len,
        String::from_utf8_lossy(conn.body(&second))
    );

    let mut group = c.benchmark_group("http");
    group.bench_function("chat_hit", |b| b.iter(|| checked(&mut conn, &chat, true)));
    group.bench_function("health", |b| b.iter(|| checked(&mut conn, &health, false)));
    group.finish();

    if selected("http_latency") {
        let (mut chat_ns, mut health_ns) = (Vec::new(), Vec::new());
        for _ in 0..LATENCY_ROUNDS {
            for (request, hit, samples) in [(&chat, true, &mut chat_ns), (&health, false, &mut health_ns)] {
                for _ in 0..LATENCY_PER_ROUND {
                    let started = Instant::now();
                    black_box(checked(&mut conn, request, hit));
                    samples.push(started.elapsed().as_nanos() as u64);
                }
            }
        }
        println!(
            "http_latency: {LATENCY_ROUNDS} rounds of {LATENCY_PER_ROUND} requests each, one connection"
        );
        print_latencies("chat_hit", &mut chat_ns);
        print_latencies("health", &mut health_ns);
    }
    drop(conn);
    server.stop();
    in_process(c, &server, &key);
}

/// The server's hit path without HTTP, on the cache the stopped server flushed.
fn in_process(c: &mut Criterion, stopped: &Server, key: &str) {
    let mut config = Config::default();
    config.cache.base_dir = stopped.cache_dir.clone();
    config.models.dir = stopped.models_dir.clone();
    let manager = Manager::open(&config.cache, Access::ReadWrite).expect("open the server's cache");
    let record: Value =
        serde_json::from_slice(&manager.get(Kind::Response, key).expect("get").expect("the stored record"))
            .expect("a JSON record");
    let identity = ModelIdentity {
        name: "tiny".into(),
        fingerprint: record["model_fingerprint"].as_str().expect("model_fingerprint").into(),
    };
    let hit_path = |bytes: &[u8]| -> (String, Vec<u8>) {
        let body: Value = serde_json::from_slice(bytes).expect("JSON");
        let request = Request::parse(Endpoint::Chat, &body).expect("a valid request");
        let prepared = Prepared::with_request(
            &manager,
            identity.clone(),
            Endpoint::Chat,
            body,
            request,
            &CacheControl::default(),
        )
        .expect("plan");
        let hit = prepared.lookup(&manager).expect("a hit");
        (hit.key, hit.body)
    };
    assert_eq!(hit_path(CHAT_BODY.as_bytes()).0, key, "the in-process key is the server's");
    let registry = Registry::new(&config.models.dir, &config.cache.model, true);
    assert_eq!(registry.get("tiny").expect("load tiny").fingerprint(), identity.fingerprint);

    let mut group = c.benchmark_group("in_process");
    group.bench_function("get_fresh", |b| {
        b.iter(|| response_store::get_fresh(&manager, black_box(key), Some("tiny")).expect("get"))
    });
    group.bench_function("hit_path", |b| b.iter(|| hit_path(black_box(CHAT_BODY.as_bytes()))));
    group.bench_function("registry_get", |b| b.iter(|| registry.get(black_box("tiny")).expect("get")));
    group.bench_function("registry_get_loaded", |b| {
        b.iter(|| registry.get_loaded(black_box("tiny")).expect("loaded"))
    });
    group.finish();
}

criterion_group! {
    name = http_hit;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(30);
    targets = benches
}
criterion_main!(http_hit);
