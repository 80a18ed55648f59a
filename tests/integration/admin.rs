//! `inferno cache ...` while `inferno serve` holds the cache (through the admin socket), and the HTTP admin
//! routes: live counters, clearing the live cache, warming into the server's model cache, maintenance,
//! the API key, and a stale socket after `kill -9`.

use std::os::unix::fs::PermissionsExt;

use serde_json::{Value, json};

use crate::server::{Server, with_tiny_model};
use crate::util::{Sandbox, stderr, stdout};

/// Saves counters only at shutdown: whatever a second process reads from disk is stale.
const LONG_SYNC: [(&str, &str); 1] = [("INFERNO_CACHE__PERSISTENCE__SYNC_INTERVAL_SECONDS", "3600")];

fn completion(prompt: &str) -> Value {
    json!({"model": "tiny", "prompt": prompt, "temperature": 0, "max_tokens": 4})
}

/// Runs `inferno <args>` in the sandbox; it must succeed. Returns stdout.
fn inferno(sb: &Sandbox, args: &[&str]) -> String {
    let out = sb.cmd().args(args).output().expect("run inferno");
    assert!(out.status.success(), "inferno {args:?} failed:\n{}", stderr(&out));
    stdout(&out)
}

fn inferno_json(sb: &Sandbox, args: &[&str]) -> Value {
    let text = inferno(sb, &[args, &["--json"]].concat());
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn response_kind(stats: &Value) -> &Value {
    stats["kinds"].as_array().unwrap().iter().find(|k| k["kind"] == "response").expect("response kind")
}

#[test]
fn cache_stats_shows_the_servers_live_counters() {
    let (sb, dir) = with_tiny_model();
    let server = Server::start(&sb, &dir, &[], &LONG_SYNC);
    assert_eq!(server.post("/v1/completions", &completion("abc"), &[]).cache.as_deref(), Some("MISS"));
    for _ in 0..2 {
        assert_eq!(server.post("/v1/completions", &completion("abc"), &[]).cache.as_deref(), Some("HIT"));
    }
    let stats = inferno_json(&sb, &["cache", "stats"]);
    assert_eq!(stats["server"]["pid"], server.pid(), "{stats:#}");
    assert_eq!(stats["server"]["responses"], json!({"HIT": 2, "MISS": 1}));
    assert_eq!(stats["server"]["requests"], 3);
    let responses = response_kind(&stats);
    let hits = responses["memory_hits"].as_u64().unwrap() + responses["disk_hits"].as_u64().unwrap();
    assert_eq!((hits, responses["misses"].as_u64().unwrap()), (2, 1), "live counters: {responses:#}");
    assert_eq!(responses["entries"], 1);

    let text = inferno(&sb, &["cache", "stats"]);
    assert!(text.contains("Requests: 2 hits, 1 misses"), "{text}");
    assert!(text.contains(&format!("(pid {}), 3 requests answered", server.pid())), "{text}");
    assert!(text.contains("Models loaded: 1 of 5 max"), "{text}");
    let metrics = inferno(&sb, &["cache", "metrics"]);
    assert!(metrics.contains("Hit ratio: 66.7%"), "{metrics}");
}

#[test]
fn cache_clear_empties_the_live_cache() {
    let (sb, dir) = with_tiny_model();
    let server = Server::start(&sb, &dir, &[], &LONG_SYNC);
    let first = server.post("/v1/completions", &completion("abc"), &[]);
    assert_eq!(server.post("/v1/completions", &completion("abc"), &[]).cache.as_deref(), Some("HIT"));
    let removal = inferno_json(&sb, &["cache", "clear", "--all", "--yes"]);
    assert_eq!(removal["removed"], json!([{"type": "response", "entries": 1}]), "{removal:#}");
    assert_eq!(server.post("/v1/completions", &completion("abc"), &[]).cache.as_deref(), Some("MISS"));

    // By key, type and pattern: only what is selected goes.
    server.post("/v1/completions", &completion("xy"), &[]);
    let key = first.key.unwrap();
    let text = inferno(&sb, &["cache", "clear", "--key", &key]);
    assert!(text.starts_with("Clear: removed 1 entries (1 response)"), "{text}");
    assert_eq!(server.post("/v1/completions", &completion("xy"), &[]).cache.as_deref(), Some("HIT"));
    assert_eq!(server.post("/v1/completions", &completion("abc"), &[]).cache.as_deref(), Some("MISS"));
    let none = inferno_json(&sb, &["cache", "clear", "--type", "metadata", "--pattern", "tiny*"]);
    assert_eq!(none["entries"], 0);
    let aged = inferno_json(&sb, &["cache", "cleanup", "--older-than", "1h"]);
    assert_eq!(aged["entries"], 0, "nothing is an hour old");
    assert_eq!(server.post("/v1/completions", &completion("xy"), &[]).cache.as_deref(), Some("HIT"));
}

#[test]
fn cache_warm_loads_the_model_in_the_server() {
    let (sb, dir) = with_tiny_model();
    let server = Server::start(&sb, &dir, &[], &[("INFERNO_SERVER__ADMIN_KEY", "adm1n")]);
    let admin = [("authorization", "Bearer adm1n")];
    assert_eq!(server.get("/v1/cache/stats", &admin).json()["server"]["models"]["loaded"], 0);
    // `tiny` is a name in the server's models directory, not in this command's.
    let warmed = inferno_json(&sb, &["cache", "warm", "--model", "tiny"]);
    let report = &warmed["models"][0];
    assert_eq!(
        (&report["name"], &report["kept_loaded"], &report["stored"]),
        (&json!("tiny"), &json!(true), &json!(true))
    );
    let stats = server.get("/v1/cache/stats", &admin).json();
    assert_eq!(stats["server"]["models"]["loaded"], 1, "{stats:#}");
    assert_eq!(stats["server"]["models"]["models"][0]["name"], "tiny");
    let model_kind = stats["kinds"].as_array().unwrap().iter().find(|k| k["kind"] == "model").unwrap();
    assert_eq!(model_kind["entries"], 1, "the model entry is recorded in the live cache");

    // A path works over the socket too, and the text names the server.
    let text = inferno(&sb, &["cache", "warm", "--model", dir.join("tiny.gguf").to_str().unwrap()]);
    assert!(text.contains("Warmed tiny (gguf") && text.contains("by the running server"), "{text}");
    assert_eq!(server.get("/v1/cache/stats", &admin).json()["server"]["models"]["counters"]["loads"], 1);
    let missing = sb.cmd().args(["cache", "warm", "--model", "nope"]).output().unwrap();
    assert!(!missing.status.success());
    assert!(stdout(&missing).contains("failed nope:"), "{}", stdout(&missing));
}

#[test]
fn maintenance_goes_through_the_server_and_other_commands_name_it() {
    let (sb, dir) = with_tiny_model();
    let server = Server::start(&sb, &dir, &[], &LONG_SYNC);
    server.post("/v1/completions", &completion("abc"), &[]);
    let out = sb.cmd().args(["cache", "verify", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let verify: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((verify["entries_checked"].as_u64().unwrap() >= 1, &verify["damaged"]), (true, &json!([])));
    assert!(inferno(&sb, &["cache", "verify", "--fix"]).contains("no damage found"));
    let compact = inferno_json(&sb, &["cache", "compact"]);
    assert!(compact["records_kept"].as_u64().unwrap() >= 1, "{compact:#}");
    // The backup holds what the server answered although it has not synced yet.
    let dest = sb.path("backup");
    let backup = inferno_json(&sb, &["cache", "backup", "--destination", dest.to_str().unwrap(), "--verify"]);
    assert_eq!((&backup["entries"], &backup["verified"]), (&json!(1), &json!(true)), "{backup:#}");

    sb.write("lines.jsonl", "");
    let out = sb.cmd().args(["cache", "import", "../lines.jsonl"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let message = stderr(&out);
    let socket = sb.default_cache_dir().join("admin.sock");
    assert!(
        message.contains(&format!(
            "a running `inferno serve` (pid {}) on {}",
            server.pid(),
            socket.display()
        )) && message.contains("stop the server"),
        "{message}"
    );
}

#[test]
fn http_admin_routes_work_and_need_the_admin_key() {
    let (sb, dir) = with_tiny_model();
    let env = [("INFERNO_API_KEY", "s3cret"), ("INFERNO_SERVER__ADMIN_KEY", "adm1n")];
    let server = Server::start(&sb, &dir, &[], &env);
    let api = [("authorization", "Bearer s3cret")];
    let key = [("authorization", "Bearer adm1n")];
    assert_eq!(server.get("/v1/cache/stats", &[]).status, 401);
    assert_eq!(server.delete("/v1/cache?all=true", None, &[]).status, 401);
    assert_eq!(server.post("/v1/cache/warm", &json!({"model": "tiny"}), &[]).status, 401);
    // The API key never grants the admin routes; the admin key is not an API key either.
    let with_api = server.delete("/v1/cache?all=true", None, &api);
    assert_eq!(with_api.status, 401, "{}", with_api.text);
    assert!(with_api.json()["error"]["message"].as_str().unwrap().contains("admin_key"), "{}", with_api.text);
    assert_eq!(server.get("/v1/cache/stats", &api).status, 401);
    assert_eq!(server.post("/v1/completions", &completion("abc"), &key).status, 401);

    let warm = server.post("/v1/cache/warm", &json!({"model": "tiny"}), &key);
    assert_eq!((warm.status, &warm.json()["kept_loaded"]), (200, &json!(true)), "{}", warm.text);
    let path = dir.join("tiny.gguf");
    let by_path = server.post("/v1/cache/warm", &json!({"model": path}), &key);
    assert_eq!(by_path.status, 404, "paths are for the admin socket only: {}", by_path.text);
    let backup = server.post("/v1/cache/backup", &json!({"destination": sb.path("b")}), &key);
    assert_eq!((backup.status, &backup.json()["error"]["type"]), (403, &json!("permission_error")));

    server.post("/v1/completions", &completion("abc"), &api);
    let stats = server.get("/v1/cache/stats", &key).json();
    assert_eq!(response_kind(&stats)["entries"], 1, "{stats:#}");
    assert_eq!(stats["server"]["models"]["models"][0]["name"], "tiny");
    let nothing = server.delete("/v1/cache", None, &key);
    assert_eq!(nothing.status, 400, "{}", nothing.text);
    assert_eq!(server.delete("/v1/cache?type=bogus", None, &key).status, 400);
    let kept = server.delete("/v1/cache?type=response&pattern=other*", None, &key).json();
    assert_eq!(kept["entries"], 0);
    let removed = server.delete("/v1/cache", Some(&json!({"type": "response", "pattern": "tiny"})), &key);
    assert_eq!((removed.status, &removed.json()["entries"]), (200, &json!(1)), "{}", removed.text);
    assert_eq!(server.post("/v1/completions", &completion("abc"), &api).cache.as_deref(), Some("MISS"));
    assert_eq!(server.post("/v1/cache/flush", &json!({}), &key).status, 200);
    assert_eq!(server.post("/v1/cache/verify", &json!({}), &key).json()["damaged"], json!([]));
    assert_eq!(server.get("/health", &[]).status, 200);
}

#[test]
fn a_stale_socket_after_kill_9_does_not_break_a_restart() {
    let (sb, dir) = with_tiny_model();
    let socket = sb.default_cache_dir().join("admin.sock");
    let server = Server::start(&sb, &dir, &[], &[]);
    let mode = std::fs::metadata(&socket).expect("the socket exists").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(server.stop(libc::SIGKILL), None);
    assert!(socket.exists(), "kill -9 leaves the socket behind");
    let offline = inferno_json(&sb, &["cache", "stats"]);
    assert!(offline.get("server").is_none(), "a stale socket is not a server: {offline:#}");

    let server = Server::start(&sb, &dir, &[], &[]);
    assert_eq!(inferno_json(&sb, &["cache", "stats"])["server"]["pid"], server.pid());
    let status = inferno(&sb, &["cache", "status"]);
    let writer =
        format!("Writer: process {} (inferno serve, admin socket {})", server.pid(), socket.display());
    assert!(status.contains(&writer), "{status}");
    assert_eq!(server.stop(libc::SIGTERM), Some(0));
    assert!(!socket.exists(), "a clean shutdown removes the socket");
}
