//! `inferno cache status`: the effective configuration, where each value came from (like
//! `git config --show-origin`), and which settings are stored but not active yet.

use std::fmt::Write;

use serde_json::json;

use crate::config::{self, LoadOptions, keys};

use super::output;

/// Runs `cache status`.
pub fn run(options: &LoadOptions, json: bool) -> anyhow::Result<()> {
    let resolved = config::load(options)?;
    let rows: Vec<(&keys::Key, String, &config::Origin)> = keys::KEYS
        .iter()
        .map(|key| {
            let setting = &resolved.settings[key.path];
            (key, setting.value.to_string(), &setting.origin)
        })
        .collect();

    if json {
        let settings: Vec<_> = rows
            .iter()
            .map(|(key, _, origin)| {
                json!({
                    "key": key.path,
                    "value": resolved.settings[key.path].value,
                    "origin": origin,
                    "active": key.active,
                })
            })
            .collect();
        return output::print_json(&json!({ "config_files": resolved.files, "settings": settings }));
    }

    let mut out = String::new();
    writeln!(out, "Config files, lowest priority first:")?;
    for file in &resolved.files {
        let state = if file.loaded { "loaded" } else { "not found" };
        writeln!(
            out,
            "  {:<8} {}  ({state})",
            format!("{:?}", file.role).to_lowercase(),
            file.path.display()
        )?;
    }
    writeln!(out)?;
    let key_width = rows.iter().map(|(k, _, _)| k.path.len()).max().unwrap_or(0);
    let value_width = rows.iter().map(|(_, v, _)| v.len()).max().unwrap_or(0).min(40);
    writeln!(out, "Effective settings (value, then where it came from):")?;
    for (key, value, origin) in &rows {
        let mark = if key.active { "" } else { "  *" };
        writeln!(out, "  {:<key_width$}  {:<value_width$}  {}{mark}", key.path, value, origin.short())?;
    }
    if rows.iter().any(|(key, _, _)| !key.active) {
        writeln!(out)?;
        writeln!(
            out,
            "* not active yet: stored and validated, but the behaviour behind it is not built yet."
        )?;
    }
    Ok(output::print(&out)?)
}
