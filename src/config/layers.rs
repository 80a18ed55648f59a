//! Turns each configuration source into a layer of `dotted key -> value + origin`, merges the layers
//! (defaults < files < env < flags) and builds the typed [`Config`] from the result.
//!
//! Unknown keys are rejected here, per source, with a "did you mean"; types and ranges are checked once on
//! the merged result and blamed on the source that set the offending value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::error::{ConfigError, Origin, Problem};
use super::keys::{self, Kind};
use super::schema::Config;
use super::units::{parse_duration, parse_size};

/// One key's value and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    /// The value as TOML.
    pub value: toml::Value,
    /// Where it was set.
    pub origin: Origin,
}

/// The settings one source makes, keyed by dotted path.
pub type Layer = Vec<(String, Setting)>;

/// Every key with its built-in default.
pub fn defaults_layer() -> Layer {
    let table = toml::Value::try_from(Config::default()).expect("the default config serialises to TOML");
    let mut out = Vec::new();
    flatten_defaults("", &table, &mut out);
    out
}

fn flatten_defaults(prefix: &str, value: &toml::Value, out: &mut Layer) {
    match value {
        toml::Value::Table(table) => {
            for (key, value) in table {
                let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                flatten_defaults(&path, value, out);
            }
        }
        value => out.push((prefix.to_string(), Setting { value: value.clone(), origin: Origin::Default })),
    }
}

/// The settings in one TOML file. Relative paths in it are resolved against the file's folder.
pub fn file_layer(path: &Path, text: &str) -> Result<Layer, ConfigError> {
    let origin_at = |offset: usize| Origin::in_file(path.to_path_buf(), text, offset);
    let spanned = toml::de::DeTable::parse(text).map_err(|err| {
        ConfigError::one(Problem {
            origin: origin_at(err.span().map_or(0, |s| s.start)),
            key: None,
            message: format!("TOML syntax error: {}", err.message().trim_end()),
            hint: None,
        })
    })?;
    let mut offsets = BTreeMap::new();
    collect_offsets("", spanned.get_ref(), &mut offsets);
    let table: toml::Table = toml::from_str(text).map_err(|err| {
        ConfigError::one(Problem {
            origin: origin_at(err.span().map_or(0, |s| s.start)),
            key: None,
            message: err.message().trim_end().to_string(),
            hint: None,
        })
    })?;

    let base = path.parent().unwrap_or(Path::new("."));
    let mut layer = Vec::new();
    let mut problems = Vec::new();
    walk_file_table("", &table, &mut |key_path, value| {
        let origin = origin_at(offsets.get(key_path).copied().unwrap_or(0));
        match check_file_key(key_path, value) {
            Ok(()) => {
                let value = match (keys::find(key_path).map(|k| k.kind), value) {
                    (Some(Kind::Path), toml::Value::String(s)) => toml::Value::String(resolve_path(s, base)),
                    _ => value.clone(),
                };
                layer.push((key_path.to_string(), Setting { value, origin }));
            }
            Err((message, hint)) => {
                problems.push(Problem { origin, key: Some(key_path.into()), message, hint })
            }
        }
    });
    if problems.is_empty() { Ok(layer) } else { Err(ConfigError::Invalid(problems)) }
}

fn collect_offsets(prefix: &str, table: &toml::de::DeTable<'_>, out: &mut BTreeMap<String, usize>) {
    for (key, value) in table {
        let path =
            if prefix.is_empty() { key.get_ref().to_string() } else { format!("{prefix}.{}", key.get_ref()) };
        out.insert(path.clone(), key.span().start);
        if let toml::de::DeValue::Table(inner) = value.get_ref() {
            collect_offsets(&path, inner, out);
        }
    }
}

/// Calls `visit` for every leaf, and for every table that is not a known section (so it gets reported).
fn walk_file_table(prefix: &str, table: &toml::Table, visit: &mut dyn FnMut(&str, &toml::Value)) {
    for (key, value) in table {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match value {
            toml::Value::Table(inner) if keys::is_section(&path) => walk_file_table(&path, inner, visit),
            value => visit(&path, value),
        }
    }
}

fn check_file_key(path: &str, value: &toml::Value) -> Result<(), (String, Option<String>)> {
    if keys::find(path).is_some() {
        return match value {
            toml::Value::Table(_) => Err(("expected a value, found a table".into(), None)),
            _ => Ok(()),
        };
    }
    if keys::is_section(path) {
        return Err((format!("`{path}` is a table; write its keys under [{path}]"), None));
    }
    let hint = keys::suggest(path).map(|s| format!("did you mean `{s}`?"));
    Err(("unknown key".into(), hint.or_else(|| Some("see docs/configuration.md for every key".into()))))
}

/// The settings made by `INFERNO_*` environment variables: the aliases (`INFERNO_CACHE_DIR`, ...) and the
/// general form `INFERNO_CACHE__SECTION__KEY`. Other `INFERNO_*` variables without `__` are not config keys
/// (`INFERNO_LOG_LEVEL`, ...) and are left alone.
pub fn env_layer(vars: &[(String, String)], cwd: &Path) -> Result<Layer, ConfigError> {
    let mut aliased = Vec::new();
    let mut general = Vec::new();
    let mut problems = Vec::new();
    for (var, raw) in vars {
        let Some(rest) = var.strip_prefix("INFERNO_") else { continue };
        let origin = Origin::Env { var: var.clone() };
        let (key, out) = if let Some(key) = keys::KEYS.iter().find(|k| k.env_alias == Some(var.as_str())) {
            (key.path.to_string(), &mut aliased)
        } else if rest.contains("__") {
            let path = rest.split("__").map(str::to_lowercase).collect::<Vec<_>>().join(".");
            if keys::find(&path).is_none() {
                let hint = keys::suggest(&path)
                    .filter(|s| keys::find(s).is_some())
                    .map(|s| format!("did you mean {}?", keys::general_env_name(&s)));
                problems.push(Problem { origin, key: Some(path), message: "unknown key".into(), hint });
                continue;
            }
            (path, &mut general)
        } else {
            continue;
        };
        match setting_from_text(&key, raw, origin.clone(), cwd) {
            Ok(setting) => out.push((key, setting)),
            Err(problem) => problems.push(problem),
        }
    }
    if !problems.is_empty() {
        return Err(ConfigError::Invalid(problems));
    }
    aliased.sort_by(|a, b| a.0.cmp(&b.0));
    general.sort_by(|a, b| a.0.cmp(&b.0));
    aliased.extend(general);
    Ok(aliased)
}

/// True when `var` sets configuration: an alias such as `INFERNO_CACHE_DIR`, or an `INFERNO_..__..` name.
pub fn is_config_var(var: &str) -> bool {
    var.strip_prefix("INFERNO_")
        .is_some_and(|rest| rest.contains("__") || keys::KEYS.iter().any(|k| k.env_alias == Some(var)))
}

/// A setting made from text (an env var's value or a flag's argument), typed by the key's kind.
pub fn setting_from_text(path: &str, raw: &str, origin: Origin, cwd: &Path) -> Result<Setting, Problem> {
    let problem =
        |message: String| Problem { origin: origin.clone(), key: Some(path.into()), message, hint: None };
    let Some(key) = keys::find(path) else {
        let hint = keys::suggest(path).map(|s| format!("did you mean `{s}`?"));
        return Err(Problem { hint, ..problem("unknown key".into()) });
    };
    let raw = raw.trim();
    if raw.is_empty() && key.kind != Kind::List {
        return Err(problem("is empty; give a value or leave it unset".into()));
    }
    let value = match key.kind {
        Kind::Bool => match raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => toml::Value::Boolean(true),
            "false" | "0" | "no" | "off" => toml::Value::Boolean(false),
            _ => return Err(problem(format!("{raw:?} is not true or false"))),
        },
        Kind::Integer => match raw.parse::<i64>() {
            Ok(n) => toml::Value::Integer(n),
            Err(_) => return Err(problem(format!("{raw:?} is not a whole number"))),
        },
        Kind::Float => match raw.parse::<f64>() {
            Ok(x) if x.is_finite() => toml::Value::Float(x),
            _ => return Err(problem(format!("{raw:?} is not a number"))),
        },
        Kind::Text => toml::Value::String(raw.to_string()),
        Kind::Path => toml::Value::String(resolve_path(raw, cwd)),
        Kind::Size(unit) => {
            let bytes = parse_size(raw, unit).map_err(problem)?;
            whole_units_or_text(bytes, unit, raw)
        }
        Kind::Duration(unit) => {
            let secs = parse_duration(raw, unit).map_err(problem)?.as_secs();
            whole_units_or_text(secs, unit, raw)
        }
        Kind::List => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.into()))
                .collect(),
        ),
    };
    Ok(Setting { value, origin })
}

/// `10GB` for a `_gb` key is stored as `10`; `512MB` stays text, which the key also accepts.
fn whole_units_or_text(amount: u64, unit: u64, raw: &str) -> toml::Value {
    match i64::try_from(amount / unit) {
        Ok(n) if amount.is_multiple_of(unit) => toml::Value::Integer(n),
        _ => toml::Value::String(raw.to_string()),
    }
}

/// Expands a leading `~/` and makes a relative path absolute against `base`; an empty path stays empty (not
/// set).
fn resolve_path(raw: &str, base: &Path) -> String {
    if raw.is_empty() {
        // An empty path means "not set" (`cache.audit.path`, `server.*_key_file`), not the folder.
        return String::new();
    }
    let path = match (raw.strip_prefix("~/"), dirs::home_dir()) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(raw),
    };
    let path = if path.is_absolute() { path } else { base.join(path) };
    path.to_string_lossy().into_owned()
}

/// Merges layers in order; a later layer's setting replaces an earlier one's.
pub fn merge(layers: impl IntoIterator<Item = Layer>) -> BTreeMap<String, Setting> {
    let mut merged = BTreeMap::new();
    for layer in layers {
        for (key, setting) in layer {
            merged.insert(key, setting);
        }
    }
    merged
}

/// Builds and validates the typed config from merged settings, blaming each problem on its origin.
pub fn build(merged: &BTreeMap<String, Setting>) -> Result<Config, ConfigError> {
    let mut root = toml::Table::new();
    for (path, setting) in merged {
        insert_dotted(&mut root, path, setting.value.clone());
    }
    let origin_of = |path: &str| merged.get(path).map_or(Origin::Default, |s| s.origin.clone());
    let config: Config = serde_path_to_error::deserialize(toml::Value::Table(root)).map_err(|err| {
        let path = err.path().to_string();
        let key = path.split('[').next().unwrap_or(&path).to_string();
        ConfigError::one(Problem {
            origin: origin_of(&key),
            key: Some(key),
            message: err.inner().message().trim_end().to_string(),
            hint: None,
        })
    })?;
    let problems: Vec<Problem> = config
        .validate()
        .into_iter()
        .map(|v| {
            let hint = v.related.map(|related| format!("`{related}` is set by {}", origin_of(related)));
            Problem { origin: origin_of(v.key), key: Some(v.key.into()), message: v.message, hint }
        })
        .collect();
    if problems.is_empty() { Ok(config) } else { Err(ConfigError::Invalid(problems)) }
}

fn insert_dotted(root: &mut toml::Table, path: &str, value: toml::Value) {
    let mut table = root;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            table.insert(part.to_string(), value);
            return;
        }
        let entry = table.entry(part.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match entry {
            toml::Value::Table(inner) => table = inner,
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_cover_every_catalogued_key_and_nothing_else() {
        let mut from_struct: Vec<String> = defaults_layer().into_iter().map(|(k, _)| k).collect();
        let mut from_catalogue: Vec<String> = keys::KEYS.iter().map(|k| k.path.to_string()).collect();
        from_struct.sort();
        from_catalogue.sort();
        assert_eq!(from_struct, from_catalogue);
    }

    #[test]
    fn defaults_build_into_the_default_config() {
        let merged = merge([defaults_layer()]);
        assert_eq!(build(&merged).unwrap(), Config::default());
    }

    #[test]
    fn text_is_typed_by_the_key() {
        let cwd = Path::new("/work");
        let flag = || Origin::Flag { flag: "--x".into() };
        let v = |key: &str, raw: &str| setting_from_text(key, raw, flag(), cwd).map(|s| s.value);
        assert_eq!(v("cache.enabled", "yes"), Ok(toml::Value::Boolean(true)));
        assert_eq!(v("cache.max_size_gb", "20GB"), Ok(toml::Value::Integer(20)));
        assert_eq!(v("cache.max_size_gb", "512MB"), Ok(toml::Value::String("512MB".into())));
        assert_eq!(v("cache.default_ttl_hours", "2d"), Ok(toml::Value::Integer(48)));
        assert_eq!(v("cache.base_dir", "rel/dir"), Ok(toml::Value::String("/work/rel/dir".into())));
        assert_eq!(
            v("cache.distributed.cluster_nodes", "a:1, b:2"),
            Ok(toml::Value::Array(vec!["a:1".into(), "b:2".into()]))
        );
        assert!(v("cache.enabled", "maybe").is_err());
        assert!(v("cache.compression.level", "high").is_err());
        assert!(v("cache.max_size_gb", "10XB").is_err());
        assert!(v("cache.nope", "1").unwrap_err().key.as_deref() == Some("cache.nope"));
    }
}
