//! Encryption at rest (`[cache.security]`, docs/security.md) end to end: no answer text in the cache
//! directory, a backup or Redis; the right key opens, another key is the clear error naming both key ids;
//! plain records written before encryption was on stay readable and `compact` re-seals them; `cache rekey`
//! killed at random points loses nothing and the cache opens with either key; a flipped bit is a counted
//! miss, never a panic; a value planted in Redis without the key is a counted miss.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::fixture::{self, answer, export, ok, ok_json, run, seed_lines, sorted};
use crate::redis_nodes::{Node, redis_server};
use crate::util::{Sandbox, stderr};

/// Every file below `dir` that contains `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path).unwrap().windows(needle.len()).any(|w| w == needle.as_bytes()) {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

/// `cache keygen PATH --json`: the key id.
fn keygen(sb: &Sandbox, name: &str) -> String {
    let json = ok_json(sb, &["cache", "keygen", name]);
    json["key_id"].as_str().unwrap().to_string()
}

/// The project config: no compression (so plain text would be visible), dedup on, and the key when given.
fn configure(sb: &Sandbox, key: Option<&str>) {
    let security = match key {
        Some(k) => format!("[cache.security]\nencryption = \"aes-256-gcm\"\nkey_file = \"{k}\"\n"),
        None => String::new(),
    };
    sb.write_project(&format!(
        "[cache.compression]\nenabled = false\nalgorithm = \"none\"\n[cache.deduplication]\nenabled = true\n{security}"
    ));
}

#[test]
fn no_answer_text_on_disk_or_in_a_backup_and_only_the_right_key_opens() {
    let sb = Sandbox::new();
    let id1 = keygen(&sb, "k1");
    let k1 = sb.path("work/k1");
    assert_eq!(std::fs::metadata(&k1).unwrap().permissions().mode() & 0o777, 0o600);
    let before = std::fs::read(&k1).unwrap();
    let again = run(&sb, &["cache", "keygen", "k1"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("never overwrites"), "{}", stderr(&again));
    assert_eq!(std::fs::read(&k1).unwrap(), before);

    // Plain first: the control that shows the search would find the text.
    configure(&sb, None);
    let lines = fixture::seed(&sb);
    let needle = answer(30);
    assert!(!files_containing(&fixture::data_dir(&sb), &needle).is_empty(), "plain records show the text");

    // Encryption on: the plain records stay readable; `compact` re-seals them and deletes the plain bytes.
    configure(&sb, Some("k1"));
    assert_eq!(export(&sb), sorted(lines.clone()));
    ok(&sb, &["cache", "compact"]);
    assert_eq!(export(&sb), sorted(lines.clone()));
    let marker = "MARKER-7f3a-secret-answer";
    let extra = fixture::response_line("llama-7b", "the marker question", marker, "resp-marker");
    fixture::import(&sb, "marker.jsonl", std::slice::from_ref(&extra));
    ok(&sb, &["cache", "backup", "--destination", "../backup"]);
    for dir in [fixture::cache_dir(&sb), sb.path("backup")] {
        for text in [marker, needle.as_str(), "common answer 1 from the shared pool"] {
            assert_eq!(files_containing(&dir, text), Vec::<String>::new(), "{text} in {}", dir.display());
        }
    }
    let mut all = lines.clone();
    all.push(extra);
    assert_eq!(export(&sb), sorted(all.clone()), "restart with the right key: every entry");
    let status = ok_json(&sb, &["cache", "status"]);
    let enc = &status["cache"]["security"]["encryption"];
    assert_eq!(enc["key_id"], id1.as_str(), "{status}");
    assert_eq!(enc["algorithm"], "aes-256-gcm");
    assert!(!status.to_string().contains(&String::from_utf8_lossy(&before).trim().to_string()));

    // Another key: exit 1 naming both ids. No key at all: exit 1 too.
    let id2 = keygen(&sb, "k2");
    configure(&sb, Some("k2"));
    let wrong = run(&sb, &["cache", "export", "--format", "jsonl"]);
    assert_eq!(wrong.status.code(), Some(1), "{}", stderr(&wrong));
    let expected = format!("written with key {id1}, the configured key is {id2}");
    assert!(stderr(&wrong).contains(&expected), "{}", stderr(&wrong));
    assert_eq!(stderr(&wrong).matches("written with key").count(), 1, "said once: {}", stderr(&wrong));
    configure(&sb, None);
    let none = run(&sb, &["cache", "export", "--format", "jsonl"]);
    assert_eq!(none.status.code(), Some(1));
    assert!(stderr(&none).contains(&format!("written with key {id1}, the configured key is none")));

    // The backup restores into a fresh cache and needs the key.
    let other = Sandbox::new();
    std::fs::copy(&k1, other.path("work/k1")).unwrap();
    configure(&other, Some("k1"));
    let backup = sb.path("backup").display().to_string();
    ok(&other, &["cache", "restore", "--source", &backup]);
    assert_eq!(export(&other), sorted(all));
}

#[test]
fn bad_key_files_are_configuration_errors() {
    let sb = Sandbox::new();
    sb.write("work/short", "abcd");
    for (file, message) in [("short", "holds 4 bytes"), ("missing", "cannot read the key file")] {
        configure(&sb, Some(file));
        let out = run(&sb, &["cache", "stats"]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(message) && err.contains("cache.security.key_file"), "{err}");
        assert!(err.contains(".inferno.toml"), "names the file: {err}");
    }
    keygen(&sb, "open.key");
    std::fs::set_permissions(sb.path("work/open.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    configure(&sb, Some("open.key"));
    let out = run(&sb, &["cache", "stats"]);
    assert!(out.status.success(), "a world-readable key is used: {}", stderr(&out));
    assert!(stderr(&out).contains("can be read by other users; `chmod 600` it"), "{}", stderr(&out));
    sb.write_project("[cache.security]\nencryption = \"chacha20-poly1305\"\n");
    let out = run(&sb, &["cache", "stats"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("encryption needs a key file"), "{}", stderr(&out));
    sb.write_project("[cache.security]\nencryption = \"rot13\"\n");
    assert_eq!(run(&sb, &["cache", "stats"]).status.code(), Some(2));
}

/// A small deterministic generator for the kill delays (no extra crate for a test).
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *state >> 33
}

#[test]
fn rekey_killed_at_random_points_opens_with_either_key_and_loses_nothing() {
    let sb = Sandbox::new();
    keygen(&sb, "k1");
    let id2 = keygen(&sb, "k2");
    keygen(&sb, "k3");
    configure(&sb, Some("k1"));
    let lines: Vec<Value> = (0..400)
        .map(|i| {
            fixture::response_line(fixture::model(i), &format!("q{i:04}"), &format!("answer {}", i % 50), "r")
        })
        .collect();
    fixture::import(&sb, "many.jsonl", &lines);
    let want = export(&sb);
    assert_eq!(want.len(), lines.len());

    let started = std::time::Instant::now();
    let mut full = sb.std_command();
    // A full rekey to learn how long one takes (then back to k1 the same way).
    assert!(full.args(["cache", "rekey", "--new-key-file", "k2"]).output().unwrap().status.success());
    let span = started.elapsed().as_millis() as u64;
    configure(&sb, Some("k2"));
    assert!(run(&sb, &["cache", "rekey", "--new-key-file", "k1"]).status.success());
    configure(&sb, Some("k1"));

    let mut seed = std::process::id() as u64;
    let mut killed_midway = 0;
    for round in 0..8 {
        let delay = next(&mut seed) % span.max(1);
        let mut child = sb
            .std_command()
            .args(["cache", "rekey", "--new-key-file", "k2"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        let _ = child.wait();
        // With the journal left behind, both keys must open everything; without it the rekey either had
        // not started or had finished, and one key opens everything.
        let unfinished = fixture::cache_dir(&sb).join("rekey.json").exists();
        let mut opens = Vec::new();
        for key in ["k1", "k2"] {
            configure(&sb, Some(key));
            let out = run(&sb, &["cache", "export", "--format", "jsonl"]);
            if out.status.success() {
                let mut got: Vec<Value> = String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .map(|l| {
                        let mut v: Value = serde_json::from_str(l).unwrap();
                        v.as_object_mut().unwrap().remove("ttl");
                        v
                    })
                    .collect();
                got.sort_by(|a, b| fixture::question_of(a).cmp(fixture::question_of(b)));
                assert_eq!(got, want, "round {round} (killed after {delay} ms), opened with {key}");
            } else {
                assert!(stderr(&out).contains("written with key"), "{}", stderr(&out));
            }
            opens.push(out.status.success());
        }
        if unfinished {
            killed_midway += 1;
            assert_eq!(opens, [true, true], "round {round}: an unfinished rekey opens with either key");
            let other = run(&sb, &["cache", "rekey", "--new-key-file", "k3"]);
            assert_eq!(other.status.code(), Some(1));
            assert!(
                stderr(&other).contains(&format!("a rekey to key {id2} is unfinished")),
                "{}",
                stderr(&other)
            );
        } else {
            assert!(opens.contains(&true), "round {round}: one of the keys opens the cache");
        }
        if !opens[0] {
            // It finished: the cache is sealed with k2 only; start the next round from k1 again.
            configure(&sb, Some("k2"));
            assert!(run(&sb, &["cache", "rekey", "--new-key-file", "k1"]).status.success());
        }
        configure(&sb, Some("k1"));
    }
    assert!(killed_midway > 0, "no round killed a rekey before it finished (span {span} ms)");
    // Running it again finishes it: then only k2 opens.
    let text = ok(&sb, &["cache", "rekey", "--new-key-file", "k2"]);
    assert!(text.contains(&id2), "{text}");
    configure(&sb, Some("k2"));
    assert_eq!(export(&sb), want);
    assert!(!fixture::cache_dir(&sb).join("rekey.json").exists());
    configure(&sb, Some("k1"));
    let old = run(&sb, &["cache", "export", "--format", "jsonl"]);
    assert_eq!(old.status.code(), Some(1), "the old key no longer opens");
}

#[test]
fn a_flipped_bit_in_a_sealed_value_is_a_counted_miss_never_a_panic() {
    let sb = Sandbox::new();
    keygen(&sb, "k1");
    configure(&sb, Some("k1"));
    let lines = seed_lines();
    fixture::import(&sb, "seed.jsonl", &lines);
    let data = fixture::data_dir(&sb);
    let segment = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "log"))
        .unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    // The last record is the last entry written; its value (the sealed head) ends the file.
    let at = bytes.len() - 20;
    bytes[at] ^= 0x08;
    std::fs::write(&segment, bytes).unwrap();
    let out = run(&sb, &["cache", "export", "--format", "jsonl"]);
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    let exported = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(exported, lines.len() - 1, "the damaged entry is not served: {}", stderr(&out));
    let verify = run(&sb, &["cache", "verify", "--fix"]);
    assert!(!stderr(&verify).contains("panicked"), "{}", stderr(&verify));
    let quarantined = std::fs::read_dir(fixture::cache_dir(&sb).join("quarantine")).unwrap().count();
    assert_eq!(quarantined, 1, "the damaged record is quarantined like any checksum failure");
    let again = run(&sb, &["cache", "export", "--format", "jsonl"]);
    assert!(again.status.success() && !stderr(&again).contains("panicked"));
    assert_eq!(String::from_utf8_lossy(&again.stdout).lines().count(), lines.len() - 1);
}

#[test]
fn with_a_key_redis_holds_only_sealed_values_and_a_planted_value_is_a_miss() {
    use inferno::cache::{Kind, Manager};
    use inferno::config::{CacheConfig, Encryption};
    let Some(bin) = redis_server() else { return };
    let redis = Node::start(&bin, false);
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, [9u8; 32]).unwrap();
    let config = |name: &str, sealed: bool| {
        let mut c = CacheConfig { base_dir: dir.path().join(name), ..CacheConfig::default() };
        c.compression.enabled = false;
        c.distributed.enabled = true;
        c.distributed.cluster_nodes = vec![redis.addr()];
        if sealed {
            c.security.encryption = Encryption::Aes256Gcm;
            c.security.key_file = key_file.clone();
        }
        c
    };
    let open = |c: &CacheConfig| {
        let m = Manager::open(c, inferno::cache::Access::ReadWrite).unwrap();
        assert!(m.wait_remote(Duration::from_secs(5)));
        m
    };
    let marker = br#"{"response":"MARKER-redis-answer"}"#;
    {
        let writer = open(&config("a", true));
        writer.put(Kind::Response, "k-sealed", "tiny", marker, None).unwrap();
        writer.flush().unwrap();
    }
    let keys: Vec<String> = redis.cmd(&["KEYS", "*"]);
    assert_eq!(keys.len(), 1);
    let stored: Vec<u8> = redis.cmd(&["GET", &keys[0]]);
    assert!(!stored.windows(6).any(|w| w == b"MARKER"), "the value in Redis is sealed");
    // A client without the key plants a plain value under another key.
    {
        let planter = open(&config("b", false));
        planter.put(Kind::Response, "k-planted", "tiny", br#"{"response":"PLANTED"}"#, None).unwrap();
        planter.flush().unwrap();
    }
    let reader = open(&config("c", true));
    assert_eq!(
        reader.get(Kind::Response, "k-sealed").unwrap().as_deref(),
        Some(&marker[..]),
        "sealed: a hit"
    );
    assert_eq!(reader.get(Kind::Response, "k-planted").unwrap(), None, "planted: a miss");
    let counters = reader.counters().snapshot();
    assert_eq!(counters.remote.corrupt, 1, "the planted value is counted");
    let response = counters.kinds.iter().find(|k| k.kind == Kind::Response).unwrap();
    assert_eq!((response.remote_hits, response.misses), (1, 1));
}

#[test]
fn the_server_answers_another_keys_entry_as_a_counted_miss() {
    use crate::server::{Server, with_tiny_model};
    let (sb, models) = with_tiny_model();
    let id1 = keygen(&sb, "k1");
    let id2 = keygen(&sb, "k2");
    let request = serde_json::json!({"model": "tiny", "prompt": "abc", "temperature": 0, "max_tokens": 8});
    let serve = |key: &str, log: &str| {
        configure(&sb, Some(key));
        Server::start_logging(&sb, &models, &[], &[], &sb.path(log))
    };
    let server = serve("k1", "one.log");
    let first = server.post("/v1/completions", &request, &[]);
    assert_eq!((first.status, first.cache.as_deref()), (200, Some("MISS")), "{}", first.text);
    assert_eq!(server.post("/v1/completions", &request, &[]).cache.as_deref(), Some("HIT"));
    server.stop(libc::SIGTERM);
    assert_eq!(files_containing(&fixture::cache_dir(&sb), "defghijk"), Vec::<String>::new());

    let server = serve("k2", "two.log");
    let again = server.post("/v1/completions", &request, &[]);
    assert_eq!((again.status, again.cache.as_deref()), (200, Some("MISS")), "{}", again.text);
    assert_eq!(again.json()["choices"], first.json()["choices"], "generated again");
    assert_eq!(server.post("/v1/completions", &request, &[]).cache.as_deref(), Some("HIT"), "now under k2");
    server.stop(libc::SIGTERM);
    let log = std::fs::read_to_string(sb.path("two.log")).unwrap();
    assert!(log.contains(&format!("written with key {id1}, the configured key is {id2}")), "{log}");
    let stats = ok_json(&sb, &["cache", "stats"]);
    let response = stats["kinds"].as_array().unwrap().iter().find(|k| k["kind"] == "response").unwrap();
    assert_eq!(response["misses"], 2, "the first miss and the other key's entry: {stats}");
}
