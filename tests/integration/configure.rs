//! `inferno cache configure`: every invocation the guide shows is accepted and lands on the documented key,
//! edits keep the file's comments and ordering, `cache status` then reads the new values from that file,
//! invalid values change nothing, and overrides by env vars or flags are pointed out.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Value, json};

use crate::util::{Sandbox, Status, path_json, stderr, stdout};

/// Runs `inferno [global] cache configure <args>`; returns the output.
fn configure(sandbox: &Sandbox, args: &[&str]) -> std::process::Output {
    sandbox.cmd().args(["cache", "configure"]).args(args).output().expect("run inferno")
}

/// Runs `cache configure <args>` and requires success.
fn configure_ok(sandbox: &Sandbox, args: &[&str]) -> String {
    let out = configure(sandbox, args);
    assert!(out.status.success(), "configure {args:?} failed ({}):\n{}", out.status, stderr(&out));
    stdout(&out)
}

/// Checks that `key` comes from `file`, at a line of the file that assigns it.
fn assert_from_file(status: &Status, key: &str, file: &Path, text: &str) {
    let origin = status.origin(key);
    assert_eq!(origin["kind"], "file", "{key}: {origin}");
    assert_eq!(origin["path"], path_json(file), "{key}: {origin}");
    let line = origin["line"].as_u64().expect("a file origin has a line") as usize;
    let leaf = key.rsplit('.').next().unwrap();
    let source = text.lines().nth(line - 1).unwrap_or_default();
    assert!(
        source.trim_start().starts_with(&format!("{leaf} = ")),
        "{key} blamed on line {line}: {source:?}"
    );
}

const ORIGINAL: &str = "\
# My project's inferno settings.
# Keep this file small.

[cache.model]
# fewer models on the laptop
max_models = 2 # two is plenty

[cache]
type = \"persistent\"   # RAM in front of disk
max_size_gb = 10      # grow when the disk is replaced

[cache.compression]
algorithm = \"zstd\"    # fast
level = 3
";

#[test]
fn configure_round_trips_and_keeps_comments_and_order() {
    let sandbox = Sandbox::new();
    let path = sandbox.write_project(ORIGINAL);

    let steps: &[&[&str]] = &[
        &["--max-size", "20GB", "--ttl", "48h", "--compress", "gzip", "--compression-level", "6"],
        &["model", "--max-models", "3", "--memory-limit", "4GB", "--preload-strategy", "mru"],
        &["response", "--max-entries", "500", "--max-size", "512MB", "--ttl", "30m", "--compress", "zstd"],
        &["--enable-checksums"],
    ];
    for args in steps {
        configure_ok(&sandbox, args);
    }
    let status = sandbox.status(&[], &[]);
    assert_eq!(status.value("cache.persistence.enable_checksums"), &json!(true));
    assert_eq!(status.value("cache.model.preload_strategy"), &json!("mru"));

    let steps: &[&[&str]] = &[
        &["--enable-checksums=false"],
        &["--enable-distributed", "--cluster-nodes", "node1:9090,node2:9090", "--replication-factor", "2"],
        &["--prometheus-enabled"],
        &["--sync-interval", "300s", "--write-buffer-size", "1MB", "--read-ahead-size", "512KB"],
        &["--eviction-policy", "lru"],
        &["--deduplication", "xxhash"],
        &["--base-dir", "some/dir"],
        &["--set", "cache.cleanup.age_threshold_days=14"],
    ];
    for args in steps {
        configure_ok(&sandbox, args);
    }

    let text = sandbox.read(&path);
    // Every original comment survives, in the original order, and so does the order of the tables.
    let mut from = 0;
    for comment in ORIGINAL.lines().filter_map(|l| l.find('#').map(|i| &l[i..])) {
        let found = text[from..].find(comment).unwrap_or_else(|| panic!("lost {comment:?}:\n{text}"));
        from += found + comment.len();
    }
    let header = |h: &str| text.find(&format!("\n{h}\n")).unwrap_or_else(|| panic!("no {h}:\n{text}"));
    assert!(header("[cache.model]") < header("[cache]") && header("[cache]") < header("[cache.compression]"));
    assert!(text.starts_with("# My project's inferno settings.\n# Keep this file small.\n\n[cache.model]\n"));
    assert!(text.contains("\nmax_models = 3 # two is plenty\n"), "{text}");
    assert!(text.contains("\nmax_size_gb = 20      # grow when the disk is replaced\n"), "{text}");
    assert!(text.contains("\ntype = \"persistent\"   # RAM in front of disk\n"), "{text}");

    let expected: &[(&str, Value)] = &[
        ("cache.max_size_gb", json!(20)),
        ("cache.default_ttl_hours", json!(48)),
        ("cache.compression.enabled", json!(true)),
        ("cache.compression.algorithm", json!("zstd")),
        ("cache.compression.level", json!(6)),
        ("cache.model.max_models", json!(3)),
        ("cache.model.memory_limit_gb", json!(4)),
        ("cache.model.preload_strategy", json!("lru")),
        ("cache.response.max_entries", json!(500)),
        ("cache.response.max_size_gb", json!("512MB")),
        ("cache.response.ttl_hours", json!("30m")),
        ("cache.persistence.enable_checksums", json!(false)),
        ("cache.persistence.sync_interval_seconds", json!(300)),
        ("cache.persistence.write_buffer_size", json!(1_000_000)),
        ("cache.persistence.read_ahead_size", json!(512_000)),
        ("cache.distributed.enabled", json!(true)),
        ("cache.distributed.cluster_nodes", json!(["node1:9090", "node2:9090"])),
        ("cache.distributed.replication_factor", json!(2)),
        ("cache.metrics.prometheus_enabled", json!(true)),
        ("cache.deduplication.algorithm", json!("xxhash")),
        ("cache.deduplication.enabled", json!(true)),
        ("cache.base_dir", path_json(&sandbox.work().join("some/dir"))),
        ("cache.cleanup.age_threshold_days", json!(14)),
        ("cache.type", json!("persistent")),
    ];
    let status = sandbox.status(&[], &[]);
    for (key, value) in expected {
        assert_eq!(status.value(key), value, "{key}");
        assert_from_file(&status, key, &path, &text);
    }
    let untouched = ["cache.enabled", "cache.model.unload_policy", "cache.cleanup.auto_cleanup"];
    for key in untouched {
        assert_eq!(status.origin(key), &json!({"kind": "default"}), "{key}");
    }
}

/// Every `inferno cache configure` line of the guide and README, with the keys it must write.
const GUIDE: &[(&[&str], &[&str])] = &[
    (&["--max-size", "10GB", "--ttl", "24h"], &["cache.max_size_gb", "cache.default_ttl_hours"]),
    (
        &["model", "--max-models", "5", "--memory-limit", "8GB", "--preload-strategy", "lru"],
        &["cache.model.max_models", "cache.model.memory_limit_gb", "cache.model.preload_strategy"],
    ),
    (
        &["response", "--max-entries", "10000", "--max-size", "2GB", "--ttl", "1h", "--compress", "zstd"],
        &[
            "cache.response.max_entries",
            "cache.response.max_size_gb",
            "cache.response.ttl_hours",
            "cache.compression.algorithm",
            "cache.compression.enabled",
        ],
    ),
    (
        &["--compress", "gzip", "--compression-level", "6"],
        &["cache.compression.algorithm", "cache.compression.enabled", "cache.compression.level"],
    ),
    (
        &["--compress", "zstd", "--compression-level", "3"],
        &["cache.compression.algorithm", "cache.compression.enabled", "cache.compression.level"],
    ),
    (&["--deduplication", "blake3"], &["cache.deduplication.algorithm", "cache.deduplication.enabled"]),
    (&["--deduplication", "xxhash"], &["cache.deduplication.algorithm", "cache.deduplication.enabled"]),
    (
        &["--base-dir", "/fast-ssd/inferno-cache", "--sync-interval", "300s", "--enable-checksums"],
        &["cache.base_dir", "cache.persistence.sync_interval_seconds", "cache.persistence.enable_checksums"],
    ),
    (
        &["--memory-limit", "4GB", "--max-models", "3", "--eviction-policy", "lru"],
        &["cache.model.memory_limit_gb", "cache.model.max_models", "cache.model.preload_strategy"],
    ),
    (
        &["--sync-interval", "60s", "--write-buffer-size", "1MB", "--read-ahead-size", "512KB"],
        &[
            "cache.persistence.sync_interval_seconds",
            "cache.persistence.write_buffer_size",
            "cache.persistence.read_ahead_size",
        ],
    ),
    (
        &["--sync-interval", "300s", "--write-buffer-size", "4MB", "--read-ahead-size", "2MB"],
        &[
            "cache.persistence.sync_interval_seconds",
            "cache.persistence.write_buffer_size",
            "cache.persistence.read_ahead_size",
        ],
    ),
    (
        &["--enable-distributed", "--cluster-nodes", "node1:9090,node2:9090", "--replication-factor", "2"],
        &[
            "cache.distributed.enabled",
            "cache.distributed.cluster_nodes",
            "cache.distributed.replication_factor",
        ],
    ),
    (&["--prometheus-enabled"], &["cache.metrics.prometheus_enabled"]),
    (&["--max-size", "20GB"], &["cache.max_size_gb"]),
    (&["--ttl", "48h"], &["cache.default_ttl_hours"]),
    (
        &["--compress", "zstd", "--compression-level", "1"],
        &["cache.compression.algorithm", "cache.compression.enabled", "cache.compression.level"],
    ),
    (&["--read-ahead-size", "1MB"], &["cache.persistence.read_ahead_size"]),
    (
        &["--compress", "zstd", "--compression-level", "9"],
        &["cache.compression.algorithm", "cache.compression.enabled", "cache.compression.level"],
    ),
    (
        &["--max-size", "10GB", "--ttl", "24h", "--compress", "zstd", "--compression-level", "3"],
        &[
            "cache.max_size_gb",
            "cache.default_ttl_hours",
            "cache.compression.algorithm",
            "cache.compression.enabled",
            "cache.compression.level",
        ],
    ),
];

#[test]
fn every_guide_invocation_is_accepted_and_writes_its_keys() {
    for (args, keys) in GUIDE {
        let sandbox = Sandbox::new();
        let mut with_json = args.to_vec();
        with_json.push("--json");
        let out: Value =
            serde_json::from_str(&configure_ok(&sandbox, &with_json)).expect("--json prints JSON");
        assert_eq!(out["file"], path_json(&sandbox.project_file()), "{args:?}");
        let written: BTreeSet<&str> =
            out["changes"].as_array().unwrap().iter().map(|c| c["key"].as_str().unwrap()).collect();
        assert_eq!(written, keys.iter().copied().collect::<BTreeSet<_>>(), "{args:?} writes these keys");
        let text = sandbox.read(sandbox.project_file());
        let status = sandbox.status(&[], &[]);
        for key in *keys {
            assert_from_file(&status, key, &sandbox.project_file(), &text);
        }
    }

    // And all of them one after another on one file, as someone following the guide would.
    let sandbox = Sandbox::new();
    for (args, _) in GUIDE {
        configure_ok(&sandbox, args);
    }
    let status = sandbox.status(&[], &[]);
    assert_eq!(status.value("cache.compression.level"), &json!(3));
    assert_eq!(status.value("cache.persistence.read_ahead_size"), &json!(1_000_000));
    assert_eq!(status.value("cache.base_dir"), &json!("/fast-ssd/inferno-cache"));
}

#[test]
fn guide_values_land_typed_in_the_file() {
    let sandbox = Sandbox::new();
    configure_ok(
        &sandbox,
        &["--max-size", "10GB", "--ttl", "24h", "--sync-interval", "300s", "--write-buffer-size", "4MB"],
    );
    configure_ok(&sandbox, &["--enable-distributed", "--cluster-nodes", "node1:9090,node2:9090"]);
    let text = sandbox.read(sandbox.project_file());
    for line in [
        "max_size_gb = 10",
        "default_ttl_hours = 24",
        "sync_interval_seconds = 300",
        "write_buffer_size = 4000000",
        "enabled = true",
        "cluster_nodes = [\"node1:9090\", \"node2:9090\"]",
    ] {
        assert!(text.lines().any(|l| l == line), "no line {line:?} in:\n{text}");
    }
}

const GZIP_FILE: &str =
    "# keep me\n[cache.compression]\nalgorithm = \"gzip\"  # for the old reader\nlevel = 6\n";

#[test]
fn invalid_values_exit_2_and_leave_the_file_byte_for_byte() {
    let cases: &[(&[&str], &str)] = &[
        (&["--compression-level", "10"], "flag --compression-level: key `cache.compression.level`: level 10"),
        (&["--compress", "gzip", "--compression-level", "0"], "level 0 is out of range for gzip"),
        (&["--max-size", "20GB", "--compression-level", "10"], "level 10 is out of range for gzip"),
        (&["--max-size", "lots"], "flag --max-size: key `cache.max_size_gb`: \"lots\" is not a size"),
        (&["--ttl", "24x"], "flag --ttl: key `cache.default_ttl_hours`: \"24x\" is not a duration"),
        (&["--set", "nope=1"], "flag --set: key `nope`: unknown key"),
        (&["--set", "cache.compresion.level=1"], "key `cache.compresion.level`: unknown key"),
        (&["--set", "noequals"], "KEY=VALUE"),
        (&["--enable-checksums=maybe"], "\"maybe\" is not true or false"),
        (&["--base-dir", ""], "is empty"),
        (&["model", "--preload-strategy", "random"], "`random`"),
        (&["model", "--max-models", "0"], "key `cache.model.max_models`: must be at least 1"),
        (&["model", "--max-models", "-2"], "-2"),
        (&["response", "--compress", "lz4"], "`lz4`"),
        (&["--cluster-nodes", "node1"], "\"node1\" is not host:port"),
        (&["--enable-distributed"], "needs at least one address"),
        (&["--replication-factor", "0"], "must be at least 1"),
        (&["--enable-checksums", "false"], "false"),
        (&["--max-size"], "--max-size"),
    ];
    let mut failures = Vec::new();
    for (args, says) in cases {
        let sandbox = Sandbox::new();
        let path = sandbox.write_project(GZIP_FILE);
        let out = configure(&sandbox, args);
        let err = stderr(&out);
        let after = std::fs::read(&path).unwrap();
        if out.status.code() != Some(2) {
            failures.push(format!("{args:?}: exit {:?}, expected 2", out.status.code()));
        }
        if !err.contains(says) {
            failures.push(format!("{args:?}: stderr lacks {says:?}: {err}"));
        }
        if after != GZIP_FILE.as_bytes() {
            failures.push(format!("{args:?}: file changed to {:?}", String::from_utf8_lossy(&after)));
        }
        if !out.stdout.is_empty() {
            failures.push(format!("{args:?}: printed {:?}", stdout(&out)));
        }
        let leftovers = std::fs::read_dir(sandbox.work()).unwrap().count();
        if leftovers != 1 {
            failures
                .push(format!("{args:?}: {leftovers} files in the working dir, expected only .inferno.toml"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn invalid_values_do_not_create_a_missing_file() {
    let sandbox = Sandbox::new();
    let out = configure(&sandbox, &["--max-size", "lots"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!sandbox.project_file().exists());
    let out = configure(&sandbox, &["--config", "new.toml", "--compress", "lz4"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!sandbox.work().join("new.toml").exists());
}

#[test]
fn configure_refuses_to_edit_a_broken_file() {
    let sandbox = Sandbox::new();
    let broken = "[cache]\nmax_size_gb = \n";
    let path = sandbox.write_project(broken);
    let out = configure(&sandbox, &["--ttl", "2h"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(&format!("{}:2:", path.display())), "{}", stderr(&out));
    assert_eq!(sandbox.read(&path), broken);
}

#[test]
fn configure_without_settings_is_a_usage_error() {
    let sandbox = Sandbox::new();
    for args in [&[][..], &["model"], &["response"]] {
        let out = configure(&sandbox, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains("nothing to configure"), "{args:?}: {}", stderr(&out));
        assert!(!sandbox.project_file().exists(), "{args:?} created a file");
    }
}

#[test]
fn json_output_lists_changes_and_a_rerun_changes_nothing() {
    let sandbox = Sandbox::new();
    let original = "[cache]\nmax_size_gb = 10  # note\n";
    let path = sandbox.write_project(original);
    let args = ["--max-size", "20GB", "--ttl", "48h", "--json"];
    let out: Value = serde_json::from_str(&configure_ok(&sandbox, &args)).expect("JSON");
    assert_eq!(out["file"], path_json(&path));
    assert_eq!(
        out["changes"],
        json!([
            {"key": "cache.max_size_gb", "old": "10", "new": "20"},
            {"key": "cache.default_ttl_hours", "old": null, "new": "48"},
        ])
    );
    assert_eq!(out["overridden"], json!([]));
    let not_active = out["not_active_yet"].as_array().expect("not_active_yet is a list");
    assert!(not_active.iter().all(|k| k == "cache.max_size_gb" || k == "cache.default_ttl_hours"));
    let written = sandbox.read(&path);
    assert!(written.contains("max_size_gb = 20  # note\n"), "{written}");

    let out: Value = serde_json::from_str(&configure_ok(&sandbox, &args)).expect("JSON");
    assert_eq!(out["changes"], json!([]), "same values again are no change");
    assert_eq!(sandbox.read(&path), written);
    let text = configure_ok(&sandbox, &args[..4]);
    assert!(text.starts_with(&format!("No changes: {}", path.display())), "{text}");

    let text = configure_ok(&sandbox, &["--max-size", "30GB"]);
    assert!(text.starts_with(&format!("Wrote {}:\n", path.display())), "{text}");
    assert!(text.contains("cache.max_size_gb = 30   (was 20)"), "{text}");
}

#[test]
fn overrides_by_env_and_flags_are_pointed_out() {
    let sandbox = Sandbox::new();
    let path = sandbox.write_project("[cache]\nmax_size_gb = 10\n");
    let out = sandbox
        .cmd()
        .env("INFERNO_CACHE__MAX_SIZE_GB", "30")
        .args(["cache", "configure", "--max-size", "25GB", "--ttl", "2h"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("cache.max_size_gb is overridden by environment variable INFERNO_CACHE__MAX_SIZE_GB"),
        "{text}"
    );
    assert!(!text.contains("cache.default_ttl_hours is overridden"), "{text}");
    assert!(sandbox.read(&path).contains("max_size_gb = 25\n"));
    let with_env = sandbox.status(&[], &[("INFERNO_CACHE__MAX_SIZE_GB", "30")]);
    assert_eq!(with_env.value("cache.max_size_gb"), &json!(30));
    let without = sandbox.status(&[], &[]);
    assert_eq!(without.value("cache.max_size_gb"), &json!(25));

    let out = sandbox
        .cmd()
        .env("INFERNO_CACHE_DIR", "/env/dir")
        .args(["--cache-dir", "/flag/dir", "cache", "configure", "--base-dir", "/file/dir", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        out["overridden"],
        json!([{"key": "cache.base_dir", "by": {"kind": "flag", "flag": "--cache-dir"}}])
    );
    assert_eq!(sandbox.status(&[], &[]).value("cache.base_dir"), &json!("/file/dir"));
}

#[test]
fn configure_writes_the_config_file_in_effect() {
    let sandbox = Sandbox::new();
    let out = sandbox
        .cmd()
        .args(["--config", "conf/custom.toml", "cache", "configure", "--max-size", "12GB"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let custom = sandbox.work().join("conf/custom.toml");
    assert!(stdout(&out).starts_with(&format!("Wrote {}:", custom.display())), "{}", stdout(&out));
    assert_eq!(sandbox.read(&custom), "[cache]\nmax_size_gb = 12\n");
    assert!(!sandbox.project_file().exists(), "./.inferno.toml is not touched when --config is given");
    let status = sandbox.status(&["--config", "conf/custom.toml"], &[]);
    assert_eq!(status.value("cache.max_size_gb"), &json!(12));
    assert_eq!(status.origin("cache.max_size_gb"), &crate::util::file_origin(&custom, 2, 1));
}

#[test]
fn compress_none_switches_compression_off() {
    let sandbox = Sandbox::new();
    configure_ok(&sandbox, &["--compress", "gzip"]);
    assert_eq!(sandbox.status(&[], &[]).value("cache.compression.enabled"), &json!(true));
    configure_ok(&sandbox, &["--compress", "none"]);
    let status = sandbox.status(&[], &[]);
    assert_eq!(status.value("cache.compression.algorithm"), &json!("none"));
    assert_eq!(status.value("cache.compression.enabled"), &json!(false));
}

#[test]
fn configure_does_not_write_a_file_that_only_holds_up_under_an_env_override() {
    let sandbox = Sandbox::new();
    let path = sandbox.write_project(GZIP_FILE);
    // With the env var the effective algorithm is zstd, which takes level 15; the file says gzip, which does
    // not. Writing it would break every later command run without that env var.
    let out = sandbox
        .cmd()
        .env("INFERNO_CACHE_COMPRESS", "zstd")
        .args(["cache", "configure", "--compression-level", "15"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("key `cache.compression.level`: level 15 is out of range for gzip"), "{err}");
    assert!(err.contains(&format!("is set by {}:3:1", path.display())), "{err}");
    assert_eq!(sandbox.read(&path), GZIP_FILE);
    sandbox.cmd().args(["cache", "status"]).assert().success();

    // A value that suits both the file and the override is written.
    let out = sandbox
        .cmd()
        .env("INFERNO_CACHE_COMPRESS", "zstd")
        .args(["cache", "configure", "--compression-level", "9"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(sandbox.read(&path).contains("\nlevel = 9\n"));
}
