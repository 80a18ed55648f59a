//! `cache restore` killed at each of its steps, and backups holding hostile or damaged files: the next open
//! finds the old data or the new data, never an empty cache, and every refusal is one clear line, exit 1,
//! with the cache unchanged.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use serde_json::{Value, json};

use crate::util::Sandbox;

/// The variable that makes a restore kill itself at a step (`cache::ops::backup::CRASH_AT_ENV`).
const CRASH_AT: &str = "INFERNO_TEST_RESTORE_CRASH_AT";

fn populate(sb: &Sandbox, prefix: &str, n: usize) {
    let lines: Vec<String> = (0..n)
        .map(|i| {
            json!({
                "model": "tiny",
                "request": {"messages": [{"role": "user", "content": format!("{prefix}{i}")}]},
                "response": {"id": format!("{prefix}{i}"), "object": "chat.completion", "created": 1, "model": "tiny",
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("{prefix} {i}")}}]}
            })
            .to_string()
        })
        .collect();
    sb.write("work/in.jsonl", &lines.join("\n"));
    let out = run(sb, &["cache", "import", "in.jsonl"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn run(sb: &Sandbox, args: &[&str]) -> std::process::Output {
    sb.std_command().args(args).output().unwrap()
}

/// The ids of the cached responses, sorted.
fn ids(sb: &Sandbox) -> Vec<String> {
    let out = run(sb, &["cache", "export", "--format", "jsonl"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut ids: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["response"]["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

fn backup(sb: &Sandbox, name: &str, compress: bool) -> std::path::PathBuf {
    let dest = sb.path(name);
    let mut args = vec!["cache", "backup", "--destination", dest.to_str().unwrap()];
    if compress {
        args.push("--compress");
    }
    let out = run(sb, &args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    dest
}

#[test]
fn a_restore_killed_at_any_step_leaves_the_old_or_the_new_data() {
    for (step, lands_new) in [("copying", false), ("staged", false), ("old-moved", false), ("new-in", true)] {
        let sb = Sandbox::new();
        populate(&sb, "new", 6);
        let new = ids(&sb);
        let source = backup(&sb, "b", false);
        assert!(run(&sb, &["cache", "clear", "--all", "--yes"]).status.success());
        populate(&sb, "old", 4);
        let old = ids(&sb);
        let expected = if lands_new { &new } else { &old };

        let out = sb
            .std_command()
            .args(["cache", "restore", "--source", source.to_str().unwrap()])
            .env(CRASH_AT, step)
            .output()
            .unwrap();
        assert_eq!(out.status.signal(), Some(9), "{step}: {}", String::from_utf8_lossy(&out.stderr));
        let dir = sb.default_cache_dir();
        if step == "old-moved" {
            assert!(!dir.join("data").exists(), "the kill came between the renames");
        }
        // A read-only open repairs nothing and still finds the data.
        assert_eq!(&ids(&sb), expected, "read-only open after a kill at {step}");
        // The next writable open finishes or undoes the swap and removes what the restore left.
        assert!(run(&sb, &["cache", "verify", "--fix"]).status.success(), "{step}");
        assert!(!dir.join("data.old").exists() && !dir.join("restore.tmp").exists(), "{step}");
        assert_eq!(&ids(&sb), expected, "writable open after a kill at {step}");
        // And a restore run to the end afterwards lands the new data.
        let out = run(&sb, &["cache", "restore", "--source", source.to_str().unwrap()]);
        assert!(out.status.success(), "{step}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(ids(&sb), new, "{step}");
    }
}

#[test]
fn a_restore_killed_at_random_moments_leaves_the_old_or_the_new_data() {
    let sb = Sandbox::new();
    populate(&sb, "new", 40);
    let new = ids(&sb);
    let source = backup(&sb, "b", false);
    let restore = || {
        let mut command = sb.std_command();
        command
            .args(["cache", "restore", "--source", source.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        command
    };
    let started = std::time::Instant::now();
    assert!(restore().status().unwrap().success());
    let full = started.elapsed().as_micros() as u64;
    let rounds: u64 =
        std::env::var("INFERNO_CRASH_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(12);
    let (mut landed_old, mut landed_new) = (0, 0);
    for round in 0..rounds {
        assert!(run(&sb, &["cache", "clear", "--all", "--yes"]).status.success());
        populate(&sb, "old", 3);
        let old = ids(&sb);
        let mut child = restore().spawn().unwrap();
        // Spread the kills over the whole run of a restore, startup included.
        std::thread::sleep(std::time::Duration::from_micros(full * round / rounds.max(1)));
        let _ = child.kill();
        child.wait().unwrap();
        let seen = ids(&sb);
        assert!(run(&sb, &["cache", "verify", "--fix"]).status.success(), "round {round}");
        let after = ids(&sb);
        assert_eq!(seen, after, "round {round}: a read-only open sees what the repair keeps");
        if after == old {
            landed_old += 1;
        } else {
            assert_eq!(after, new, "round {round}: neither the old nor the new data");
            landed_new += 1;
        }
    }
    println!("restore killed {rounds} times: {landed_old} old, {landed_new} new");
}

/// Runs a restore expected to be refused: exit 1, one line on stderr containing `needle`, no panic, and
/// the cache exactly as it was.
fn refused(sb: &Sandbox, source: &Path, needle: &str) {
    let before = ids(sb);
    let out = run(sb, &["cache", "restore", "--source", source.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{needle}: {err}");
    assert!(err.contains(needle), "expected {needle:?} in {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert_eq!(ids(sb), before, "{needle}: a refused restore changes nothing");
    assert!(!sb.default_cache_dir().join("restore.tmp").exists(), "{needle}: no staging left");
}

fn edit_manifest(dir: &Path, edit: impl FnOnce(&mut Value)) {
    let path = dir.join("inferno-backup.json");
    let mut manifest: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut manifest);
    std::fs::write(&path, serde_json::to_vec(&manifest).unwrap()).unwrap();
}

/// A fresh copy of the backup `from` at `to`.
fn copy_backup(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("data")).unwrap();
    for sub in ["", "data"] {
        for entry in std::fs::read_dir(from.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, to.join(sub).join(path.file_name().unwrap())).unwrap();
            }
        }
    }
}

#[test]
fn hostile_and_damaged_backups_are_refused_in_one_line() {
    let sb = Sandbox::new();
    populate(&sb, "kept", 5);
    let plain = backup(&sb, "plain", false);
    let zst = backup(&sb, "zst", true);
    populate(&sb, "later", 3);
    let case = |name: &str, from: &Path| {
        let dir = sb.path(&format!("case-{name}"));
        copy_backup(from, &dir);
        dir
    };
    let first_file = |dir: &Path, ext: &str| {
        let mut files: Vec<_> =
            std::fs::read_dir(dir.join("data")).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        files.into_iter().find(|p| p.to_string_lossy().ends_with(ext)).unwrap()
    };

    let dir = case("not-json", &plain);
    std::fs::write(dir.join("inferno-backup.json"), b"{\"format\": 1, \"files\": [").unwrap();
    refused(&sb, &dir, "backup manifest");

    let dir = case("huge", &plain);
    std::fs::write(dir.join("inferno-backup.json"), vec![b' '; 17 << 20]).unwrap();
    refused(&sb, &dir, "larger than");

    let dir = case("twice", &plain);
    edit_manifest(&dir, |m| {
        let first = m["files"][0].clone();
        m["files"].as_array_mut().unwrap().push(first);
    });
    refused(&sb, &dir, "listed twice");

    for evil in ["data/seg-0000000001.hint", "data/notes.txt", "LOCK", "data/sub/seg-0000000001.log"] {
        let dir = case("path", &plain);
        edit_manifest(&dir, |m| m["files"][0]["path"] = json!(evil));
        refused(&sb, &dir, "refusing path");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    let dir = case("truncated", &plain);
    let seg = first_file(&dir, ".log");
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len(len - 1).unwrap();
    refused(&sb, &dir, "does not match the manifest");

    let dir = case("missing", &plain);
    std::fs::remove_file(first_file(&dir, ".log")).unwrap();
    refused(&sb, &dir, "No such file");

    let dir = case("garbage-zst", &zst);
    std::fs::write(first_file(&dir, ".zst"), b"this is not zstd at all").unwrap();
    refused(&sb, &dir, "cannot decompress");

    // A small zstd file that expands far beyond the manifest's size stops just past it.
    let dir = case("bomb", &zst);
    let bomb = zstd::bulk::compress(&vec![0u8; 256 << 20], 19).unwrap();
    std::fs::write(first_file(&dir, ".zst"), bomb).unwrap();
    refused(&sb, &dir, "longer than");

    let dir = case("newer-format", &plain);
    edit_manifest(&dir, |m| m["format"] = json!(99));
    refused(&sb, &dir, "format 99 is not supported");

    // An out-of-range creation time is shown, not a panic.
    let dir = case("far-future", &plain);
    edit_manifest(&dir, |m| m["created_ms"] = json!(u64::MAX));
    let out = run(&sb, &["cache", "restore", "--source", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{} ms after 1970", u64::MAX)));
    assert_eq!(ids(&sb).len(), 5, "the backup's entries");
}
