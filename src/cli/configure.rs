//! `inferno cache configure [model|response] --flag value ...`: maps each flag to a config key (the table is
//! in docs/configuration.md), and asks the library to validate and write them.

use clap::{Args, Subcommand};
use std::fmt::Write;

use serde_json::json;

use crate::config::{self, FlagSetting, LoadOptions, inherit, keys};

use super::{UsageError, output};

/// Flags of `inferno cache configure`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ConfigureArgs {
    /// Configure one cache kind instead of the cache as a whole.
    #[command(subcommand)]
    scope: Option<Scope>,
    #[command(flatten)]
    general: GeneralFlags,
}

#[derive(Debug, Subcommand)]
enum Scope {
    /// The model cache ([cache.model]).
    Model(ModelFlags),
    /// The response cache ([cache.response]).
    Response(ResponseFlags),
}

/// Whole-cache flags. Each maps to one key (two for --compress and --deduplication).
#[derive(Debug, Args)]
struct GeneralFlags {
    /// Disk size limit, e.g. 10GB (cache.max_size_gb).
    #[arg(long, value_name = "SIZE")]
    max_size: Option<String>,
    /// Default time to live, e.g. 24h (cache.default_ttl_hours).
    #[arg(long, value_name = "DURATION")]
    ttl: Option<String>,
    /// Codec: none, gzip or zstd (cache.compression.algorithm; also sets cache.compression.enabled).
    #[arg(long, value_name = "ALGORITHM")]
    compress: Option<String>,
    /// Codec level: 1-9 for gzip, 1-21 for zstd (cache.compression.level).
    #[arg(long, value_name = "LEVEL")]
    compression_level: Option<String>,
    /// Dedup hash: blake3 or xxhash (cache.deduplication.algorithm; also enables dedup).
    #[arg(long, value_name = "ALGORITHM")]
    deduplication: Option<String>,
    /// Cache directory (cache.base_dir).
    #[arg(long, value_name = "PATH")]
    base_dir: Option<String>,
    /// Longest a write waits before it is durable, e.g. 300s (cache.persistence.sync_interval_seconds).
    #[arg(long, value_name = "DURATION")]
    sync_interval: Option<String>,
    /// Store and verify checksums; `--enable-checksums=false` turns them off (cache.persistence.enable_checksums).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    enable_checksums: Option<String>,
    /// Memory for loaded models, e.g. 4GB (cache.model.memory_limit_gb).
    #[arg(long, value_name = "SIZE")]
    memory_limit: Option<String>,
    /// Most models loaded at once (cache.model.max_models).
    #[arg(long, value_name = "N")]
    max_models: Option<String>,
    /// Which model is evicted first: lru, mru or frequency (cache.model.preload_strategy).
    #[arg(long, value_name = "POLICY")]
    eviction_policy: Option<String>,
    /// Write buffer, e.g. 1MB (cache.persistence.write_buffer_size).
    #[arg(long, value_name = "SIZE")]
    write_buffer_size: Option<String>,
    /// Read-ahead, e.g. 512KB (cache.persistence.read_ahead_size).
    #[arg(long, value_name = "SIZE")]
    read_ahead_size: Option<String>,
    /// Use the shared tier on Redis (cache.distributed.enabled).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    enable_distributed: Option<String>,
    /// Seed addresses, comma-separated host:port (cache.distributed.cluster_nodes).
    #[arg(long, value_name = "NODES")]
    cluster_nodes: Option<String>,
    /// Copies of each entry in the shared tier (cache.distributed.replication_factor).
    #[arg(long, value_name = "N")]
    replication_factor: Option<String>,
    /// Export Prometheus metrics (cache.metrics.prometheus_enabled).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    prometheus_enabled: Option<String>,
    /// Any key: --set cache.cleanup.age_threshold_days=14 (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    set: Vec<String>,
}

/// `configure model` flags.
#[derive(Debug, Args)]
struct ModelFlags {
    /// Most models loaded at once (cache.model.max_models).
    #[arg(long, value_name = "N")]
    max_models: Option<String>,
    /// Memory for loaded models, e.g. 8GB (cache.model.memory_limit_gb).
    #[arg(long, value_name = "SIZE")]
    memory_limit: Option<String>,
    /// Which model is evicted first: lru, mru or frequency (cache.model.preload_strategy).
    #[arg(long, value_name = "POLICY")]
    preload_strategy: Option<String>,
    /// When models are unloaded: time_based, size_based or manual (cache.model.unload_policy).
    #[arg(long, value_name = "POLICY")]
    unload_policy: Option<String>,
}

/// `configure response` flags.
#[derive(Debug, Args)]
struct ResponseFlags {
    /// Most responses in the memory tier (cache.response.max_entries).
    #[arg(long, value_name = "N")]
    max_entries: Option<String>,
    /// Most bytes of responses in the memory tier, e.g. 2GB (cache.response.max_size_gb).
    #[arg(long, value_name = "SIZE")]
    max_size: Option<String>,
    /// Time to live of a response, e.g. 1h (cache.response.ttl_hours).
    #[arg(long, value_name = "DURATION")]
    ttl: Option<String>,
    /// Codec: none, gzip or zstd; compression is cache-wide (cache.compression.algorithm).
    #[arg(long, value_name = "ALGORITHM")]
    compress: Option<String>,
    /// Hash for response keys: blake3 or xxhash (cache.response.hash_algorithm).
    #[arg(long, value_name = "ALGORITHM")]
    hash_algorithm: Option<String>,
    /// Cache streamed responses (cache.response.enable_streaming_cache).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    streaming_cache: Option<String>,
}

/// Collects `(key, value, flag)` for every flag given.
struct Collector(Vec<FlagSetting>);

impl Collector {
    fn add(&mut self, flag: &str, key: &str, value: &Option<String>) {
        if let Some(raw) = value {
            self.0.push(FlagSetting { key: key.into(), raw: raw.clone(), flag: format!("--{flag}") });
        }
    }

    /// `--compress X` also switches compression on (or off for `none`); `--deduplication X` enables dedup.
    fn compress(&mut self, value: &Option<String>) {
        self.add("compress", "cache.compression.algorithm", value);
        if let Some(algorithm) = value {
            let on = (!algorithm.trim().eq_ignore_ascii_case("none")).to_string();
            self.add("compress", "cache.compression.enabled", &Some(on));
        }
    }
}

fn flag_settings(args: &ConfigureArgs) -> Result<Vec<FlagSetting>, UsageError> {
    let mut c = Collector(Vec::new());
    match &args.scope {
        Some(Scope::Model(m)) => {
            c.add("max-models", "cache.model.max_models", &m.max_models);
            c.add("memory-limit", "cache.model.memory_limit_gb", &m.memory_limit);
            c.add("preload-strategy", "cache.model.preload_strategy", &m.preload_strategy);
            c.add("unload-policy", "cache.model.unload_policy", &m.unload_policy);
        }
        Some(Scope::Response(r)) => {
            c.add("max-entries", "cache.response.max_entries", &r.max_entries);
            c.add("max-size", "cache.response.max_size_gb", &r.max_size);
            c.add("ttl", "cache.response.ttl_hours", &r.ttl);
            c.compress(&r.compress);
            c.add("hash-algorithm", "cache.response.hash_algorithm", &r.hash_algorithm);
            c.add("streaming-cache", "cache.response.enable_streaming_cache", &r.streaming_cache);
        }
        None => {
            let g = &args.general;
            c.add("max-size", "cache.max_size_gb", &g.max_size);
            c.add("ttl", "cache.default_ttl_hours", &g.ttl);
            c.compress(&g.compress);
            c.add("compression-level", "cache.compression.level", &g.compression_level);
            c.add("deduplication", "cache.deduplication.algorithm", &g.deduplication);
            if g.deduplication.is_some() {
                c.add("deduplication", "cache.deduplication.enabled", &Some("true".into()));
            }
            c.add("base-dir", "cache.base_dir", &g.base_dir);
            c.add("sync-interval", "cache.persistence.sync_interval_seconds", &g.sync_interval);
            c.add("enable-checksums", "cache.persistence.enable_checksums", &g.enable_checksums);
            c.add("memory-limit", "cache.model.memory_limit_gb", &g.memory_limit);
            c.add("max-models", "cache.model.max_models", &g.max_models);
            c.add("eviction-policy", "cache.model.preload_strategy", &g.eviction_policy);
            c.add("write-buffer-size", "cache.persistence.write_buffer_size", &g.write_buffer_size);
            c.add("read-ahead-size", "cache.persistence.read_ahead_size", &g.read_ahead_size);
            c.add("enable-distributed", "cache.distributed.enabled", &g.enable_distributed);
            c.add("cluster-nodes", "cache.distributed.cluster_nodes", &g.cluster_nodes);
            c.add("replication-factor", "cache.distributed.replication_factor", &g.replication_factor);
            c.add("prometheus-enabled", "cache.metrics.prometheus_enabled", &g.prometheus_enabled);
            for pair in &g.set {
                let (key, value) = pair.split_once('=').ok_or_else(|| {
                    UsageError(format!(
                        "--set {pair:?}: write KEY=VALUE, e.g. --set cache.cleanup.age_threshold_days=14"
                    ))
                })?;
                c.add("set", key.trim(), &Some(value.to_string()));
            }
        }
    }
    if c.0.is_empty() {
        return Err(UsageError(
            "nothing to configure: give at least one flag, e.g. `inferno cache configure --max-size 10GB` \
             (see `inferno cache configure --help`)"
                .into(),
        ));
    }
    Ok(c.0)
}

/// When `settings` change `cache.default_ttl_hours`: the kinds' own TTLs that some source sets, which keep
/// their value instead of inheriting it (key, value, origin).
fn kind_ttl_overrides(
    options: &LoadOptions,
    settings: &[FlagSetting],
) -> anyhow::Result<Vec<(&'static str, String, config::Origin)>> {
    if !settings.iter().any(|s| s.key == inherit::DEFAULT_TTL) {
        return Ok(Vec::new());
    }
    let mut after = options.clone();
    after.allow_missing_config_file = true;
    let now = config::load(&after)?;
    Ok(inherit::KIND_TTLS
        .iter()
        .filter_map(|key| {
            let setting = now.settings.get(*key)?;
            let inherited = matches!(setting.origin, config::Origin::Inherited { .. });
            (!inherited).then(|| (*key, setting.value.to_string(), setting.origin.clone()))
        })
        .collect())
}

/// Runs `cache configure`.
pub fn run(options: &LoadOptions, args: &ConfigureArgs, json: bool) -> anyhow::Result<()> {
    let settings = flag_settings(args)?;
    let outcome = config::configure(options, &settings)?;
    let inactive: Vec<&str> = settings
        .iter()
        .filter_map(|s| keys::find(&s.key))
        .filter(|k| !k.active && k.no_effect.is_none())
        .map(|k| k.path)
        .collect();
    let inert: Vec<(&str, &str)> = settings
        .iter()
        .filter_map(|s| keys::find(&s.key))
        .filter_map(|k| Some((k.path, k.no_effect?)))
        .collect();
    let kind_overrides = kind_ttl_overrides(options, &settings)?;
    if json {
        let changes: Vec<_> =
            outcome.changes.iter().map(|c| json!({"key": c.key, "old": c.old, "new": c.new})).collect();
        let overridden: Vec<_> =
            outcome.overridden.iter().map(|(key, origin)| json!({"key": key, "by": origin})).collect();
        let out = json!({
            "file": outcome.path,
            "changes": changes,
            "not_active_yet": inactive,
            "no_effect": inert.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            "overridden": overridden,
            "kind_ttl_overrides": kind_overrides.iter().map(|(key, value, origin)| {
                json!({"key": key, "value": value, "by": origin})
            }).collect::<Vec<_>>(),
        });
        return output::print_json(&out);
    }
    let mut out = String::new();
    if outcome.changes.is_empty() {
        writeln!(out, "No changes: {} already has these values.", outcome.path.display())?;
    } else {
        writeln!(out, "Wrote {}:", outcome.path.display())?;
        for change in &outcome.changes {
            let old = change.old.as_deref().unwrap_or("(unset)");
            writeln!(out, "  {} = {}   (was {old})", change.key, change.new)?;
        }
    }
    for (key, origin) in &outcome.overridden {
        writeln!(out, "Note: {key} is overridden by {origin}, which takes precedence over the file.")?;
    }
    for (key, why) in &inert {
        writeln!(out, "Note: {key} is accepted but has no effect: {why}.")?;
    }
    for (key, value, origin) in &kind_overrides {
        writeln!(
            out,
            "Note: {key} = {value} (set by {origin}) overrides {} for its kind; the other kinds inherit it.",
            inherit::DEFAULT_TTL
        )?;
    }
    if !inactive.is_empty() {
        writeln!(
            out,
            "Note: not active yet (stored and validated; the behaviour is not built yet): {}",
            inactive.join(", ")
        )?;
    }
    Ok(output::print(&out)?)
}
