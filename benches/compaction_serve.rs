//! `inferno serve` answering cache misses while `inferno cache compact` rewrites its cache through the admin
//! socket (issue 12's end-to-end compaction target).
//!
//! The bench fills a `persistent` cache (the default configuration: memory and disk tiers, zstd, dedup) with
//! `INFERNO_BENCH_ENTRIES` chat-completion records (default 300,000, about 2 KiB of JSON each) through the
//! library and removes every third, then starts the real release binary on that cache with the tiny llama
//! model. On one keep-alive connection it sends chat completions that are all misses (each a new question:
//! the model generates 4 tokens and the answer is stored), timing each:
//!
//! 1. `before`: `INFERNO_BENCH_MISSES` misses (default 400) with nothing else running;
//! 2. `during`: misses for as long as `inferno cache compact` (run as a separate process, which finds the
//!    live server and has it compact) is running.
//!
//! Printed: p50, p99 and max of each, the number of misses during the pass, the pass's wall time, the target
//! (p99 during ≤ max(3 × p99 before, p99 before + 20 ms)) and whether it was met. Afterwards the first answer
//! stored during the pass is asked for again and must be a HIT (a put racing the pass is kept).
//!
//! Run with `cargo bench --bench compaction_serve` (a few minutes: most of it filling the cache). Not a
//! criterion bench: the quantity is a tail latency under a one-off event. `docs/performance.md` has the
//! last numbers and the machine.

use std::time::{Duration, Instant};

use inferno::cache::{Access, Kind, Manager};
use inferno::config::Config;

mod common;

use common::server::{Connection, Sandbox, Server, percentile, post};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Fills the cache in `dir` with `entries` records and removes every third; returns the live count.
fn fill(dir: &std::path::Path, entries: usize) -> usize {
    let mut config = Config::default();
    config.cache.base_dir = dir.to_path_buf();
    let manager = Manager::open(&config.cache, Access::ReadWrite).expect("open the cache");
    let mut rng = common::Rng(12);
    let keys: Vec<String> = (0..entries).map(|_| rng.hex(64)).collect();
    for (i, key) in keys.iter().enumerate() {
        manager.put(Kind::Response, key, "tiny", &common::record(&mut rng, i), None).expect("put");
    }
    for key in keys.iter().step_by(3) {
        manager.remove(Kind::Response, key).expect("remove");
    }
    manager.flush().expect("flush");
    entries - entries.div_ceil(3)
}

/// A chat completion no earlier request asked (so a miss: the model generates and the answer is stored).
fn miss(i: usize) -> Vec<u8> {
    let body = format!(
        r#"{{"model":"tiny","messages":[{{"role":"user","content":"question {i}: abc"}}],"temperature":0,"max_tokens":4}}"#
    );
    post("/v1/chat/completions", &body)
}

/// Sends request `i` and returns how long its answer took; it must be a stored MISS.
fn timed_miss(conn: &mut Connection, i: usize) -> u64 {
    let request = miss(i);
    let started = Instant::now();
    let reply = conn.send(&request);
    let took = started.elapsed().as_nanos() as u64;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(conn.body(&reply)));
    assert_eq!(reply.cache.as_deref(), Some("MISS"), "request {i} was asked before");
    took
}

fn summary(name: &str, samples: &mut [u64]) -> u64 {
    samples.sort_unstable();
    let ms = |ns: u64| ns as f64 / 1e6;
    let p99 = percentile(samples, 0.99);
    println!(
        "{name:<7} n={:>5}  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
        samples.len(),
        ms(percentile(samples, 0.50)),
        ms(p99),
        ms(*samples.last().expect("samples")),
    );
    p99
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("compaction_serve: bench");
        return;
    }
    let entries = env_or("INFERNO_BENCH_ENTRIES", 300_000);
    let before_n = env_or("INFERNO_BENCH_MISSES", 400);
    let sandbox = Sandbox::new();
    let cache_dir = sandbox.path().join("cache");
    let started = Instant::now();
    let live = fill(&cache_dir, entries);
    println!(
        "filled {entries} entries, {live} left after removing every third, in {:.1?}",
        started.elapsed()
    );
    let sandbox = sandbox.with_env("INFERNO_CACHE__BASE_DIR", cache_dir.to_str().expect("UTF-8 temp path"));
    let mut server = Server::start_in(sandbox);
    let mut conn = Connection::open(&server.addr);
    // The first answer loads the model; it is not a sample.
    timed_miss(&mut conn, 0);
    let mut before: Vec<u64> = (1..=before_n).map(|i| timed_miss(&mut conn, i)).collect();

    let pass_started = Instant::now();
    let mut compact =
        server.cli(&["cache", "compact", "--json"]).spawn().expect("start inferno cache compact");
    let first_during = before_n + 1;
    let mut during = Vec::new();
    let status = loop {
        if let Some(status) = compact.try_wait().expect("poll the compaction") {
            break status;
        }
        during.push(timed_miss(&mut conn, first_during + during.len()));
    };
    let pass = pass_started.elapsed();
    let report = std::io::read_to_string(compact.stdout.take().expect("stdout")).expect("compact's report");
    assert!(status.success(), "inferno cache compact failed ({status}): {report}");

    let again = conn.send(&miss(first_during));
    assert_eq!(again.cache.as_deref(), Some("HIT"), "an answer stored during the pass was lost");
    drop(conn);
    server.stop();

    println!("`inferno cache compact` through the server: {pass:.2?}; its report: {}", report.trim());
    let p99_before = summary("before", &mut before);
    if during.is_empty() {
        println!("during  no miss finished within the pass: raise INFERNO_BENCH_ENTRIES");
        return;
    }
    let p99_during = summary("during", &mut during);
    let target = (3 * p99_before).max(p99_before + Duration::from_millis(20).as_nanos() as u64);
    println!(
        "miss p99 during / before: {:.2}x; target p99 during <= {:.2} ms: {}",
        p99_during as f64 / p99_before as f64,
        target as f64 / 1e6,
        if p99_during <= target { "met" } else { "MISSED" },
    );
}
