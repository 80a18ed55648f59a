//! `inferno cache enable | disable | persist`: switch cache kinds and persistence on or off by writing the
//! config file in effect (through `config::configure`, so comments survive and values are validated).

use clap::{Args, ValueEnum};
use serde_json::json;

use crate::cache::{Access, CacheReport, Kind, Manager};
use crate::config::{self, FlagSetting, LoadOptions};

use super::{UsageError, output};

/// Flags of `cache enable` and `cache disable`.
#[derive(Debug, Args)]
pub struct ToggleArgs {
    /// Every kind, and the cache as a whole.
    #[arg(long, conflicts_with = "kinds")]
    all: bool,
    /// Kinds to switch: response, model, metadata, kv, semantic (comma-separated; `--all` leaves semantic alone).
    #[arg(long = "type", value_name = "TYPE", value_delimiter = ',')]
    kinds: Vec<Kind>,
    /// With enable: also switch content dedup on with this hash (blake3 or xxhash).
    #[arg(long, value_name = "ALGORITHM")]
    deduplication: Option<String>,
}

/// Flags of `cache persist`.
#[derive(Debug, Args)]
pub struct PersistArgs {
    /// Compression for the disk tier.
    #[arg(long, value_enum, value_name = "ALGORITHM")]
    compress: Option<PersistCodec>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum PersistCodec {
    /// Store values raw.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

fn setting(key: &str, value: &str, flag: &str) -> FlagSetting {
    FlagSetting { key: key.into(), raw: value.into(), flag: flag.into() }
}

fn kind_key(kind: Kind) -> String {
    format!("cache.{}.enabled", kind.name())
}

fn write(options: &LoadOptions, settings: &[FlagSetting], json: bool, summary: String) -> anyhow::Result<()> {
    let outcome = config::configure(options, settings)?;
    if json {
        let changes: Vec<_> =
            outcome.changes.iter().map(|c| json!({"key": c.key, "old": c.old, "new": c.new})).collect();
        return output::print_json(&json!({ "file": outcome.path, "changes": changes, "summary": summary }));
    }
    let mut text = format!("{summary} (written to {})\n", outcome.path.display());
    for (key, origin) in &outcome.overridden {
        text.push_str(&format!(
            "Note: {key} is overridden by {origin}, which takes precedence over the file.\n"
        ));
    }
    Ok(output::print(&text)?)
}

/// The effective `cache.enabled` now (a config file that does not exist yet counts as empty).
fn cache_enabled(options: &LoadOptions) -> anyhow::Result<bool> {
    let options = LoadOptions { allow_missing_config_file: true, ..options.clone() };
    Ok(config::load(&options)?.config.cache.enabled)
}

/// Runs `cache enable`.
pub fn enable(options: &LoadOptions, args: &ToggleArgs, json: bool) -> anyhow::Result<()> {
    // The semantic cache is opt-in and needs a model: `--all` leaves it as it is.
    let kinds: Vec<Kind> = if args.all {
        Kind::ALL.into_iter().filter(|k| *k != Kind::Semantic).collect()
    } else {
        args.kinds.clone()
    };
    if kinds.is_empty() && args.deduplication.is_none() {
        return Err(
            UsageError("say what to enable: --all, --type TYPE or --deduplication ALGORITHM".into()).into()
        );
    }
    let mut settings = Vec::new();
    if !kinds.is_empty() {
        settings.push(setting("cache.enabled", "true", "--type"));
    }
    settings.extend(kinds.iter().map(|k| setting(&kind_key(*k), "true", "--type")));
    // With the cache off as a whole (`disable --all`), `--type X` turns on X alone: the other kinds' own keys
    // are still true from before and would otherwise come back on with `cache.enabled`.
    let mut stay_off = Vec::new();
    if !args.all && !kinds.is_empty() && !cache_enabled(options)? {
        stay_off = Kind::ALL.into_iter().filter(|k| !kinds.contains(k)).collect();
        settings.extend(stay_off.iter().map(|k| setting(&kind_key(*k), "false", "--type")));
    }
    if let Some(algorithm) = &args.deduplication {
        settings.push(setting("cache.deduplication.algorithm", algorithm, "--deduplication"));
        settings.push(setting("cache.deduplication.enabled", "true", "--deduplication"));
    }
    let mut summary: Vec<String> = kinds.iter().map(|k| format!("{k} caching enabled")).collect();
    summary.extend(stay_off.iter().map(|k| format!("{k} caching stays off")));
    if let Some(algorithm) = &args.deduplication {
        summary.push(format!("deduplication with {algorithm}"));
    }
    write(options, &settings, json, summary.join(", "))
}

/// Runs `cache disable`.
pub fn disable(options: &LoadOptions, args: &ToggleArgs, json: bool) -> anyhow::Result<()> {
    if args.deduplication.is_some() {
        return Err(UsageError("--deduplication goes with `enable`; to turn dedup off run `inferno cache configure --set cache.deduplication.enabled=false`".into()).into());
    }
    let (settings, summary) = if args.all {
        (vec![setting("cache.enabled", "false", "--all")], "all caching disabled".to_string())
    } else if args.kinds.is_empty() {
        return Err(UsageError("say what to disable: --all or --type TYPE".into()).into());
    } else {
        let settings = args.kinds.iter().map(|k| setting(&kind_key(*k), "false", "--type")).collect();
        let names: Vec<&str> = args.kinds.iter().map(|k| k.name()).collect();
        (settings, format!("{} caching disabled", names.join(", ")))
    };
    write(options, &settings, json, summary)
}

/// Runs `cache persist`: makes the cache persistent (config), then opens it and flushes it to disk.
pub fn persist(options: &LoadOptions, args: &PersistArgs, json: bool) -> anyhow::Result<()> {
    let mut settings = vec![setting("cache.type", "persistent", "persist")];
    if let Some(codec) = args.compress {
        let name = format!("{codec:?}").to_lowercase();
        settings.push(setting("cache.compression.algorithm", &name, "--compress"));
        settings.push(setting("cache.compression.enabled", &(name != "none").to_string(), "--compress"));
    }
    let outcome = config::configure(options, &settings)?;
    let resolved = config::load(options)?;
    let cache = Manager::open(&resolved.config.cache, Access::ReadWrite)?;
    cache.flush()?;
    let report = CacheReport::measure(&cache);
    let entries: u64 = report.kinds.iter().map(|k| k.entries).sum();
    let c = &resolved.config.cache.compression;
    let codec =
        if c.enabled { format!("{:?} level {}", c.algorithm, c.level).to_lowercase() } else { "none".into() };
    if json {
        return output::print_json(&json!({
            "file": outcome.path,
            "base_dir": resolved.config.cache.base_dir,
            "compression": codec,
            "entries_on_disk": entries,
            "bytes_on_disk": report.disk.as_ref().map_or(0, |d| d.file_bytes),
        }));
    }
    let text = format!(
        "The cache is persistent in {} with {codec} compression (written to {}); {entries} entries on disk, flushed.\n",
        resolved.config.cache.base_dir.display(),
        outcome.path.display()
    );
    Ok(output::print(&text)?)
}
