//! Lines of the guide that needed more than the commands had: `INFERNO_CONFIG` naming the config file
//! (the guide's Kubernetes manifest mounts its ConfigMap at /config/cache.toml), `cache report --export`,
//! `configure --ttl` governing responses, and `import` keying documented lines as `serve` does.

use serde_json::{Value, json};

use crate::server::{Server, with_tiny_model};
use crate::util::{Sandbox, file_origin, stderr, stdout};

#[test]
fn inferno_config_names_the_file_like_the_flag() {
    let sb = Sandbox::new();
    let guide = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/config/kubernetes-cache.toml"
    ))
    .unwrap();
    let mounted = sb.write("config/cache.toml", &guide);
    let env = [("INFERNO_CONFIG", mounted.to_str().unwrap())];
    let status = sb.status(&[], &env);
    assert_eq!(status.value("cache.max_size_gb"), 50);
    let line = guide.lines().position(|l| l.starts_with("max_size_gb")).unwrap() + 1;
    assert_eq!(status.origin("cache.max_size_gb"), &file_origin(&mounted, line, 1));

    // --config wins over the variable.
    let other = sb.write("other.toml", "[cache]\nmax_size_gb = 7\n");
    let status = sb.status(&["--config", other.to_str().unwrap()], &env);
    assert_eq!(status.value("cache.max_size_gb"), 7);

    // A file it names must exist, as with --config.
    let out =
        sb.cmd().args(["cache", "status"]).env("INFERNO_CONFIG", sb.path("nope.toml")).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("nope.toml"), "{}", stderr(&out));
}

#[test]
fn report_export_writes_the_report_as_json() {
    let sb = Sandbox::new();
    let out =
        sb.cmd().args(["cache", "report", "--period", "1h", "--export", "report.json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Wrote the report to report.json"));
    let doc: Value = serde_json::from_str(&sb.read("work/report.json")).unwrap();
    assert_eq!(doc["period_seconds"], 3600);
    assert!(doc["alerts"].is_array() && doc.get("summary").is_some(), "{doc}");
    let json = sb.cmd().args(["cache", "report", "--period", "1h", "--json"]).output().unwrap();
    let printed: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(printed, doc);
}

fn guide_line(model: &str, prompt: &str, text: &str) -> Value {
    json!({
        "model": model,
        "request": {"prompt": prompt, "temperature": 0, "max_tokens": 4},
        "response": {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": model,
                     "choices": [{"index": 0, "text": text, "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6}},
    })
}

#[test]
fn a_guide_format_import_line_is_a_hit_in_serve() {
    let (sb, models) = with_tiny_model();
    let dir = models.to_str().unwrap();
    sb.write("work/in.jsonl", &format!("{}\n", guide_line("tiny", "imported prompt", "from the import")));
    let out = sb.cmd().args(["cache", "import", "in.jsonl"]).env("INFERNO_MODELS_DIR", dir).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "Imported in.jsonl: 1 new, 0 duplicate, 0 rejected\n");

    let server = Server::start(&sb, &models, &[], &[]);
    let body = json!({"model": "tiny", "prompt": "imported prompt", "temperature": 0, "max_tokens": 4});
    let reply = server.post("/v1/completions", &body, &[]);
    assert_eq!(reply.cache.as_deref(), Some("HIT"), "{}", reply.text);
    assert_eq!(reply.json()["choices"][0]["text"], "from the import");
}

#[test]
fn lines_for_unknown_models_are_stored_unbound_or_refused_with_strict() {
    let (sb, models) = with_tiny_model();
    let dir = models.to_str().unwrap();
    let lines = format!("{}\n{}\n", guide_line("tiny", "a", "x"), guide_line("nope", "b", "y"));
    sb.write("work/in.jsonl", &lines);
    let strict = sb
        .cmd()
        .args(["cache", "import", "--strict", "in.jsonl"])
        .env("INFERNO_MODELS_DIR", dir)
        .output()
        .unwrap();
    assert_eq!(strict.status.code(), Some(1), "{}", stderr(&strict));
    let text = stdout(&strict);
    assert!(text.starts_with("Imported in.jsonl: 1 new, 0 duplicate, 1 rejected\n"), "{text}");
    assert!(text.contains("line 2: no model `nope`"), "{text}");

    let loose = sb
        .cmd()
        .args(["cache", "import", "in.jsonl", "--json"])
        .env("INFERNO_MODELS_DIR", dir)
        .output()
        .unwrap();
    assert!(loose.status.success(), "{}", stderr(&loose));
    let report: Value = serde_json::from_slice(&loose.stdout).unwrap();
    assert_eq!(report["report"]["new"], 1);
    assert_eq!(report["report"]["duplicate"], 1);
    assert_eq!(report["report"]["unbound"], 1);
    assert_eq!(report["report"]["unbound_models"], json!(["nope"]));
    assert!(stderr(&loose).contains("stored unbound"), "{}", stderr(&loose));
}

#[test]
fn configure_ttl_governs_new_responses() {
    let sb = Sandbox::new();
    let out = sb.cmd().args(["cache", "configure", "--ttl", "48h"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let status = sb.status(&[], &[]);
    assert_eq!(status.value("cache.response.ttl_hours"), 48);
    assert_eq!(
        status.origin("cache.response.ttl_hours"),
        &json!({"kind": "inherited", "from": "cache.default_ttl_hours"})
    );
    sb.write("work/in.jsonl", &format!("{}\n", guide_line("m", "p", "t")));
    assert!(sb.cmd().args(["cache", "import", "in.jsonl"]).output().unwrap().status.success());
    let export = sb.cmd().args(["cache", "export", "--format", "jsonl"]).output().unwrap();
    let line: Value = serde_json::from_str(stdout(&export).lines().next().unwrap()).unwrap();
    let ttl = line["ttl"].as_u64().unwrap();
    assert!((172_700..=172_800).contains(&ttl), "a new response lives 48 h: {ttl}");

    // A kind's own TTL wins, and configure says so.
    sb.write_project("[cache.response]\nttl_hours = 2\n");
    let out = sb.cmd().args(["cache", "configure", "--ttl", "72h"]).output().unwrap();
    assert!(stdout(&out).contains("Note: cache.response.ttl_hours = 2 (set by"), "{}", stdout(&out));
    assert_eq!(sb.status(&[], &[]).value("cache.response.ttl_hours"), 2);
    assert_eq!(sb.status(&[], &[]).value("cache.metadata.ttl_hours"), 72);
}

#[test]
fn status_marks_no_setting_as_not_active_yet_and_read_ahead_as_no_effect() {
    let sb = Sandbox::new();
    let text = stdout(&sb.cmd().args(["cache", "status"]).output().unwrap());
    assert!(!text.lines().any(|l| l.ends_with("  *")), "{text}");
    assert!(!text.contains("not active yet"), "{text}");
    let row = text.lines().find(|l| l.trim_start().starts_with("cache.persistence.read_ahead_size")).unwrap();
    assert!(row.ends_with("(no effect)"), "{row}");
    assert!(text.contains(
        "(no effect) cache.persistence.read_ahead_size: accepted and validated, but it changes nothing"
    ));
    let json = sb.status(&[], &[]);
    assert!(
        json.setting("cache.persistence.read_ahead_size")["no_effect"]
            .as_str()
            .unwrap()
            .contains("memory-mapped")
    );
}

#[test]
fn the_guides_alerting_block_is_evaluated_by_serve() {
    let (sb, models) = with_tiny_model();
    let block = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/config/alerts.toml");
    // Not the guide's: evaluated every second instead of every minute, so the test need not wait a minute.
    let fast = [("INFERNO_CACHE__ALERTS__EVALUATION_INTERVAL_SECONDS", "1")];
    let server = Server::start(&sb, &models, &["--config", block], &fast);
    // One miss at start-up pages nobody: the hit-ratio rule waits for min_samples requests.
    let body = json!({"model": "tiny", "prompt": "start-up", "temperature": 0, "max_tokens": 2});
    assert_eq!(server.post("/v1/completions", &body, &[]).cache.as_deref(), Some("MISS"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let view = loop {
        let out = sb.cmd().args(["--config", block, "cache", "alerts", "status", "--json"]).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let view: Value = serde_json::from_slice(&out.stdout).unwrap();
        let rule =
            view["rules"].as_array().unwrap().iter().find(|r| r["rule"] == "hit_ratio").unwrap().clone();
        if rule["samples"] == 1 {
            break view;
        }
        assert!(std::time::Instant::now() < deadline, "the rules were not evaluated: {view}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(view["source"], "server");
    assert_eq!(view["enabled"], true);
    assert_eq!(
        view["channels"],
        json!([{"channel": "email", "configured": false}, {"channel": "slack", "configured": false}])
    );
    let rule = view["rules"].as_array().unwrap().iter().find(|r| r["rule"] == "hit_ratio").unwrap();
    assert_eq!((rule["state"].clone(), rule["threshold"].clone()), (json!("inactive"), json!(0.8)));
    assert!(rule["note"].as_str().unwrap().contains("fewer than min_samples = 20"), "{rule}");
}
