//! `inferno serve`: flags become config settings (so `cache status` and the server agree on every value),
//! then the library's server runs until SIGTERM/SIGINT.

use std::path::PathBuf;

use clap::Args;

use crate::config::{self, FlagSetting, LoadOptions};

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
    let config = config::load(&options)?.config;
    start(config)
}

#[cfg(feature = "llama")]
fn start(config: config::Config) -> anyhow::Result<()> {
    crate::serve::run(config)
}

#[cfg(not(feature = "llama"))]
fn start(_: config::Config) -> anyhow::Result<()> {
    anyhow::bail!(
        "inferno was built without the `llama` feature, so it cannot serve text models; rebuild with `cargo build --features llama`"
    )
}
