//! `inferno serve` with its cache on a small tmpfs that fills up: every request is still answered, `/health`
//! says degraded with the reason, the write-error metric counts, the log says what failed; once space is
//! freed, new entries are stored again, SIGTERM exits 0, and a restarted server hits them.

use serde_json::{Value, json};

use crate::server::{Server, with_tiny_model};
use crate::tmpfs::{Tmpfs, fill};

fn chat(content: &str) -> Value {
    json!({"model": "tiny", "messages": [{"role": "user", "content": content}], "temperature": 0, "max_tokens": 8})
}

#[test]
fn a_full_disk_degrades_the_server_without_failing_requests_and_it_recovers() {
    let Some(fs) = Tmpfs::mount(8 << 20) else { return };
    let (sb, models) = with_tiny_model();
    let cache_dir = fs.path().join("cache");
    let cache_dir = cache_dir.to_str().unwrap();
    let env = [
        ("INFERNO_CACHE__PERSISTENCE__SYNC_INTERVAL_SECONDS", "1"),
        ("INFERNO_CACHE__PERSISTENCE__WRITE_BUFFER_SIZE", "4KiB"),
        ("INFERNO_CACHE__METRICS__PROMETHEUS_ENABLED", "true"),
    ];
    let extra = ["--cache-persist", "--cache-dir", cache_dir];
    let log = sb.path("serve.log");
    let server = Server::start_logging(&sb, &models, &extra, &env, &log);
    assert_eq!(server.post("/v1/chat/completions", &chat("warm up"), &[]).status, 200);
    // A little room, then none: some answers are stored, then writes fail.
    let filler = fill(fs.path(), "filler", 48 * 1024);
    let mut last = None;
    for i in 0..300 {
        if i == 200 {
            last = Some(fill(fs.path(), "last-bytes", 0));
        }
        let reply = server.post("/v1/chat/completions", &chat(&format!("question {i}")), &[]);
        assert_eq!(reply.status, 200, "request {i} on a full disk: {}", reply.text);
    }
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let health = server.get("/health", &[]);
    assert_eq!(health.status, 200, "a degraded server still answers probes with 200");
    let health = health.json();
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(health["message"].as_str().unwrap().contains("No space left on device"), "{health}");
    let metrics = server.get("/metrics", &[]).text;
    let errors = metrics
        .lines()
        .find(|l| l.starts_with("inferno_cache_write_errors_total{reason=\"no_space\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no write-error counter in {metrics}"));
    assert!(errors > 0, "{metrics}");
    assert!(metrics.contains("inferno_cache_degraded 1"), "{metrics}");
    let status = sb.cmd().args(["cache", "status", "--cache-dir", cache_dir]).output().unwrap();
    assert!(crate::util::stdout(&status).contains("DEGRADED"), "{}", crate::util::stdout(&status));
    let stats = sb.cmd().args(["cache", "stats", "--json", "--cache-dir", cache_dir]).output().unwrap();
    let stats: Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(stats["disk"]["writes"]["current"]["reason"], "no_space", "{stats}");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("cache write failed") && logged.contains("No space left on device"), "{logged}");

    // Space returns: the server stores again by itself; SIGTERM flushes and exits 0.
    std::fs::remove_file(filler).unwrap();
    std::fs::remove_file(last.unwrap()).unwrap();
    assert_eq!(server.post("/v1/chat/completions", &chat("after space returned"), &[]).status, 200);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(server.get("/health", &[]).json()["status"], "ok", "writes resumed");
    assert_eq!(server.stop(libc::SIGTERM), Some(0));
    let server = Server::start(&sb, &models, &extra, &env);
    let again = server.post("/v1/chat/completions", &chat("after space returned"), &[]);
    assert_eq!(again.cache.as_deref(), Some("HIT"), "{}", again.text);
}
