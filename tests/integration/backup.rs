//! `cache backup`, `backup list`, `restore` and `rebuild --from-backup`: backups restore bit-exact, damaged
//! or hostile backups are refused without touching the cache, rotation keeps `backup_copies`.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::util::Sandbox;

fn populate(sb: &Sandbox, n: usize) {
    let lines: Vec<String> = (0..n)
        .map(|i| {
            json!({
                "model": "tiny",
                "request": {"messages": [{"role": "user", "content": format!("q{i}")}], "temperature": 0},
                "response": {"id": format!("id{i}"), "object": "chat.completion", "created": 1, "model": "tiny",
                             "choices": [{"index": 0, "message": {"role": "assistant",
                                          "content": format!("answer {} ", i % 5).repeat(40)}}]}
            })
            .to_string()
        })
        .collect();
    sb.write("work/in.jsonl", &lines.join("\n"));
    let out = sb.std_command().args(["cache", "import", "in.jsonl"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn run(sb: &Sandbox, args: &[&str]) -> std::process::Output {
    sb.std_command().args(args).output().unwrap()
}

fn export(sb: &Sandbox) -> Vec<Value> {
    let out = run(sb, &["cache", "export", "--format", "jsonl"]);
    assert!(out.status.success());
    let mut rows: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for row in &mut rows {
        row.as_object_mut().unwrap().remove("ttl");
    }
    rows.sort_by_key(|v| v["response"]["id"].as_str().unwrap().to_string());
    rows
}

fn data_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    files.sort();
    files
}

#[test]
fn backup_and_restore_round_trip_bit_exact() {
    let sb = Sandbox::new();
    populate(&sb, 30);
    let before = export(&sb);
    let segments_before = data_files(&sb.default_cache_dir());
    for (dest, flags) in [("b-plain", &[][..]), ("b-zst", &["--compress"][..])] {
        let dest = sb.path(dest);
        let mut args = vec!["cache", "backup", "--destination", dest.to_str().unwrap(), "--verify"];
        args.extend_from_slice(flags);
        let out = run(&sb, &args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("Backed up 30 entries"));
        assert!(dest.join("inferno-backup.json").is_file());
    }
    let out = run(&sb, &["cache", "clear", "--all", "--yes"]);
    assert!(out.status.success());
    assert!(export(&sb).is_empty());

    let src = sb.path("b-zst");
    let out = run(&sb, &["cache", "restore", "--source", src.to_str().unwrap(), "--verify"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Verified 30 entries"));
    assert_eq!(export(&sb), before, "the restored cache serves exactly what was backed up");
    let restored = data_files(&sb.default_cache_dir());
    assert_eq!(restored.len(), segments_before.len());
    for ((_, a), (_, b)) in restored.iter().zip(&segments_before) {
        assert!(a.starts_with(&b[..a.len().min(b.len())]), "segment bytes are copied bit-exact");
    }

    let out = run(&sb, &["cache", "backup", "list", "--json"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(list.as_array().unwrap().iter().all(|b| b["present"] == true && b["entries"] == 30));
}

#[test]
fn damaged_missing_and_hostile_backups_are_refused_and_change_nothing() {
    let sb = Sandbox::new();
    populate(&sb, 10);
    let dest = sb.path("b");
    assert!(run(&sb, &["cache", "backup", "--destination", dest.to_str().unwrap()]).status.success());
    populate(&sb, 12);
    let cache_before = data_files(&sb.default_cache_dir());

    // A flipped byte in a backed-up segment.
    let seg = std::fs::read_dir(dest.join("data")).unwrap().next().unwrap().unwrap().path();
    let mut bytes = std::fs::read(&seg).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xFF;
    std::fs::write(&seg, &bytes).unwrap();
    let out = run(&sb, &["cache", "restore", "--source", dest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not match the manifest"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    bytes[mid] ^= 0xFF;
    std::fs::write(&seg, &bytes).unwrap();

    // A manifest naming a path outside the cache.
    let manifest_path = dest.join("inferno-backup.json");
    let mut manifest: Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    for evil in ["../escape.log", "/etc/evil", "data/../../x"] {
        manifest["files"][0]["path"] = json!(evil);
        std::fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
        let out = run(&sb, &["cache", "restore", "--source", dest.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{evil}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("refusing path"), "{evil}");
    }
    assert!(!sb.path("escape.log").exists());

    let out = run(&sb, &["cache", "restore", "--source", sb.path("nope").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not an inferno backup"));
    assert_eq!(data_files(&sb.default_cache_dir()), cache_before, "a refused restore changes nothing");
}

#[test]
fn rotation_keeps_backup_copies_and_rebuild_restores_damaged_entries() {
    let sb = Sandbox::new();
    populate(&sb, 20);
    let before = export(&sb);
    for name in ["b1", "b2", "b3"] {
        let dest = sb.path(name);
        assert!(run(&sb, &["cache", "backup", "--destination", dest.to_str().unwrap()]).status.success());
    }
    assert!(!sb.path("b1").exists(), "backup_copies = 2 removes the oldest");
    assert!(sb.path("b2").exists() && sb.path("b3").exists());

    let (seg, mut bytes) = data_files(&sb.default_cache_dir()).remove(0);
    let at = bytes.windows(9).position(|w| w == b"answer 2 ").unwrap();
    bytes[at] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();
    assert_eq!(run(&sb, &["cache", "verify"]).status.code(), Some(1));

    let out = run(&sb, &["cache", "rebuild", "--from-backup"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("restored 4 from backups"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(run(&sb, &["cache", "verify"]).status.success());
    assert_eq!(export(&sb), before, "every entry is back, with its original value");
}

/// Flips one byte of the first `needle` in the cache's first segment.
fn damage(sb: &Sandbox, needle: &[u8]) {
    let (seg, mut bytes) = data_files(&sb.default_cache_dir()).remove(0);
    let at = bytes.windows(needle.len()).position(|w| w == needle).unwrap();
    bytes[at + needle.len() / 2] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();
}

#[test]
fn restore_verify_accepts_records_quarantined_before_the_backup_but_not_lost_entries() {
    let sb = Sandbox::new();
    populate(&sb, 10);
    // `verify --fix` quarantines the damaged chunk and the two entries using it, but its bytes stay in the
    // segment, so the backup holds them and the restored cache's first scan finds a damaged byte range.
    damage(&sb, b"answer 2 ");
    assert!(run(&sb, &["cache", "verify", "--fix"]).status.success());
    assert!(run(&sb, &["cache", "verify"]).status.success());
    let kept = export(&sb);
    assert_eq!(kept.len(), 8);
    let b1 = sb.path("b1");
    assert!(
        run(&sb, &["cache", "backup", "--destination", b1.to_str().unwrap(), "--verify"]).status.success()
    );
    let out = run(&sb, &["cache", "restore", "--source", b1.to_str().unwrap(), "--verify"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("Verified 8 entries: no damage\n"));
    assert!(err.contains("damaged byte ranges that no entry uses"), "{err}");
    assert_eq!(export(&sb), kept);
    assert!(run(&sb, &["cache", "verify"]).status.success(), "the restore dropped the ranges for good");

    // Without --verify the ranges are reported until `verify --fix` drops them, for good.
    assert!(run(&sb, &["cache", "restore", "--source", b1.to_str().unwrap()]).status.success());
    let out = run(&sb, &["cache", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 damaged records, 1 damaged byte ranges"));
    let out = run(&sb, &["cache", "verify", "--fix"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .ends_with("Dropped the damaged byte ranges; no entry uses them.\n")
    );
    assert!(run(&sb, &["cache", "verify"]).status.success(), "the fix lasts");
    assert_eq!(export(&sb), kept);

    // A damaged entry record that nobody quarantined: the restored cache lacks an entry the backup counted.
    damage(&sb, b"\"q6\"");
    let b2 = sb.path("b2");
    assert!(run(&sb, &["cache", "backup", "--destination", b2.to_str().unwrap()]).status.success());
    let out = run(&sb, &["cache", "restore", "--source", b2.to_str().unwrap(), "--verify"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("(7 of the 8 backed-up entries are readable)"), "{err}");
}
