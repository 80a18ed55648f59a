//! `inferno cache stats` and `metrics`: figures measured from a populated cache, counters that persist
//! across processes, and dedup figures checked against what the test put in.

use serde_json::{Value, json};

use crate::util::Sandbox;

fn line(content: &str, answer: &str) -> String {
    json!({
        "model": "tiny",
        "request": {"messages": [{"role": "user", "content": content}], "temperature": 0},
        "response": {"id": format!("id-{content}"), "object": "chat.completion", "created": 1, "model": "tiny",
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}}]}
    })
    .to_string()
}

fn stats(sb: &Sandbox) -> Value {
    let out = sb.std_command().args(["cache", "stats", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn stats_reports_entries_dedup_and_persisted_counters() {
    let sb = Sandbox::new();
    // 12 requests, 3 distinct answers: 4 copies of each.
    let lines: Vec<String> = (0..12).map(|i| line(&format!("q{i}"), &format!("answer {}", i % 3))).collect();
    sb.write("work/in.jsonl", &lines.join("\n"));
    let out = sb.std_command().args(["cache", "import", "in.jsonl"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let s = stats(&sb);
    let response = &s["kinds"][0];
    assert_eq!(response["kind"], "response");
    assert_eq!(response["entries"], 12);
    assert_eq!(response["puts"], 12, "counters from the import process are kept");
    assert_eq!(s["dedup"]["total_values"], 12);
    assert_eq!(s["dedup"]["unique_values"], 3);
    assert_eq!(s["dedup"]["ratio"], 0.75);
    let unique = s["dedup"]["unique_bytes"].as_u64().unwrap();
    let logical = s["dedup"]["logical_bytes"].as_u64().unwrap();
    assert_eq!(logical, unique * 4, "each distinct payload is referenced 4 times");
    assert_eq!(s["dedup"]["bytes_saved"], logical - unique);
    assert!(s["disk"]["record_bytes"].as_u64().unwrap() > 0);
    assert_eq!(s["disk"]["max_bytes"], 10_000_000_000u64);

    // A second import of the same lines finds duplicates and does not count hits or misses.
    let out = sb.std_command().args(["cache", "import", "in.jsonl"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 new, 12 duplicate"));
    let s = stats(&sb);
    assert_eq!(s["kinds"][0]["misses"], 0);
    assert_eq!(s["kinds"][0]["puts"], 12);

    let out = sb.std_command().args(["cache", "stats", "--deduplication"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Total values (all kinds): 12\nUnique values: 3\nDeduplication ratio: 75.0%"),
        "{text}"
    );

    let out = sb.std_command().args(["cache", "metrics"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Hit ratio: n/a") && text.contains("Deduplication savings: 75.0%"), "{text}");
}

#[test]
fn stats_on_an_empty_cache_works_without_creating_it() {
    let sb = Sandbox::new();
    let s = stats(&sb);
    assert_eq!(s["kinds"][0]["entries"], 0);
    assert!(!sb.default_cache_dir().exists(), "a read-only command creates nothing");
}
