//! `inferno cache train-dictionary`: train a zstd dictionary on the cached responses now, through the running
//! server that holds the cache or on the cache opened here, and print what it measured.

use std::fmt::Write as _;

use crate::config::LoadOptions;

use super::output::{self, bytes};
use super::target::Target;

/// Runs `cache train-dictionary`.
pub fn train(options: &LoadOptions, json: bool) -> anyhow::Result<()> {
    let target = Target::for_options(options)?;
    let spinner = output::spinner("training a dictionary", json);
    let report = target.train_dictionary();
    spinner.finish_and_clear();
    let report = report?;
    if json {
        return output::print_json(&serde_json::to_value(&report)?);
    }
    let ratio = |stored: u64| match stored {
        0 => "n/a".to_string(),
        n => format!("{:.2}x", report.held_out_raw_bytes as f64 / n as f64),
    };
    let mut out = format!(
        "Trained dictionary {} ({}) on {} samples ({}) from {} response entries\n",
        report.id,
        bytes(report.bytes),
        report.samples,
        bytes(report.sample_bytes),
        report.entries_sampled
    );
    writeln!(
        out,
        "On {} held-out samples ({}): {} with it, {} without a dictionary{}",
        report.held_out,
        bytes(report.held_out_raw_bytes),
        ratio(report.held_out_with_dictionary),
        ratio(report.held_out_without_dictionary),
        report
            .held_out_with_previous
            .map_or(String::new(), |p| format!(", {} with the previous one", ratio(p)))
    )?;
    match (report.adopted, report.previous_id) {
        (true, _) => writeln!(
            out,
            "New responses are compressed with it; `inferno cache compact` re-encodes the others."
        )?,
        (false, Some(previous)) => writeln!(
            out,
            "Not adopted: it does no better than the current dictionary {previous}, which stays."
        )?,
        (false, None) => writeln!(out, "Not adopted.")?,
    }
    Ok(output::print(&out)?)
}
