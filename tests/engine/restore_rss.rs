//! Peak memory of `inferno cache backup` and `inferno cache restore` on a large cache (ignored by default:
//! it writes about four times the cache size to the temp folder). Builds a cache of 1 MiB incompressible
//! model entries through the library, then runs the real binary under `/usr/bin/time -v` and reads its
//! "Maximum resident set size" (the kernel's peak RSS, file-backed mapped pages included).
//!
//! `INFERNO_RSS_MB` sets the cache sizes in MiB (comma-separated; default `256,2048`); the restore's peak
//! must stay under 256 MB at every size, `--verify` included. Run with
//! `cargo test --release --test engine restore_rss -- --ignored --nocapture`; the figures are in
//! docs/performance.md.

use std::path::Path;
use std::process::Command;

use inferno::cache::{Access, Kind, Manager};
use inferno::config::{CacheType, CompressionAlgorithm};

use crate::util::{self, Style};

const BIN: &str = env!("CARGO_BIN_EXE_inferno");
/// The bound the issue sets on a restore's peak RSS: 256 MB.
const LIMIT_BYTES: u64 = 256_000_000;

/// Runs the binary on cache `dir` under `/usr/bin/time -v`; returns the peak RSS in KiB.
fn peak_rss_kb(home: &Path, dir: &Path, args: &[&str]) -> u64 {
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(BIN)
        .args(["--cache-dir", dir.to_str().unwrap()])
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("PATH", "/usr/bin:/bin")
        .output()
        .expect("/usr/bin/time runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {err}");
    err.lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes): "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in: {err}"))
}

fn build_cache(dir: &Path, mib: usize) {
    let mut config = util::config(dir, CacheType::Disk, CompressionAlgorithm::Zstd, false);
    config.compression.enabled = false;
    let manager = Manager::open(&config, Access::ReadWrite).unwrap();
    for i in 0..mib {
        let value = util::make_value(1 << 20, Style::Noise, i as u64);
        manager.put(Kind::Model, &format!("model-{i}"), "big.gguf", &value, None).unwrap();
    }
    manager.flush().unwrap();
}

#[test]
#[ignore = "writes several GB; run by hand for docs/performance.md"]
fn restore_peak_rss_stays_flat() {
    if !Path::new("/usr/bin/time").exists() {
        eprintln!("skipped: /usr/bin/time (GNU time) is not installed");
        return;
    }
    let sizes: Vec<usize> = std::env::var("INFERNO_RSS_MB")
        .unwrap_or_else(|_| "256,2048".into())
        .split(',')
        .map(|s| s.trim().parse().expect("INFERNO_RSS_MB: sizes in MiB"))
        .collect();
    println!(
        "cache MiB | backup | backup --compress | restore | restore (compressed) | restore --verify  (peak RSS, MB)"
    );
    for mib in sizes {
        let root = tempfile::tempdir().unwrap();
        let (home, cache) = (root.path().join("home"), root.path().join("cache"));
        build_cache(&cache, mib);
        let (plain, zst) = (root.path().join("b-plain"), root.path().join("b-zst"));
        let backup =
            peak_rss_kb(&home, &cache, &["cache", "backup", "--destination", plain.to_str().unwrap()]);
        let backup_zst = peak_rss_kb(
            &home,
            &cache,
            &["cache", "backup", "--destination", zst.to_str().unwrap(), "--compress"],
        );
        let target = root.path().join("restored");
        let restore = peak_rss_kb(&home, &target, &["cache", "restore", "--source", plain.to_str().unwrap()]);
        let restore_zst =
            peak_rss_kb(&home, &target, &["cache", "restore", "--source", zst.to_str().unwrap()]);
        let restore_verify = peak_rss_kb(
            &home,
            &target,
            &["cache", "restore", "--source", plain.to_str().unwrap(), "--verify"],
        );
        let mb = |kb: u64| kb as f64 * 1024.0 / 1e6;
        println!(
            "{mib:>9} | {:>6.1} | {:>17.1} | {:>7.1} | {:>20.1} | {:>16.1}",
            mb(backup),
            mb(backup_zst),
            mb(restore),
            mb(restore_zst),
            mb(restore_verify)
        );
        assert!(restore * 1024 < LIMIT_BYTES, "restore of {mib} MiB peaked at {restore} KiB");
        assert!(
            restore_zst * 1024 < LIMIT_BYTES,
            "compressed restore of {mib} MiB peaked at {restore_zst} KiB"
        );
        assert!(
            restore_verify * 1024 < LIMIT_BYTES,
            "restore --verify of {mib} MiB peaked at {restore_verify} KiB"
        );
    }
}
