//! The access audit end to end: each administrative command leaves exactly one record (time, action,
//! arguments, outcome, entries/bytes, who) whether it ran on the cache or through a running server, denied
//! admin requests are recorded, no key text is written, and `cache audit` filters by action and time.

use serde_json::{Value, json};

use crate::server::{Server, with_tiny_model};
use crate::util::{Sandbox, stderr, stdout};

fn records(sb: &Sandbox) -> Vec<Value> {
    let out = sb.cmd().args(["cache", "audit", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["records"].as_array().unwrap().clone()
}

fn ok(sb: &Sandbox, args: &[&str]) -> String {
    let out = sb.cmd().args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

fn import_two(sb: &Sandbox) {
    let line = |p: &str| {
        json!({"model": "tiny", "request": {"prompt": p, "temperature": 0},
               "response": {"id": "x", "object": "text_completion", "created": 1, "model": "tiny",
                            "choices": [{"index": 0, "text": "an answer", "finish_reason": "stop"}]}})
        .to_string()
    };
    sb.write("work/in.jsonl", &format!("{}\n{}\n", line("a"), line("b")));
    ok(sb, &["cache", "import", "in.jsonl"]);
}

#[test]
fn each_cli_action_leaves_exactly_one_record() {
    let sb = Sandbox::new();
    import_two(&sb);
    let backup = sb.path("bk");
    ok(&sb, &["cache", "stats"]);
    ok(&sb, &["cache", "verify"]);
    ok(&sb, &["cache", "backup", "--destination", backup.to_str().unwrap()]);
    ok(&sb, &["cache", "clear", "--all", "--yes"]);
    ok(&sb, &["cache", "compact"]);
    ok(&sb, &["cache", "verify", "--fix"]);
    ok(&sb, &["cache", "configure", "--ttl", "2h"]);
    let failed = sb.cmd().args(["cache", "restore", "--source", sb.path("nope").to_str().unwrap()]).output();
    assert!(!failed.unwrap().status.success());

    let all = records(&sb);
    let actions: Vec<&str> = all.iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        ["import", "backup", "clear", "compact", "verify", "configure", "restore"],
        "stats and a verify without --fix change nothing and are not recorded"
    );
    let me = std::process::id();
    for r in &all {
        assert_eq!(r["who"]["via"], "cli", "{r}");
        assert!(r["who"]["user"].as_str().is_some_and(|u| !u.is_empty()), "{r}");
        assert!(r["who"]["pid"].as_u64().is_some_and(|p| p != u64::from(me)), "{r}");
        assert!(r["time"].as_str().unwrap().ends_with('Z') && r["time_ms"].as_u64().unwrap() > 0, "{r}");
    }
    let by = |action: &str| all.iter().find(|r| r["action"] == action).unwrap();
    assert_eq!((&by("import")["entries"], &by("import")["outcome"]), (&json!(2), &json!("ok")));
    assert_eq!(by("clear")["entries"], 2);
    assert!(by("clear")["bytes"].as_u64().unwrap() > 0);
    assert_eq!(by("clear")["arguments"], json!(["cache", "clear", "--all", "--yes"]));
    assert_eq!(by("backup")["entries"], 2);
    assert_eq!(by("restore")["outcome"], "error");
    assert!(by("restore")["error"].as_str().unwrap().contains("restore refused"), "{}", by("restore"));

    // Filters, and the text form.
    let out = sb.cmd().args(["cache", "audit", "--action", "clear,compact", "--json"]).output().unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["records"].as_array().unwrap().len(), 2);
    let text = ok(&sb, &["cache", "audit", "--since", "1h", "--action", "clear"]);
    assert!(text.contains("1 records in the last 1h") && text.contains("clear     ok"), "{text}");
    assert!(text.contains("2 entries") && text.contains("cache clear --all --yes"), "{text}");

    // Off: nothing more is written.
    ok(&sb, &["cache", "configure", "--ttl", "3h"]);
    let before = records(&sb).len();
    let out =
        sb.cmd().args(["cache", "compact"]).env("INFERNO_CACHE__AUDIT__ENABLED", "false").output().unwrap();
    assert!(out.status.success());
    assert_eq!(records(&sb).len(), before);
}

#[test]
fn the_server_records_what_it_is_asked_once_with_who_asked() {
    let (sb, dir) = with_tiny_model();
    import_two(&sb);
    let env = [("INFERNO_API_KEY", "API-SECRET-1"), ("INFERNO_SERVER__ADMIN_KEY", "ADMIN-SECRET-2")];
    let server = Server::start(&sb, &dir, &[], &env);
    let admin = [("authorization", "Bearer ADMIN-SECRET-2")];
    let api = [("authorization", "Bearer API-SECRET-1")];
    let start = records(&sb).len();

    // Through the admin socket: the server writes the record, the CLI none.
    ok(&sb, &["cache", "clear", "--pattern", "nothing*"]);
    ok(&sb, &["cache", "compact"]);
    ok(&sb, &["cache", "verify"]);
    // Over HTTP with the admin key, and refused with the API key.
    let removed = server.delete("/v1/cache?all=true", None, &admin);
    assert_eq!((removed.status, &removed.json()["entries"]), (200, &json!(2)), "{}", removed.text);
    assert_eq!(server.delete("/v1/cache?all=true", None, &api).status, 401);
    assert_eq!(server.get("/v1/cache/stats", &admin).status, 200);

    let all = records(&sb);
    let new = &all[start..];
    let actions: Vec<&str> = new.iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["clear", "compact", "clear", "denied"], "{new:#?}");
    let socket = &new[0]["who"];
    assert_eq!(socket["via"], "socket");
    assert!(socket["pid"].as_u64().is_some() && socket["user"].as_str().is_some(), "{socket}");

    // A client that claims to be someone else is named by what the kernel says about its connection.
    let before = records(&sb).len();
    let mut stream =
        std::os::unix::net::UnixStream::connect(sb.default_cache_dir().join("admin.sock")).unwrap();
    let request = "DELETE /v1/cache?pattern=nothing* HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
                   x-inferno-client: user=mallory pid=1\r\nContent-Length: 0\r\n\r\n";
    std::io::Write::write_all(&mut stream, request.as_bytes()).unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut stream, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let forged = &records(&sb)[before]["who"];
    assert_eq!(forged["pid"], json!(std::process::id()), "{forged}");
    assert_ne!(forged["user"], "mallory", "{forged}");
    assert!(new[0]["arguments"]["query"].as_str().unwrap().starts_with("pattern=nothing"), "{}", new[0]);
    let http = &new[2];
    assert_eq!((&http["who"]["via"], &http["who"]["key"]), (&json!("http"), &json!("admin")));
    assert!(http["who"]["client"].as_str().unwrap().starts_with("127.0.0.1:"), "{http}");
    assert_eq!(http["who"]["key_id"].as_str().unwrap().len(), 8);
    assert_eq!((&http["entries"], &http["outcome"]), (&json!(2), &json!("ok")));
    let denied = &new[3];
    assert_eq!((&denied["outcome"], &denied["arguments"]["path"]), (&json!("denied"), &json!("/v1/cache")));
    assert!(denied["who"]["key"].is_null());
    assert_eq!(server.stop(libc::SIGTERM), Some(0));

    let file = std::fs::read_to_string(sb.default_cache_dir().join("audit.jsonl")).unwrap();
    assert!(!file.contains("API-SECRET-1") && !file.contains("ADMIN-SECRET-2"), "{file}");
}

#[test]
fn with_log_reads_each_lookup_is_recorded_and_report_counts_access() {
    const MARKER: &str = "OKAPI-MARKER-5521";
    let (sb, dir) = with_tiny_model();
    let env = [("INFERNO_API_KEY", "API-SECRET-3"), ("INFERNO_CACHE__AUDIT__LOG_READS", "true")];
    let server = Server::start(&sb, &dir, &[], &env);
    let api = [("authorization", "Bearer API-SECRET-3")];
    let body = json!({"model": "tiny", "prompt": MARKER, "temperature": 0, "max_tokens": 4});
    let first = server.post("/v1/completions", &body, &api);
    assert_eq!(first.cache.as_deref(), Some("MISS"));
    assert_eq!(server.post("/v1/completions", &body, &api).cache.as_deref(), Some("HIT"));
    assert_eq!(server.post("/v1/completions", &body, &[("authorization", "Bearer wrong")]).status, 401);
    assert_eq!(server.stop(libc::SIGTERM), Some(0));

    let all = records(&sb);
    let lookups: Vec<&Value> = all.iter().filter(|r| r["action"] == "lookup").collect();
    assert_eq!(lookups.len(), 2, "{all:#?}");
    let key = first.key.unwrap();
    assert_eq!(lookups[0]["arguments"]["key"], key.as_str());
    assert_eq!(
        (&lookups[0]["arguments"]["hit"], &lookups[0]["arguments"]["tier"]),
        (&json!(false), &Value::Null)
    );
    assert_eq!(
        (&lookups[1]["arguments"]["hit"], &lookups[1]["arguments"]["tier"]),
        (&json!(true), &json!("memory"))
    );
    assert_eq!(lookups[1]["who"]["key"], "api");
    assert_eq!(all.iter().filter(|r| r["outcome"] == "denied").count(), 1, "refused API requests too");
    let file = std::fs::read_to_string(sb.default_cache_dir().join("audit.jsonl")).unwrap();
    assert!(!file.contains(MARKER) && !file.contains("API-SECRET-3"), "{file}");

    let out = sb.cmd().args(["cache", "report", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let access = &report["access"];
    assert_eq!((&access["lookups"], &access["denied"]), (&json!(2), &json!(1)), "{access:#}");
    let client = access["clients"].as_array().unwrap().iter().find(|c| c["requests"] == 2).expect("a client");
    assert_eq!((&client["client"], &client["hits"]), (&json!("127.0.0.1"), &json!(1)));
    assert_eq!(access["top_keys"][0], json!({"key": key, "hits": 1}));
    let text = ok(&sb, &["cache", "report"]);
    assert!(text.contains("Access: 0 administrative actions, 1 requests refused"), "{text}");
    assert!(text.contains("127.0.0.1 (key ") && text.contains("2 requests, 1 hits"), "{text}");
}
