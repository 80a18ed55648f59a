//! Layering, lowest to highest: defaults < system file (`INFERNO_SYSTEM_CONFIG`) < user file
//! (`$XDG_CONFIG_HOME/inferno/config.toml`) < `./.inferno.toml` (replaced by `--config PATH`) < `INFERNO_*`
//! env vars < flags; `cache status` reports each value's origin in JSON and in text.

use serde_json::json;

use crate::util::{Sandbox, default_origin, env_origin, file_origin, path_json, stdout};

/// The row of `key` in the human `cache status` output.
fn row<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(key))
        .unwrap_or_else(|| panic!("no row for {key} in:\n{text}"))
}

#[test]
fn no_config_gives_defaults_and_lists_the_files_looked_for() {
    let sandbox = Sandbox::new();
    let status = sandbox.status(&[], &[]);
    assert!(status.settings().len() >= 40);
    for setting in status.settings() {
        let key = setting["key"].as_str().unwrap();
        if key == "cache.response.ttl_hours" || key == "cache.metadata.ttl_hours" {
            let inherited = json!({"kind": "inherited", "from": "cache.default_ttl_hours"});
            assert_eq!(setting["origin"], inherited, "{key} inherits the default TTL");
            continue;
        }
        assert_eq!(setting["origin"], default_origin(), "{key}");
    }
    assert_eq!(status.value("cache.max_size_gb"), &json!(10));
    assert_eq!(status.value("cache.compression.algorithm"), &json!("zstd"));
    assert_eq!(status.value("cache.base_dir"), &path_json(&sandbox.default_cache_dir()));
    for (role, path) in [
        ("system", sandbox.system_file()),
        ("user", sandbox.user_file()),
        ("project", sandbox.project_file()),
    ] {
        assert_eq!(status.file(role)["path"], path_json(&path), "{role} file");
        assert_eq!(status.file(role)["loaded"], false, "{role} file");
    }
}

#[test]
fn each_layer_overrides_the_one_below_key_by_key() {
    let sandbox = Sandbox::new();
    let flag = |name: &str| json!({"kind": "flag", "flag": name});

    // Defaults.
    let s = sandbox.status(&[], &[]);
    assert_eq!(s.value("cache.max_size_gb"), &json!(10));
    assert_eq!(s.origin("cache.max_size_gb"), &default_origin());

    // System file.
    let system =
        sandbox.write_system("[cache]\nmax_size_gb = 1\nbase_dir = \"/srv/system\"\ndefault_ttl_hours = 1\n");
    let s = sandbox.status(&[], &[]);
    assert_eq!(s.value("cache.max_size_gb"), &json!(1));
    assert_eq!(s.origin("cache.max_size_gb"), &file_origin(&system, 2, 1));
    assert_eq!(s.value("cache.base_dir"), &json!("/srv/system"));
    assert_eq!(s.origin("cache.base_dir"), &file_origin(&system, 3, 1));
    assert_eq!(s.origin("cache.default_ttl_hours"), &file_origin(&system, 4, 1));
    assert_eq!(s.file("system")["loaded"], true);
    assert_eq!(s.file("user")["loaded"], false);

    // User file.
    let user = sandbox.write_user(
        "# mine\n[cache]\nbase_dir = \"/srv/user\"\nmax_size_gb = 2\n\n[cache.model]\nmax_models = 2\n",
    );
    let s = sandbox.status(&[], &[]);
    assert_eq!(s.value("cache.max_size_gb"), &json!(2));
    assert_eq!(s.origin("cache.max_size_gb"), &file_origin(&user, 4, 1));
    assert_eq!(s.origin("cache.base_dir"), &file_origin(&user, 3, 1));
    assert_eq!(s.origin("cache.model.max_models"), &file_origin(&user, 7, 1));
    assert_eq!(s.value("cache.default_ttl_hours"), &json!(1), "a key only the system file sets stays");
    assert_eq!(s.origin("cache.default_ttl_hours"), &file_origin(&system, 4, 1));

    // ./.inferno.toml.
    let project = sandbox.write_project(
        "[cache]\nmax_size_gb = 3\n  base_dir = \"/srv/project\"\n[cache.response]\nmax_entries = 3\n",
    );
    let s = sandbox.status(&[], &[]);
    assert_eq!(s.value("cache.max_size_gb"), &json!(3));
    assert_eq!(s.origin("cache.max_size_gb"), &file_origin(&project, 2, 1));
    assert_eq!(s.value("cache.base_dir"), &json!("/srv/project"));
    assert_eq!(s.origin("cache.base_dir"), &file_origin(&project, 3, 3), "column counts the indent");
    assert_eq!(s.origin("cache.response.max_entries"), &file_origin(&project, 5, 1));
    assert_eq!(s.origin("cache.model.max_models"), &file_origin(&user, 7, 1));
    assert_eq!(s.origin("cache.default_ttl_hours"), &file_origin(&system, 4, 1));

    // --config replaces ./.inferno.toml (its max_entries is gone), the lower files still count.
    let other = sandbox.write("work/other.toml", "[cache]\nmax_size_gb = 4\nbase_dir = \"/srv/other\"\n");
    let args = ["--config", "other.toml"];
    let s = sandbox.status(&args, &[]);
    assert_eq!(s.value("cache.max_size_gb"), &json!(4));
    assert_eq!(s.origin("cache.max_size_gb"), &file_origin(&other, 2, 1));
    assert_eq!(s.origin("cache.base_dir"), &file_origin(&other, 3, 1));
    assert_eq!(s.value("cache.response.max_entries"), &json!(10000));
    assert_eq!(s.origin("cache.response.max_entries"), &default_origin(), "./.inferno.toml is not read");
    assert_eq!(s.origin("cache.model.max_models"), &file_origin(&user, 7, 1));
    assert_eq!(s.file("project")["path"], path_json(&other));

    // Env vars beat every file.
    let env = [("INFERNO_CACHE__MAX_SIZE_GB", "5"), ("INFERNO_CACHE_DIR", "/srv/env")];
    let s = sandbox.status(&args, &env);
    assert_eq!(s.value("cache.max_size_gb"), &json!(5));
    assert_eq!(s.origin("cache.max_size_gb"), &env_origin("INFERNO_CACHE__MAX_SIZE_GB"));
    assert_eq!(s.value("cache.base_dir"), &json!("/srv/env"));
    assert_eq!(s.origin("cache.base_dir"), &env_origin("INFERNO_CACHE_DIR"));
    assert_eq!(s.origin("cache.model.max_models"), &file_origin(&user, 7, 1));

    // Flags beat env vars.
    let s = sandbox.status(&["--config", "other.toml", "--cache-dir", "/srv/flag"], &env);
    assert_eq!(s.value("cache.base_dir"), &json!("/srv/flag"));
    assert_eq!(s.origin("cache.base_dir"), &flag("--cache-dir"));
    assert_eq!(s.origin("cache.max_size_gb"), &env_origin("INFERNO_CACHE__MAX_SIZE_GB"));
}

#[test]
fn env_aliases_set_their_keys() {
    let sandbox = Sandbox::new();
    sandbox.write_project("[cache]\nenabled = true\n[cache.compression]\nalgorithm = \"zstd\"\n");
    let s = sandbox.status(
        &[],
        &[
            ("INFERNO_CACHE_ENABLED", "false"),
            ("INFERNO_CACHE_COMPRESS", "gzip"),
            ("INFERNO_CACHE_DIR", "/c"),
        ],
    );
    assert_eq!(s.value("cache.enabled"), &json!(false));
    assert_eq!(s.origin("cache.enabled"), &env_origin("INFERNO_CACHE_ENABLED"));
    assert_eq!(s.value("cache.compression.algorithm"), &json!("gzip"));
    assert_eq!(s.origin("cache.compression.algorithm"), &env_origin("INFERNO_CACHE_COMPRESS"));
    assert_eq!(s.value("cache.base_dir"), &json!("/c"));
    assert_eq!(s.origin("cache.base_dir"), &env_origin("INFERNO_CACHE_DIR"));

    for (text, expected) in
        [("0", false), ("no", false), ("off", false), ("1", true), ("YES", true), ("on", true)]
    {
        let s = sandbox.status(&[], &[("INFERNO_CACHE_ENABLED", text)]);
        assert_eq!(s.value("cache.enabled"), &json!(expected), "INFERNO_CACHE_ENABLED={text}");
    }
}

#[test]
fn general_env_form_wins_over_the_alias() {
    let sandbox = Sandbox::new();
    let s = sandbox.status(
        &[],
        &[
            ("INFERNO_CACHE_COMPRESS", "gzip"),
            ("INFERNO_CACHE__COMPRESSION__ALGORITHM", "none"),
            ("INFERNO_CACHE_DIR", "/alias"),
            ("INFERNO_CACHE__BASE_DIR", "/general"),
        ],
    );
    assert_eq!(s.value("cache.compression.algorithm"), &json!("none"));
    assert_eq!(s.origin("cache.compression.algorithm"), &env_origin("INFERNO_CACHE__COMPRESSION__ALGORITHM"));
    assert_eq!(s.value("cache.base_dir"), &json!("/general"));
    assert_eq!(s.origin("cache.base_dir"), &env_origin("INFERNO_CACHE__BASE_DIR"));
}

#[test]
fn env_text_is_typed_by_the_key() {
    let sandbox = Sandbox::new();
    let s = sandbox.status(
        &[],
        &[
            ("INFERNO_CACHE__DEFAULT_TTL_HOURS", "2d"),
            ("INFERNO_CACHE__MODEL__MEMORY_LIMIT_GB", "4GB"),
            ("INFERNO_CACHE__RESPONSE__MAX_SIZE_GB", "512MB"),
            ("INFERNO_CACHE__DISTRIBUTED__ENABLED", "true"),
            ("INFERNO_CACHE__DISTRIBUTED__CLUSTER_NODES", "node1:9090, node2:9090"),
            ("INFERNO_CACHE__ALERTS__THRESHOLDS__HIT_RATIO_MIN", "0.7"),
            ("INFERNO_CACHE__COMPRESSION__LEVEL", "9"),
        ],
    );
    assert_eq!(s.value("cache.default_ttl_hours"), &json!(48));
    assert_eq!(s.value("cache.model.memory_limit_gb"), &json!(4));
    assert_eq!(s.value("cache.response.max_size_gb"), &json!("512MB"));
    assert_eq!(s.value("cache.distributed.enabled"), &json!(true));
    assert_eq!(s.value("cache.distributed.cluster_nodes"), &json!(["node1:9090", "node2:9090"]));
    assert_eq!(s.value("cache.alerts.thresholds.hit_ratio_min"), &json!(0.7));
    assert_eq!(s.value("cache.compression.level"), &json!(9));
    assert_eq!(s.origin("cache.compression.level"), &env_origin("INFERNO_CACHE__COMPRESSION__LEVEL"));
}

#[test]
fn relative_paths_resolve_against_the_source_that_sets_them() {
    let sandbox = Sandbox::new();
    sandbox.write_system("[cache]\nbase_dir = \"sys-cache\"\n");
    assert_eq!(sandbox.status(&[], &[]).value("cache.base_dir"), &path_json(&sandbox.path("etc/sys-cache")));

    sandbox.write("work/sub/dir/c.toml", "[cache]\nbase_dir = \"store\"\n");
    let s = sandbox.status(&["--config", "sub/dir/c.toml"], &[]);
    assert_eq!(s.value("cache.base_dir"), &path_json(&sandbox.path("work/sub/dir/store")));

    sandbox.write_project("[cache]\nbase_dir = \"~/in-home\"\n");
    assert_eq!(sandbox.status(&[], &[]).value("cache.base_dir"), &path_json(&sandbox.path("home/in-home")));

    let s = sandbox.status(&[], &[("INFERNO_CACHE_DIR", "env-dir")]);
    assert_eq!(s.value("cache.base_dir"), &path_json(&sandbox.path("work/env-dir")));

    let s = sandbox.status(&["--cache-dir", "flag-dir"], &[("INFERNO_CACHE_DIR", "env-dir")]);
    assert_eq!(s.value("cache.base_dir"), &path_json(&sandbox.path("work/flag-dir")));
}

#[test]
fn user_file_falls_back_to_home_dot_config_without_xdg_config_home() {
    let sandbox = Sandbox::new();
    let path = sandbox.write("home/.config/inferno/config.toml", "[cache]\nmax_size_gb = 7\n");
    sandbox.write_user("[cache]\nmax_size_gb = 99\n");
    let out =
        sandbox.cmd().env_remove("XDG_CONFIG_HOME").args(["cache", "status", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", crate::util::stderr(&out));
    let s = crate::util::Status(serde_json::from_slice(&out.stdout).unwrap());
    assert_eq!(s.value("cache.max_size_gb"), &json!(7));
    assert_eq!(s.origin("cache.max_size_gb"), &file_origin(&path, 2, 1));
    assert_eq!(s.file("user")["path"], path_json(&path));
}

#[test]
fn human_status_shows_each_origin() {
    let sandbox = Sandbox::new();
    let project = sandbox.write_project("[cache]\ntype = \"disk\"\n\nmax_size_gb = 3\n");
    let out = sandbox
        .cmd()
        .args(["cache", "status"])
        .env("INFERNO_CACHE_DIR", "/srv/env")
        .env("INFERNO_CACHE__MODEL__MAX_MODELS", "2")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = stdout(&out);
    let base_dir = row(&text, "cache.base_dir");
    assert!(base_dir.contains("\"/srv/env\"") && base_dir.contains("env INFERNO_CACHE_DIR"), "{base_dir}");
    let max_models = row(&text, "cache.model.max_models");
    assert!(max_models.contains("env INFERNO_CACHE__MODEL__MAX_MODELS"), "{max_models}");
    let max_size = row(&text, "cache.max_size_gb");
    assert!(max_size.contains(&format!("{}:4", project.display())), "{max_size}");
    let kind = row(&text, "cache.type");
    assert!(kind.contains("\"disk\"") && kind.contains(&format!("{}:2", project.display())), "{kind}");
    let level = row(&text, "cache.compression.level");
    assert!(level.contains("default"), "{level}");
    assert!(text.contains(&format!("project  {}  (loaded)", project.display())), "{text}");
    assert!(text.contains(&format!("system   {}  (not found)", sandbox.system_file().display())), "{text}");

    let out = sandbox.cmd().args(["--cache-dir", "/srv/flag", "cache", "status"]).output().unwrap();
    assert!(out.status.success());
    let text = stdout(&out);
    let base_dir = row(&text, "cache.base_dir");
    assert!(base_dir.contains("\"/srv/flag\"") && base_dir.contains("flag --cache-dir"), "{base_dir}");
}
