//! `cache clear | cleanup | compact | verify | repair | disk-usage` against a cache populated by `cache import`:
//! what each removes, keeps, reports and frees, checked against the export and the files on disk.

use std::time::Duration;

use serde_json::{Value, json};

use crate::fixture::{
    DISTINCT_ANSWERS, SEED_COUNT, answer, cache_dir, damage, data_dir, entry_key_holding, export, import,
    model, ok, ok_json, question, response_entries, response_line, run, seed, si, snapshot, sorted, stats,
    tree_bytes,
};
use crate::util::{Sandbox, stderr, stdout};

/// The seed lines of one model.
fn of_model(lines: &[Value], name: &str) -> Vec<Value> {
    sorted(lines.iter().filter(|l| l["model"] == name).cloned())
}

/// The seed lines without those whose question is in `gone`.
fn without(lines: &[Value], gone: &[usize]) -> Vec<Value> {
    let gone: Vec<String> = gone.iter().map(|&i| question(i)).collect();
    sorted(
        lines.iter().filter(|l| !gone.iter().any(|q| l["request"]["messages"][0]["content"] == *q)).cloned(),
    )
}

#[test]
fn clear_by_pattern_removes_exactly_the_matching_model_and_frees_disk() {
    let sb = Sandbox::new();
    let lines = seed(&sb);
    // Value bytes of all entries; what the llama entries held is this minus what is left after clearing them.
    let total_bytes = stats(&sb)["kinds"][0]["bytes"].as_u64().unwrap();

    let before = tree_bytes(&data_dir(&sb));
    let text = ok(&sb, &["cache", "clear", "--pattern", "llama*"]);
    let after = tree_bytes(&data_dir(&sb));
    assert!(after < before, "clearing half the entries shrinks data/: {before} -> {after}");
    assert!(text.starts_with("Clear: removed 20 entries (20 response), "), "{text}");
    assert!(
        text.contains(&format!("Disk: {} -> {} ({} freed)", si(before), si(after), si(before - after))),
        "the printed sizes are the real ones ({before} -> {after}):\n{text}"
    );
    assert_eq!(export(&sb), of_model(&lines, "mistral-7b"), "exactly the llama entries are gone");
    assert_eq!(response_entries(&sb), 20);
    let mistral_bytes = stats(&sb)["kinds"][0]["bytes"].as_u64().unwrap();
    assert!(text.contains(&format!(", {} of values", si(total_bytes - mistral_bytes))), "{text}");

    // The JSON form gives the exact figures.
    let before = tree_bytes(&data_dir(&sb));
    let removal = ok_json(&sb, &["cache", "clear", "--pattern", "mistral*"]);
    let after = tree_bytes(&data_dir(&sb));
    assert_eq!(removal["removed"], json!([{"type": "response", "entries": 20}]), "{removal:#}");
    assert_eq!(removal["entries"], 20);
    assert_eq!(removal["bytes"], mistral_bytes);
    assert_eq!(removal["bytes_freed_on_disk"], before - after, "{removal:#}");
    assert!(after < before);
    assert_eq!(export(&sb), Vec::<Value>::new());
    assert_eq!(response_entries(&sb), 0);
}

#[test]
fn clear_by_type_age_and_all() {
    let sb = Sandbox::new();
    let lines = seed(&sb);

    let text = ok(&sb, &["cache", "clear", "--type", "model"]);
    assert_eq!(text, "Clear: no entries matched\n");
    let text = ok(&sb, &["cache", "clear", "--type", "model,metadata", "--pattern", "llama*"]);
    assert_eq!(text, "Clear: no entries matched\n");
    let text = ok(&sb, &["cache", "clear", "--older-than", "24h"]);
    assert_eq!(text, "Clear: no entries matched\n", "nothing is a day old");
    assert_eq!(export(&sb), sorted(lines.clone()), "nothing was removed");

    // --type and --pattern together: only entries matching both.
    let text = ok(&sb, &["cache", "clear", "--type", "response", "--pattern", "mistral-*"]);
    assert!(text.starts_with("Clear: removed 20 entries (20 response)"), "{text}");
    assert_eq!(export(&sb), of_model(&lines, "llama-7b"));

    let before = tree_bytes(&data_dir(&sb));
    let text = ok(&sb, &["cache", "clear", "--type", "response"]);
    assert!(text.starts_with("Clear: removed 20 entries (20 response)"), "{text}");
    assert!(tree_bytes(&data_dir(&sb)) < before);
    assert_eq!(response_entries(&sb), 0);

    seed(&sb);
    let text = ok(&sb, &["cache", "clear", "--all", "--yes"]);
    assert!(text.starts_with(&format!("Clear: removed {SEED_COUNT} entries")), "{text}");
    assert_eq!(export(&sb), Vec::<Value>::new());

    // Without --yes and with stdin not a terminal (here: /dev/null) there is nobody to ask: it proceeds.
    seed(&sb);
    let out = sb
        .std_command()
        .args(["cache", "clear", "--all"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with(&format!("Clear: removed {SEED_COUNT} entries")), "{}", stdout(&out));
    assert_eq!(response_entries(&sb), 0);
    assert_eq!(export(&sb), Vec::<Value>::new());
    // Only the file headers are left on disk.
    let data: u64 = tree_bytes(&data_dir(&sb));
    assert!(data < 100, "an empty cache keeps {data} bytes in data/");
}

#[test]
fn cleanup_removes_only_entries_older_than_the_threshold() {
    let sb = Sandbox::new();
    let lines = seed(&sb);
    let text = ok(&sb, &["cache", "cleanup", "--older-than", "7d"]);
    assert_eq!(text, "Cleanup (older than 7days): no entries matched\n");
    let text = ok(&sb, &["cache", "cleanup"]);
    assert_eq!(
        text, "Cleanup (older than 7days): no entries matched\n",
        "the default is age_threshold_days = 7"
    );
    assert_eq!(export(&sb), sorted(lines.clone()));

    std::thread::sleep(Duration::from_millis(2200));
    let fresh: Vec<Value> =
        (100..103).map(|i| response_line("llama-7b", &question(i), &answer(i), "fresh")).collect();
    import(&sb, "fresh.jsonl", &fresh);
    let before = tree_bytes(&data_dir(&sb));
    let text = ok(&sb, &["cache", "cleanup", "--older-than", "2s"]);
    assert!(text.starts_with(&format!("Cleanup (older than 2s): removed {SEED_COUNT} entries")), "{text}");
    assert!(tree_bytes(&data_dir(&sb)) < before);
    assert_eq!(export(&sb), sorted(fresh), "only the entries imported after the sleep are left");
}

#[test]
fn compact_reclaims_expired_entries_and_keeps_serving_the_rest() {
    let sb = Sandbox::new();
    let lines = seed(&sb);
    let expiring: Vec<Value> = (200..210)
        .map(|i| {
            let mut line = response_line(model(i), &question(i), &answer(i), "short-lived");
            line["ttl"] = json!("1s");
            line
        })
        .collect();
    import(&sb, "expiring.jsonl", &expiring);
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(export(&sb), sorted(lines.clone()), "expired entries are not exported");

    let before = tree_bytes(&data_dir(&sb));
    let text = ok(&sb, &["cache", "compact"]);
    let after = tree_bytes(&data_dir(&sb));
    assert!(after < before, "compaction drops the expired entries and their chunks: {before} -> {after}");
    let records = SEED_COUNT + DISTINCT_ANSWERS;
    assert_eq!(
        text,
        format!(
            "Compacted: {} -> {} ({} freed), {records} records kept\n",
            si(before),
            si(after),
            si(before - after)
        )
    );
    assert_eq!(export(&sb), sorted(lines.clone()), "the live entries are still served, unchanged");

    // Nothing left to reclaim: a second compaction keeps the same records in no more space.
    let before = tree_bytes(&data_dir(&sb));
    let report = ok_json(&sb, &["cache", "compact"]);
    assert_eq!(report["bytes_before"], before);
    assert_eq!(report["bytes_after"], tree_bytes(&data_dir(&sb)));
    assert!(report["bytes_after"].as_u64() <= report["bytes_before"].as_u64(), "{report:#}");
    assert_eq!(report["records_kept"], records);
    assert_eq!(report["damaged_skipped"], 0);
    assert_eq!(export(&sb), sorted(lines));
}

/// Damages response `i`'s answer (a chunk only that entry uses); returns the entry's key.
fn damage_answer(sb: &Sandbox, i: usize) -> String {
    assert!(i >= crate::fixture::SHARED_COUNT, "pick a response with a unique answer");
    let key = entry_key_holding(sb, &format!("\"{}\"", question(i)));
    damage(sb, &answer(i));
    key
}

#[test]
fn verify_names_damage_and_fix_quarantines_only_that_entry() {
    let sb = Sandbox::new();
    let lines = seed(&sb);
    let text = ok(&sb, &["cache", "verify"]);
    assert_eq!(
        text,
        format!("Checked {SEED_COUNT} entries and {DISTINCT_ANSWERS} chunks: no damage found\n")
    );

    let key = damage_answer(&sb, 31);
    let damaged = snapshot(&cache_dir(&sb));
    for args in [&["cache", "verify"][..], &["cache", "verify", "--detailed"]] {
        let out = run(&sb, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: damage makes verify fail");
        let text = stdout(&out);
        assert!(text.contains("2 damaged records"), "{args:?}: the chunk and the entry using it:\n{text}");
        assert!(text.contains(&format!("  response {key}: chunk ")), "{args:?}: names the entry:\n{text}");
        assert!(text.contains("checksum mismatch"), "{args:?}:\n{text}");
        assert!(text.contains("inferno cache verify --fix"), "{args:?}:\n{text}");
        assert!(stderr(&out).contains("the cache has damaged records"), "{args:?}: {}", stderr(&out));
    }
    let out = run(&sb, &["cache", "verify", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).expect("verify --json prints JSON");
    assert_eq!(report["fixed"], false);
    let damaged_keys: Vec<&str> =
        report["damaged"].as_array().unwrap().iter().map(|d| d["key"].as_str().unwrap()).collect();
    assert_eq!(damaged_keys.len(), 2, "{report:#}");
    assert!(damaged_keys.contains(&key.as_str()), "{report:#}");
    assert_eq!(snapshot(&cache_dir(&sb)), damaged, "verify without --fix changes no file");
    assert!(!cache_dir(&sb).join("quarantine").exists());

    let text = ok(&sb, &["cache", "verify", "--fix"]);
    assert!(text.contains(&format!("  response {key}: chunk ")), "{text}");
    assert!(text.contains("Quarantined the damaged records into quarantine/"), "{text}");
    let quarantined = snapshot(&cache_dir(&sb).join("quarantine"));
    assert_eq!(quarantined.len(), 2, "the chunk and the entry are copied aside: {:?}", quarantined.keys());

    let text = ok(&sb, &["cache", "verify"]);
    assert_eq!(
        text,
        format!("Checked {} entries and {} chunks: no damage found\n", SEED_COUNT - 1, DISTINCT_ANSWERS - 1)
    );
    assert_eq!(export(&sb), without(&lines, &[31]), "only the damaged entry is gone; the rest are intact");
}

#[test]
fn repair_asks_without_auto_fix_and_quarantines_with_it() {
    let sb = Sandbox::new();
    let lines = seed(&sb);
    let text = ok(&sb, &["cache", "repair"]);
    assert_eq!(
        text,
        format!("Checked {SEED_COUNT} entries and {DISTINCT_ANSWERS} chunks: no damage found\n")
    );

    let key = damage_answer(&sb, 33);
    // The writer lock file gets the pid of every writing command, and the audit a record of every repair
    // (declined ones too); everything else must stay as it is.
    let files_but_lock = || {
        let mut files = snapshot(&cache_dir(&sb));
        files.remove(std::path::Path::new("LOCK"));
        files.remove(std::path::Path::new("audit.jsonl"));
        files
    };
    let damaged = files_but_lock();
    let out = sb.std_command().args(["cache", "repair"]).stdin(std::process::Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "nobody to ask: nothing is repaired\n{}", stdout(&out));
    assert!(stdout(&out).contains(&format!("  response {key}: chunk ")), "{}", stdout(&out));
    assert!(stderr(&out).contains("nothing was repaired (pass --auto-fix"), "{}", stderr(&out));
    assert_eq!(files_but_lock(), damaged, "repair without --auto-fix changes no file");
    let audit = std::fs::read_to_string(cache_dir(&sb).join("audit.jsonl")).unwrap();
    let last: Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!((&last["action"], &last["outcome"]), (&json!("repair"), &json!("error")));
    assert!(!cache_dir(&sb).join("quarantine").exists());

    let text = ok(&sb, &["cache", "repair", "--auto-fix"]);
    assert!(text.contains(&format!("  response {key}: chunk ")), "{text}");
    assert!(text.contains("Quarantined the damaged records"), "{text}");
    assert_eq!(snapshot(&cache_dir(&sb).join("quarantine")).len(), 2);
    let text = ok(&sb, &["cache", "verify"]);
    assert!(text.ends_with("no damage found\n"), "{text}");
    assert_eq!(export(&sb), without(&lines, &[33]));
}

#[test]
fn disk_usage_adds_up_to_the_files_in_the_cache_dir() {
    let sb = Sandbox::new();
    seed(&sb);
    let dir = cache_dir(&sb);
    let check = |quarantine_expected: bool| {
        let files = snapshot(&dir);
        let total: u64 = files.values().map(|b| b.len() as u64).sum();
        let class = |f: &dyn Fn(&str) -> bool| -> u64 {
            files.iter().filter(|(p, _)| f(&p.to_string_lossy())).map(|(_, b)| b.len() as u64).sum()
        };
        let usage = ok_json(&sb, &["cache", "disk-usage"]);
        assert_eq!(usage["total_bytes"], total, "{usage:#}");
        assert_eq!(usage["max_bytes"], 10_000_000_000u64);
        assert_eq!(usage["base_dir"], dir.to_str().unwrap());
        let expected = json!([
            {"class": "segments", "bytes": class(&|p| p.starts_with("data/") && p.ends_with(".log"))},
            {"class": "hints", "bytes": class(&|p| p.starts_with("data/") && p.ends_with(".hint"))},
            {"class": "quarantine", "bytes": class(&|p| p.starts_with("quarantine/"))},
            {"class": "other", "bytes": class(&|p| !p.contains('/'))},
        ]);
        assert_eq!(usage["files"], expected);
        assert_eq!(usage["files"][2]["bytes"].as_u64().unwrap() > 0, quarantine_expected);
        let entries = response_entries(&sb);
        let kinds: Vec<(String, u64)> = usage["kinds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| (k["type"].as_str().unwrap().to_string(), k["entries"].as_u64().unwrap()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("response".to_string(), entries),
                ("model".into(), 0),
                ("metadata".into(), 0),
                ("kv".into(), 0),
                ("semantic".into(), 0)
            ]
        );

        let text = ok(&sb, &["cache", "disk-usage"]);
        assert!(text.starts_with(&format!("{}: {} of 10.0 GB", dir.display(), si(total))), "{text}");
        assert!(text.contains(&format!("({entries} entries)")), "{text}");
        assert!(!text.contains("Segments:"), "{text}");
        let text = ok(&sb, &["cache", "disk-usage", "--detailed"]);
        assert!(text.contains("Segments:"), "{text}");
        for seg in crate::fixture::segments(&sb) {
            let name = seg.file_name().unwrap().to_string_lossy().into_owned();
            assert!(text.contains(&name), "--detailed lists {name}:\n{text}");
        }
        entries
    };
    assert_eq!(check(false), SEED_COUNT as u64);
    damage_answer(&sb, 35);
    ok(&sb, &["cache", "verify", "--fix"]);
    assert_eq!(check(true), SEED_COUNT as u64 - 1);
}

#[test]
fn bad_selectors_exit_2_and_change_nothing() {
    let sb = Sandbox::new();
    let lines = seed(&sb);
    let before = snapshot(&cache_dir(&sb));
    let cases: &[(&[&str], &str)] = &[
        (&["cache", "clear", "--type", "nope"], "unknown cache type \"nope\""),
        (&["cache", "clear", "--older-than", "24x"], "\"24x\" is not a duration"),
        (&["cache", "clear"], "say what to clear"),
        (&["cache", "clear", "--pattern", "["], "--pattern \"[\""),
        (&["cache", "clear", "--all", "--type", "response"], "cannot be used with"),
        (&["cache", "cleanup", "--older-than", "soon"], "is not a duration"),
    ];
    for (args, says) in cases {
        let out = run(&sb, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: stderr lacks {says:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}: {}", stdout(&out));
        assert_eq!(snapshot(&cache_dir(&sb)), before, "{args:?} changed the cache");
    }
    assert_eq!(export(&sb), sorted(lines));
}

/// `compact` killed with SIGKILL at different moments leaves a cache that opens, verifies clean and serves
/// every live entry unchanged (docs/format.md: compaction writes `.tmp` segments, renames, then deletes).
#[test]
fn compact_killed_midway_leaves_a_valid_cache() {
    use crate::fixture::{export, import, ok, response_line, run};
    let sb = Sandbox::new();
    let lines: Vec<serde_json::Value> = (0..3000)
        .map(|i| {
            response_line(
                "llama-7b",
                &format!("q {i:05}"),
                &format!("answer {i} ").repeat(30),
                &format!("id{i}"),
            )
        })
        .collect();
    import(&sb, "many.jsonl", &lines);
    // Garbage for compaction to reclaim: every other entry removed.
    ok(&sb, &["cache", "clear", "--pattern", "*[02468]"]);
    let expected = export(&sb);
    for delay_ms in [0u64, 5, 15, 30, 60, 120] {
        let mut child = sb.std_command().args(["cache", "compact"]).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let out = run(&sb, &["cache", "verify"]);
        assert!(
            out.status.success(),
            "after a kill at {delay_ms} ms: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(
            export(&sb),
            expected,
            "after a kill at {delay_ms} ms every live entry is served unchanged"
        );
    }
}
