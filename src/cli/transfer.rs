//! `inferno cache import FILE.jsonl` and `inferno cache export --format jsonl`: thin wrappers over
//! `cache::ops::transfer`, with a progress bar on a terminal.

use std::fs::File;
use std::io::{BufReader, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::cache::observe::prometheus;
use crate::cache::ops::transfer;
use crate::cache::{Access, Kind, Manager};
use crate::config::{self, LoadOptions};
use crate::models::catalog;
use crate::models::file::fingerprint;
use std::collections::HashMap;

use super::output;

/// Flags of `cache import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// JSONL file, one `{"model", "request", "response", "ttl"?}` object per line; `-` reads stdin.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Refuse lines whose model is not a file in models.dir (instead of storing them unbound); exit 1.
    #[arg(long)]
    strict: bool,
}

/// Flags of `cache export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Output format.
    #[arg(long, value_enum)]
    format: ExportFormat,
    /// Write to this file instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ExportFormat {
    /// Response entries, one JSON object per line (the format `cache import` reads).
    Jsonl,
    /// Cache metrics in the Prometheus text exposition format.
    Prometheus,
    /// Cache metrics as one JSON document (the same figures as `cache stats --json`).
    Json,
}

/// A progress bar on a terminal, nothing otherwise.
fn progress_bar(len: u64, json: bool) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:40}] {bytes}/{total_bytes} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

/// Opens the cache for this command.
pub(super) fn open_cache(options: &LoadOptions, access: Access) -> anyhow::Result<Manager> {
    let resolved = config::load(options)?;
    let cache = &resolved.config.cache;
    if !cache.enabled {
        anyhow::bail!(
            "the cache is disabled (cache.enabled = false); enable it with `inferno cache configure --set cache.enabled=true`"
        );
    }
    Manager::open(cache, access)
        .with_context(|| format!("cannot open the cache in {}", cache.base_dir.display()))
}

/// Binds model names to the fingerprints of their files in `dir`, looking each distinct name up once.
fn binder(dir: &std::path::Path) -> impl FnMut(&str) -> Result<String, String> + '_ {
    let mut seen: HashMap<String, Result<String, String>> = HashMap::new();
    move |model: &str| {
        seen.entry(model.to_string())
            .or_insert_with(|| {
                if model.contains('/') {
                    return Err(format!("model {model:?} is a path, not a name in models.dir"));
                }
                let path = catalog::resolve(model, dir).map_err(|e| e.to_string())?;
                fingerprint(&path).map_err(|e| format!("cannot fingerprint {}: {e}", path.display()))
            })
            .clone()
    }
}

/// Runs `cache import`. Exits non-zero when any line was rejected.
pub fn import(options: &LoadOptions, args: &ImportArgs, json: bool) -> anyhow::Result<()> {
    let cache = open_cache(options, Access::ReadWrite)?;
    let models_dir = config::load(options)?.config.models.dir;
    let mut bind = binder(&models_dir);
    let report = if args.file.as_os_str() == "-" {
        transfer::import(&cache, std::io::stdin().lock(), |_| {}, &mut bind, args.strict)?
    } else {
        let file = File::open(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
        let bar = progress_bar(file.metadata().map(|m| m.len()).unwrap_or(0), json);
        let report = transfer::import(
            &cache,
            BufReader::new(file),
            |done| bar.set_position(done),
            &mut bind,
            args.strict,
        )?;
        bar.finish_and_clear();
        report
    };
    let housekeeping = cache.housekeeping()?;
    cache.flush()?;
    crate::audit::cli::affected_entries(report.new);
    if json {
        output::print_json(&json!({ "file": args.file, "report": report, "housekeeping": housekeeping }))?;
    } else {
        let mut text = format!(
            "Imported {}: {} new, {} duplicate, {} rejected\n",
            args.file.display(),
            report.new,
            report.duplicate,
            report.rejected.len()
        );
        for rejected in &report.rejected {
            text.push_str(&format!("  line {}: {}\n", rejected.line, rejected.reason));
        }
        if report.unbound > 0 {
            let models: Vec<&str> = report.unbound_models.iter().map(String::as_str).collect();
            text.push_str(&format!(
                "{} line(s) stored unbound: no model named {} in {} (`serve` will not hit them; --strict refuses them)\n",
                report.unbound,
                models.join(", "),
                models_dir.display()
            ));
        }
        if housekeeping.evicted_for_size > 0 {
            text.push_str(&format!(
                "Removed the {} oldest entries to stay under cache.max_size_gb\n",
                housekeeping.evicted_for_size
            ));
        }
        output::print(&text)?;
    }
    if !report.rejected.is_empty() {
        anyhow::bail!(
            "{} line(s) of {} were rejected (listed above)",
            report.rejected.len(),
            args.file.display()
        );
    }
    Ok(())
}

/// Writes `text` to `--output` or stdout.
fn write_out(args: &ExportArgs, text: &str) -> anyhow::Result<()> {
    match &args.output {
        Some(path) => std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display())),
        None => Ok(output::print(text)?),
    }
}

/// Runs `cache export`. The metrics formats come from the running server when one holds the cache.
pub fn export(options: &LoadOptions, args: &ExportArgs, json: bool) -> anyhow::Result<()> {
    match args.format {
        ExportFormat::Jsonl => {}
        ExportFormat::Prometheus => {
            return write_out(args, &prometheus::encode(&super::stats::measure(options)?.0)?);
        }
        ExportFormat::Json => {
            let mut text = serde_json::to_string_pretty(&super::stats::measure(options)?.0)?;
            text.push('\n');
            return write_out(args, &text);
        }
    }
    let cache = open_cache(options, Access::ReadOnly)?;
    // Refuse before `--output` is created (or truncated).
    if !cache.is_enabled(Kind::Response) {
        return Err(transfer::TransferError::ResponsesDisabled.into());
    }
    let bar = progress_bar(0, json || args.output.is_none());
    let mut on_progress = |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let written = match &args.output {
        Some(path) => {
            let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            let written = transfer::export(&cache, std::io::BufWriter::new(file), &mut on_progress)?;
            bar.finish_and_clear();
            if json {
                output::print_json(&json!({ "file": path, "exported": written }))?;
            } else {
                output::print(&format!("Exported {written} entries to {}\n", path.display()))?;
            }
            written
        }
        None => {
            let stdout = std::io::stdout().lock();
            let mut out = std::io::BufWriter::new(stdout);
            let written = transfer::export(&cache, &mut out, &mut on_progress)?;
            out.flush()?;
            written
        }
    };
    tracing::debug!(written, "export finished");
    Ok(())
}
