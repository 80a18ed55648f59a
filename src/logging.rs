//! Logging with `tracing`: the level comes from `-v`/`-q` or `INFERNO_LOG_LEVEL`, the format from
//! `--log-format` or `INFERNO_LOG_FORMAT`. Logs go to stderr so stdout stays clean for data and `--json`.
//!
//! Prompt and response text is only ever logged at debug level or below.

use std::io::IsTerminal;

use anyhow::{Context, bail};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

/// How log lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines, coloured on a terminal.
    Text,
    /// One JSON object per line, for containers and log shippers.
    Json,
}

/// The level used when neither flags nor `INFERNO_LOG_LEVEL` say otherwise.
pub const DEFAULT_LEVEL: &str = "warn";

/// The `redis` client logs every failed reconnect attempt at warn level (hundreds a second while a cluster
/// node is down); the remote tier logs what matters itself, rate-limited. Below `-vv` the client is quieter.
const REDIS_DEFAULT: &str = "redis=error";
const REDIS_VERBOSE: &str = "redis=warn";

/// Installs the global subscriber. `verbose` counts `-v` flags; `quiet` is `-q`.
pub fn init(verbose: u8, quiet: bool, format: Option<LogFormat>) -> anyhow::Result<()> {
    let env_level = std::env::var("INFERNO_LOG_LEVEL").ok().filter(|v| !v.trim().is_empty());
    let directive = match (quiet, verbose) {
        (true, _) => format!("error,{REDIS_DEFAULT}"),
        (false, 0) => match env_level {
            Some(level) => check_env_level(level)?,
            None => format!("{DEFAULT_LEVEL},{REDIS_DEFAULT}"),
        },
        (false, 1) => format!("debug,{REDIS_VERBOSE}"),
        (false, _) => "trace".to_string(),
    };
    let filter = EnvFilter::builder().parse(&directive).with_context(|| {
        format!("INFERNO_LOG_LEVEL={directive:?} is not a log level; use error, warn, info, debug or trace")
    })?;
    let format = match format {
        Some(format) => format,
        None => match std::env::var("INFERNO_LOG_FORMAT").as_deref() {
            Err(_) | Ok("") | Ok("text") => LogFormat::Text,
            Ok("json") => LogFormat::Json,
            Ok(other) => bail!("INFERNO_LOG_FORMAT={other:?} is not a log format; use text or json"),
        },
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

/// `INFERNO_LOG_LEVEL` must be a level (`debug`) or target directives (`inferno=debug,warn`). `EnvFilter` alone
/// would take any bare word as a target name (`nonsense` would mean "trace for target nonsense"), so a part
/// without `=` must be a level.
fn check_env_level(level: String) -> anyhow::Result<String> {
    let bare_word_is_not_a_level = level
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .any(|part| !part.contains('=') && part.parse::<LevelFilter>().is_err());
    if bare_word_is_not_a_level {
        bail!("INFERNO_LOG_LEVEL={level:?} is not a log level; use error, warn, info, debug or trace");
    }
    Ok(level)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_level_must_name_a_level() {
        for good in ["debug", "WARN", "off", "inferno=debug", "warn,inferno=trace", "info,"] {
            assert!(check_env_level(good.into()).is_ok(), "{good}");
        }
        for bad in ["nonsense", "debug,verbose", "inferno"] {
            assert!(check_env_level(bad.into()).is_err(), "{bad}");
        }
    }
}
