//! Configuration errors: each problem names where the bad value came from (file:line:column, env var or
//! flag), the key, what is wrong and, where we can tell, what was probably meant.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// Where a setting, or a problem with one, came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Origin {
    /// Inferno's built-in default.
    Default,
    /// A TOML file, at a 1-based line and column.
    File {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
    },
    /// An environment variable.
    Env {
        /// Its name.
        var: String,
    },
    /// A command-line flag.
    Flag {
        /// Its name, e.g. `--cache-dir`.
        flag: String,
    },
    /// Not set anywhere: the value of another key, e.g. a kind's TTL from `cache.default_ttl_hours`.
    Inherited {
        /// The key it comes from.
        from: String,
    },
}

impl Origin {
    /// The origin of a byte offset inside `text`, read from `path`.
    pub fn in_file(path: PathBuf, text: &str, offset: usize) -> Self {
        let offset = offset.min(text.len());
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Origin::File { path, line, column }
    }

    /// A short form for `cache status`: `default`, `path:line`, `env VAR`, `flag --x`.
    pub fn short(&self) -> String {
        match self {
            Origin::Default => "default".to_string(),
            Origin::File { path, line, .. } => format!("{}:{line}", path.display()),
            Origin::Env { var } => format!("env {var}"),
            Origin::Flag { flag } => format!("flag {flag}"),
            Origin::Inherited { from } => format!("inherits {from}"),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("built-in default"),
            Origin::File { path, line, column } => write!(f, "{}:{line}:{column}", path.display()),
            Origin::Env { var } => write!(f, "environment variable {var}"),
            Origin::Flag { flag } => write!(f, "flag {flag}"),
            Origin::Inherited { from } => write!(f, "inherited from `{from}`"),
        }
    }
}

/// One thing wrong with the configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// Where the offending text is.
    pub origin: Origin,
    /// The dotted key, when the problem is about one key.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
    /// What the user probably meant, or what to do.
    pub hint: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.origin)?;
        if let Some(key) = &self.key {
            write!(f, "key `{key}`: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

/// Why the configuration could not be loaded or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// One or more settings are invalid; each problem names its origin and key.
    #[error("{}", ProblemList(.0))]
    Invalid(Vec<Problem>),
    /// A config file named with `--config` does not exist.
    #[error("config file {path} does not exist (create it, or run `inferno cache configure --config {path} ...`)", path = .0.display())]
    Missing(PathBuf),
    /// A config file exists but could not be read.
    #[error("cannot read config file {path}: {source}", path = .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// A config file could not be written by `cache configure`.
    #[error("cannot write config file {path}: {source}", path = .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
}

impl ConfigError {
    /// A single problem.
    pub fn one(problem: Problem) -> Self {
        ConfigError::Invalid(vec![problem])
    }

    /// True for errors in what the user wrote (exit code 2), false for IO failures while writing (exit 1).
    pub fn is_usage(&self) -> bool {
        !matches!(self, ConfigError::Write { .. })
    }
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [one] => write!(f, "invalid configuration: {one}"),
            many => {
                write!(f, "invalid configuration ({} problems):", many.len())?;
                for problem in many {
                    write!(f, "\n  {problem}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_lines_and_columns() {
        let text = "[cache]\nmax_size_gb = 10\n  level = 3\n";
        let at = |needle: &str| Origin::in_file("f.toml".into(), text, text.find(needle).unwrap());
        assert_eq!(at("[cache]"), Origin::File { path: "f.toml".into(), line: 1, column: 1 });
        assert_eq!(at("10"), Origin::File { path: "f.toml".into(), line: 2, column: 15 });
        assert_eq!(at("level"), Origin::File { path: "f.toml".into(), line: 3, column: 3 });
    }

    #[test]
    fn problems_render_on_one_line() {
        let p = Problem {
            origin: Origin::Env { var: "INFERNO_CACHE__X".into() },
            key: Some("cache.x".into()),
            message: "unknown key".into(),
            hint: Some("did you mean `cache.type`?".into()),
        };
        assert_eq!(
            p.to_string(),
            "environment variable INFERNO_CACHE__X: key `cache.x`: unknown key (did you mean `cache.type`?)"
        );
    }
}
