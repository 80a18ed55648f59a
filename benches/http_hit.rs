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
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use inferno::cache::response_store::{self, Endpoint, ModelIdentity};
use inferno::cache::{Access, Kind, Manager};
use inferno::config::Config;
use inferno::inference::{CacheControl, Prepared, Request};
use inferno::serve::registry::Registry;
use serde_json::Value;

mod common;

use common::selected;
use common::server::{Connection, Server, percentile, post};

const CHAT_BODY: &str =
    r#"{"model":"tiny","messages":[{"role":"user","content":"abc"}],"temperature":0,"max_tokens":8}"#;
const LATENCY_ROUNDS: usize = 5;
const LATENCY_PER_ROUND: usize = 4_000;

fn chat_request() -> Vec<u8> {
    post("/v1/chat/completions", CHAT_BODY)
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
