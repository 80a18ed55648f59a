//! Finding model files: every `*.gguf` / `*.onnx` under a directory, and a model given by name or path.
//!
//! A model's name is its file stem (`/models/tiny.gguf` is `tiny`). Hidden files and directories are
//! skipped; subdirectories are searched (Ollama-style layouts nest models by family).

use std::io;
use std::path::{Path, PathBuf};

use super::file::is_model_path;

/// Why a model could not be found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// The models directory could not be read.
    #[error(
        "{dir}: cannot read the models directory: {source} (set models.dir, INFERNO_MODELS_DIR or --models-dir)"
    )]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// No file and no model of that name.
    #[error("no model `{name}`: not a file, and no {name}.gguf or {name}.onnx in {dir}{known}")]
    NotFound {
        /// What was asked for.
        name: String,
        /// The models directory searched.
        dir: PathBuf,
        /// `; models there: a, b` or empty.
        known: String,
    },
    /// Two files share the stem.
    #[error("model name `{name}` is ambiguous: {} — give the path instead", .paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    Ambiguous {
        /// The name.
        name: String,
        /// The files with that stem.
        paths: Vec<PathBuf>,
    },
}

/// Every model file under `dir` (recursively, hidden entries skipped), sorted by path.
pub fn discover(dir: &Path) -> Result<Vec<PathBuf>, CatalogError> {
    let mut found = Vec::new();
    walk(dir, &mut found).map_err(|source| CatalogError::Dir { dir: dir.to_path_buf(), source })?;
    found.sort();
    Ok(found)
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let kind = entry.file_type()?;
        let is_dir = kind.is_dir() || (kind.is_symlink() && path.is_dir());
        if is_dir {
            walk(&path, found)?;
        } else if is_model_path(&path) {
            found.push(path);
        }
    }
    Ok(())
}

/// The model file `name_or_path` names: an existing file path as is, else a model named so in `dir`.
pub fn resolve(name_or_path: &str, dir: &Path) -> Result<PathBuf, CatalogError> {
    let as_path = Path::new(name_or_path);
    if as_path.is_file() {
        return Ok(as_path.to_path_buf());
    }
    let models = if dir.is_dir() { discover(dir)? } else { Vec::new() };
    let matches: Vec<PathBuf> = models.iter().filter(|p| stem(p) == name_or_path).cloned().collect();
    match matches.len() {
        1 => Ok(matches.into_iter().next().expect("one match")),
        0 => {
            let names: Vec<String> = models.iter().map(|p| stem(p)).collect();
            let known = if names.is_empty() {
                String::new()
            } else {
                format!("; models there: {}", names.join(", "))
            };
            Err(CatalogError::NotFound { name: name_or_path.to_string(), dir: dir.to_path_buf(), known })
        }
        _ => Err(CatalogError::Ambiguous { name: name_or_path.to_string(), paths: matches }),
    }
}

fn stem(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovers_nested_models_and_resolves_names() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("llama/.hidden")).unwrap();
        for f in ["a.gguf", "llama/b.GGUF", "c.onnx", "notes.txt", ".d.gguf", "llama/.hidden/e.gguf"] {
            std::fs::write(root.join(f), b"x").unwrap();
        }
        let found = discover(root).unwrap();
        let rel: Vec<_> = found.iter().map(|p| p.strip_prefix(root).unwrap().to_path_buf()).collect();
        assert_eq!(rel, [PathBuf::from("a.gguf"), "c.onnx".into(), "llama/b.GGUF".into()]);
        assert_eq!(resolve("b", root).unwrap(), root.join("llama/b.GGUF"));
        let direct = root.join("notes.txt");
        assert_eq!(
            resolve(direct.to_str().unwrap(), root).unwrap(),
            direct,
            "an existing path is taken as is"
        );
        let err = resolve("zz", root).unwrap_err().to_string();
        assert!(err.contains("no model `zz`") && err.contains("models there: a, c, b"), "{err}");
        std::fs::write(root.join("a.onnx"), b"x").unwrap();
        assert!(matches!(resolve("a", root), Err(CatalogError::Ambiguous { .. })));
        assert!(matches!(discover(&root.join("missing")), Err(CatalogError::Dir { .. })));
    }
}
