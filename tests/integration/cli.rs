//! The command line itself: `--version`, `--help`, completions, usage errors (exit 2), logging to stderr only
//! (`-v`, `INFERNO_LOG_LEVEL`, `--log-format json`), and a closed stdout pipe ending the program quietly.

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;

use serde_json::Value;

use crate::util::{Sandbox, stderr, stdout};

#[test]
fn version_and_help() {
    let sandbox = Sandbox::new();
    let out = sandbox.cmd().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(stdout(&out).trim(), format!("inferno {}", env!("CARGO_PKG_VERSION")));

    let out = sandbox.cmd().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = stdout(&out);
    for text in ["Usage: inferno", "cache", "completions", "--config", "--cache-dir", "--log-format"] {
        assert!(help.contains(text), "--help lacks {text:?}:\n{help}");
    }

    let out = sandbox.cmd().args(["cache", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = stdout(&out);
    for text in ["Usage: inferno cache", "status", "configure"] {
        assert!(help.contains(text), "cache --help lacks {text:?}:\n{help}");
    }

    let out = sandbox.cmd().args(["cache", "configure", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = stdout(&out);
    for text in ["--max-size", "--compression-level", "--set", "model", "response"] {
        assert!(help.contains(text), "cache configure --help lacks {text:?}:\n{help}");
    }
}

#[test]
fn completions_print_a_script_for_each_shell() {
    let sandbox = Sandbox::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = sandbox.cmd().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        assert!(script.len() > 200, "{shell}: script too short: {script:?}");
        assert!(script.contains("inferno"), "{shell} script does not mention inferno");
        assert!(script.contains("configure"), "{shell} script does not complete `cache configure`");
        assert!(out.stderr.is_empty(), "{shell}: {}", stderr(&out));
    }
}

#[test]
fn json_where_nothing_prints_data_is_a_usage_error() {
    let sandbox = Sandbox::new();
    for args in [&["completions", "bash", "--json"][..], &["serve", "--port", "0", "--json"]] {
        let out = sandbox.cmd().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty());
        assert!(stderr(&out).contains("--json"), "{}", stderr(&out));
    }
}

#[test]
fn bad_command_lines_exit_2() {
    let sandbox = Sandbox::new();
    let cases: &[(&[&str], &str)] = &[
        (&["frobnicate"], "unrecognized subcommand 'frobnicate'"),
        (&["cache", "frobnicate"], "unrecognized subcommand 'frobnicate'"),
        (&[], "Usage: inferno"),
        (&["cache", "status", "--bogus"], "--bogus"),
        (&["completions", "tcsh"], "tcsh"),
        (&["-q", "-v", "cache", "status"], "cannot be used with"),
        (&["--log-format", "xml", "cache", "status"], "xml"),
    ];
    for (args, says) in cases {
        let out = sandbox.cmd().args(*args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains(says), "{args:?}: stderr lacks {says:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}: {}", stdout(&out));
    }
}

#[test]
fn bad_log_settings_in_the_environment_exit_2() {
    let sandbox = Sandbox::new();
    for (var, value) in [
        ("INFERNO_LOG_LEVEL", "nonsense"),
        ("INFERNO_LOG_LEVEL", "debug,loud"),
        ("INFERNO_LOG_LEVEL", "inferno=loud"),
        ("INFERNO_LOG_FORMAT", "xml"),
    ] {
        let out = sandbox.cmd().args(["cache", "status"]).env(var, value).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}={value}");
        assert!(stderr(&out).contains(var), "{var}={value}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{var}={value}");
    }
    for value in ["debug", "INFO", "inferno=debug", "warn,inferno=trace", "off"] {
        sandbox.cmd().args(["cache", "status"]).env("INFERNO_LOG_LEVEL", value).assert().success();
    }
}

#[test]
fn debug_logs_go_to_stderr_only() {
    let sandbox = Sandbox::new();
    let project = sandbox.write_project("[cache]\nmax_size_gb = 3\n");

    let out = sandbox.cmd().args(["cache", "status"]).output().unwrap();
    assert!(out.status.success());
    assert!(out.stderr.is_empty(), "no logs by default: {}", stderr(&out));

    let out = sandbox.cmd().args(["-v", "cache", "status", "--json"]).output().unwrap();
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(err.contains("reading config file"), "{err}");
    assert!(err.contains(&project.display().to_string()), "{err}");
    assert!(!stdout(&out).contains("reading config file"));
    let _: Value = serde_json::from_slice(&out.stdout).expect("stdout stays clean JSON under -v");

    let out = sandbox.cmd().args(["cache", "status"]).env("INFERNO_LOG_LEVEL", "debug").output().unwrap();
    assert!(out.status.success());
    assert!(stderr(&out).contains("reading config file"), "{}", stderr(&out));
    assert!(!stdout(&out).contains("reading config file"));

    let out =
        sandbox.cmd().args(["-q", "cache", "status"]).env("INFERNO_LOG_LEVEL", "debug").output().unwrap();
    assert!(out.status.success());
    assert!(out.stderr.is_empty(), "-q wins over INFERNO_LOG_LEVEL: {}", stderr(&out));
}

#[test]
fn json_log_format_prints_one_object_per_line() {
    let sandbox = Sandbox::new();
    let project = sandbox.write_project("[cache]\nmax_size_gb = 3\n");
    for (args, env) in [
        (&["--log-format", "json", "-v", "cache", "status"][..], None),
        (&["-v", "cache", "status"][..], Some(("INFERNO_LOG_FORMAT", "json"))),
    ] {
        let mut cmd = sandbox.cmd();
        cmd.args(args);
        if let Some((var, value)) = env {
            cmd.env(var, value);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(stdout(&out).starts_with("Cache: enabled"), "{args:?}: stdout is the normal text");
        let lines: Vec<Value> = stderr(&out)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{args:?}: {l:?} is not JSON: {e}")))
            .collect();
        let read = lines
            .iter()
            .find(|l| l["fields"]["message"] == "reading config file")
            .unwrap_or_else(|| panic!("{args:?}: no 'reading config file' line in {lines:?}"));
        assert_eq!(read["level"], "DEBUG");
        assert_eq!(read["fields"]["path"], project.display().to_string());
    }
}

/// Starts `inferno <args>` with stdout and stderr piped; `lines` lines of stdout are read before the pipe is
/// closed. Returns the exit status and stderr.
fn close_stdout_early(sandbox: &Sandbox, args: &[&str], lines: usize) -> (std::process::ExitStatus, String) {
    let mut child = sandbox
        .std_command()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn inferno");
    let mut reader = BufReader::new(child.stdout.take().expect("piped stdout"));
    for _ in 0..lines {
        let mut line = String::new();
        reader.read_line(&mut line).expect("read a line");
        assert!(!line.is_empty(), "{args:?}: expected a line of output");
    }
    drop(reader);
    let mut err = String::new();
    child.stderr.take().expect("piped stderr").read_to_string(&mut err).unwrap();
    (child.wait().expect("wait for inferno"), err)
}

#[test]
fn closed_stdout_pipe_is_not_a_panic() {
    let sandbox = Sandbox::new();
    sandbox.write_project("[cache]\nmax_size_gb = 3\n");
    for (args, lines) in [
        (&["cache", "status"][..], 1),
        (&["cache", "status", "--json"][..], 1),
        (&["cache", "status"][..], 0),
        (&["completions", "bash"][..], 1),
        (&["completions", "zsh"][..], 0),
        (&["--help"][..], 0),
    ] {
        let (status, err) = close_stdout_early(&sandbox, args, lines);
        assert!(status.success(), "{args:?} after {lines} line(s): {status}, stderr: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!err.contains("Broken pipe"), "{args:?}: {err}");
    }
}
