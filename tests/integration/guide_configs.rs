//! The user guide's TOML blocks (`examples/config/*.toml`) and `.inferno.toml.example` load through
//! `--config`, and `cache status --json` shows their values, blamed on the right file, line and column.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::util::{Sandbox, default_origin, file_origin, line_of, path_json, stdout};

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Every `key = value` line of a simple TOML file (headers and plain keys only, as the guide writes them):
/// the dotted key, its 1-based line and column.
fn assignments(text: &str) -> Vec<(String, usize, usize)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(header) = trimmed.strip_prefix('[') {
            section = header.split(']').next().expect("a header closes").trim().to_string();
            continue;
        }
        let (key, _) = trimmed.split_once('=').unwrap_or_else(|| panic!("line {} is not key = value", i + 1));
        let key = key.trim();
        let dotted = if section.is_empty() { key.to_string() } else { format!("{section}.{key}") };
        out.push((dotted, i + 1, line.len() - trimmed.len() + 1));
    }
    out
}

/// The value at a dotted key of a parsed TOML table, as JSON.
fn toml_value(table: &toml::Table, dotted: &str) -> Value {
    let missing = || panic!("{dotted} not in the parsed file");
    let mut parts = dotted.split('.');
    let mut value = table.get(parts.next().unwrap()).unwrap_or_else(missing);
    for part in parts {
        value = value.get(part).unwrap_or_else(missing);
    }
    serde_json::to_value(value).expect("TOML values convert to JSON")
}

/// Loads `path` with `--config`; every key it sets must come from it with its value, every other key from the
/// built-in defaults. Returns the status for further checks.
pub fn check_loads_from_file(path: &Path) -> crate::util::Status {
    let sandbox = Sandbox::new();
    let text = std::fs::read_to_string(path).expect("read example");
    let table: toml::Table = text.parse().unwrap_or_else(|e| panic!("{} is not TOML: {e}", path.display()));
    let status = sandbox.status(&["--config", path.to_str().unwrap()], &[]);
    let defaults = sandbox.status(&[], &[]);
    let set = assignments(&text);
    assert!(!set.is_empty(), "{} sets no keys", path.display());
    for (key, line, column) in &set {
        assert_eq!(
            status.origin(key),
            &file_origin(path, *line, *column),
            "{}: origin of {key}",
            path.display()
        );
        let mut expected = toml_value(&table, key);
        if key == "cache.base_dir" && !Path::new(expected.as_str().unwrap()).is_absolute() {
            expected = path_json(&path.parent().unwrap().join(expected.as_str().unwrap()));
        }
        assert_eq!(status.value(key), &expected, "{}: value of {key}", path.display());
    }
    for setting in status.settings() {
        let key = setting["key"].as_str().unwrap();
        if set.iter().all(|(k, _, _)| k != key) {
            let inherited = json!({"kind": "inherited", "from": "cache.default_ttl_hours"});
            let unset = if key.ends_with(".ttl_hours") { inherited } else { default_origin() };
            assert_eq!(setting["origin"], unset, "{}: {key} is not in the file", path.display());
            assert_eq!(setting["value"], *defaults.value(key), "{}: {key} keeps its default", path.display());
        }
    }
    assert_eq!(status.file("project")["path"], path_json(path));
    assert_eq!(status.file("project")["loaded"], true);
    status
}

#[test]
fn every_guide_block_loads_with_its_values_from_the_file() {
    // (file, key, value, a unique text on the key's line)
    let expected: &[(&str, &str, Value, &str)] = &[
        ("basic.toml", "cache.compression.algorithm", json!("gzip"), "algorithm = \"gzip\""),
        ("basic.toml", "cache.compression.level", json!(6), "level = 6"),
        ("basic.toml", "cache.base_dir", json!("/var/cache/inferno"), "base_dir = "),
        ("basic.toml", "cache.type", json!("persistent"), "type = \"persistent\""),
        ("basic.toml", "cache.deduplication.chunk_size", json!(4096), "chunk_size = 4096"),
        ("advanced.toml", "cache.model.max_models", json!(5), "max_models = 5"),
        ("advanced.toml", "cache.model.unload_policy", json!("size_based"), "unload_policy = "),
        (
            "advanced.toml",
            "cache.persistence.compression_threshold_kb",
            json!(64),
            "compression_threshold_kb",
        ),
        ("advanced.toml", "cache.cleanup.size_threshold_percent", json!(90), "size_threshold_percent"),
        ("advanced.toml", "cache.response.hash_algorithm", json!("blake3"), "hash_algorithm"),
        ("alerts.toml", "cache.alerts.enabled", json!(true), "enabled = true"),
        ("alerts.toml", "cache.alerts.channels", json!(["email", "slack"]), "channels = "),
        ("alerts.toml", "cache.alerts.thresholds.hit_ratio_min", json!(0.8), "hit_ratio_min"),
        ("alerts.toml", "cache.alerts.thresholds.response_time_max_ms", json!(100), "response_time_max_ms"),
        ("compression-gzip.toml", "cache.compression.algorithm", json!("gzip"), "algorithm = \"gzip\""),
        ("compression-gzip.toml", "cache.compression.level", json!(6), "level = 6"),
        ("compression-zstd.toml", "cache.compression.algorithm", json!("zstd"), "algorithm = \"zstd\""),
        ("compression-zstd.toml", "cache.compression.level", json!(3), "level = 3"),
        ("dedup-blake3.toml", "cache.deduplication.algorithm", json!("blake3"), "algorithm = \"blake3\""),
        ("dedup-blake3.toml", "cache.deduplication.chunk_size", json!(4096), "chunk_size"),
        ("dedup-blake3.toml", "cache.deduplication.enable_parallel", json!(true), "enable_parallel"),
        ("dedup-xxhash.toml", "cache.deduplication.algorithm", json!("xxhash"), "algorithm = \"xxhash\""),
        ("dedup-xxhash.toml", "cache.deduplication.seed", json!(42), "seed = 42"),
        ("dedup-xxhash.toml", "cache.deduplication.variant", json!("xxh3"), "variant = "),
        ("kubernetes-cache.toml", "cache.max_size_gb", json!(50), "max_size_gb = 50"),
        ("kubernetes-cache.toml", "cache.compression.algorithm", json!("zstd"), "algorithm = \"zstd\""),
        ("kubernetes-cache.toml", "cache.compression.level", json!(3), "level = 3"),
    ];

    let dir = repo_file("examples/config");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples/config exists")
        .map(|entry| entry.expect("read dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    for (name, ..) in expected {
        assert!(files.contains(&dir.join(name)), "examples/config/{name} is missing");
    }

    for path in &files {
        let status = check_loads_from_file(path);
        let text = std::fs::read_to_string(path).unwrap();
        let name = path.file_name().unwrap().to_str().unwrap();
        for (_, key, value, needle) in expected.iter().filter(|(file, ..)| *file == name) {
            assert_eq!(status.value(key), value, "{name}: {key}");
            assert_eq!(status.origin(key), &file_origin(path, line_of(&text, needle), 1), "{name}: {key}");
        }
    }
}

#[test]
fn basic_block_shows_file_and_line_in_human_status() {
    let sandbox = Sandbox::new();
    let path = repo_file("examples/config/basic.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let out = sandbox.cmd().args(["--config", path.to_str().unwrap(), "cache", "status"]).output().unwrap();
    assert!(out.status.success());
    let shown = stdout(&out);
    let level_line = shown
        .lines()
        .find(|l| l.trim_start().starts_with("cache.compression.level "))
        .unwrap_or_else(|| panic!("no level row in:\n{shown}"));
    assert!(level_line.contains(" 6 "), "{level_line}");
    let where_ = format!("{}:{}", path.display(), line_of(&text, "level = 6"));
    assert!(level_line.contains(&where_), "{level_line:?} should say {where_}");
    assert!(shown.contains(&format!("project  {}  (loaded)", path.display())), "{shown}");
}

#[test]
fn example_dotfile_sets_every_key_except_the_directories_to_its_default() {
    let sandbox = Sandbox::new();
    let path = repo_file(".inferno.toml.example");
    let text = std::fs::read_to_string(&path).unwrap();
    let defaults = sandbox.status(&[], &[]);
    let example = sandbox.status(&["--config", path.to_str().unwrap()], &[]);
    assert_eq!(defaults.settings().len(), example.settings().len());
    assert!(defaults.settings().len() >= 40, "every key is listed");
    for setting in defaults.settings() {
        let key = setting["key"].as_str().unwrap();
        if ["cache.response.ttl_hours", "cache.metadata.ttl_hours"].contains(&key) {
            let inherited = json!({"kind": "inherited", "from": "cache.default_ttl_hours"});
            assert_eq!(setting["origin"], inherited, "no config: {key} inherits the default TTL");
            assert_eq!(example.origin(key), &inherited, "{key} is commented out in the example");
            assert_eq!(example.value(key), &json!(24));
            continue;
        }
        assert_eq!(setting["origin"], default_origin(), "no config: {key} is a default");
        assert_eq!(example.value(key), &setting["value"], "{key}: the example shows the built-in default");
        if key == "cache.base_dir" {
            assert_eq!(example.origin(key), &default_origin(), "base_dir is commented out in the example");
            assert_eq!(example.value(key), &path_json(&sandbox.default_cache_dir()));
            continue;
        }
        if key == "models.dir" {
            assert_eq!(example.origin(key), &default_origin(), "models.dir is commented out in the example");
            assert_eq!(example.value(key), &path_json(&sandbox.path("home/.local/share/inferno/models")));
            continue;
        }
        let origin = example.origin(key);
        assert_eq!(origin["kind"], "file", "{key} comes from the example");
        assert_eq!(origin["path"], path_json(&path), "{key} comes from the example");
        let line = origin["line"].as_u64().unwrap() as usize;
        let leaf = key.rsplit('.').next().unwrap();
        let source_line = text.lines().nth(line - 1).unwrap();
        assert!(
            source_line.starts_with(&format!("{leaf} = ")),
            "{key} blamed on line {line}: {source_line:?}"
        );
    }
}
