//! `inferno serve`: flags become config settings (so `cache status` and the server agree on every value),
//! the keys are read (`server.*_key_file`), a non-loopback bind without an API key is refused unless
//! `--allow-unauthenticated`, the semantic cache's model is loaded and checked when it is on, then the
//! library's server runs until SIGTERM/SIGINT.

use std::path::PathBuf;

use clap::Args;

use crate::cache::semantic::TextEmbedder;
use crate::config::{self, ConfigError, FlagSetting, LoadOptions, Problem, ServerKeys};

/// Flags of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Keep the cache on disk across restarts (cache.type = persistent) in the configured directory.
    #[arg(long)]
    cache_persist: bool,
    /// Address to listen on (server.bind); 0.0.0.0 accepts other machines.
    #[arg(long, value_name = "IP")]
    bind: Option<String>,
    /// TCP port (server.port); 0 picks a free one.
    #[arg(long, value_name = "PORT")]
    port: Option<String>,
    /// Load this model at start: a name in the models directory or a path (repeatable; server.preload).
    #[arg(long = "model", value_name = "MODEL")]
    models: Vec<String>,
    /// Directory of model files (models.dir).
    #[arg(long, value_name = "DIR")]
    models_dir: Option<PathBuf>,
    /// Require `Authorization: Bearer KEY` (server.api_key; env INFERNO_API_KEY keeps it out of `ps`).
    #[arg(long, value_name = "KEY")]
    api_key: Option<String>,
    /// Requests each loaded GGUF model decodes together (server.parallel, default 16).
    #[arg(long, value_name = "N")]
    parallel: Option<String>,
    /// Requests per model that wait for a slot before the server answers 503 (server.queue_size).
    #[arg(long, value_name = "N")]
    queue_size: Option<String>,
    /// Serve on a non-loopback address without an API key (refused otherwise; see docs/security.md).
    #[arg(long)]
    allow_unauthenticated: bool,
}

/// Runs `serve`.
pub fn run(mut options: LoadOptions, args: &ServeArgs) -> anyhow::Result<()> {
    let mut flag = |key: &str, raw: String, name: &str| {
        options.flags.push(FlagSetting { key: key.into(), raw, flag: name.into() });
    };
    if args.cache_persist {
        flag("cache.type", "persistent".into(), "--cache-persist");
    }
    if let Some(bind) = &args.bind {
        flag("server.bind", bind.clone(), "--bind");
    }
    if let Some(port) = &args.port {
        flag("server.port", port.clone(), "--port");
    }
    if !args.models.is_empty() {
        flag("server.preload", args.models.join(","), "--model");
    }
    if let Some(dir) = &args.models_dir {
        flag("models.dir", dir.to_string_lossy().into_owned(), "--models-dir");
    }
    if let Some(key) = &args.api_key {
        flag("server.api_key", key.clone(), "--api-key");
    }
    if let Some(n) = &args.parallel {
        flag("server.parallel", n.clone(), "--parallel");
    }
    if let Some(n) = &args.queue_size {
        flag("server.queue_size", n.clone(), "--queue-size");
    }
    let resolved = config::load(&options)?;
    let keys = ServerKeys::load(&resolved)?;
    refuse_open_bind(&resolved, &keys, args.allow_unauthenticated)?;
    let embedder = semantic_embedder(&resolved)?;
    start(resolved.config, keys, embedder)
}

/// The semantic cache's embedding model, loaded and checked by embedding a probe text, when
/// `cache.semantic.enabled`: a missing model, one without a tokenizer or one whose output is not an
/// embedding is a configuration error naming `cache.semantic.model` and where it was set.
fn semantic_embedder(resolved: &config::Resolved) -> Result<Option<Box<dyn TextEmbedder>>, ConfigError> {
    let config = &resolved.config;
    if !(config.cache.enabled && config.cache.semantic.enabled) {
        return Ok(None);
    }
    let semantic = &config.cache.semantic;
    let max_tokens = usize::try_from(semantic.max_prompt_tokens).unwrap_or(usize::MAX);
    load_embedder(&semantic.model, &config.models.dir, max_tokens).map(Some).map_err(|message| {
        let origin =
            resolved.settings.get("cache.semantic.model").map_or(config::Origin::Default, |s| s.origin.clone());
        ConfigError::one(Problem {
            origin,
            key: Some("cache.semantic.model".into()),
            message,
            hint: Some(format!(
                "name an ONNX text embedding model in models.dir ({}) or give its path, with its tokenizer.json \
                 beside it (`inferno models list` shows the models), or set cache.semantic.enabled = false",
                config.models.dir.display()
            )),
        })
    })
}

#[cfg(feature = "onnx")]
fn load_embedder(
    name: &str,
    dir: &std::path::Path,
    max_tokens: usize,
) -> Result<Box<dyn TextEmbedder>, String> {
    match crate::cache::semantic::embedder::Embedder::for_lookups(name, dir, max_tokens) {
        Ok(embedder) => Ok(Box::new(embedder)),
        Err(e) => Err(format!("{e:#}")),
    }
}

#[cfg(not(feature = "onnx"))]
fn load_embedder(_: &str, _: &std::path::Path, _: usize) -> Result<Box<dyn TextEmbedder>, String> {
    Err("this build of inferno has no ONNX support, which the semantic cache's embedding model needs; \
         rebuild it with the `onnx` cargo feature"
        .into())
}

/// Closed by default: a bind address other than loopback needs an API key, or `--allow-unauthenticated`.
fn refuse_open_bind(
    resolved: &config::Resolved,
    keys: &ServerKeys,
    allowed: bool,
) -> Result<(), ConfigError> {
    let bind = &resolved.config.server.bind;
    let loopback = bind.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback || keys.api.is_some() || allowed {
        return Ok(());
    }
    let origin = resolved.settings.get("server.bind").map_or(config::Origin::Default, |s| s.origin.clone());
    Err(ConfigError::one(Problem {
        origin,
        key: Some("server.bind".into()),
        message: format!(
            "{bind} accepts other machines and server.api_key is not set, so anyone who can reach the port \
             could run models"
        ),
        hint: Some(
            "set server.api_key_file (or INFERNO_API_KEY), bind 127.0.0.1, or pass --allow-unauthenticated"
                .into(),
        ),
    }))
}

#[cfg(feature = "llama")]
fn start(
    config: config::Config,
    keys: ServerKeys,
    embedder: Option<Box<dyn TextEmbedder>>,
) -> anyhow::Result<()> {
    crate::serve::run(config, keys, embedder)
}

#[cfg(not(feature = "llama"))]
fn start(_: config::Config, _: ServerKeys, _: Option<Box<dyn TextEmbedder>>) -> anyhow::Result<()> {
    anyhow::bail!(
        "inferno was built without the `llama` feature, so it cannot serve text models; rebuild with `cargo build --features llama`"
    )
}
