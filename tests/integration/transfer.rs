//! `inferno cache import` / `export --format jsonl`: entries survive the process, are keyed by request,
//! duplicates and bad lines are counted, and export gives back what was imported.

use serde_json::{Value, json};

use crate::util::Sandbox;

fn line(content: &str, answer: &str, id: &str) -> String {
    json!({
        "model": "tiny",
        "request": {"messages": [{"role": "user", "content": content}], "temperature": 0},
        "response": {"id": id, "object": "chat.completion", "created": 1, "model": "tiny",
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                                  "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
    })
    .to_string()
}

#[test]
fn import_then_export_round_trips_across_processes() {
    let sb = Sandbox::new();
    let lines = [line("a", "one", "x1"), line("b", "two", "x2"), line("a", "other", "x3")].join("\n");
    sb.write("work/in.jsonl", &format!("{lines}\n\nnot json\n{{\"model\": 3}}\n"));
    let out = sb.std_command().args(["cache", "import", "in.jsonl"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "rejected lines make the exit code 1: {stdout}");
    assert!(stdout.contains("2 new, 1 duplicate, 2 rejected"), "{stdout}");
    assert!(stdout.contains("line 5: not JSON"), "{stdout}");
    assert!(stdout.contains("line 6: `model` must be a non-empty string"), "{stdout}");

    let out = sb.std_command().args(["cache", "export", "--format", "jsonl"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut exported: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(exported.len(), 2);
    exported.sort_by_key(|v| v["response"]["id"].as_str().unwrap().to_string());
    assert_eq!(exported[0]["request"]["messages"][0]["content"], "a");
    let answers: Vec<&str> = exported
        .iter()
        .map(|v| v["response"]["choices"][0]["message"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(answers, ["one", "two"], "the first answer for a request is kept");
    assert_eq!(exported[0]["response"]["id"], "x1", "export gives back what was stored");
    let ttl = exported[0]["ttl"].as_u64().unwrap();
    assert!(ttl > 86_300 && ttl <= 86_400, "the default response TTL is default_ttl_hours (24h): {ttl}");

    // Importing the export again finds every entry already there.
    sb.write("work/again.jsonl", &exported.iter().map(Value::to_string).collect::<Vec<_>>().join("\n"));
    let out = sb.std_command().args(["cache", "import", "again.jsonl", "--json"]).output().unwrap();
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["report"]["duplicate"], 2);
    assert_eq!(report["report"]["new"], 0);
}

#[test]
fn ttl_in_a_line_is_honoured_and_bad_ttls_are_rejected() {
    let sb = Sandbox::new();
    let mut with_ttl: Value = serde_json::from_str(&line("a", "one", "x1")).unwrap();
    with_ttl["ttl"] = json!("2h");
    let mut bad: Value = serde_json::from_str(&line("b", "two", "x2")).unwrap();
    bad["ttl"] = json!(-5);
    sb.write("work/in.jsonl", &format!("{with_ttl}\n{bad}\n"));
    let out = sb.std_command().args(["cache", "import", "in.jsonl"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 new, 0 duplicate, 1 rejected"), "{stdout}");
    assert!(stdout.contains("line 2: `ttl` -5 must be a positive number of seconds"), "{stdout}");
    let out = sb.std_command().args(["cache", "export", "--format", "jsonl"]).output().unwrap();
    let exported: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ttl = exported["ttl"].as_u64().unwrap();
    assert!(ttl > 7100 && ttl <= 7200, "{ttl}");
}

#[test]
fn a_missing_file_and_a_disabled_cache_are_errors() {
    let sb = Sandbox::new();
    let out = sb.std_command().args(["cache", "import", "nope.jsonl"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read nope.jsonl"));
    sb.write("work/in.jsonl", &line("a", "one", "x1"));
    let out = sb
        .std_command()
        .args(["cache", "import", "in.jsonl"])
        .env("INFERNO_CACHE_ENABLED", "false")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the cache is disabled"));
    let out = sb.std_command().args(["cache", "export", "--format", "yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
