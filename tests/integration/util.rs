//! Test helpers: a fresh sandbox directory per test, an `inferno` command that sees only that sandbox, and
//! small readers for `cache status --json` and for line:column positions in text we wrote.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};

/// The built `inferno` binary.
pub const BIN: &str = env!("CARGO_BIN_EXE_inferno");

/// A temp dir laid out as a tiny machine: `home/`, `xdg-config/`, `xdg-cache/`, `etc/` and `work/` (the cwd).
pub struct Sandbox {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Sandbox {
    /// A fresh, empty sandbox; removed when dropped.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("inferno-it-").tempdir().expect("create temp dir");
        // The binary sees its cwd through getcwd, which resolves symlinks; compare like with like.
        let root = dir.path().canonicalize().expect("canonicalize temp dir");
        for sub in ["home", "work", "etc"] {
            std::fs::create_dir_all(root.join(sub)).expect("create sandbox dir");
        }
        Self { _dir: dir, root }
    }

    /// A path under the root (`rel` is relative to it).
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The working directory of every command (`<root>/work`).
    pub fn work(&self) -> PathBuf {
        self.path("work")
    }

    /// `./.inferno.toml` of the working directory.
    pub fn project_file(&self) -> PathBuf {
        self.path("work/.inferno.toml")
    }

    /// `$XDG_CONFIG_HOME/inferno/config.toml`.
    pub fn user_file(&self) -> PathBuf {
        self.path("xdg-config/inferno/config.toml")
    }

    /// `$INFERNO_SYSTEM_CONFIG`.
    pub fn system_file(&self) -> PathBuf {
        self.path("etc/config.toml")
    }

    /// The default cache directory, `$XDG_CACHE_HOME/inferno`.
    pub fn default_cache_dir(&self) -> PathBuf {
        self.path("xdg-cache/inferno")
    }

    /// Writes `text` to `path` (absolute, or relative to the root), creating folders; returns the path.
    pub fn write(&self, path: impl AsRef<Path>, text: &str) -> PathBuf {
        let path = self.root.join(path);
        std::fs::create_dir_all(path.parent().expect("a file has a parent")).expect("create parent dir");
        std::fs::write(&path, text).expect("write file");
        path
    }

    /// Writes `./.inferno.toml`.
    pub fn write_project(&self, text: &str) -> PathBuf {
        self.write(self.project_file(), text)
    }

    /// Writes the user config file.
    pub fn write_user(&self, text: &str) -> PathBuf {
        self.write(self.user_file(), text)
    }

    /// Writes the system config file.
    pub fn write_system(&self, text: &str) -> PathBuf {
        self.write(self.system_file(), text)
    }

    /// Reads a file (absolute, or relative to the root).
    pub fn read(&self, path: impl AsRef<Path>) -> String {
        let path = self.root.join(path);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// `inferno` as a std command: empty environment except PATH, HOME, XDG dirs and the system config path,
    /// run in `<root>/work`.
    pub fn std_command(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(BIN);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("xdg-config"))
            .env("XDG_CACHE_HOME", self.path("xdg-cache"))
            .env("INFERNO_SYSTEM_CONFIG", self.system_file())
            .current_dir(self.work());
        cmd
    }

    /// `inferno` as an `assert_cmd` command, set up like [`Sandbox::std_command`].
    pub fn cmd(&self) -> assert_cmd::Command {
        assert_cmd::Command::from_std(self.std_command())
    }

    /// Runs `inferno <args> cache status --json` with extra env vars; it must succeed.
    pub fn status(&self, args: &[&str], env: &[(&str, &str)]) -> Status {
        let mut cmd = self.cmd();
        cmd.args(args).args(["cache", "status", "--json"]).envs(env.iter().copied());
        let out = cmd.output().expect("run inferno");
        assert!(
            out.status.success(),
            "inferno {args:?} cache status --json with {env:?} failed ({}):\n{}",
            out.status,
            stderr(&out)
        );
        Status(serde_json::from_slice(&out.stdout).expect("status --json prints JSON"))
    }
}

/// The parsed output of `cache status --json`.
pub struct Status(pub Value);

impl Status {
    /// Every settings entry.
    pub fn settings(&self) -> &Vec<Value> {
        self.0["settings"].as_array().expect("settings is an array")
    }

    /// The settings entry of `key`.
    pub fn setting(&self, key: &str) -> &Value {
        self.settings()
            .iter()
            .find(|s| s["key"] == key)
            .unwrap_or_else(|| panic!("status --json has no key {key}:\n{:#}", self.0))
    }

    /// The effective value of `key`.
    pub fn value(&self, key: &str) -> &Value {
        &self.setting(key)["value"]
    }

    /// The origin of `key`.
    pub fn origin(&self, key: &str) -> &Value {
        &self.setting(key)["origin"]
    }

    /// The `config_files` entry for a role (`system`, `user`, `project`).
    pub fn file(&self, role: &str) -> &Value {
        self.0["config_files"]
            .as_array()
            .expect("config_files is an array")
            .iter()
            .find(|f| f["role"] == role)
            .unwrap_or_else(|| panic!("no {role} file in status:\n{:#}", self.0["config_files"]))
    }
}

/// The JSON origin of a value set in `path` at 1-based `line`, `column`.
pub fn file_origin(path: &Path, line: usize, column: usize) -> Value {
    json!({"kind": "file", "path": path.to_str().expect("utf-8 path"), "line": line, "column": column})
}

/// The JSON origin of a value set by an env var.
pub fn env_origin(var: &str) -> Value {
    json!({"kind": "env", "var": var})
}

/// The JSON origin of a built-in default.
pub fn default_origin() -> Value {
    json!({"kind": "default"})
}

/// The 1-based line and column (in characters) of the first `needle` in `text`.
pub fn pos(text: &str, needle: &str) -> (usize, usize) {
    let offset = text.find(needle).unwrap_or_else(|| panic!("{needle:?} is not in {text:?}"));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The 1-based line of the first `needle` in `text`.
pub fn line_of(text: &str, needle: &str) -> usize {
    pos(text, needle).0
}

/// A command's stdout as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A command's stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The path as a JSON string value.
pub fn path_json(path: &Path) -> Value {
    Value::String(path.to_str().expect("utf-8 path").to_string())
}
