//! The `inferno` binary: parse, dispatch, print any error once, pick the exit code.
//!
//! Exit codes: 0 success; 1 runtime failure; 2 usage or configuration error (bad flag, bad config value).

use std::process::ExitCode;

use clap::Parser;
use inferno::cli::{self, Cli, UsageError};
use inferno::config::ConfigError;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(err) = inferno::logging::init(cli.global.verbose, cli.global.quiet, cli.global.log_format) {
        eprintln!("inferno: {err:#}");
        return ExitCode::from(2);
    }
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("inferno: {err:#}");
            ExitCode::from(exit_code(&err))
        }
    }
}

fn exit_code(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<UsageError>().is_some() {
        return 2;
    }
    match err.downcast_ref::<ConfigError>() {
        Some(config) if config.is_usage() => 2,
        _ => 1,
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}
