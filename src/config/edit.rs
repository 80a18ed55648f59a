//! Writes settings into a TOML config file for `inferno cache configure`, keeping the user's comments,
//! ordering and formatting (toml_edit), and replacing the file atomically (write to a temp file, rename).

use std::io::Write;
use std::path::Path;

use toml_edit::{DocumentMut, Item, Table, TableLike};

use super::error::{ConfigError, Origin, Problem};

/// One key written by [`write_settings`].
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// Dotted key.
    pub key: String,
    /// The value the file had before, as TOML text.
    pub old: Option<String>,
    /// The value written, as TOML text.
    pub new: String,
}

/// Sets each dotted key to its value in the file at `path` (created if missing) and returns what changed.
pub fn write_settings(path: &Path, settings: &[(String, toml::Value)]) -> Result<Vec<Change>, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => return Err(ConfigError::Read { path: path.to_path_buf(), source }),
    };
    let mut doc: DocumentMut = text.parse().map_err(|err: toml_edit::TomlError| {
        ConfigError::one(Problem {
            origin: Origin::in_file(path.to_path_buf(), &text, err.span().map_or(0, |s| s.start)),
            key: None,
            message: format!("TOML syntax error: {}", err.message().trim_end()),
            hint: None,
        })
    })?;
    let mut changes = Vec::new();
    for (key, value) in settings {
        let new = to_edit_value(value);
        let old = set_dotted(&mut doc, key, new.clone()).map_err(|message| {
            ConfigError::one(Problem {
                origin: Origin::in_file(path.to_path_buf(), &text, 0),
                key: Some(key.clone()),
                message,
                hint: None,
            })
        })?;
        let new = value_text(&new);
        if old.as_deref() != Some(new.as_str()) {
            changes.push(Change { key: key.clone(), old, new });
        }
    }
    if !changes.is_empty() {
        atomic_write(path, doc.to_string().as_bytes())
            .map_err(|source| ConfigError::Write { path: path.to_path_buf(), source })?;
    }
    Ok(changes)
}

/// Sets `key` in `doc`, creating tables on the way; returns the old value's text, if any.
fn set_dotted(doc: &mut DocumentMut, key: &str, value: toml_edit::Value) -> Result<Option<String>, String> {
    let parts: Vec<&str> = key.split('.').collect();
    let (leaf, parents) = parts.split_last().expect("keys are never empty");
    let mut table: &mut dyn TableLike = doc.as_table_mut();
    for part in parents {
        if table.get(part).is_none() {
            let mut fresh = Table::new();
            fresh.set_implicit(true);
            table.insert(part, Item::Table(fresh));
        }
        table = table
            .get_mut(part)
            .and_then(Item::as_table_like_mut)
            .ok_or_else(|| format!("`{part}` in the file is a value, not a table; fix the file first"))?;
    }
    match table.get_mut(leaf) {
        Some(item) if item.is_value() => {
            let old = item.as_value().map(value_text);
            let decor = item.as_value().map(|v| v.decor().clone());
            let mut value = value;
            if let Some(decor) = decor {
                *value.decor_mut() = decor;
            }
            *item = Item::Value(value);
            Ok(old)
        }
        Some(_) => Err(format!("`{key}` in the file is a table, not a value; fix the file first")),
        None => {
            table.insert(leaf, Item::Value(value));
            Ok(None)
        }
    }
}

/// A value as TOML text, without the comments and spacing around it.
fn value_text(value: &toml_edit::Value) -> String {
    let mut bare = value.clone();
    bare.decor_mut().clear();
    bare.to_string()
}

fn to_edit_value(value: &toml::Value) -> toml_edit::Value {
    match value {
        toml::Value::String(s) => s.as_str().into(),
        toml::Value::Integer(i) => (*i).into(),
        toml::Value::Float(f) => (*f).into(),
        toml::Value::Boolean(b) => (*b).into(),
        toml::Value::Array(items) => toml_edit::Value::Array(items.iter().map(to_edit_value).collect()),
        other => other.to_string().into(),
    }
}

/// Writes `bytes` to a temp file beside `path` and renames it over `path`, so readers never see half a file.
fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|err| err.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_comments_and_order_and_creates_tables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let original =
            "# my settings\n[cache]\nmax_size_gb = 10 # keep it small\n\n[cache.compression]\nlevel = 6\n";
        std::fs::write(&path, original).unwrap();
        let changes = write_settings(
            &path,
            &[
                ("cache.max_size_gb".into(), toml::Value::Integer(20)),
                ("cache.model.max_models".into(), toml::Value::Integer(3)),
                ("cache.compression.level".into(), toml::Value::Integer(6)),
            ],
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# my settings\n[cache]\nmax_size_gb = 20 # keep it small\n"), "{text}");
        assert!(text.contains("[cache.model]\nmax_models = 3\n"), "{text}");
        assert_eq!(changes.len(), 2, "an unchanged value is not a change: {changes:?}");
        assert_eq!(
            changes[0],
            Change { key: "cache.max_size_gb".into(), old: Some("10".into()), new: "20".into() }
        );
    }

    #[test]
    fn refuses_to_replace_a_table_with_a_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[cache]\nmodel = 3\n").unwrap();
        let err =
            write_settings(&path, &[("cache.model.max_models".into(), toml::Value::Integer(3))]).unwrap_err();
        assert!(err.to_string().contains("is a value, not a table"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "[cache]\nmodel = 3\n");
    }
}
