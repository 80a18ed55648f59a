//! Writing command output to stdout. A closed pipe (`inferno cache status | head`) is an error value here,
//! never a panic; `main` turns it into a quiet exit.

use std::io::Write;

/// Writes `text` to stdout.
pub fn print(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// A byte count for people: `512 B`, `1.5 MB` (SI units).
pub fn bytes(n: u64) -> String {
    bytesize::ByteSize(n).display().si().to_string()
}

/// Writes `value` as pretty JSON and a newline to stdout.
pub fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    Ok(print(&text)?)
}

/// A spinner with `message` on stderr while a long operation runs — only on a terminal and without
/// `--json`; hidden otherwise. Call `finish_and_clear` when done.
pub fn spinner(message: &str, json: bool) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if json || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner().with_message(message.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    bar
}
