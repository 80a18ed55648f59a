//! `inferno models list` and `inferno models info MODEL`: model metadata, served from the metadata cache when
//! fresh (`models::metadata_cache`), printed as a table, a card, or JSON.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;

use crate::cache::{Access, CacheError, Kind, Manager, disk::DiskError};
use crate::config::{self, Config, LoadOptions};
use crate::models::catalog;
use crate::models::metadata::{MetadataError, ModelMetadata};
use crate::models::metadata_cache::{Lookup, MetadataCache, Source};

use super::live::LiveServer;
use super::{UsageError, output};
use crate::admin::LiveStats;
use crate::models::pool::LoadedModelInfo;

/// `inferno models ...` commands.
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Every *.gguf / *.onnx model under the models directory, with what it is.
    List,
    /// Everything known about one model: a path, or a name in the models directory.
    Info(InfoArgs),
}

/// Flags of `models info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// A model file, or a model's name (its file stem) in the models directory.
    #[arg(value_name = "MODEL")]
    model: String,
}

/// Flags of `cache refresh`.
#[derive(Debug, Args)]
pub struct RefreshArgs {
    /// What to refresh; only `metadata` can be (responses and models are replaced when their model changes).
    #[arg(long = "type", value_name = "TYPE", default_value = "metadata")]
    kind: Kind,
}

/// Runs `cache refresh --type metadata`: reads every cached model file again.
pub fn refresh(options: &LoadOptions, args: &RefreshArgs, json: bool) -> anyhow::Result<()> {
    if args.kind != Kind::Metadata {
        return Err(UsageError(format!(
            "`cache refresh` refreshes metadata only; {} entries are keyed by the model file's fingerprint and \
             miss by themselves when it changes (remove them with `inferno cache clear --type {}`)",
            args.kind, args.kind
        ))
        .into());
    }
    let manager = super::transfer::open_cache(options, Access::ReadWrite)?;
    let report = MetadataCache::new(&manager).refresh_all()?;
    manager.flush()?;
    if json {
        output::print_json(&serde_json::to_value(&report)?)?;
    } else {
        let mut out = format!(
            "Refreshed {} metadata records: {} unchanged, {} changed",
            report.unchanged + report.changed,
            report.unchanged,
            report.changed
        );
        let _ =
            writeln!(out, ", {} removed (file gone), {} failed", report.removed.len(), report.failed.len());
        for path in &report.removed {
            let _ = writeln!(out, "  removed {}", path.display());
        }
        for (path, error) in &report.failed {
            let _ = writeln!(out, "  failed  {}: {error}", path.display());
        }
        output::print(&out)?;
    }
    if !report.failed.is_empty() {
        anyhow::bail!(
            "{} model files could not be read again; their records were removed",
            report.failed.len()
        );
    }
    Ok(())
}

/// Runs a `models` command.
pub fn run(options: &LoadOptions, command: &ModelsCommand, json: bool) -> anyhow::Result<()> {
    let config = config::load(options)?.config;
    let store = MetadataStore::open(&config)?;
    match command {
        ModelsCommand::List => list(&config, &store, json),
        ModelsCommand::Info(args) => info(&config, &store, args, json),
    }
}

/// The metadata cache when the cache can be written; direct reads otherwise.
pub(super) struct MetadataStore {
    manager: Option<Manager>,
}

impl MetadataStore {
    /// Opens the cache for writing. When it is off, or another process (a server) holds it, records are read
    /// from the files and not stored.
    pub(super) fn open(config: &Config) -> anyhow::Result<Self> {
        if !config.cache.enabled {
            return Ok(Self { manager: None });
        }
        match Manager::open(&config.cache, Access::ReadWrite) {
            Ok(manager) => Ok(Self { manager: Some(manager) }),
            Err(CacheError::Disk(DiskError::Locked { pid, .. })) => {
                tracing::info!(?pid, "the cache is held by another process; reading model files directly");
                Ok(Self { manager: None })
            }
            Err(e) => Err(e)
                .with_context(|| format!("cannot open the cache in {}", config.cache.base_dir.display())),
        }
    }

    /// The metadata of `path`.
    pub(super) fn get(&self, path: &Path) -> Result<Lookup, MetadataError> {
        match &self.manager {
            Some(manager) => MetadataCache::new(manager).get(path),
            None => Ok(Lookup { metadata: ModelMetadata::read_path(path)?, source: Source::Read }),
        }
    }

    /// Makes stored records durable.
    pub(super) fn flush(&self) -> anyhow::Result<()> {
        if let Some(manager) = &self.manager {
            manager.flush()?;
        }
        Ok(())
    }
}

fn list(config: &Config, store: &MetadataStore, json: bool) -> anyhow::Result<()> {
    let dir = &config.models.dir;
    let files = catalog::discover(dir)?;
    let mut found = Vec::new();
    let mut failed: Vec<(PathBuf, String)> = Vec::new();
    for path in &files {
        match store.get(path) {
            Ok(lookup) => found.push(lookup),
            Err(e) => failed.push((path.clone(), e.to_string())),
        }
    }
    store.flush()?;
    let running = running_models(config)?;
    if json {
        let errors: Vec<_> = failed.iter().map(|(p, e)| json!({ "path": p, "error": e })).collect();
        let mut doc = json!({ "dir": dir, "models": found, "errors": errors });
        if let Some((pid, models)) = &running {
            doc["running"] = json!({ "pid": pid, "models": models });
        }
        output::print_json(&doc)?;
    } else {
        let mut text = table(dir, &found, &failed);
        if let Some((pid, models)) = &running {
            text.push_str(&running_table(*pid, models));
        }
        output::print(&text)?;
    }
    if !failed.is_empty() {
        anyhow::bail!("{} of {} model files could not be read (see above)", failed.len(), files.len());
    }
    Ok(())
}

/// The models loaded in the `inferno serve` answering on the cache's admin socket, with its pid, when one
/// answers (like `ollama ps`).
fn running_models(config: &Config) -> anyhow::Result<Option<(u32, Vec<LoadedModelInfo>)>> {
    let Some(server) = LiveServer::find(&config.cache.base_dir) else { return Ok(None) };
    let live: LiveStats = server.get("/v1/cache/stats")?;
    Ok(Some((live.server.pid, live.server.models.models)))
}

/// The running server's loaded models: size, slots busy of all, requests queued, decode speed, idle time.
fn running_table(pid: u32, models: &[LoadedModelInfo]) -> String {
    let mut out = format!("\nLoaded in inferno serve (pid {pid}):\n");
    if models.is_empty() {
        out.push_str("  none\n");
        return out;
    }
    let _ = writeln!(
        out,
        "{:<24} {:>10} {:>9} {:>7} {:>9} {:>9}",
        "NAME", "SIZE", "SLOTS", "QUEUED", "TOKENS/S", "IDLE"
    );
    for m in models {
        let (slots, queued, rate) = match &m.slots {
            Some(s) => (
                format!("{}/{}", s.busy, s.parallel),
                s.queued.to_string(),
                format!("{:.1}", s.tokens_per_second()),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let idle = if m.in_use { "in use".to_string() } else { format!("{}s", m.idle.as_secs()) };
        let size = output::bytes(m.resident_bytes);
        let _ = writeln!(out, "{:<24} {size:>10} {slots:>9} {queued:>7} {rate:>9} {idle:>9}", m.name);
    }
    out
}

fn table(dir: &Path, found: &[Lookup], failed: &[(PathBuf, String)]) -> String {
    let mut out = String::new();
    if found.is_empty() && failed.is_empty() {
        let _ = writeln!(
            out,
            "No models in {} (put *.gguf or *.onnx files there, or set models.dir).",
            dir.display()
        );
        return out;
    }
    let _ = writeln!(
        out,
        "{:<24} {:<6} {:<10} {:>10} {:<8} {:>8} {:>10}",
        "NAME", "FORMAT", "ARCH", "PARAMS", "QUANT", "CONTEXT", "SIZE"
    );
    for Lookup { metadata: m, .. } in found {
        let _ = writeln!(
            out,
            "{:<24} {:<6} {:<10} {:>10} {:<8} {:>8} {:>10}",
            m.name,
            m.format.as_str(),
            m.architecture.as_deref().unwrap_or("-"),
            count(m.parameter_count),
            m.quantization.as_deref().unwrap_or("-"),
            m.context_length.map_or("-".into(), |c| c.to_string()),
            output::bytes(m.file_size),
        );
    }
    for (path, error) in failed {
        let _ = writeln!(out, "{:<24} error: {error}", file_name(path));
    }
    let cached = found.iter().filter(|l| l.source == Source::Cache).count();
    let _ = writeln!(
        out,
        "\n{} model{} in {} ({cached} from the metadata cache, {} read from the files)",
        found.len(),
        if found.len() == 1 { "" } else { "s" },
        dir.display(),
        found.len() - cached
    );
    out
}

fn info(config: &Config, store: &MetadataStore, args: &InfoArgs, json: bool) -> anyhow::Result<()> {
    let path = catalog::resolve(&args.model, &config.models.dir)?;
    let lookup = store.get(&path)?;
    store.flush()?;
    if json {
        return output::print_json(&serde_json::to_value(&lookup)?);
    }
    output::print(&card(&lookup))?;
    Ok(())
}

fn card(lookup: &Lookup) -> String {
    let m = &lookup.metadata;
    let mut rows: Vec<(&str, String)> = vec![
        ("path", m.path.display().to_string()),
        ("format", m.format.as_str().into()),
        ("file size", format!("{} ({} bytes)", output::bytes(m.file_size), m.file_size)),
        ("fingerprint", m.fingerprint.clone()),
        ("parameters", format!("{} ({})", count(m.parameter_count), m.parameter_count)),
        ("tensors", m.tensor_count.to_string()),
    ];
    let optional = [
        ("architecture", m.architecture.clone()),
        ("quantization", m.quantization.clone()),
        ("context length", m.context_length.map(|n| format!("{n} tokens"))),
        ("vocabulary", m.vocab_size.map(|n| format!("{n} tokens"))),
        ("embedding", m.embedding_length.map(|n| n.to_string())),
        ("layers", m.block_count.map(|n| n.to_string())),
        ("opset", m.opset.map(|n| n.to_string())),
    ];
    rows.extend(optional.into_iter().filter_map(|(k, v)| Some((k, v?))));
    if m.format == crate::models::file::ModelFormat::Gguf {
        let template = if m.has_chat_template { "the model's own" } else { "none (inferno uses ChatML)" };
        rows.push(("chat template", template.into()));
    }
    for (label, list) in [("input", &m.inputs), ("output", &m.outputs)] {
        for s in list {
            rows.push((label, format!("{} {} [{}]", s.name, s.element_type, s.shape.join(", "))));
        }
    }
    if let Some(p) = &m.performance {
        let speed = p.tokens_per_second.map_or(String::new(), |t| format!(", {t:.1} tokens/s"));
        rows.push(("measured", format!("load {:.1} ms{speed}", p.load_ms)));
    }
    let source = match lookup.source {
        Source::Cache => "metadata cache",
        Source::Read => "read from the file",
        Source::Refreshed => "read again (the file changed since it was cached)",
    };
    rows.push(("source", source.into()));
    let mut out = format!("{}\n", m.name);
    for (label, value) in rows {
        let _ = writeln!(out, "  {label:<15} {value}");
    }
    out
}

/// 1234567 → `1.2M`.
fn count(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}K", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1}M", n as f64 / 1e6),
        _ => format!("{:.1}B", n as f64 / 1e9),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}
