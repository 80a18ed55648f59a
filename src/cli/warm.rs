//! `inferno cache warm`: warm models (`--model`, `--directory`), responses (`--responses`) and prompt-prefix
//! KV states (`--prefixes`), in the foreground with a progress bar, or detached with `--background`
//! (progress in `inferno cache status`).
//!
//! While `inferno serve` holds the cache, each model is warmed by the server (`POST /v1/cache/warm` on its
//! admin socket): it reads the file, records metadata and the model entry in its cache, and loads the model
//! into its model cache, where it stays for requests. Names are then resolved in the server's models
//! directory; paths are sent absolute.

use std::fmt::Write;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::admin::WarmRequest;
use crate::cache::{Access, CacheError, Manager, disk::DiskError};
use crate::config::{self, Config, LoadOptions};
use crate::models::catalog;
use crate::warm::prefixes::{PrefixLine, read_prefixes};
use crate::warm::progress::{self, JobState, Progress};
use crate::warm::{self as warming, LoadInto, ModelWarmReport};

use super::live::LiveServer;
use super::{UsageError, output};

mod prefixes;

/// Flags of `cache warm`.
#[derive(Debug, Args)]
pub struct WarmArgs {
    /// A model file, or a model's name in the models directory (repeatable).
    #[arg(long = "model", value_name = "MODEL")]
    models: Vec<String>,
    /// Warm every *.gguf / *.onnx model under this directory (repeatable).
    #[arg(long = "directory", value_name = "DIR")]
    directories: Vec<PathBuf>,
    /// A file of prompts, one per line (or one JSON request body per line): each is run through the
    /// --model models (or models.default) and the response stored, so the same request later is a hit.
    #[arg(long, value_name = "FILE")]
    responses: Option<PathBuf>,
    /// A file of prompt prefixes, one JSON value per line: a prompt string or a chat messages array. Each is
    /// prefilled by the --model models (or models.default) and its KV state saved, so requests that start
    /// with it skip that prefill.
    #[arg(long, value_name = "FILE")]
    prefixes: Option<PathBuf>,
    /// Detach and warm in the background; `inferno cache status` shows the progress.
    #[arg(long)]
    background: bool,
}

/// Environment variable that marks the detached child of `--background`.
const BACKGROUND_CHILD: &str = "INFERNO_WARM_BACKGROUND_CHILD";

/// Runs `cache warm`.
pub fn run(options: &LoadOptions, args: &WarmArgs, json: bool) -> anyhow::Result<()> {
    if args.models.is_empty()
        && args.directories.is_empty()
        && args.responses.is_none()
        && args.prefixes.is_none()
    {
        return Err(UsageError(
            "say what to warm: --model MODEL, --directory DIR, --responses FILE or --prefixes FILE".into(),
        )
        .into());
    }
    let config = config::load(options)?.config;
    let server = LiveServer::find(&config.cache.base_dir);
    let plan = Plan::new(&config, args, server.is_some())?;
    if args.background {
        return detach(&config, json);
    }
    let background = std::env::var_os(BACKGROUND_CHILD).is_some();
    let log = background.then(|| config.cache.base_dir.join(progress::LOG_FILE));
    let target = match server {
        Some(server) => Target::Server(server),
        None => open_cache(&config)?.map_or(Target::Unrecorded, |m| Target::Local(Arc::new(m))),
    };
    let mut job = Job::new(&config, &plan, background, log, json);
    job.run(&target)?;
    if let Target::Local(manager) = &target {
        manager.flush()?;
    }
    job.finish()
}

/// Where a job's work happens and is recorded.
enum Target {
    /// This process holds the cache.
    Local(Arc<Manager>),
    /// A running server holds it: models are warmed by the server.
    Server(LiveServer),
    /// Another process holds it: models are read and checked here, nothing is recorded.
    Unrecorded,
}

impl Target {
    fn manager(&self) -> Option<&Arc<Manager>> {
        match self {
            Target::Local(manager) => Some(manager),
            _ => None,
        }
    }
}

/// What a job will do, checked before anything starts.
struct Plan {
    models: Vec<PathBuf>,
    responses: Option<(PathBuf, Vec<PathBuf>)>,
    /// The prefixes file, its checked lines, and the models to run them through.
    prefixes: Option<(PathBuf, Vec<PrefixLine>, Vec<PathBuf>)>,
}

impl Plan {
    /// With `through_server`, names that are not files here are left for the server to resolve, and paths
    /// are made absolute (the server's working directory is not ours).
    fn new(config: &Config, args: &WarmArgs, through_server: bool) -> anyhow::Result<Self> {
        let dir = &config.models.dir;
        let resolve = |m: &String| -> anyhow::Result<PathBuf> {
            if !through_server {
                return Ok(catalog::resolve(m, dir)?);
            }
            let path = Path::new(m);
            Ok(if path.is_file() { std::path::absolute(path)? } else { PathBuf::from(m) })
        };
        let named: Vec<PathBuf> = args.models.iter().map(resolve).collect::<Result<_, _>>()?;
        let mut models = warming::collect_models(&named, &args.directories)?;
        if through_server {
            for path in models.iter_mut().filter(|p| p.is_file()) {
                *path = std::path::absolute(&*path)?;
            }
        }
        let through = |flag: &str| -> anyhow::Result<Vec<PathBuf>> {
            if !named.is_empty() {
                Ok(named.clone())
            } else if !config.models.default.is_empty() {
                Ok(vec![catalog::resolve(&config.models.default, dir)?])
            } else {
                Err(UsageError(format!("{flag} needs a model: give --model MODEL or set models.default"))
                    .into())
            }
        };
        let responses = match &args.responses {
            None => None,
            Some(prompts) => {
                if !prompts.is_file() {
                    anyhow::bail!("{}: no such prompts file", prompts.display());
                }
                Some((prompts.clone(), through("--responses")?))
            }
        };
        let prefixes = match &args.prefixes {
            None => None,
            Some(file) => {
                // Every line is checked before any work starts.
                let lines = read_prefixes(file).map_err(|e| UsageError(e.to_string()))?;
                Some((file.clone(), lines, through("--prefixes")?))
            }
        };
        Ok(Self { models, responses, prefixes })
    }
}

/// The cache to record into; `None` (with a note) when another process holds it.
fn open_cache(config: &Config) -> anyhow::Result<Option<Manager>> {
    if !config.cache.enabled {
        anyhow::bail!(
            "the cache is disabled (cache.enabled = false); enable it with `inferno cache enable --all`"
        );
    }
    match Manager::open(&config.cache, Access::ReadWrite) {
        Ok(manager) => Ok(Some(manager)),
        Err(CacheError::Disk(DiskError::Locked { pid, .. })) => {
            let holder = pid.map_or("another process".to_string(), |p| format!("process {p}"));
            eprintln!(
                "note: {holder} holds the cache; model pages are warmed and checked, but nothing is recorded"
            );
            Ok(None)
        }
        Err(e) => {
            Err(e).with_context(|| format!("cannot open the cache in {}", config.cache.base_dir.display()))
        }
    }
}

/// Starts this same command line again, detached, without `--background`; prints where to look.
fn detach(config: &Config, json: bool) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let dir = &config.cache.base_dir;
    if let Some(p) = progress::read(dir).filter(|p| p.state == JobState::Running) {
        anyhow::bail!("a warm job is already running (pid {}); see `inferno cache status`", p.pid);
    }
    // The detached job records the warm in the audit when it ends; this process does not.
    crate::audit::cli::delegated();
    crate::cache::private::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let log_path = dir.join(progress::LOG_FILE);
    let log = crate::cache::private::create(&log_path)
        .with_context(|| format!("cannot write {}", log_path.display()))?;
    let args: Vec<_> = std::env::args_os().skip(1).filter(|a| a != "--background").collect();
    let child = std::process::Command::new(std::env::current_exe()?)
        .args(args)
        .env(BACKGROUND_CHILD, "1")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("cannot start the background warm job")?;
    if json {
        return output::print_json(
            &json!({ "pid": child.id(), "log": log_path, "progress": dir.join(progress::PROGRESS_FILE) }),
        );
    }
    output::print(&format!(
        "Warming in the background (pid {}); progress: `inferno cache status`; log: {}\n",
        child.id(),
        log_path.display()
    ))?;
    Ok(())
}

/// A running job: its steps, progress file and output.
struct Job<'a> {
    dir: PathBuf,
    plan: &'a Plan,
    progress: Progress,
    bar: ProgressBar,
    json: bool,
    models: Vec<ModelWarmReport>,
    responses: Vec<serde_json::Value>,
    prefixes: Vec<serde_json::Value>,
    text: String,
}

impl<'a> Job<'a> {
    fn new(config: &Config, plan: &'a Plan, background: bool, log: Option<PathBuf>, json: bool) -> Self {
        let prompts =
            plan.responses.as_ref().map_or(0, |(file, through)| warm_steps(file) * through.len() as u64);
        let prefixes =
            plan.prefixes.as_ref().map_or(0, |(_, lines, through)| (lines.len() * through.len()) as u64);
        let progress = Progress::start(plan.models.len() as u64 + prompts + prefixes, background, log);
        let bar = if json || background || !std::io::stderr().is_terminal() {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(0).with_style(
                ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            )
        };
        Self {
            dir: config.cache.base_dir.clone(),
            plan,
            progress,
            bar,
            json,
            models: Vec::new(),
            responses: Vec::new(),
            prefixes: Vec::new(),
            text: String::new(),
        }
    }

    fn save(&self) {
        if let Err(e) = progress::write(&self.dir, &self.progress) {
            tracing::warn!("cannot write the warm progress file: {e}");
        }
    }

    fn run(&mut self, target: &Target) -> anyhow::Result<()> {
        self.save();
        for path in &self.plan.models {
            self.step_model(target, path);
        }
        if let Some((prompts, through)) = &self.plan.responses {
            for model in through {
                self.step_responses(target, prompts, model);
            }
        }
        if let Some((file, lines, through)) = &self.plan.prefixes {
            for model in through {
                self.step_prefixes(target, file, lines, model);
            }
        }
        Ok(())
    }

    fn step_model(&mut self, target: &Target, path: &Path) {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        self.progress.current = Some(name.clone());
        self.save();
        self.bar.set_message(name.clone());
        self.bar.set_position(0);
        let bar = self.bar.clone();
        let on_progress = |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        };
        let outcome = match target {
            Target::Server(server) => {
                let request = WarmRequest { model: path.to_string_lossy().into_owned() };
                server.post::<ModelWarmReport>("/v1/cache/warm", &request)
            }
            _ => warming::warm_model(target.manager().map(|m| &**m), path, LoadInto::Check, on_progress)
                .map_err(anyhow::Error::from),
        };
        self.bar.finish_and_clear();
        match outcome {
            Ok(report) => {
                let _ = writeln!(self.text, "{}", describe(&report));
                self.progress.models_warmed += 1;
                self.models.push(report);
            }
            Err(e) => {
                let _ = writeln!(self.text, "failed {name}: {e:#}");
                self.progress.errors.push(format!("{e:#}"));
            }
        }
        self.progress.done_steps += 1;
        self.save();
    }

    /// Runs the prompts through one model; each prompt is one step.
    fn step_responses(&mut self, target: &Target, prompts: &Path, model: &Path) {
        let name = model.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let steps = warm_steps(prompts);
        let instead = "send the prompts to its /v1/chat/completions (deterministic requests are stored)";
        let Some(manager) = self.holder_of(target, &format!("responses through {name}"), instead, steps)
        else {
            return;
        };
        self.progress.current = Some(format!("{} through {name}", prompts.display()));
        self.save();
        self.run_prompts(manager, prompts, model, &name, steps);
    }

    /// The cache's manager when this process holds the cache; otherwise `what` (a step's stores) failed as a
    /// whole, saying who holds the cache and, for a running server, what to do `instead`.
    fn holder_of<'t>(
        &mut self,
        target: &'t Target,
        what: &str,
        instead: &str,
        steps: u64,
    ) -> Option<&'t Arc<Manager>> {
        if let Some(manager) = target.manager() {
            return Some(manager);
        }
        let error = match target {
            Target::Server(server) => format!(
                "{what} not stored: {} holds the cache; {instead}, or stop it and warm again",
                server.describe()
            ),
            _ => format!("{what} not stored: another process holds the cache"),
        };
        self.steps_failed(error.clone(), error, steps);
        self.save();
        None
    }

    /// A warming step that failed as a whole: `shown` in the report, `recorded` among the progress file's
    /// errors, and its `steps` counted as done.
    fn steps_failed(&mut self, shown: String, recorded: String, steps: u64) {
        let _ = writeln!(self.text, "{shown}");
        self.progress.errors.push(recorded);
        self.progress.done_steps += steps;
    }

    /// A bar counting `steps` of `unit` (prompts, prefixes) for model `name`; hidden when this job's is.
    #[cfg(feature = "llama")]
    fn step_bar(&self, steps: u64, unit: &str, name: &str) -> ProgressBar {
        let bar = if self.bar.is_hidden() {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(steps).with_style(
                ProgressStyle::with_template(&format!(
                    "{{msg}} [{{bar:30}}] {{pos}}/{{len}} {unit} ({{eta}})"
                ))
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            )
        };
        bar.set_message(name.to_string());
        bar
    }

    #[cfg(feature = "llama")]
    fn run_prompts(&mut self, manager: &Manager, prompts: &Path, model: &Path, name: &str, steps: u64) {
        use crate::warm::responses::{PromptOutcome, warm_responses};
        let bar = self.step_bar(steps, "prompts", name);
        let dir = self.dir.clone();
        let progress = &mut self.progress;
        let outcome = warm_responses(manager, model, prompts, |line, outcome| {
            match outcome {
                PromptOutcome::Stored { .. } => progress.responses_stored += 1,
                PromptOutcome::AlreadyCached { .. } => progress.responses_cached += 1,
                PromptOutcome::NotCacheable => progress.errors.push(format!(
                    "{}:{line}: not deterministic (give temperature 0 or a seed)",
                    prompts.display()
                )),
                PromptOutcome::Failed { error } => {
                    progress.errors.push(format!("{}:{line}: {error}", prompts.display()))
                }
            }
            step_done(progress, &dir, &bar);
        });
        bar.finish_and_clear();
        match outcome {
            Ok(report) => {
                let count = |pick: fn(&PromptOutcome) -> bool| report.count(pick);
                let _ = writeln!(
                    self.text,
                    "Responses through {}: {} prompts, {} stored, {} already cached, {} not cacheable, {} failed ({:.1} s)",
                    report.model,
                    report.prompts.len(),
                    count(|o| matches!(o, PromptOutcome::Stored { .. })),
                    count(|o| matches!(o, PromptOutcome::AlreadyCached { .. })),
                    count(|o| matches!(o, PromptOutcome::NotCacheable)),
                    count(|o| matches!(o, PromptOutcome::Failed { .. })),
                    report.elapsed_s,
                );
                for (line, outcome) in &report.prompts {
                    match outcome {
                        PromptOutcome::Failed { error } => {
                            let _ = writeln!(self.text, "  line {line}: {error}");
                        }
                        PromptOutcome::NotCacheable => {
                            let _ = writeln!(
                                self.text,
                                "  line {line}: not deterministic (give temperature 0 or a seed); not run"
                            );
                        }
                        _ => {}
                    }
                }
                self.responses.push(serde_json::to_value(&report).unwrap_or_default());
            }
            Err(e) => {
                self.steps_failed(format!("failed responses through {name}: {e}"), e.to_string(), steps);
            }
        }
        self.save();
    }

    #[cfg(not(feature = "llama"))]
    fn run_prompts(&mut self, _: &Manager, _: &Path, _: &Path, name: &str, steps: u64) {
        let error = format!(
            "responses through {name}: inferno was built without the `llama` feature, so no model can answer prompts"
        );
        self.steps_failed(error.clone(), error, steps);
        self.save();
    }

    fn finish(mut self) -> anyhow::Result<()> {
        self.progress.current = None;
        self.progress.state = if self.progress.errors.is_empty() { JobState::Done } else { JobState::Failed };
        self.save();
        if self.json {
            output::print_json(&json!({
                "models": self.models,
                "responses": self.responses,
                "prefixes": self.prefixes,
                "errors": self.progress.errors,
            }))?;
        } else {
            output::print(&self.text)?;
        }
        match self.progress.errors.len() {
            0 => Ok(()),
            n => anyhow::bail!("{n} warm step{} failed (see above)", if n == 1 { "" } else { "s" }),
        }
    }
}

/// Steps of a prompts file: its non-blank lines.
fn warm_steps(prompts: &Path) -> u64 {
    std::fs::read_to_string(prompts).map_or(0, |t| t.lines().filter(|l| !l.trim().is_empty()).count() as u64)
}

/// One line per warmed model: what the read did to the page cache, and what loading measured.
fn describe(r: &ModelWarmReport) -> String {
    let before = r.read.resident_before.fraction() * 100.0;
    let after = r.read.resident_after.fraction() * 100.0;
    let speed = r.tokens_per_second.map_or(String::new(), |t| format!(", {t:.0} tokens/s"));
    let stored = match (r.stored, r.kept_loaded) {
        (_, true) => " (by the running server, which keeps it loaded)",
        (true, false) => "",
        (false, false) => " (not recorded: the cache is held by another process)",
    };
    format!(
        "Warmed {} ({}, {}): read in {:.1} ms ({:.0} MB/s), in page cache {before:.0}% -> {after:.0}%; \
         loaded in {:.1} ms{speed}{stored}",
        r.name,
        r.format.as_str(),
        output::bytes(r.read.bytes),
        r.read.elapsed.as_secs_f64() * 1e3,
        r.read_mb_per_s,
        r.load_ms,
    )
}

/// One step of a model's prompts or prefixes done: counted, shown on the bar, written to the progress file.
#[cfg(feature = "llama")]
fn step_done(progress: &mut Progress, dir: &Path, bar: &ProgressBar) {
    progress.done_steps += 1;
    bar.inc(1);
    if let Err(e) = progress::write(dir, progress) {
        tracing::warn!("cannot write the warm progress file: {e}");
    }
}
