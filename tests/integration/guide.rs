//! Every `inferno cache ...` command line of the user's guide (shared/spec/cache-guide.md) that the binary
//! has, run in the guide's order on one populated cache, each checked for its exit status and its effect.
//!
//! Guide lines not run because the subcommand does not exist yet (keep this list in step with the guide):
//! - `cache warm --model llama-7b.gguf` (Quick Start, Cache Types, Cache Warming), `cache warm --model
//!   llama-7b.gguf --model mistral-7b.onnx`, `cache warm --directory /models/production`, `cache warm
//!   --responses prompts.txt`, `cache warm --model llama-7b.gguf --background`
//! - `cache refresh --type metadata`
//! - `cache monitor --interval 5s`, `cache monitor --memory`, `cache monitor --io`,
//!   `INFERNO_LOG_LEVEL=debug inferno cache monitor`
//! - `cache report --period 24h`
//! - `cache backup --destination /backup/cache`, `cache backup --destination ... --compress --verify`,
//!   `cache backup list`, `cache restore --source /backup/inferno-cache-20240315 --verify`
//! - `cache analyze --period 24h`, `cache analyze --detailed --export report.json`
//! - `cache rebuild --from-backup`
//! - `cache trace --operations read,write,evict`
//!
//! (`inferno serve --cache-persist` in the Docker example is not a `cache` command.)

use serde_json::{Value, json};

use crate::fixture::{
    SEED_COUNT, answer, cache_dir, damage, entry_key_holding, export, import, ok, ok_json, question, run,
    seed, seed_lines, si, snapshot, sorted, stats,
};
use crate::util::{Sandbox, stderr, stdout};

/// Splits a guide command line into arguments: whitespace separates, double quotes group; the leading
/// `inferno` is dropped.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word: Option<String> = None;
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                word.get_or_insert_with(String::new);
            }
            c if c.is_whitespace() && !quoted => out.extend(word.take()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    assert!(!quoted, "unbalanced quotes in {line:?}");
    out.extend(word);
    assert_eq!(out.first().map(String::as_str), Some("inferno"), "{line:?}");
    out.remove(0);
    out
}

/// Runs a guide line; it must exit 0. Returns stdout.
fn guide(sb: &Sandbox, line: &str) -> String {
    let args = words(line);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(sb, &args);
    assert!(out.status.success(), "`{line}` failed ({}):\n{}{}", out.status, stdout(&out), stderr(&out));
    stdout(&out)
}

/// The effective value of `key` in `cache status --json`.
fn value(sb: &Sandbox, key: &str) -> Value {
    sb.status(&[], &[]).value(key).clone()
}

fn enabled_types(sb: &Sandbox) -> Value {
    sb.status(&[], &[]).0["cache"]["enabled_types"].clone()
}

/// The seed lines of responses still expected in the cache.
fn expected(gone_models: &[&str], gone: &[usize]) -> Vec<Value> {
    let gone: Vec<String> = gone.iter().map(|&i| question(i)).collect();
    sorted(seed_lines().into_iter().filter(|l| {
        !gone_models.iter().any(|m| l["model"] == *m)
            && !gone.iter().any(|q| l["request"]["messages"][0]["content"] == *q)
    }))
}

/// Damages the (unique) answer of response `i`; returns the key of its entry.
fn damage_answer(sb: &Sandbox, i: usize) -> String {
    let key = entry_key_holding(sb, &format!("\"{}\"", question(i)));
    damage(sb, &answer(i));
    key
}

#[test]
fn every_guide_command_runs_in_order_with_its_effect() {
    let sb = Sandbox::new();
    let dir = cache_dir(&sb);
    seed(&sb);

    // ## Quick Start
    let text = guide(&sb, "inferno cache persist --compress gzip");
    assert!(text.contains(&format!("persistent in {} with gzip level", dir.display())), "{text}");
    assert!(text.contains(&format!("; {SEED_COUNT} entries on disk, flushed.")), "{text}");
    assert_eq!(value(&sb, "cache.type"), "persistent");
    assert_eq!(value(&sb, "cache.compression.algorithm"), "gzip");

    guide(&sb, "inferno cache configure --max-size 10GB --ttl 24h");
    assert_eq!(value(&sb, "cache.max_size_gb"), 10);
    assert_eq!(value(&sb, "cache.default_ttl_hours"), 24);

    let text = guide(&sb, "inferno cache stats");
    assert!(text.contains(&format!("{:<9} {:>9} entries", "response", SEED_COUNT)), "{text}");
    assert!(text.contains("Deduplication: 40 values, 20 unique"), "{text}");

    let text = guide(&sb, "inferno cache clear --pattern \"*.onnx\"");
    assert_eq!(text, "Clear: no entries matched\n", "no entry is named *.onnx");
    assert_eq!(export(&sb), expected(&[], &[]));

    // ## Cache Types
    guide(&sb, "inferno cache enable --type model");
    assert!(enabled_types(&sb).as_array().unwrap().contains(&json!("model")));
    guide(&sb, "inferno cache configure model --max-models 5 --memory-limit 8GB --preload-strategy lru");
    assert_eq!(value(&sb, "cache.model.max_models"), 5);
    assert_eq!(value(&sb, "cache.model.preload_strategy"), "lru");
    let text = guide(&sb, "inferno cache enable --type response --deduplication blake3");
    assert!(text.starts_with("response caching enabled, deduplication with blake3"), "{text}");
    assert_eq!(sb.status(&[], &[]).0["cache"]["deduplication"], "blake3");
    guide(
        &sb,
        "inferno cache configure response --max-entries 10000 --max-size 2GB --ttl 1h --compress zstd",
    );
    assert_eq!(value(&sb, "cache.response.max_entries"), 10000);
    assert_eq!(value(&sb, "cache.compression.algorithm"), "zstd");
    guide(&sb, "inferno cache enable --type metadata");
    assert_eq!(enabled_types(&sb), json!(["response", "model", "metadata"]));

    // ## Cache Operations: Enable/Disable Caching
    guide(&sb, "inferno cache enable --all");
    assert_eq!(enabled_types(&sb), json!(["response", "model", "metadata"]));
    guide(&sb, "inferno cache enable --type model,response");
    assert_eq!(enabled_types(&sb), json!(["response", "model", "metadata"]), "enabling is additive");
    guide(&sb, "inferno cache disable --type response");
    assert_eq!(enabled_types(&sb), json!(["model", "metadata"]));
    let text = guide(&sb, "inferno cache status");
    assert!(text.starts_with("Cache: enabled for model, metadata (persistent, compression zstd"), "{text}");
    assert!(text.contains("\nEntries: ") && text.contains(&format!("{SEED_COUNT} response")), "{text}");
    // Not a guide line: the management commands below work on responses, so switch them back on.
    ok(&sb, &["cache", "enable", "--type", "response"]);

    // ## Cache Management
    let text = guide(&sb, "inferno cache stats --detailed");
    assert!(text.contains("Per kind (counts since the cache was created):"), "{text}");
    assert!(text.contains("Disk tier: "), "{text}");

    let text = guide(&sb, "inferno cache clear --all");
    assert!(
        text.starts_with(&format!("Clear: removed {SEED_COUNT} entries")),
        "stdin is no terminal: {text}"
    );
    assert_eq!(export(&sb), Vec::<Value>::new());
    seed(&sb); // Not a guide line: repopulate for the selective clears.
    assert_eq!(guide(&sb, "inferno cache clear --type model"), "Clear: no entries matched\n");
    assert_eq!(guide(&sb, "inferno cache clear --older-than 24h"), "Clear: no entries matched\n");
    let text = guide(&sb, "inferno cache clear --pattern \"llama*\"");
    assert!(text.starts_with("Clear: removed 20 entries (20 response)"), "{text}");
    let mut left = expected(&["llama-7b"], &[]);
    assert_eq!(export(&sb), left);

    // Expired entries give compaction something to reclaim.
    let expiring: Vec<Value> = (300..305)
        .map(|i| {
            let mut line = crate::fixture::response_line("mistral-7b", &question(i), &answer(i), "gone-soon");
            line["ttl"] = json!(1);
            line
        })
        .collect();
    import(&sb, "expiring.jsonl", &expiring);
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let before = crate::fixture::tree_bytes(&dir.join("data"));
    let text = guide(&sb, "inferno cache compact");
    let after = crate::fixture::tree_bytes(&dir.join("data"));
    assert!(after < before, "{before} -> {after}");
    assert!(text.starts_with(&format!("Compacted: {} -> {} (", si(before), si(after))), "{text}");
    assert_eq!(export(&sb), left);

    let key = damage_answer(&sb, 25);
    let text = guide(&sb, "inferno cache verify --fix");
    assert!(text.contains(&format!("response {key}: ")), "{text}");
    assert!(text.contains("Quarantined the damaged records"), "{text}");
    assert!(dir.join("quarantine").is_dir());
    left = expected(&["llama-7b"], &[25]);
    assert_eq!(export(&sb), left);

    // ## Cache Monitoring
    let file = sb.path("work/cache_metrics.txt");
    // `inferno cache export --format prometheus > cache_metrics.txt`
    let status = sb
        .std_command()
        .args(words("inferno cache export --format prometheus"))
        .stdout(std::fs::File::create(&file).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    let metrics = sb.read(&file);
    let entries_line = format!("inferno_cache_entries{{type=\"response\"}} {}\n", left.len());
    assert!(metrics.contains(&entries_line), "{metrics}");
    for name in ["inferno_cache_hits_total", "inferno_cache_misses_total", "inferno_cache_size_bytes"] {
        assert!(metrics.contains(&format!("\n{name}{{")), "{name} missing:\n{metrics}");
    }
    for name in ["inferno_cache_compression_ratio", "inferno_cache_deduplication_ratio"] {
        assert!(metrics.contains(&format!("\n{name} ")), "{name} missing:\n{metrics}");
    }

    // ## Compression
    guide(&sb, "inferno cache configure --compress gzip --compression-level 6");
    assert_eq!(sb.status(&[], &[]).0["cache"]["compression"], "gzip level 6");
    guide(&sb, "inferno cache configure --compress zstd --compression-level 3");
    assert_eq!(sb.status(&[], &[]).0["cache"]["compression"], "zstd level 3");

    // ## Deduplication
    guide(&sb, "inferno cache configure --deduplication blake3");
    assert_eq!(value(&sb, "cache.deduplication.algorithm"), "blake3");
    guide(&sb, "inferno cache configure --deduplication xxhash");
    assert_eq!(value(&sb, "cache.deduplication.algorithm"), "xxhash");
    let text = guide(&sb, "inferno cache stats --deduplication");
    assert!(text.starts_with(&format!("Total responses: {}\nUnique responses: ", left.len())), "{text}");
    assert_eq!(export(&sb), left, "entries written with blake3 chunks are still read");

    // ## Persistence
    guide(
        &sb,
        "inferno cache configure --base-dir /fast-ssd/inferno-cache --sync-interval 300s --enable-checksums",
    );
    assert_eq!(value(&sb, "cache.base_dir"), "/fast-ssd/inferno-cache");
    assert_eq!(value(&sb, "cache.persistence.enable_checksums"), true);
    // Not a guide line: /fast-ssd does not exist here; point the cache back at the populated directory.
    ok(&sb, &["cache", "configure", "--base-dir", dir.to_str().unwrap()]);
    assert_eq!(export(&sb), left);

    let text = guide(&sb, "inferno cache disk-usage");
    let total: u64 = snapshot(&dir).values().map(|b| b.len() as u64).sum();
    assert!(text.starts_with(&format!("{}: {} of 10.0 GB", dir.display(), si(total))), "{text}");
    assert_eq!(ok_json(&sb, &["cache", "disk-usage"])["total_bytes"], total);

    // ## Performance Tuning
    guide(&sb, "inferno cache configure --memory-limit 4GB --max-models 3 --eviction-policy lru");
    assert_eq!(value(&sb, "cache.model.max_models"), 3);
    guide(&sb, "inferno cache configure --sync-interval 60s --write-buffer-size 1MB --read-ahead-size 512KB");
    assert_eq!(value(&sb, "cache.persistence.sync_interval_seconds"), 60);
    guide(&sb, "inferno cache configure --sync-interval 300s --write-buffer-size 4MB --read-ahead-size 2MB");
    assert_eq!(value(&sb, "cache.persistence.write_buffer_size"), 4_000_000);
    guide(
        &sb,
        "inferno cache configure --enable-distributed --cluster-nodes node1:9090,node2:9090 --replication-factor 2",
    );
    assert_eq!(value(&sb, "cache.distributed.cluster_nodes"), json!(["node1:9090", "node2:9090"]));
    assert_eq!(export(&sb), left, "the cache still works with the (inactive) distributed settings");

    // ## Monitoring and Metrics
    let text = guide(&sb, "inferno cache metrics");
    for line in
        ["Hit ratio: ", "Miss ratio: ", "Average lookup time: ", "Cache size: ", "Compression ratio: "]
    {
        assert!(text.contains(&format!("\n{line}")) || text.starts_with(line), "{line:?} missing:\n{text}");
    }
    assert!(text.contains("Deduplication savings: "), "{text}");
    guide(&sb, "inferno cache configure --prometheus-enabled");
    assert_eq!(value(&sb, "cache.metrics.prometheus_enabled"), true);

    // ## Troubleshooting
    guide(&sb, "inferno cache configure --max-size 20GB");
    assert!(guide(&sb, "inferno cache metrics").contains(" / 20.0 GB\n"), "the new limit is in effect");
    guide(&sb, "inferno cache configure --ttl 48h");
    assert_eq!(value(&sb, "cache.default_ttl_hours"), 48);
    guide(&sb, "inferno cache configure --compress zstd --compression-level 1");
    assert_eq!(value(&sb, "cache.compression.level"), 1);
    guide(&sb, "inferno cache configure --read-ahead-size 1MB");
    assert_eq!(value(&sb, "cache.persistence.read_ahead_size"), 1_000_000);

    let text = guide(&sb, "inferno cache verify --detailed");
    assert!(text.ends_with("no damage found\n"), "the earlier --fix left a clean cache: {text}");
    let key = damage_answer(&sb, 27);
    let out = run(&sb, &["cache", "verify", "--detailed"]);
    assert_eq!(out.status.code(), Some(1), "fresh damage is found");
    assert!(stdout(&out).contains(&format!("response {key}: ")), "{}", stdout(&out));
    let text = guide(&sb, "inferno cache repair --auto-fix");
    assert!(text.contains(&format!("response {key}: ")), "{text}");
    assert!(text.contains("Quarantined the damaged records"), "{text}");
    left = expected(&["llama-7b"], &[25, 27]);
    assert_eq!(export(&sb), left);

    let text = guide(&sb, "inferno cache disk-usage --detailed");
    assert!(text.contains("Segments:\n  seg-"), "{text}");
    assert!(text.contains(&format!("({} entries)", left.len())), "{text}");
    let text = guide(&sb, "inferno cache cleanup --older-than 7d");
    assert_eq!(text, "Cleanup (older than 7days): no entries matched\n");
    guide(&sb, "inferno cache configure --compress zstd --compression-level 9");
    assert_eq!(value(&sb, "cache.compression.level"), 9);

    // Everything still served, and the stats agree with the export.
    assert_eq!(export(&sb), left);
    assert_eq!(stats(&sb)["kinds"][0]["entries"], left.len());
}
