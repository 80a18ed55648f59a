//! Configuration: finds the config files, layers them with env vars and flags, and hands out one
//! validated [`Config`] together with where each value came from.
//!
//! Layering, lowest to highest: built-in defaults < `/etc/inferno/config.toml` (or `$INFERNO_SYSTEM_CONFIG`)
//! < `$XDG_CONFIG_HOME/inferno/config.toml` < `./.inferno.toml` (or `--config PATH`) < `INFERNO_*` env vars
//! < command-line flags. Nothing here knows about clap: flags arrive as [`FlagSetting`]s.

mod alerting;
mod edit;
mod error;
pub mod inherit;
pub mod keys;
mod layers;
mod schema;
pub mod secrets;
mod semantic;
pub mod units;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use alerting::*;
pub use edit::{Change, write_settings};
pub use error::{ConfigError, Origin, Problem};
pub use layers::{Setting, setting_from_text};
pub use schema::*;
pub use secrets::{Secret, ServerKeys, redact_node};
pub use semantic::{MAX_PROMPT_TOKENS_LIMIT, SemanticCacheConfig};

/// The file name looked for in the working directory.
pub const PROJECT_FILE: &str = ".inferno.toml";
/// The env var that names the config file, like `--config`.
pub const CONFIG_ENV: &str = "INFERNO_CONFIG";
/// The system-wide file, unless `INFERNO_SYSTEM_CONFIG` names another.
pub const SYSTEM_FILE: &str = "/etc/inferno/config.toml";

/// A value given on the command line for one key.
#[derive(Clone, Debug)]
pub struct FlagSetting {
    /// Dotted key.
    pub key: String,
    /// The flag's argument as typed.
    pub raw: String,
    /// The flag, e.g. `--cache-dir`.
    pub flag: String,
}

/// What to load.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// `--config PATH`: replaces `./.inferno.toml` and must exist.
    pub config_file: Option<PathBuf>,
    /// When true, a missing `--config` file is treated as empty (used by `cache configure`, which creates it).
    pub allow_missing_config_file: bool,
    /// The working directory; `./.inferno.toml` and relative paths are resolved against it.
    pub cwd: PathBuf,
    /// The process environment (passed in so tests and servers can control it).
    pub env: Vec<(String, String)>,
    /// Settings made by flags, highest priority.
    pub flags: Vec<FlagSetting>,
}

impl LoadOptions {
    /// Options for this process: its cwd and environment. `INFERNO_CONFIG=PATH` names the config file the
    /// way `--config PATH` does (the flag wins when both are given).
    pub fn from_process() -> std::io::Result<Self> {
        let mut options =
            Self { cwd: std::env::current_dir()?, env: std::env::vars().collect(), ..Self::default() };
        options.config_file = options.env_var(CONFIG_ENV).map(PathBuf::from);
        Ok(options)
    }

    fn env_var(&self, name: &str) -> Option<&str> {
        self.env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }

    /// The config files consulted, lowest priority first.
    pub fn files(&self) -> Vec<ConfigFile> {
        let system =
            self.env_var("INFERNO_SYSTEM_CONFIG").map_or_else(|| PathBuf::from(SYSTEM_FILE), PathBuf::from);
        let user = self
            .env_var("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| self.env_var("HOME").map(|h| Path::new(h).join(".config")))
            .or_else(dirs::config_dir)
            .map(|dir| dir.join("inferno").join("config.toml"));
        let project = match &self.config_file {
            Some(path) => self.cwd.join(path),
            None => self.cwd.join(PROJECT_FILE),
        };
        let mut files = vec![ConfigFile::new(system, FileRole::System)];
        files.extend(user.map(|path| ConfigFile::new(path, FileRole::User)));
        files.push(ConfigFile::new(project, FileRole::Project));
        files
    }
}

/// Which layer a config file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileRole {
    /// `/etc/inferno/config.toml`.
    System,
    /// `$XDG_CONFIG_HOME/inferno/config.toml`.
    User,
    /// `./.inferno.toml` or `--config PATH`.
    Project,
}

/// A config file and whether it was found.
#[derive(Clone, Debug, Serialize)]
pub struct ConfigFile {
    /// Where it is looked for.
    pub path: PathBuf,
    /// Its layer.
    pub role: FileRole,
    /// True when it exists and was read.
    pub loaded: bool,
}

impl ConfigFile {
    fn new(path: PathBuf, role: FileRole) -> Self {
        Self { path, role, loaded: false }
    }
}

/// The effective configuration and the origin of every value.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The typed, validated configuration.
    pub config: Config,
    /// Every key's effective value and origin, by dotted path.
    pub settings: BTreeMap<String, Setting>,
    /// The files consulted.
    pub files: Vec<ConfigFile>,
}

/// Loads and validates the configuration from all layers.
pub fn load(options: &LoadOptions) -> Result<Resolved, ConfigError> {
    let mut files = options.files();
    let mut layers = vec![layers::defaults_layer()];
    let mut problems = Vec::new();
    for file in &mut files {
        let text = match std::fs::read_to_string(&file.path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                if file.role == FileRole::Project
                    && options.config_file.is_some()
                    && !options.allow_missing_config_file
                {
                    return Err(ConfigError::Missing(file.path.clone()));
                }
                continue;
            }
            Err(source) => return Err(ConfigError::Read { path: file.path.clone(), source }),
        };
        file.loaded = true;
        tracing::debug!(path = %file.path.display(), role = ?file.role, "reading config file");
        match layers::file_layer(&file.path, &text) {
            Ok(layer) => layers.push(layer),
            Err(ConfigError::Invalid(found)) => problems.extend(found),
            Err(other) => return Err(other),
        }
    }
    match layers::env_layer(&options.env, &options.cwd) {
        Ok(layer) => layers.push(layer),
        Err(ConfigError::Invalid(found)) => problems.extend(found),
        Err(other) => return Err(other),
    }
    let mut flag_layer = Vec::new();
    for flag in &options.flags {
        let origin = Origin::Flag { flag: flag.flag.clone() };
        match setting_from_text(&flag.key, &flag.raw, origin, &options.cwd) {
            Ok(setting) => flag_layer.push((flag.key.clone(), setting)),
            Err(problem) => problems.push(problem),
        }
    }
    layers.push(flag_layer);
    if !problems.is_empty() {
        return Err(ConfigError::Invalid(problems));
    }
    let mut settings = layers::merge(layers);
    inherit::ttls(&mut settings);
    let config = layers::build(&settings)?;
    Ok(Resolved { config, settings, files })
}

/// What `configure` wrote.
#[derive(Clone, Debug)]
pub struct Configured {
    /// The file written.
    pub path: PathBuf,
    /// Keys whose value changed.
    pub changes: Vec<Change>,
    /// Keys written to the file whose effective value still comes from a higher layer (env, flag).
    pub overridden: Vec<(String, Origin)>,
}

/// Validates `settings` on top of the current configuration and writes them into the project config file
/// (`./.inferno.toml` or `--config`). Nothing is written when any value is invalid.
pub fn configure(options: &LoadOptions, settings: &[FlagSetting]) -> Result<Configured, ConfigError> {
    let mut with_new = options.clone();
    with_new.allow_missing_config_file = true;
    with_new.flags.extend_from_slice(settings);
    let resolved = load(&with_new)?;
    // The file must also hold up without the env vars and flags above it now, or every later command run
    // without them would fail on what we wrote.
    let mut files_only = with_new.clone();
    files_only.env.retain(|(var, _)| !layers::is_config_var(var));
    files_only.flags = settings.to_vec();
    load(&files_only)?;
    let path = with_new.files().pop().expect("the project file is always listed").path;
    let typed: Vec<(String, toml::Value)> =
        settings.iter().map(|s| (s.key.clone(), resolved.settings[&s.key].value.clone())).collect();
    let changes = write_settings(&path, &typed)?;

    let mut after = options.clone();
    after.allow_missing_config_file = true;
    let now = load(&after)?;
    let overridden = settings
        .iter()
        .filter_map(|s| {
            let origin = &now.settings[&s.key].origin;
            let from_file = matches!(origin, Origin::File { path: p, .. } if *p == path);
            (!from_file).then(|| (s.key.clone(), origin.clone()))
        })
        .collect();
    Ok(Configured { path, changes, overridden })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(dir: &Path) -> LoadOptions {
        LoadOptions {
            cwd: dir.to_path_buf(),
            env: vec![
                ("HOME".into(), dir.display().to_string()),
                ("INFERNO_SYSTEM_CONFIG".into(), dir.join("system.toml").display().to_string()),
            ],
            ..LoadOptions::default()
        }
    }

    #[test]
    fn each_layer_overrides_the_one_below() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("system.toml"), "[cache]\nmax_size_gb = 1\ndefault_ttl_hours = 1\n").unwrap();
        std::fs::create_dir_all(d.join(".config/inferno")).unwrap();
        std::fs::write(d.join(".config/inferno/config.toml"), "[cache]\nmax_size_gb = 2\n").unwrap();
        std::fs::write(d.join(".inferno.toml"), "[cache]\nmax_size_gb = 3\n").unwrap();
        let mut opts = options(d);
        let size = |opts: &LoadOptions| load(opts).unwrap().config.cache.max_size_gb.bytes() / units::GB;
        assert_eq!(size(&opts), 3);
        opts.env.push(("INFERNO_CACHE__MAX_SIZE_GB".into(), "4".into()));
        assert_eq!(size(&opts), 4);
        opts.flags.push(FlagSetting {
            key: "cache.max_size_gb".into(),
            raw: "5GB".into(),
            flag: "--max-size".into(),
        });
        let resolved = load(&opts).unwrap();
        assert_eq!(resolved.config.cache.max_size_gb.bytes(), 5 * units::GB);
        assert_eq!(resolved.settings["cache.max_size_gb"].origin, Origin::Flag { flag: "--max-size".into() });
        assert_eq!(
            resolved.settings["cache.default_ttl_hours"].origin,
            Origin::File { path: d.join("system.toml"), line: 3, column: 1 }
        );
        assert_eq!(resolved.settings["cache.type"].origin, Origin::Default);
    }

    #[test]
    fn relative_base_dir_in_a_file_is_relative_to_that_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".inferno.toml"), "[cache]\nbase_dir = \"store\"\n").unwrap();
        let resolved = load(&options(dir.path())).unwrap();
        assert_eq!(resolved.config.cache.base_dir, dir.path().join("store"));
    }
}
