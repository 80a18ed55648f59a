//! The remote tier (Redis): how long a response lookup takes when the entry comes from Redis, next to the same
//! lookup answered by the memory tier and by the disk tier.
//!
//! A standalone `redis-server` on an ephemeral port on this machine (loopback). Manager A stores 5,000
//! response records of 2 KiB (`common/mod.rs`, zstd-3) and waits until its write-behind has reached Redis.
//! Manager B, on another cache directory, then looks each key up once in shuffled order: each is a local miss
//! and a remote hit (GET, checksum, decompression, and the fill of B's disk and memory tiers, all timed, as a
//! server pays them). The same keys are then looked up again in B (memory-tier hits), and in a `type = disk`
//! manager on B's directory (disk-tier hits). Every lookup is timed alone; p50, p99 and the mean are printed.
//!
//! Run with `cargo bench --no-default-features --bench remote_tier` (needs `redis-server` on PATH; about a
//! minute). `docs/performance.md` ("Remote tier") has the last numbers and the machine.

mod common;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use inferno::cache::{Access, Kind, Manager};
use inferno::config::{CacheConfig, CacheType};

const ENTRIES: usize = 5_000;

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn report(what: &str, mut times: Vec<Duration>) {
    times.sort();
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    println!(
        "{what:<28} p50 {:>9.1?}  p99 {:>9.1?}  mean {:>9.1?}  ({} lookups)",
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        mean,
        times.len()
    );
}

fn time_gets(manager: &Manager, keys: &[String]) -> Vec<Duration> {
    keys.iter()
        .map(|key| {
            let started = Instant::now();
            let found = manager.get(Kind::Response, key).unwrap();
            let took = started.elapsed();
            assert!(found.is_some(), "{key} not found");
            took
        })
        .collect()
}

fn main() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut redis = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server on PATH (apt-get install redis-server)");
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let mut config = CacheConfig { base_dir: dir_a.path().to_path_buf(), ..CacheConfig::default() };
    config.distributed.enabled = true;
    config.distributed.cluster_nodes = vec![format!("127.0.0.1:{port}")];
    config.response.max_entries = ENTRIES as u64 * 2;

    let mut rng = common::Rng(7);
    let mut keys: Vec<String> = (0..ENTRIES).map(|_| rng.hex(64)).collect();
    {
        let a = Manager::open(&config, Access::ReadWrite).unwrap();
        let started = Instant::now();
        while !a.wait_remote(Duration::from_secs(1)) {
            assert!(started.elapsed() < Duration::from_secs(10), "redis-server did not answer");
        }
        for (i, key) in keys.iter().enumerate() {
            a.put(Kind::Response, key, "llama-3.1-8b-instruct-q4_k_m", &common::record(&mut rng, i), None)
                .unwrap();
        }
        a.flush().unwrap();
    }
    for i in (1..keys.len()).rev() {
        keys.swap(i, rng.below(i + 1));
    }

    let config_b = CacheConfig { base_dir: dir_b.path().to_path_buf(), ..config.clone() };
    {
        let b = Manager::open(&config_b, Access::ReadWrite).unwrap();
        assert!(b.wait_remote(Duration::from_secs(5)));
        report("remote hit (Redis, loopback)", time_gets(&b, &keys));
        report("memory-tier hit", time_gets(&b, &keys));
        b.flush().unwrap();
    }
    let mut disk_only = CacheConfig { kind: CacheType::Disk, ..config_b };
    disk_only.distributed.enabled = false;
    let c = Manager::open(&disk_only, Access::ReadWrite).unwrap();
    report("disk-tier hit", time_gets(&c, &keys));
    let _ = redis.kill();
    let _ = redis.wait();
}
