//! `cache enable | disable | persist`: what they write into `./.inferno.toml` (keeping its comments), what
//! `cache status` then reports, and what a disabled kind means for `cache import` and `cache export`.

use serde_json::{Value, json};

use crate::fixture::{SEED_COUNT, export, import, ok, response_entries, run, seed, seed_lines, sorted};
use crate::util::{Sandbox, stderr, stdout};

const COMMENTED: &str = "\
# Project cache settings, kept by hand.
[cache]
# ten is plenty on this laptop
max_size_gb = 10 # GB
type = \"memory\"   # switched by persist below
";

/// `cache status --json`'s `cache.enabled_types`.
fn enabled_types(sb: &Sandbox) -> Value {
    sb.status(&[], &[]).0["cache"]["enabled_types"].clone()
}

/// The first line of `cache status`.
fn status_line(sb: &Sandbox) -> String {
    ok(sb, &["cache", "status"]).lines().next().unwrap_or_default().to_string()
}

fn assert_comments_kept(sb: &Sandbox) {
    let text = sb.read(sb.project_file());
    for comment in
        ["# Project cache settings, kept by hand.", "# ten is plenty on this laptop", "max_size_gb = 10 # GB"]
    {
        assert!(text.contains(comment), "{comment:?} was lost:\n{text}");
    }
}

#[test]
fn enable_and_disable_switch_kinds_and_status_follows() {
    let sb = Sandbox::new();
    sb.write_project(COMMENTED.replace("type = \"memory\"", "type = \"persistent\"").as_str());
    let file = sb.project_file();

    let text = ok(&sb, &["cache", "enable", "--all"]);
    assert_eq!(
        text,
        format!(
            "response caching enabled, model caching enabled, metadata caching enabled, kv caching enabled (written to {})\n",
            file.display()
        )
    );
    assert_eq!(enabled_types(&sb), json!(["response", "model", "metadata", "kv"]));
    assert!(status_line(&sb).starts_with("Cache: enabled for response, model, metadata, kv (persistent, "));

    let text = ok(&sb, &["cache", "disable", "--all"]);
    assert!(text.starts_with("all caching disabled"), "{text}");
    assert_eq!(enabled_types(&sb), json!([]));
    assert_eq!(status_line(&sb), "Cache: disabled");

    // With the cache off as a whole, enabling two kinds turns on those two, not the third as well.
    let text = ok(&sb, &["cache", "enable", "--type", "model,response"]);
    assert!(
        text.starts_with(
            "model caching enabled, response caching enabled, metadata caching stays off, kv caching stays off, semantic caching stays off (written to "
        ),
        "{text}"
    );
    assert_eq!(enabled_types(&sb), json!(["response", "model"]));
    assert!(status_line(&sb).starts_with("Cache: enabled for response, model ("), "{}", status_line(&sb));

    // With the cache on, enabling is additive.
    ok(&sb, &["cache", "enable", "--type", "metadata,kv"]);
    assert_eq!(enabled_types(&sb), json!(["response", "model", "metadata", "kv"]));

    let text = ok(&sb, &["cache", "disable", "--type", "response"]);
    assert!(text.starts_with("response caching disabled (written to "), "{text}");
    assert_eq!(enabled_types(&sb), json!(["model", "metadata", "kv"]));
    assert!(status_line(&sb).starts_with("Cache: enabled for model, metadata, kv ("), "{}", status_line(&sb));
    let status = sb.status(&[], &[]);
    assert_eq!(status.value("cache.response.enabled"), &json!(false));
    assert_eq!(status.value("cache.enabled"), &json!(true));

    let text = ok(&sb, &["cache", "enable", "--type", "response", "--deduplication", "blake3"]);
    assert!(text.starts_with("response caching enabled, deduplication with blake3 (written to "), "{text}");
    let status = sb.status(&[], &[]);
    assert_eq!(status.0["cache"]["enabled_types"], json!(["response", "model", "metadata", "kv"]));
    assert_eq!(status.0["cache"]["deduplication"], "blake3");
    assert_eq!(status.value("cache.deduplication.enabled"), &json!(true));
    assert_eq!(status.value("cache.deduplication.algorithm"), &json!("blake3"));
    assert!(status_line(&sb).contains("dedup blake3"), "{}", status_line(&sb));
    assert_comments_kept(&sb);

    // Bad toggles: exit 2, file untouched.
    let before = sb.read(&file);
    for args in [
        &["cache", "enable"][..],
        &["cache", "disable"],
        &["cache", "enable", "--type", "nope"],
        &["cache", "disable", "--type", "response", "--deduplication", "blake3"],
        &["cache", "enable", "--all", "--type", "model"],
    ] {
        let out = run(&sb, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert_eq!(sb.read(&file), before, "{args:?} changed the file");
    }
}

#[test]
fn a_disabled_response_cache_refuses_import_and_export_instead_of_pretending() {
    let sb = Sandbox::new();
    let lines = seed(&sb);
    ok(&sb, &["cache", "disable", "--type", "response"]);

    // Importing while responses are not cached would store nothing: it must say so, not report "new" lines.
    let more = crate::fixture::response_line("llama-7b", "another question", "another answer", "x");
    sb.write("work/more.jsonl", &format!("{more}\n"));
    let out = run(&sb, &["cache", "import", "more.jsonl"]);
    assert_eq!(out.status.code(), Some(1), "stdout: {}", stdout(&out));
    assert!(!stdout(&out).contains("1 new"), "{}", stdout(&out));
    assert!(stderr(&out).contains("response caching is disabled"), "{}", stderr(&out));
    assert!(stderr(&out).contains("inferno cache enable --type response"), "{}", stderr(&out));
    // Exporting would silently write nothing although 40 entries are stored.
    let out = run(&sb, &["cache", "export", "--format", "jsonl"]);
    assert_eq!(out.status.code(), Some(1), "stdout: {}", stdout(&out));
    assert!(stderr(&out).contains("response caching is disabled"), "{}", stderr(&out));
    // Metrics still describe what is stored.
    assert_eq!(response_entries(&sb), SEED_COUNT as u64);

    ok(&sb, &["cache", "enable", "--type", "response"]);
    assert_eq!(export(&sb), sorted(lines.clone()), "nothing was lost while disabled");
    let out = import(&sb, "more.jsonl", std::slice::from_ref(&more));
    assert!(out.contains("1 new, 0 duplicate, 0 rejected"), "{out}");
    let mut all = lines;
    all.push(more);
    assert_eq!(export(&sb), sorted(all));
}

#[test]
fn persist_with_gzip_writes_the_config_and_creates_the_cache() {
    let sb = Sandbox::new();
    sb.write_project(COMMENTED);
    let file = sb.project_file();
    let dir = sb.default_cache_dir();
    assert!(!dir.exists());

    let text = ok(&sb, &["cache", "persist", "--compress", "gzip"]);
    assert!(
        text.starts_with(&format!("The cache is persistent in {} with gzip level ", dir.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("(written to {}); 0 entries on disk, flushed.", file.display())),
        "{text}"
    );
    assert!(dir.join("data").is_dir(), "persist creates the cache directory");

    let toml: toml::Table = sb.read(&file).parse().expect("the file stays valid TOML");
    assert_eq!(toml["cache"]["type"].as_str(), Some("persistent"));
    assert_eq!(toml["cache"]["compression"]["algorithm"].as_str(), Some("gzip"));
    assert_eq!(toml["cache"]["compression"]["enabled"].as_bool(), Some(true));
    assert_comments_kept(&sb);
    let status = sb.status(&[], &[]);
    assert_eq!(status.0["cache"]["type"], "persistent");
    assert!(status.0["cache"]["compression"].as_str().unwrap().starts_with("gzip level "), "{:#}", status.0);

    // Entries imported now are on disk; persist again counts them and changes nothing else.
    import(&sb, "seed.jsonl", &seed_lines());
    let text = ok(&sb, &["cache", "persist", "--compress", "gzip"]);
    assert!(text.contains(&format!("; {SEED_COUNT} entries on disk, flushed.")), "{text}");
    let report: Value = crate::fixture::ok_json(&sb, &["cache", "persist"]);
    assert_eq!(report["entries_on_disk"], SEED_COUNT);
    assert_eq!(report["file"], file.to_str().unwrap());
    assert!(report["bytes_on_disk"].as_u64().unwrap() > 0);
    assert_eq!(export(&sb), sorted(seed_lines()));

    let out = run(&sb, &["cache", "persist", "--compress", "lz4"]);
    assert_eq!(out.status.code(), Some(2));
}
