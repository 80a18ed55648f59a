//! Every `inferno cache ...` command line of the user's guide (shared/spec/cache-guide.md) that the binary
//! has, run in the guide's order on one populated cache, each checked for its exit status and its effect.
//!
//! The guide's model lines — every `cache warm` line and `cache refresh --type metadata` — run in their own
//! test, [`every_guide_warming_line_runs_on_real_models`], on real tiny models named as the guide names them
//! (`llama-7b.gguf` is the tiny llama GGUF, `mistral-7b.onnx` the tiny ONNX model, `/models/production` a
//! sandbox folder holding both, `prompts.txt` two prompts, answered by `models.default`), because warming adds
//! model and metadata entries that would change every figure the main test checks.
//!
//! Guide lines run with changes, each said where it runs: `/backup/...` folders are put in the sandbox and
//! `$(date +%Y%m%d)` reads 20240315 (the date the guide restores from); `monitor` and `trace` run until
//! interrupted, so they get `--count` (and `monitor` a short `--interval` where the line has none, `trace` a
//! `--duration` as a safety net).
//!
//! (`inferno serve --cache-persist` in the Docker example is not a `cache` command.)

use std::io::Write;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fixture::{
    SEED_COUNT, answer, cache_dir, damage, entry_key_holding, export, import, ok, ok_json, question,
    question_of, response_line, run, seed, seed_lines, si, snapshot, sorted, stats,
};
use crate::util::{Sandbox, stderr, stdout};

/// What `cache monitor` prints for the rates while nothing uses the cache.
const IDLE_RATES: &str = "hits/s 0.0  misses/s 0.0  writes/s 0.0  put 0 B/s";

/// The manifest of a backup folder (docs/cli.md).
const MANIFEST: &str = "inferno-backup.json";

/// A guide command line split into its leading `VAR=value` assignments and its arguments: whitespace
/// separates, double quotes group; the `inferno` after the assignments is dropped.
fn words(line: &str) -> (Vec<(String, String)>, Vec<String>) {
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
    let assignments = out.iter().take_while(|w| w.contains('=') && !w.starts_with('-')).count();
    let env = out
        .drain(..assignments)
        .map(|w| {
            let (var, value) = w.split_once('=').unwrap();
            (var.to_string(), value.to_string())
        })
        .collect();
    assert_eq!(out.first().map(String::as_str), Some("inferno"), "{line:?}");
    out.remove(0);
    (env, out)
}

/// The guide's `/backup/...` folders, in the sandbox: `<root>/backup/...`.
fn backup_dir(sb: &Sandbox, name: &str) -> std::path::PathBuf {
    sb.path("backup").join(name)
}

/// The command of a guide line with `extra` arguments appended. `/backup/` becomes the sandbox's backup
/// folder and `$(date +%Y%m%d)` the date the guide later restores from, 20240315.
fn command(sb: &Sandbox, line: &str, extra: &[&str]) -> std::process::Command {
    let line = line
        .replace("/backup/", &format!("{}/", sb.path("backup").display()))
        .replace("$(date +%Y%m%d)", "20240315");
    let (env, args) = words(&line);
    let mut cmd = sb.std_command();
    cmd.envs(env).args(args).args(extra);
    cmd
}

/// Runs a guide line with `extra` arguments; it must exit 0.
fn guide_output(sb: &Sandbox, line: &str, extra: &[&str]) -> Output {
    let out = command(sb, line, extra).output().expect("run inferno");
    assert!(
        out.status.success(),
        "`{line}` {extra:?} failed ({}):\n{}{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    out
}

/// Runs a guide line with `extra` arguments; it must exit 0. Returns stdout.
fn guide_with(sb: &Sandbox, line: &str, extra: &[&str]) -> String {
    stdout(&guide_output(sb, line, extra))
}

/// Runs a guide line; it must exit 0. Returns stdout.
fn guide(sb: &Sandbox, line: &str) -> String {
    guide_with(sb, line, &[])
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

/// Checks the period summary that `report` and `analyze --detailed` print first, for a history with `puts`
/// puts and no gets in which the cache grew from empty to `entries` entries.
fn check_summary(text: &str, puts: usize, entries: usize) {
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("Last 1day (") && lines[0].contains(" snapshots covering "), "{text}");
    assert_eq!(lines[1], "  gets: 0 hits (memory 0, disk 0), 0 misses, hit ratio n/a", "{text}");
    assert_eq!(lines[2], format!("  expired on read: 0; puts: {puts}"), "{text}");
    assert_eq!(lines[3], "  evictions: memory 0, disk 0", "{text}");
    assert!(lines[4].starts_with(&format!("  entries +{entries}, bytes on disk +")), "{text}");
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
    assert_eq!(enabled_types(&sb), json!(["response", "model", "metadata", "kv"]));

    // ## Cache Operations: Enable/Disable Caching
    guide(&sb, "inferno cache enable --all");
    assert_eq!(enabled_types(&sb), json!(["response", "model", "metadata", "kv"]));
    guide(&sb, "inferno cache enable --type model,response");
    assert_eq!(enabled_types(&sb), json!(["response", "model", "metadata", "kv"]), "enabling is additive");
    guide(&sb, "inferno cache disable --type response");
    assert_eq!(enabled_types(&sb), json!(["model", "metadata", "kv"]));
    let text = guide(&sb, "inferno cache status");
    assert!(
        text.starts_with("Cache: enabled for model, metadata, kv (persistent, compression zstd"),
        "{text}"
    );
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
            let mut line = response_line("mistral-7b", &question(i), &answer(i), "gone-soon");
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
    // Runs until interrupted: `--count 1` stops it after one sample (taken after the guide's 5 s interval).
    // Nothing writes the cache, so the rates are those of the saved totals: zero.
    let text = guide_with(&sb, "inferno cache monitor --interval 5s", &["--count", "1"]);
    assert_eq!(text, format!("{IDLE_RATES}  (no writer running: saved totals)\n"));

    // The history starts at the first import: every put since is in the period, nothing has read the cache,
    // and the entries grew from none to those left.
    let mut puts = 2 * SEED_COUNT + expiring.len();
    let text = guide(&sb, "inferno cache report --period 24h");
    check_summary(&text, puts, left.len());

    let file = sb.path("work/cache_metrics.txt");
    // `inferno cache export --format prometheus > cache_metrics.txt`
    let status = sb
        .std_command()
        .args(words("inferno cache export --format prometheus").1)
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
    assert!(
        text.starts_with(&format!("Total values (all kinds): {}\nUnique values: ", left.len())),
        "{text}"
    );
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

    // Backups go to the sandbox's backup/ folder instead of /backup (see `command`).
    let plain = backup_dir(&sb, "cache");
    let text = guide(&sb, "inferno cache backup --destination /backup/cache");
    assert!(
        text.starts_with(&format!("Backed up {} entries (", left.len()))
            && text.ends_with(&format!(" files) to {}\n", plain.display())),
        "{text}"
    );
    assert!(plain.join(MANIFEST).is_file());

    // ### Backup and Restore
    let dated = backup_dir(&sb, "inferno-cache-20240315");
    let text = guide(
        &sb,
        "inferno cache backup --destination /backup/inferno-cache-$(date +%Y%m%d) --compress --verify",
    );
    assert!(text.starts_with(&format!("Backed up {} entries (", left.len())), "{text}");
    assert!(text.ends_with(&format!(" files, compressed, verified) to {}\n", dated.display())), "{text}");
    assert!(dated.join(MANIFEST).is_file());
    // Not a guide line: empty the cache, so that the restore has something to bring back.
    ok(&sb, &["cache", "clear", "--all", "--yes"]);
    assert_eq!(export(&sb), Vec::<Value>::new());
    // The backup holds the bytes of the record `verify --fix` quarantined above: the restored cache's first
    // scan meets them again, and the restore says so and drops them without failing, since every backed-up
    // entry is intact (the `verify --detailed` below finds the cache clean).
    let out =
        guide_output(&sb, "inferno cache restore --source /backup/inferno-cache-20240315 --verify", &[]);
    assert!(stderr(&out).contains("damaged byte ranges that no entry uses"), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("Restored {} entries from {} (made ", left.len(), dated.display())),
        "{text}"
    );
    assert!(text.ends_with(&format!("Verified {} entries: no damage\n", left.len())), "{text}");
    assert_eq!(export(&sb), left, "the restore brings every entry back");
    let text = guide(&sb, "inferno cache backup list");
    let listed: Vec<&str> = text.lines().collect();
    assert_eq!(listed.len(), 2, "{text}");
    assert!(listed[0].contains(&format!("  {}  {} entries, ", plain.display(), left.len())), "{text}");
    assert!(listed[1].contains(&format!("  {}  {} entries, ", dated.display(), left.len())), "{text}");
    assert!(listed[1].ends_with(", compressed") && !listed[0].contains("compressed"), "{text}");

    // ## Performance Tuning
    guide(&sb, "inferno cache configure --memory-limit 4GB --max-models 3 --eviction-policy lru");
    assert_eq!(value(&sb, "cache.model.max_models"), 3);
    // Runs until interrupted: `--interval 100ms --count 1` stops it after one short sample.
    let text = guide_with(&sb, "inferno cache monitor --memory", &["--interval", "100ms", "--count", "1"]);
    assert_eq!(text, format!("{IDLE_RATES}  memory n/a  (no writer running: saved totals)\n"));
    guide(&sb, "inferno cache configure --sync-interval 60s --write-buffer-size 1MB --read-ahead-size 512KB");
    assert_eq!(value(&sb, "cache.persistence.sync_interval_seconds"), 60);
    guide(&sb, "inferno cache configure --sync-interval 300s --write-buffer-size 4MB --read-ahead-size 2MB");
    assert_eq!(value(&sb, "cache.persistence.write_buffer_size"), 4_000_000);
    guide(
        &sb,
        "inferno cache configure --enable-distributed --cluster-nodes node1:9090,node2:9090 --replication-factor 2",
    );
    assert_eq!(value(&sb, "cache.distributed.cluster_nodes"), json!(["node1:9090", "node2:9090"]));
    assert_eq!(
        export(&sb),
        left,
        "the cache still works with the distributed settings (node1 and node2 do not resolve here: the remote tier is unreachable and the local tiers answer)"
    );

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
    // The answers are below persistence.compression_threshold_kb, so they are stored raw: ratio 1.00x, below
    // the default compression_ratio_min of 2.0, and the only advice.
    let text = guide(&sb, "inferno cache analyze --period 24h");
    assert!(
        text.starts_with("- compression ratio 1.00x (compression zstd level 3) is below 2.0x "),
        "{text}"
    );
    assert!(text.contains("(alerts.thresholds.compression_ratio_min)\n  -> compress harder"), "{text}");
    assert_eq!(text.lines().count(), 2, "one finding and its suggestion: {text}");
    guide(&sb, "inferno cache configure --max-size 20GB");
    assert!(guide(&sb, "inferno cache metrics").contains(" / 20.0 GB\n"), "the new limit is in effect");
    guide(&sb, "inferno cache configure --ttl 48h");
    assert_eq!(value(&sb, "cache.default_ttl_hours"), 48);
    // Runs until interrupted: `--interval 100ms --count 1` stops it after one short sample.
    let text = guide_with(&sb, "inferno cache monitor --io", &["--interval", "100ms", "--count", "1"]);
    assert_eq!(
        text,
        format!("{IDLE_RATES}  disk write 0 B/s, reads/s 0.0  (no writer running: saved totals)\n")
    );
    guide(&sb, "inferno cache configure --compress zstd --compression-level 1");
    assert_eq!(value(&sb, "cache.compression.level"), 1);
    let text = guide(&sb, "inferno cache configure --read-ahead-size 1MB");
    assert_eq!(value(&sb, "cache.persistence.read_ahead_size"), 1_000_000);
    assert!(
        text.contains("Note: cache.persistence.read_ahead_size is accepted but has no effect: "),
        "{text}"
    );

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
    // Damage an entry that both backups hold; the rebuild quarantines it and puts it back from the newest.
    let key = damage_answer(&sb, 29);
    let out = run(&sb, &["cache", "verify", "--detailed"]);
    assert_eq!(out.status.code(), Some(1), "fresh damage is found");
    assert!(stdout(&out).contains(&format!("response {key}: ")), "{}", stdout(&out));
    let quarantined = || std::fs::read_dir(dir.join("quarantine")).unwrap().count();
    let before = quarantined();
    let text = guide(&sb, "inferno cache rebuild --from-backup");
    assert_eq!(text, "Found 1 damaged entries; restored 1 from backups\n");
    puts += 1;
    assert!(quarantined() > before, "the damaged record is kept in quarantine/");
    assert!(ok(&sb, &["cache", "verify"]).ends_with("no damage found\n"));
    assert_eq!(export(&sb), left, "the damaged entry is back with its value");

    let text = guide(&sb, "inferno cache disk-usage --detailed");
    assert!(text.contains("Segments:\n  seg-"), "{text}");
    assert!(text.contains(&format!("({} entries)", left.len())), "{text}");
    let text = guide(&sb, "inferno cache cleanup --older-than 7d");
    assert_eq!(text, "Cleanup (older than 7days): no entries matched\n");
    guide(&sb, "inferno cache configure --compress zstd --compression-level 9");
    assert_eq!(value(&sb, "cache.compression.level"), 9);

    // ### Debug Mode
    // Runs until interrupted: `--interval 100ms --count 1` stops it after one short sample.
    let out = guide_output(
        &sb,
        "INFERNO_LOG_LEVEL=debug inferno cache monitor",
        &["--interval", "100ms", "--count", "1"],
    );
    assert_eq!(
        stdout(&out),
        format!("{IDLE_RATES}  (no writer running: saved totals)\n"),
        "logs stay off stdout"
    );
    let logs = stderr(&out);
    assert!(logs.contains(" DEBUG inferno::config: reading config file "), "{logs}");

    // `trace` shows the operations of a running writer: here `cache import -`, fed one new response at a
    // time through stdin until the tracer has seen `--count 3` of them (`--duration 30s` bounds the wait).
    let mut writer = sb
        .std_command()
        .args(["cache", "import", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the writer");
    let mut feed = writer.stdin.take().unwrap();
    let started = Instant::now();
    while sb.status(&[], &[]).0["cache"]["writer_pid"] != writer.id() {
        assert!(started.elapsed() < Duration::from_secs(20), "the writer never took the cache");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut tracer = command(
        &sb,
        "inferno cache trace --operations read,write,evict",
        &["--count", "3", "--duration", "30s"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("start the tracer");
    let mut fed = Vec::new();
    while tracer.try_wait().unwrap().is_none() {
        let i = 400 + fed.len();
        let line = response_line("traced-model", &question(i), &answer(i), &format!("resp-{i}"));
        writeln!(feed, "{line}").unwrap();
        feed.flush().unwrap();
        fed.push(line);
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = tracer.wait_with_output().unwrap();
    drop(feed);
    let imported = writer.wait_with_output().unwrap();
    assert!(imported.status.success(), "{}", stderr(&imported));
    let summary = stdout(&imported);
    assert!(
        summary.starts_with(&format!("Imported -: {} new, 0 duplicate, 0 rejected\n", fed.len())),
        "{summary}"
    );
    assert!(summary.contains(&format!("{} line(s) stored unbound: no model named traced-model", fed.len())));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.contains("question"), "keys, never prompt text: {text}");
    // `<time> write  response <key> <n> bytes`: the writes of three consecutive fed lines, in order.
    let traced: Vec<String> = text
        .lines()
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(fields[1..3], ["write", "response"], "{text}");
            assert_eq!(fields[5..], ["bytes"], "{text}");
            fields[3].to_string()
        })
        .collect();
    assert_eq!(traced.len(), 3, "--count 3: {text}");
    let fed_keys: Vec<String> =
        fed.iter().map(|l| entry_key_holding(&sb, &format!("\"{}\"", question_of(l)))).collect();
    assert!(fed_keys.windows(3).any(|w| w == traced), "{traced:?} are not 3 consecutive of {fed_keys:?}");
    left = sorted(left.into_iter().chain(fed.iter().cloned()));
    assert_eq!(export(&sb), left);
    puts += fed.len();

    // The summary, then the advice; the same as JSON in report.json (in the working directory).
    let text = guide(&sb, "inferno cache analyze --detailed --export report.json");
    check_summary(&text, puts, left.len());
    assert!(text.contains("\n- compression ratio 1.00x (compression zstd level 9) is below 2.0x "), "{text}");
    assert!(text.ends_with("\nWrote the analysis to report.json\n"), "{text}");
    let exported: Value = serde_json::from_str(&sb.read("work/report.json")).expect("report.json is JSON");
    assert_eq!(exported["period_seconds"], 24 * 3600);
    assert_eq!(exported["summary"]["puts"], puts);
    assert_eq!(exported["current"]["kinds"][0]["entries"], left.len(), "{exported:#}");
    let advice = exported["advice"].as_array().expect("advice is an array");
    assert_eq!(advice.len(), 1, "{exported:#}");
    assert!(advice[0]["finding"].as_str().unwrap().starts_with("compression ratio 1.00x"), "{exported:#}");

    // Everything still served, and the stats agree with the export.
    assert_eq!(export(&sb), left);
    assert_eq!(stats(&sb)["kinds"][0]["entries"], left.len());
}

#[test]
fn every_guide_warming_line_runs_on_real_models() {
    let sb = Sandbox::new();
    inferno::models::gguf::tiny::write_tiny_llama(&sb.path("work/llama-7b.gguf")).unwrap();
    let onnx = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/models/tiny-mlp.onnx");
    std::fs::copy(onnx, sb.path("work/mistral-7b.onnx")).unwrap();
    std::fs::create_dir_all(sb.path("models/production")).unwrap();
    for name in ["llama-7b.gguf", "mistral-7b.onnx"] {
        std::fs::copy(sb.path("work").join(name), sb.path("models/production").join(name)).unwrap();
    }
    sb.write("work/prompts.txt", "abc\nxy78\n");
    sb.write_project("[models]\ndefault = \"llama-7b.gguf\"\n");
    let entries = |kind: &str| -> u64 {
        let stats = stats(&sb);
        let kinds = stats["kinds"].as_array().unwrap();
        kinds.iter().find(|k| k["kind"] == kind).unwrap()["entries"].as_u64().unwrap()
    };
    let line = |l: &str| l.replace("/models/production", &sb.path("models/production").display().to_string());

    // ## Quick Start, ## Cache Types
    let text = guide(&sb, "inferno cache warm --model llama-7b.gguf");
    assert!(text.starts_with("Warmed llama-7b (gguf, "), "{text}");
    assert_eq!((entries("model"), entries("metadata")), (1, 1));
    let text = guide(&sb, "inferno cache warm --model llama-7b.gguf --model mistral-7b.onnx");
    assert!(text.contains("Warmed llama-7b (gguf") && text.contains("Warmed mistral-7b (onnx"), "{text}");
    assert_eq!((entries("model"), entries("metadata")), (2, 2));
    // ## Cache Types: Metadata Cache
    let text = guide(&sb, "inferno cache refresh --type metadata");
    assert_eq!(
        text,
        "Refreshed 2 metadata records: 2 unchanged, 0 changed, 0 removed (file gone), 0 failed\n"
    );

    // ## Advanced Features: Cache Warming
    guide(&sb, "inferno cache warm --model llama-7b.gguf");
    let text = guide(&sb, &line("inferno cache warm --directory /models/production"));
    assert_eq!(text.matches("Warmed ").count(), 2, "{text}");
    assert_eq!((entries("model"), entries("metadata")), (4, 4), "two more files, by their own paths");
    let text = guide(&sb, "inferno cache warm --responses prompts.txt");
    assert!(text.contains("Responses through llama-7b: 2 prompts, 2 stored"), "{text}");
    assert_eq!(entries("response"), 2);
    let text = guide(&sb, "inferno cache warm --model llama-7b.gguf --background");
    assert!(text.starts_with("Warming in the background (pid "), "{text}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = sb.status(&[], &[]);
        let job = &status.0["cache"]["warm"];
        if job["state"] == "done" {
            break;
        }
        assert!(job["state"] == "running" && Instant::now() < deadline, "{job}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
