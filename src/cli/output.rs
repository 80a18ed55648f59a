//! Writing command output to stdout. A closed pipe (`inferno cache status | head`) is an error value here,
//! never a panic; `main` turns it into a quiet exit.

use std::io::Write;

/// Writes `text` to stdout.
pub fn print(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Writes `value` as pretty JSON and a newline to stdout.
pub fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    Ok(print(&text)?)
}
