//! `cache report`, `cache analyze` and `cache monitor`: figures from the recorded history and the writer's
//! live file, and advice that cites the thresholds it compares with.

use serde_json::{Value, json};

use crate::util::Sandbox;

fn import(sb: &Sandbox, n: usize) {
    let lines: Vec<String> = (0..n)
        .map(|i| {
            json!({"model": "tiny",
                   "request": {"messages": [{"role": "user", "content": format!("q{i}")}], "temperature": 0},
                   "response": {"id": format!("id{i}"), "object": "chat.completion", "created": 1,
                                "choices": [{"index": 0, "message": {"role": "assistant", "content": "short"}}]}})
            .to_string()
        })
        .collect();
    sb.write("work/in.jsonl", &lines.join("\n"));
    assert!(sb.std_command().args(["cache", "import", "in.jsonl"]).output().unwrap().status.success());
}

fn json_of(sb: &Sandbox, args: &[&str]) -> Value {
    let out = sb.std_command().args(args).arg("--json").output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn report_sums_the_activity_of_earlier_processes() {
    let sb = Sandbox::new();
    let empty = json_of(&sb, &["cache", "report", "--period", "1h"]);
    assert!(empty["summary"].is_null(), "no history yet");
    import(&sb, 7);
    import(&sb, 9);
    let report = json_of(&sb, &["cache", "report", "--period", "24h"]);
    assert_eq!(report["summary"]["puts"], 9, "7 new entries, then 2 more");
    assert_eq!(report["summary"]["entries_change"], 9);
    let out = sb.std_command().args(["cache", "report", "--period", "24x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn analyze_gives_advice_from_measured_figures_and_exports_it() {
    let sb = Sandbox::new();
    import(&sb, 5);
    // Tiny values are below compression_threshold_kb, so nothing is compressed: ratio 1.0 < 2.0.
    let out = sb
        .std_command()
        .args(["cache", "analyze", "--period", "24h", "--export", "report.json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("compression ratio 1.00x") && text.contains("compression_ratio_min"), "{text}");
    let exported: Value =
        serde_json::from_slice(&std::fs::read(sb.path("work/report.json")).unwrap()).unwrap();
    assert!(
        exported["advice"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["finding"].as_str().unwrap().contains("compression ratio"))
    );
    // With the threshold lowered the same data gives no compression advice.
    sb.write_project("[cache.alerts.thresholds]\ncompression_ratio_min = 0.5\n");
    let doc = json_of(&sb, &["cache", "analyze"]);
    assert!(
        !doc["advice"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["finding"].as_str().unwrap().contains("compression"))
    );
}

#[test]
fn monitor_samples_and_stops_after_count() {
    let sb = Sandbox::new();
    import(&sb, 3);
    let out = sb
        .std_command()
        .args(["cache", "monitor", "--interval", "100ms", "--count", "2", "--memory", "--io", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["hits_per_s"], 0.0, "nobody is using the cache");
    assert!(rows[0]["writer_pid"].is_null());
    assert!(rows[0].get("disk_reads_per_s").is_some() && rows[0].get("memory_entries").is_some());
    let out = sb.std_command().args(["cache", "monitor", "--interval", "0s"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
