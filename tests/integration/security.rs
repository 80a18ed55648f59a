//! Closed by default (docs/security.md), end to end with the real binary: the admin API over TCP, the
//! refusal of an open bind without an API key, key files, owner-only files whatever the umask, and secrets
//! that never reach `status` or the logs. The audit has its own file, `audit.rs`.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;

use serde_json::{Value, json};

use crate::server::{Server, with_tiny_model};
use crate::util::{Sandbox, stderr, stdout};

fn completion(prompt: &str) -> Value {
    json!({"model": "tiny", "prompt": prompt, "temperature": 0, "max_tokens": 4})
}

/// `inferno <args>` run with umask 000, so that only the modes the binary asks for protect its files.
fn with_umask_000(cmd: &mut std::process::Command) -> &mut std::process::Command {
    // SAFETY: umask(2) is async-signal-safe and touches only the child between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0);
            Ok(())
        })
    }
}

/// Every directory and file under `root` (the root included) with its permission bits.
fn modes(root: &Path) -> Vec<(String, bool, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        out.push((path.display().to_string(), meta.is_dir(), meta.permissions().mode() & 0o7777));
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out
}

fn assert_private(root: &Path) {
    let all = modes(root);
    assert!(all.len() > 1, "{} holds files", root.display());
    for (path, dir, mode) in all {
        let want = if dir { 0o700 } else { 0o600 };
        assert_eq!(mode, want, "{path} is {mode:04o}, want {want:04o}");
    }
}

#[test]
fn admin_routes_are_not_served_over_tcp_without_an_admin_key() {
    let (sb, dir) = with_tiny_model();
    let server = Server::start(&sb, &dir, &[], &[("INFERNO_API_KEY", "s3cret")]);
    let api = [("authorization", "Bearer s3cret")];
    let socket = sb.default_cache_dir().join("admin.sock");
    for reply in [
        server.get("/v1/cache/stats", &api),
        server.delete("/v1/cache?all=true", None, &api),
        server.post("/v1/cache/compact", &json!({}), &api),
        server.post("/v1/cache/warm", &json!({"model": "tiny"}), &api),
        server.post("/v1/cache/verify", &json!({"fix": true}), &api),
        server.post("/v1/cache/backup", &json!({"destination": sb.path("b")}), &api),
        server.get("/v1/cache/stats", &[]),
    ] {
        assert_eq!(reply.status, 404, "{}", reply.text);
        let message = reply.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(
            message.contains(&socket.display().to_string()) && message.contains("admin_key"),
            "{message}"
        );
    }
    // The cache is untouched, and the CLI still reaches the server through the socket.
    assert_eq!(server.post("/v1/completions", &completion("abc"), &api).cache.as_deref(), Some("MISS"));
    assert_eq!(server.post("/v1/completions", &completion("abc"), &api).cache.as_deref(), Some("HIT"));
    let out = sb.cmd().args(["cache", "stats", "--json"]).output().unwrap();
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["server"]["pid"], server.pid());
}

#[test]
fn an_open_bind_needs_an_api_key_unless_allowed() {
    let (sb, dir) = with_tiny_model();
    let models = dir.to_str().unwrap();
    let out = sb
        .cmd()
        .args(["serve", "--bind", "0.0.0.0", "--port", "0", "--models-dir", models])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let message = stderr(&out);
    assert!(
        message.contains("flag --bind: key `server.bind`")
            && message.contains("--allow-unauthenticated")
            && message.contains("server.api_key"),
        "{message}"
    );
    // From a file, the error names the file and line.
    let config = sb.write_project("[server]\nport = 0\nbind = \"0.0.0.0\"\n");
    let out = sb.cmd().args(["serve", "--models-dir", models]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!("{}:3:1: key `server.bind`", config.display())),
        "{}",
        stderr(&out)
    );

    let mut allowed = sb.std_command();
    allowed.args(["serve", "--allow-unauthenticated", "--models-dir", models]);
    let server = Server::spawn(&mut allowed);
    assert!(server.base.starts_with("http://0.0.0.0:"), "{}", server.base);
    drop(server);

    let key = sb.write("api.key", "k3y-from-a-file\n");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut keyed = sb.std_command();
    keyed.args(["serve", "--models-dir", models]).env("INFERNO_SERVER__API_KEY_FILE", &key);
    let server = Server::spawn(&mut keyed);
    let local = server.base.replace("0.0.0.0", "127.0.0.1");
    let reply = Server::agent().get(format!("{local}/v1/models")).call().unwrap();
    assert_eq!(reply.status(), 401);
    let reply = Server::agent()
        .get(format!("{local}/v1/models"))
        .header("authorization", "Bearer k3y-from-a-file")
        .call()
        .unwrap();
    assert_eq!(reply.status(), 200);
}

#[test]
fn bad_key_files_stop_serve_with_the_key_named() {
    let (sb, dir) = with_tiny_model();
    let models = dir.to_str().unwrap();
    let missing = sb.path("nope.key");
    let out = sb
        .cmd()
        .args(["serve", "--port", "0", "--models-dir", models])
        .env("INFERNO_SERVER__ADMIN_KEY_FILE", &missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let message = stderr(&out);
    assert!(
        message.contains("environment variable INFERNO_SERVER__ADMIN_KEY_FILE: key `server.admin_key_file`")
            && message.contains("cannot read the key file"),
        "{message}"
    );
    let empty = sb.write("empty.key", "\n");
    let out = sb
        .cmd()
        .args(["serve", "--port", "0", "--models-dir", models])
        .env("INFERNO_SERVER__API_KEY_FILE", &empty)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is empty"), "{}", stderr(&out));
    let out = sb
        .cmd()
        .args(["serve", "--port", "0", "--models-dir", models])
        .env("INFERNO_API_KEY", "same")
        .env("INFERNO_SERVER__ADMIN_KEY", "same")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("must differ from server.api_key"), "{}", stderr(&out));
}

#[test]
fn everything_the_cache_creates_is_owner_only_whatever_the_umask() {
    let (sb, dir) = with_tiny_model();
    let cache = sb.default_cache_dir();
    let lines: Vec<String> = (0..20)
        .map(|i| {
            json!({"model": "tiny", "request": {"prompt": format!("p{i}"), "temperature": 0},
                   "response": {"id": "x", "object": "text_completion", "created": 1, "model": "tiny",
                                "choices": [{"index": 0, "text": format!("answer {i} ").repeat(200)}]}})
            .to_string()
        })
        .collect();
    sb.write("work/in.jsonl", &lines.join("\n"));
    let backup = sb.path("backups/one");
    for args in [
        vec!["cache", "import", "in.jsonl"],
        vec!["cache", "clear", "--pattern", "nothing*"],
        vec!["cache", "compact"],
        vec!["cache", "backup", "--destination", backup.to_str().unwrap()],
        vec!["cache", "verify", "--fix"],
        vec!["cache", "cleanup"],
    ] {
        let out = with_umask_000(&mut sb.std_command()).args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    // The server's files too: the admin socket, counters, history, trace.
    let mut serve = sb.std_command();
    serve.args(["serve", "--port", "0", "--models-dir", dir.to_str().unwrap()]);
    let server = Server::spawn(with_umask_000(&mut serve));
    assert_eq!(server.post("/v1/completions", &completion("abc"), &[]).status, 200);
    let out = with_umask_000(&mut sb.std_command()).args(["cache", "compact"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let socket = std::fs::metadata(cache.join("admin.sock")).unwrap().permissions().mode() & 0o777;
    assert_eq!(socket, 0o600);
    assert_eq!(server.stop(libc::SIGTERM), Some(0));
    assert_private(&cache);
    assert_private(&backup);
    assert!(cache.join("audit.jsonl").is_file(), "the audit is one of the files checked");
}

#[test]
fn status_and_verify_report_loose_modes_and_fix_tightens_them() {
    let sb = Sandbox::new();
    sb.write(
        "work/in.jsonl",
        &json!({"model": "m", "request": {"prompt": "p", "temperature": 0}, "response": {"choices": []}})
            .to_string(),
    );
    assert!(sb.cmd().args(["cache", "import", "in.jsonl"]).output().unwrap().status.success());
    let cache = sb.default_cache_dir();
    let status = sb.status(&[], &[]);
    assert_eq!(status.0["cache"]["security"]["permissions"]["ok"], true, "{:#}", status.0);

    let data = cache.join("data");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let some_file = std::fs::read_dir(&data).unwrap().next().unwrap().unwrap().path();
    std::fs::set_permissions(&some_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let status = sb.status(&[], &[]);
    let loose = status.0["cache"]["security"]["permissions"]["loose"].as_array().unwrap().clone();
    assert_eq!(loose.len(), 2, "{loose:?}");
    let text = stdout(&sb.cmd().args(["cache", "status"]).output().unwrap());
    assert!(
        text.contains("Permissions: 2 paths more open than 0700 / 0600")
            && text.contains(&format!("{} (0755, want 0700)", data.display())),
        "{text}"
    );
    let out = sb.cmd().args(["cache", "verify"]).output().unwrap();
    let text = stdout(&out);
    assert!(text.contains("Permissions: 2 paths more open") && text.contains("verify --fix"), "{text}");
    let out = sb.cmd().args(["cache", "verify", "--fix", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let fixed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (fixed["loose_permissions"].as_array().unwrap().len(), &fixed["permissions_fixed"]),
        (2, &json!(true))
    );
    assert_private(&cache);
    let text = stdout(&sb.cmd().args(["cache", "status"]).output().unwrap());
    assert!(text.contains("Permissions: directories 0700, files 0600"), "{text}");
}

#[test]
fn status_shows_no_secret() {
    let sb = Sandbox::new();
    let key_file = sb.write("admin.key", "FILE-CONTENT-SECRET\n");
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let key_path = key_file.to_str().unwrap();
    let env = [
        ("INFERNO_API_KEY", "API-KEY-SECRET"),
        ("INFERNO_SERVER__ADMIN_KEY_FILE", key_path),
        ("INFERNO_CACHE__DISTRIBUTED__CLUSTER_NODES", "redis://user:REDIS-PASSWORD@127.0.0.1:1"),
    ];
    for json in [false, true] {
        let mut cmd = sb.cmd();
        cmd.args(["cache", "status"]).envs(env);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let all = format!("{}{}", stdout(&out), stderr(&out));
        for secret in ["API-KEY-SECRET", "FILE-CONTENT-SECRET", "REDIS-PASSWORD"] {
            assert!(!all.contains(secret), "{secret} shown by status (json {json}):\n{all}");
        }
        assert!(all.contains("redis://user:***@127.0.0.1:1"), "{all}");
        assert!(all.contains(key_path), "the key file's path is shown: {all}");
    }
    let status = sb.status(&[], &env);
    let security = &status.0["cache"]["security"];
    assert_eq!(security["api_key"]["set"], true);
    assert_eq!(security["admin_key"]["from"], "server.admin_key_file");
    assert_eq!(security["admin_key"]["origin"], "env INFERNO_SERVER__ADMIN_KEY_FILE");
    assert_eq!(security["admin_key"]["id"].as_str().unwrap().len(), 8);
    assert_eq!(status.value("server.api_key"), "(set)");
}

#[test]
fn prompts_answers_and_keys_never_reach_the_logs_at_trace_level() {
    const MARKER: &str = "ZEBRA-MARKER-7731";
    let (sb, dir) = with_tiny_model();
    // An answer with the marker, imported under the key the server computes for this request (the key
    // includes the model file's fingerprint).
    let out =
        sb.cmd().args(["models", "info", "tiny", "--json", "--models-dir", dir.to_str().unwrap()]).output();
    let info: Value = serde_json::from_slice(&out.unwrap().stdout).unwrap();
    let fingerprint = info["metadata"]["fingerprint"].as_str().expect("a fingerprint").to_string();
    let request = json!({"prompt": format!("cached {MARKER}"), "temperature": 0, "max_tokens": 4});
    let line = json!({"model": "tiny", "model_fingerprint": fingerprint, "request": request,
                      "response": {"id": "x", "object": "text_completion", "created": 1, "model": "tiny",
                                   "choices": [{"index": 0, "text": format!("the answer is {MARKER}"),
                                                "finish_reason": "stop"}]}});
    sb.write("work/in.jsonl", &line.to_string());
    let out = sb.cmd().args(["cache", "import", "in.jsonl"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let log_path = sb.path("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut cmd = sb.std_command();
    cmd.args(["-vv", "serve", "--port", "0", "--models-dir", dir.to_str().unwrap()])
        .env("INFERNO_API_KEY", "API-KEY-SECRET")
        .env("INFERNO_SERVER__ADMIN_KEY", "ADMIN-KEY-SECRET");
    let server = Server::spawn_logging_to(&mut cmd, log);
    let api = [("authorization", "Bearer API-KEY-SECRET")];
    let mut hit = request.clone();
    hit["model"] = json!("tiny");
    let reply = server.post("/v1/completions", &hit, &api);
    assert_eq!(reply.cache.as_deref(), Some("HIT"), "{}", reply.text);
    assert!(reply.text.contains(MARKER));
    let generated = server.post("/v1/completions", &completion(&format!("new {MARKER}")), &api);
    assert_eq!(generated.cache.as_deref(), Some("MISS"), "{}", generated.text);
    let mut chat = json!({"model": "tiny", "messages": [{"role": "user", "content": MARKER}], "temperature": 0,
                          "max_tokens": 4, "stream": true});
    assert_eq!(server.post("/v1/chat/completions", &chat, &api).status, 200);
    chat["stream"] = json!(false);
    assert_eq!(server.post("/v1/chat/completions", &chat, &api).status, 200);
    let admin = [("authorization", "Bearer ADMIN-KEY-SECRET")];
    assert_eq!(server.get("/v1/cache/stats", &admin).status, 200);
    assert_eq!(server.get("/v1/cache/stats", &[("authorization", "Bearer WRONG-KEY-SECRET")]).status, 401);
    assert_eq!(server.stop(libc::SIGTERM), Some(0));

    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(logs.contains(" TRACE ") && logs.contains(" DEBUG "), "-vv logs at trace level:\n{logs}");
    for secret in [MARKER, "API-KEY-SECRET", "ADMIN-KEY-SECRET", "WRONG-KEY-SECRET"] {
        let at = logs.lines().find(|l| l.contains(secret));
        assert!(at.is_none(), "{secret} is in the logs: {}", at.unwrap_or(""));
    }
}
