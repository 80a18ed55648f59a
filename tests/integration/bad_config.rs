//! Bad configuration stops every command with exit code 2 and one message on stderr naming where the bad text
//! is (`file:line:column`, env var or flag), the dotted key, and a "did you mean" for typos.

use std::path::Path;

use crate::util::{Sandbox, pos, stderr, stdout};

/// One bad `./.inferno.toml`.
struct Case {
    name: &'static str,
    text: &'static str,
    /// The text the error must point at: its first occurrence gives the expected line and column.
    at: &'static str,
    /// The dotted key the message must name, when the problem is about a key.
    key: Option<&'static str>,
    /// More texts the message must contain.
    says: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "kv block size out of range",
        text: "[cache.kv]\nenabled = true\nblock_tokens = 8\n",
        at: "block_tokens",
        key: Some("cache.kv.block_tokens"),
        says: &["8 is out of range (16 to 8192 tokens)"],
    },
    Case {
        name: "kv compression that does not exist",
        text: "[cache.kv]\ncompression = \"gzip\"\n",
        at: "compression",
        key: Some("cache.kv.compression"),
        says: &["unknown variant `gzip`"],
    },
    Case {
        name: "kv budget of zero",
        text: "[cache]\nkv = { max_size_gb = 0 }\n",
        at: "max_size_gb",
        key: Some("cache.kv.max_size_gb"),
        says: &["must be more than 0"],
    },
    Case {
        name: "unknown key with a did-you-mean",
        text: "[cache]\nenabled = true\ncompresion = { level = 3 }\n",
        at: "compresion",
        key: Some("cache.compresion"),
        says: &["unknown key", "did you mean `cache.compression`?"],
    },
    Case {
        name: "misspelt leaf key",
        text: "[cache.compression]\nalgorithm = \"zstd\"\nlevle = 3\n",
        at: "levle",
        key: Some("cache.compression.levle"),
        says: &["unknown key", "did you mean `cache.compression.level`?"],
    },
    Case {
        name: "unknown section header",
        text: "# settings\n[cache.compresion]\nlevel = 3\n",
        at: "compresion",
        key: Some("cache.compresion"),
        says: &["unknown key", "did you mean `cache.compression`?"],
    },
    Case {
        name: "unknown top-level section",
        text: "[cache]\nenabled = true\n\n[sever]\nport = 8080\n",
        at: "sever",
        key: Some("sever"),
        says: &["unknown key"],
    },
    Case {
        name: "string for an integer",
        text: "[cache.model]\nmax_models = \"five\"\n",
        at: "max_models",
        key: Some("cache.model.max_models"),
        says: &["invalid type", "\"five\""],
    },
    Case {
        name: "string for a bool",
        text: "[cache]\n  enabled = \"yes\"\n",
        at: "enabled",
        key: Some("cache.enabled"),
        says: &["invalid type", "boolean"],
    },
    Case {
        name: "gzip level 0",
        text: "[cache.compression]\nalgorithm = \"gzip\"\nlevel = 0\n",
        at: "level",
        key: Some("cache.compression.level"),
        says: &["level 0 is out of range for gzip (1-9)", "`cache.compression.algorithm` is set by"],
    },
    Case {
        name: "gzip level 10",
        text: "[cache.compression]\nalgorithm = \"gzip\"\nlevel = 10\n",
        at: "level",
        key: Some("cache.compression.level"),
        says: &["level 10 is out of range for gzip (1-9)"],
    },
    Case {
        name: "zstd level 22",
        text: "[cache]\ncompression.algorithm = \"zstd\"\ncompression.level = 22\n",
        at: "level",
        key: Some("cache.compression.level"),
        says: &["level 22 is out of range for zstd (1-21)"],
    },
    Case {
        name: "size_threshold_percent 150",
        text: "[cache.cleanup]\nauto_cleanup = true\nsize_threshold_percent = 150\n",
        at: "size_threshold_percent",
        key: Some("cache.cleanup.size_threshold_percent"),
        says: &["150 is out of range (1-100)"],
    },
    Case {
        name: "chunk_size 0",
        text: "[cache.deduplication]\nchunk_size = 0\n",
        at: "chunk_size",
        key: Some("cache.deduplication.chunk_size"),
        says: &["out of range (256 B to 4 MiB)"],
    },
    Case {
        name: "cache type ram",
        text: "[cache]\ntype = \"ram\"\n",
        at: "type",
        key: Some("cache.type"),
        says: &["`ram`", "`memory`, `disk`, `persistent`"],
    },
    Case {
        name: "compression algorithm lz4",
        text: "[cache.compression]\nalgorithm = \"lz4\"\n",
        at: "algorithm",
        key: Some("cache.compression.algorithm"),
        says: &["`lz4`", "`none`, `gzip`, `zstd`"],
    },
    Case {
        name: "preload_strategy random",
        text: "[cache.model]\nmax_models = 2\npreload_strategy = \"random\"\n",
        at: "preload_strategy",
        key: Some("cache.model.preload_strategy"),
        says: &["`random`", "`lru`, `mru`, `frequency`"],
    },
    Case {
        name: "xxhash variant xxh128",
        text: "[cache.deduplication]\nalgorithm = \"xxhash\"\nvariant = \"xxh128\"\n",
        at: "variant",
        key: Some("cache.deduplication.variant"),
        says: &["`xxh128`", "`xxh3`"],
    },
    Case {
        name: "alert channel pager",
        text: "[cache.alerts]\nchannels = [\"email\", \"pager\"]\n",
        at: "channels",
        key: Some("cache.alerts.channels"),
        says: &["`pager`", "`webhook`"],
    },
    Case {
        name: "size 10XB",
        text: "[cache]\nmax_size_gb = \"10XB\"\n",
        at: "max_size_gb",
        key: Some("cache.max_size_gb"),
        says: &["\"10XB\" is not a size", "10GB"],
    },
    Case {
        name: "duration 24x",
        text: "[cache]\ndefault_ttl_hours = \"24x\"\n",
        at: "default_ttl_hours",
        key: Some("cache.default_ttl_hours"),
        says: &["\"24x\" is not a duration", "24h"],
    },
    Case {
        name: "TOML syntax error",
        text: "[cache]\nmax_size_gb = 10\nenabled = tru\n",
        at: "tru",
        key: None,
        says: &["TOML syntax error"],
    },
    Case {
        name: "unclosed table header",
        text: "[cache\nenabled = true\n",
        at: "\n",
        key: None,
        says: &["TOML syntax error"],
    },
    Case {
        name: "duplicate key",
        text: "[cache]\nmax_size_gb = 1\nenabled = true\nmax_size_gb = 2\n",
        at: "max_size_gb = 2",
        key: None,
        says: &["duplicate key"],
    },
    Case {
        name: "value where a table is expected",
        text: "cache = 5\n",
        at: "cache",
        key: Some("cache"),
        says: &["is a table", "[cache]"],
    },
    Case {
        name: "value where a sub-table is expected",
        text: "[cache]\nmodel = 3\n",
        at: "model",
        key: Some("cache.model"),
        says: &["is a table", "[cache.model]"],
    },
    Case {
        name: "hit_ratio_min 1.5",
        text: "[cache.alerts.thresholds]\nhit_ratio_min = 1.5\n",
        at: "hit_ratio_min",
        key: Some("cache.alerts.thresholds.hit_ratio_min"),
        says: &["1.5 is out of range (0.0-1.0)"],
    },
    Case {
        name: "negative max_models",
        text: "[cache.model]\nmax_models = -1\n",
        at: "max_models",
        key: Some("cache.model.max_models"),
        says: &["-1"],
    },
    Case {
        name: "max_models 0",
        text: "[cache.model]\nmax_models = 0\n",
        at: "max_models",
        key: Some("cache.model.max_models"),
        says: &["at least 1"],
    },
    Case {
        name: "cluster node without a port",
        text: "[cache.distributed]\ncluster_nodes = [\"node1:9090\", \"node2\"]\n",
        at: "cluster_nodes",
        key: Some("cache.distributed.cluster_nodes"),
        says: &["\"node2\" is not host:port"],
    },
    Case {
        name: "distributed without nodes",
        text: "[cache.distributed]\nreplication_factor = 2\nenabled = true\n",
        at: "enabled",
        key: Some("cache.distributed.enabled"),
        says: &["needs at least one address"],
    },
    Case {
        name: "sync interval longer than a day",
        text: "[cache.persistence]\nsync_interval_seconds = \"2d\"\n",
        at: "sync_interval_seconds",
        key: Some("cache.persistence.sync_interval_seconds"),
        says: &["out of range (1 second to 1 day)"],
    },
    Case {
        name: "max_size_gb 0",
        text: "[cache]\nmax_size_gb = 0\n",
        at: "max_size_gb",
        key: Some("cache.max_size_gb"),
        says: &["more than 0"],
    },
];

/// What is wrong with the outcome of one case, if anything.
fn check_case(case: &Case) -> Option<String> {
    let sandbox = Sandbox::new();
    let path = sandbox.write_project(case.text);
    let out = sandbox.cmd().args(["cache", "status"]).output().expect("run inferno");
    let err = stderr(&out);
    let (line, column) = pos(case.text, case.at);
    let mut wrong = Vec::new();
    if out.status.code() != Some(2) {
        wrong.push(format!("exit code {:?}, expected 2", out.status.code()));
    }
    if !out.stdout.is_empty() {
        wrong.push(format!("stdout is not empty: {:?}", stdout(&out)));
    }
    let location = format!("{}:{line}:{column}: ", path.display());
    if !err.contains(&location) {
        wrong.push(format!("no `{location}`"));
    }
    if let Some(key) = case.key
        && !err.contains(&format!("key `{key}`"))
    {
        wrong.push(format!("no key `{key}`"));
    }
    for text in case.says {
        if !err.contains(text) {
            wrong.push(format!("no {text:?}"));
        }
    }
    if err.contains("panicked") || err.lines().count() != 1 {
        wrong.push("expected one line of error".into());
    }
    (!wrong.is_empty()).then(|| format!("case {:?}: {}\n  stderr: {err}", case.name, wrong.join("; ")))
}

#[test]
fn bad_files_exit_2_and_name_file_line_column_and_key() {
    assert!(CASES.len() >= 15);
    let failures: Vec<String> = CASES.iter().filter_map(check_case).collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

#[test]
fn error_positions_are_exact() {
    // Hand-counted positions, so a wrong line/column computation cannot agree with itself.
    let sandbox = Sandbox::new();
    let cases: &[(&str, &str, &str)] = &[
        ("[cache.compression]\nalgorithm = \"gzip\"\nlevel = 10\n", ":3:1: ", "cache.compression.level"),
        ("\n\n[cache]\n  # note\n    max_size_gb = \"10XB\"\n", ":5:5: ", "cache.max_size_gb"),
        ("[cache.compresion]\nlevel = 3\n", ":1:8: ", "cache.compresion"),
        ("cache.compression.levle = 3\n", ":1:19: ", "cache.compression.levle"),
        (
            "[cache]\ncompression = { algorithm = \"gzip\", level = 0 }\n",
            ":2:37: ",
            "cache.compression.level",
        ),
        // Columns count characters, not bytes: `ö` is one column.
        (
            "[cache]\ndistributed = { cluster_nodes = [\"nöde:1\"], enabled = \"x\" }\n",
            ":2:45: ",
            "invalid type",
        ),
        ("[cache]\nenabled = tru\n", ":2:11: ", "TOML syntax error"),
        ("[cache]\nmax_size_gb = 1\nmax_size_gb = 2\n", ":3:1: ", "duplicate key"),
    ];
    let mut failures = Vec::new();
    for (text, location, says) in cases {
        let path = sandbox.write_project(text);
        let out = sandbox.cmd().args(["cache", "status"]).output().unwrap();
        let err = stderr(&out);
        let expected = format!("{}{location}", path.display());
        if out.status.code() != Some(2) || !err.contains(&expected) || !err.contains(says) {
            failures.push(format!("{text:?}: expected exit 2 with {expected:?} and {says:?}, got {out:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_problem_in_a_file_is_reported_at_once() {
    let sandbox = Sandbox::new();
    let text = "[cache]\ncompresion = 1\n[cache.model]\nmax_modles = 2\n[cache.bogus]\nx = 1\n";
    let path = sandbox.write_project(text);
    let out = sandbox.cmd().args(["cache", "status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("(3 problems)"), "{err}");
    for (line, column, key) in
        [(2, 1, "cache.compresion"), (4, 1, "cache.model.max_modles"), (5, 8, "cache.bogus")]
    {
        assert!(err.contains(&format!("{}:{line}:{column}: key `{key}`", path.display())), "{key}: {err}");
    }
}

#[test]
fn a_bad_value_is_blamed_on_the_layer_that_set_it() {
    let sandbox = Sandbox::new();
    let system = sandbox.write_system("[cache.compression]\nlevel = 15\n");
    sandbox.write_project("[cache]\nmax_size_gb = 3\n");
    // zstd (the default) takes 15; gzip from the env var does not: the level is blamed on the system file,
    // and the hint names the env var that set the algorithm.
    let out = sandbox.cmd().args(["cache", "status"]).env("INFERNO_CACHE_COMPRESS", "gzip").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains(&format!("{}:2:1: key `cache.compression.level`", system.display())), "{err}");
    assert!(err.contains("set by environment variable INFERNO_CACHE_COMPRESS"), "{err}");

    sandbox.write_user("[cache]\ntypo = 1\n");
    let out = sandbox.cmd().args(["cache", "status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(&format!("{}:2:1: key `cache.typo`", sandbox.user_file().display())));
}

fn env_error(vars: &[(&str, &str)]) -> String {
    let sandbox = Sandbox::new();
    let out = sandbox.cmd().args(["cache", "status"]).envs(vars.iter().copied()).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{vars:?}: {out:?}");
    assert!(out.stdout.is_empty(), "{vars:?}");
    stderr(&out)
}

#[test]
fn bad_env_values_name_the_variable_and_key() {
    let err = env_error(&[("INFERNO_CACHE__COMPRESSION__LEVEL", "abc")]);
    assert!(
        err.contains("environment variable INFERNO_CACHE__COMPRESSION__LEVEL: key `cache.compression.level`"),
        "{err}"
    );
    assert!(err.contains("\"abc\" is not a whole number"), "{err}");

    let err = env_error(&[("INFERNO_CACHE_ENABLED", "maybe")]);
    assert!(err.contains("environment variable INFERNO_CACHE_ENABLED: key `cache.enabled`"), "{err}");

    let err = env_error(&[("INFERNO_CACHE__MAX_SIZE_GB", "10XB")]);
    assert!(err.contains("INFERNO_CACHE__MAX_SIZE_GB") && err.contains("is not a size"), "{err}");

    let err = env_error(&[("INFERNO_CACHE__DEFAULT_TTL_HOURS", "")]);
    assert!(err.contains("INFERNO_CACHE__DEFAULT_TTL_HOURS") && err.contains("empty"), "{err}");

    let err = env_error(&[
        ("INFERNO_CACHE__COMPRESSION__ALGORITHM", "gzip"),
        ("INFERNO_CACHE__COMPRESSION__LEVEL", "12"),
    ]);
    assert!(
        err.contains(
            "environment variable INFERNO_CACHE__COMPRESSION__LEVEL: key `cache.compression.level`: level 12"
        ),
        "{err}"
    );
}

#[test]
fn unknown_env_key_suggests_the_right_variable() {
    let err = env_error(&[("INFERNO_CACHE__MAX_SIZE", "1")]);
    assert!(
        err.contains("environment variable INFERNO_CACHE__MAX_SIZE: key `cache.max_size`: unknown key"),
        "{err}"
    );
    assert!(err.contains("did you mean INFERNO_CACHE__MAX_SIZE_GB?"), "{err}");

    // INFERNO_ variables without `__` that are not aliases are not configuration and are left alone.
    let sandbox = Sandbox::new();
    sandbox.cmd().args(["cache", "status"]).env("INFERNO_SOMETHING_ELSE", "x").assert().success();
}

#[test]
fn missing_config_file_is_a_usage_error() {
    let sandbox = Sandbox::new();
    let out = sandbox.cmd().args(["--config", "nope.toml", "cache", "status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let missing = sandbox.work().join("nope.toml");
    assert!(err.contains(&format!("config file {} does not exist", missing.display())), "{err}");
    assert!(!Path::new(&missing).exists(), "status must not create the file");
}
