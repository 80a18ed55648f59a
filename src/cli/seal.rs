//! `inferno cache keygen PATH` and `inferno cache rekey --new-key-file PATH`: thin front doors to
//! `cache/seal/key.rs` and `Manager::rekey` (docs/security.md, "Encryption at rest").

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};

use super::output;
use super::transfer::open_cache;
use crate::cache::Access;
use crate::cache::seal::key;
use crate::config::LoadOptions;

/// `cache keygen`.
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Where to write the new key (mode 0600; an existing file is never overwritten).
    pub path: PathBuf,
}

/// `cache rekey`.
#[derive(Debug, clap::Args)]
pub struct RekeyArgs {
    /// The key file to re-seal every value with (make one with `inferno cache keygen PATH`).
    #[arg(long, value_name = "PATH")]
    pub new_key_file: PathBuf,
}

/// Writes a new key file and prints its id.
pub fn keygen(args: &KeygenArgs, json: bool) -> anyhow::Result<()> {
    let id = key::generate(&args.path)?;
    if json {
        return output::print_json(&serde_json::json!({"path": args.path, "key_id": id.to_string()}));
    }
    Ok(output::print(&format!(
        "Wrote a new key to {} (key id {id}). Keep a copy somewhere safe: without it the cache cannot be read.\n\
         Use it with: [cache.security] encryption = \"aes-256-gcm\", key_file = \"{}\"\n",
        args.path.display(),
        args.path.display()
    ))?)
}

/// Re-seals the cache under the new key, with a progress bar on a terminal.
pub fn rekey(options: &LoadOptions, args: &RekeyArgs, json: bool) -> anyhow::Result<()> {
    let cache = open_cache(options, Access::ReadWrite)?;
    let encryption_off = cache.config().security.encryption == crate::config::Encryption::None;
    let bar = if json { ProgressBar::hidden() } else { ProgressBar::new(0) };
    bar.set_style(
        ProgressStyle::with_template("re-sealing [{bar:40}] {pos}/{len} entries ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let report = cache.rekey(&args.new_key_file, &|done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    let report = report?;
    crate::audit::cli::affected(report.resealed, 0);
    if json {
        return output::print_json(&serde_json::to_value(&report)?);
    }
    let also = if encryption_off { " and cache.security.encryption = \"aes-256-gcm\"" } else { "" };
    Ok(output::print(&format!(
        "Re-sealed {} of {} entries under key {}; the old records are deleted.\n\
         Now set cache.security.key_file = \"{}\"{also}: the old key no longer opens this cache.\n",
        report.resealed,
        report.entries,
        report.key_id,
        args.new_key_file.display()
    ))?)
}
