//! The command line: clap definitions, dispatch to one function per command, and printing.
//!
//! Nothing here decides behaviour; each command calls the library and prints what it returns. No clap type
//! leaves this module: flags become [`crate::config::FlagSetting`]s before they reach the library.

mod alerts;
mod audit;
mod backup;
mod configure;
mod dictionary;
mod live;
mod manage;
mod models;
mod monitor;
mod output;
mod seal;
mod security;
mod semantic;
mod serve;
mod stats;
mod status;
mod target;
mod toggle;
mod trace;
mod transfer;
mod warm;

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::config::{FlagSetting, LoadOptions};
use crate::logging::LogFormat;

/// Run AI models offline (GGUF via llama.cpp, ONNX via ONNX Runtime) with a layered cache in front.
#[derive(Debug, Parser)]
#[command(name = "inferno", version, propagate_version = true, max_term_width = 110)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Config file to use instead of ./.inferno.toml (it must exist, except for `cache configure`); env
    /// INFERNO_CONFIG.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Cache directory; overrides cache.base_dir, INFERNO_CACHE_DIR and config files.
    #[arg(long, global = true, value_name = "PATH")]
    pub cache_dir: Option<PathBuf>,

    /// More log output: -v for debug, -vv for trace (overrides INFERNO_LOG_LEVEL).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Only log errors (overrides INFERNO_LOG_LEVEL).
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Print machine-readable JSON instead of text, for commands that print data.
    #[arg(long, global = true)]
    pub json: bool,

    /// Log line format on stderr: text (default) or json for containers; env INFERNO_LOG_FORMAT.
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect and configure the cache.
    Cache {
        /// What to do with the cache.
        #[command(subcommand)]
        command: CacheCommand,
    },
    /// Serve models over an OpenAI-compatible HTTP API with the response cache in front (docs/serve.md).
    Serve(serve::ServeArgs),
    /// Model files: what each is (read from its header without loading it), from the metadata cache.
    Models {
        /// Directory of model files; overrides models.dir and INFERNO_MODELS_DIR.
        #[arg(long, global = true, value_name = "DIR")]
        models_dir: Option<PathBuf>,
        /// What to show.
        #[command(subcommand)]
        command: models::ModelsCommand,
    },
    /// Print a shell completion script, e.g. `inferno completions bash > /etc/bash_completion.d/inferno`.
    Completions {
        /// The shell to write completions for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `inferno cache ...` commands.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// What is cached, where, whether a writer is running, and every setting with where it came from.
    Status,
    /// Turn caching on: --all, or --type response,model,metadata; --deduplication blake3|xxhash.
    Enable(toggle::ToggleArgs),
    /// Turn caching off: --all, or --type response,model,metadata.
    Disable(toggle::ToggleArgs),
    /// Make the cache persistent (optionally --compress gzip|zstd) and flush it to disk now.
    Persist(toggle::PersistArgs),
    /// Write settings into the config file in effect (./.inferno.toml or --config), keeping comments.
    Configure(Box<configure::ConfigureArgs>),
    /// Entries and bytes per kind, hits and misses, compression and dedup figures, disk use vs limit.
    Stats(stats::StatsArgs),
    /// The key figures: hit and miss ratio, mean lookup time, size vs limit, compression, dedup savings.
    Metrics,
    /// Remove entries: --all, or by --type, --older-than and --pattern (a glob on the name or key).
    Clear(manage::ClearArgs),
    /// Remove entries older than --older-than (default cache.cleanup.age_threshold_days).
    Cleanup(manage::CleanupArgs),
    /// Rewrite the disk tier without removed, overwritten and expired data; prints bytes before and after.
    Compact,
    /// Train a zstd dictionary on the cached responses now and compress new responses with it.
    TrainDictionary,
    /// Check every checksum and reference; --fix quarantines what is damaged.
    Verify(manage::VerifyArgs),
    /// Quarantine damaged records (asks first on a terminal unless --auto-fix).
    Repair(manage::RepairArgs),
    /// Bytes on disk per file class and per type, against cache.max_size_gb.
    DiskUsage(manage::DiskUsageArgs),
    /// Copy the cache to --destination DIR (consistent even while in use); `backup list` lists backups.
    Backup(backup::BackupArgs),
    /// Replace the cache's data with a backup's, after checking every checksum.
    Restore(backup::RestoreArgs),
    /// Quarantine damaged entries and put them back from the newest backup that has them.
    Rebuild(backup::RebuildArgs),
    /// Live rates (hits/s, misses/s, writes/s, bytes/s) of the process writing the cache.
    Monitor(monitor::MonitorArgs),
    /// Activity over a period (--period 24h), from the recorded history.
    Report(monitor::ReportArgs),
    /// Advice from the history and current figures, against the configured thresholds.
    Analyze(monitor::AnalyzeArgs),
    /// Stream the operations (read, write, evict, remove) of the process writing the cache as they happen.
    Trace(trace::TraceArgs),
    /// Warm models (--model, --directory: page cache, metadata, a test load) and responses (--responses).
    Warm(warm::WarmArgs),
    /// Read every cached model's metadata again (--type metadata); drops records of vanished files.
    Refresh(models::RefreshArgs),
    /// Load response entries from a JSONL file (one {"model","request","response","ttl"?} per line).
    Import(transfer::ImportArgs),
    /// Write cache entries out (--format jsonl: response entries, the format `import` reads).
    Export(transfer::ExportArgs),
    /// Alerts: `test` sends a test alert through each channel, `status` shows each rule (docs/alerts.md).
    Alerts {
        /// What to do.
        #[command(subcommand)]
        command: alerts::AlertsCommand,
    },
    /// The access audit: administrative actions (and lookups, with cache.audit.log_reads), who and when.
    Audit(audit::AuditArgs),
    /// The semantic cache's tools: `calibrate` measures a similarity threshold on labelled pairs.
    Semantic {
        /// What to do.
        #[command(subcommand)]
        command: semantic::SemanticCommand,
    },
    /// Write a new random cache key (for [cache.security] key_file) to PATH, mode 0600; never overwrites.
    Keygen(seal::KeygenArgs),
    /// Re-seal every cached value under --new-key-file, crash-safely, and delete the old records.
    Rekey(seal::RekeyArgs),
}

/// An error in how the command was called: printed like any error, but exits with code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let Cli { global, command } = cli;
    match command {
        Command::Completions { shell } => completions(&global, shell),
        Command::Serve(args) => {
            if global.json {
                return Err(UsageError(
                    "--json does not apply to `serve`; its logs are JSON with --log-format json".into(),
                )
                .into());
            }
            serve::run(load_options(&global)?, &args)
        }
        Command::Models { models_dir, command } => {
            let mut options = load_options(&global)?;
            if let Some(dir) = models_dir {
                options.flags.push(FlagSetting {
                    key: "models.dir".into(),
                    raw: dir.to_string_lossy().into_owned(),
                    flag: "--models-dir".into(),
                });
            }
            models::run(&options, &command, global.json)
        }
        Command::Cache { command } => {
            let options = load_options(&global)?;
            let Some(action) = audit::action_of(&command) else {
                return cache_command(&options, command, global.json).map_err(live::explain_lock);
            };
            // The audit goes to the cache the configuration names before the command (configure, enable
            // and disable may change it); a configuration that does not load is the command's to report.
            let config = crate::config::load(&options).ok().map(|r| r.config.cache);
            let arguments = crate::audit::cli::arguments();
            crate::audit::cli::run(config.as_ref(), action, arguments, || {
                cache_command(&options, command, global.json).map_err(live::explain_lock)
            })
        }
    }
}

/// Runs an `inferno cache` command.
fn cache_command(options: &LoadOptions, command: CacheCommand, json: bool) -> anyhow::Result<()> {
    match command {
        CacheCommand::Status => status::run(options, json),
        CacheCommand::Configure(args) => configure::run(options, &args, json),
        CacheCommand::Enable(args) => toggle::enable(options, &args, json),
        CacheCommand::Disable(args) => toggle::disable(options, &args, json),
        CacheCommand::Persist(args) => toggle::persist(options, &args, json),
        CacheCommand::Stats(args) => stats::stats(options, &args, json),
        CacheCommand::Metrics => stats::metrics(options, json),
        CacheCommand::Clear(args) => manage::clear(options, &args, json),
        CacheCommand::Cleanup(args) => manage::cleanup(options, &args, json),
        CacheCommand::Compact => manage::compact(options, json),
        CacheCommand::TrainDictionary => dictionary::train(options, json),
        CacheCommand::Verify(args) => manage::verify(options, &args, json),
        CacheCommand::Repair(args) => manage::repair(options, &args, json),
        CacheCommand::DiskUsage(args) => manage::disk_usage(options, &args, json),
        CacheCommand::Backup(args) => backup::backup(options, &args, json),
        CacheCommand::Restore(args) => backup::restore(options, &args, json),
        CacheCommand::Rebuild(args) => backup::rebuild(options, &args, json),
        CacheCommand::Monitor(args) => monitor::monitor(options, &args, json),
        CacheCommand::Report(args) => monitor::report(options, &args, json),
        CacheCommand::Analyze(args) => monitor::analyze(options, &args, json),
        CacheCommand::Trace(args) => trace::trace(options, &args, json),
        CacheCommand::Warm(args) => warm::run(options, &args, json),
        CacheCommand::Refresh(args) => models::refresh(options, &args, json),
        CacheCommand::Import(args) => transfer::import(options, &args, json),
        CacheCommand::Export(args) => transfer::export(options, &args, json),
        CacheCommand::Alerts { command } => alerts::run(options, &command, json),
        CacheCommand::Audit(args) => audit::audit(options, &args, json),
        CacheCommand::Semantic { command } => semantic::run(options, &command, json),
        CacheCommand::Keygen(args) => seal::keygen(&args, json),
        CacheCommand::Rekey(args) => seal::rekey(options, &args, json),
    }
}

fn completions(global: &GlobalArgs, shell: clap_complete::Shell) -> anyhow::Result<()> {
    if global.json {
        return Err(
            UsageError("--json does not apply to `completions`, which prints a shell script".into()).into()
        );
    }
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "inferno", &mut script);
    output::print(&String::from_utf8_lossy(&script))?;
    Ok(())
}

/// Config loading options for this process, with the global flags as the highest layer.
fn load_options(global: &GlobalArgs) -> anyhow::Result<LoadOptions> {
    let mut options = LoadOptions::from_process()?;
    if let Some(path) = &global.config {
        options.config_file = Some(path.clone());
    }
    if let Some(dir) = &global.cache_dir {
        options.flags.push(FlagSetting {
            key: "cache.base_dir".into(),
            raw: dir.to_string_lossy().into_owned(),
            flag: "--cache-dir".into(),
        });
    }
    Ok(options)
}

impl ValueEnum for LogFormat {
    fn value_variants<'a>() -> &'a [Self] {
        &[LogFormat::Text, LogFormat::Json]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
