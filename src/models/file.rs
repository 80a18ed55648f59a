//! A model file's identity: its canonical path, a cheap stamp that says whether it changed, its format, and
//! its content fingerprint.
//!
//! Two spellings of one path (`./m.gguf`, `/models/../models/m.gguf`, a symlink) canonicalise to one path.
//! The **fingerprint** is `blake3:` + the BLAKE3 hash of the whole file in lower-case hex: it names the model's
//! content in response-cache keys and model-cache keys, so a replaced file never answers with another file's
//! cached responses. Hashing reads the whole file (the file is mapped and hashed on all cores, about the
//! speed of a sequential read); callers keep the result with the [`FileStamp`] it was computed for and
//! recompute only when the stamp changes.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Why a model file could not be identified.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelFileError {
    /// The file could not be found, opened or read.
    #[error("{path}: cannot read model file: {source}")]
    Io {
        /// The path as given.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The path is a directory or another non-regular file.
    #[error("{path}: not a regular file (give the path of a .gguf or .onnx model file)")]
    NotAFile {
        /// The path as given.
        path: PathBuf,
    },
    /// Neither a GGUF file (by its magic) nor a `.onnx` file (by its extension).
    #[error(
        "{path}: not a model file: expected a GGUF file (starting with \"GGUF\") or an ONNX file (*.onnx)"
    )]
    UnknownFormat {
        /// The path as given.
        path: PathBuf,
    },
}

/// The model formats inferno runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelFormat {
    /// GGUF, run by llama.cpp.
    Gguf,
    /// ONNX, run by ONNX Runtime.
    Onnx,
}

impl ModelFormat {
    /// `gguf` or `onnx`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gguf => "gguf",
            Self::Onnx => "onnx",
        }
    }
}

/// What changes when a file is replaced or rewritten: size, modification time, inode and device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileStamp {
    /// Length in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i128,
    /// Inode number.
    pub inode: u64,
    /// Device number.
    pub device: u64,
}

impl FileStamp {
    /// The stamp of a file with metadata `meta`.
    pub(crate) fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            size: meta.len(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            inode: meta.ino(),
            device: meta.dev(),
        }
    }
}

/// A model file on disk, identified but not read beyond its first bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModelFile {
    /// The canonical absolute path (symlinks and `..` resolved).
    pub path: PathBuf,
    /// The file's stamp when it was identified.
    pub stamp: FileStamp,
    /// The file's format.
    pub format: ModelFormat,
}

impl ModelFile {
    /// Canonicalises `path`, stats it and detects its format (GGUF by magic, ONNX by `.onnx` extension).
    pub fn open(path: &Path) -> Result<Self, ModelFileError> {
        let io_err = |source| ModelFileError::Io { path: path.to_path_buf(), source };
        let canonical = std::fs::canonicalize(path).map_err(io_err)?;
        let meta = std::fs::metadata(&canonical).map_err(io_err)?;
        if !meta.is_file() {
            return Err(ModelFileError::NotAFile { path: path.to_path_buf() });
        }
        let mut magic = [0u8; 4];
        let mut file = File::open(&canonical).map_err(io_err)?;
        let read = read_up_to(&mut file, &mut magic).map_err(io_err)?;
        let format = if read == 4 && &magic == b"GGUF" {
            ModelFormat::Gguf
        } else if has_extension(&canonical, "onnx") {
            ModelFormat::Onnx
        } else if has_extension(&canonical, "gguf") {
            // A damaged .gguf file: the GGUF reader names what is wrong with it.
            ModelFormat::Gguf
        } else {
            return Err(ModelFileError::UnknownFormat { path: path.to_path_buf() });
        };
        Ok(Self { path: canonical, stamp: FileStamp::of(&meta), format })
    }

    /// The file name (`tiny.gguf`), used as the name cache entries match against `--pattern`.
    pub fn file_name(&self) -> String {
        self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }

    /// The model's default name: the file stem (`tiny.gguf` → `tiny`).
    pub fn stem(&self) -> String {
        self.path.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }

    /// The stamp the file has now (an error when it is gone).
    pub fn current_stamp(&self) -> Result<FileStamp, ModelFileError> {
        std::fs::metadata(&self.path)
            .map(|m| FileStamp::of(&m))
            .map_err(|source| ModelFileError::Io { path: self.path.clone(), source })
    }

    /// Hashes the whole file: `blake3:<64 hex>`.
    pub fn fingerprint(&self) -> Result<String, ModelFileError> {
        fingerprint(&self.path).map_err(|source| ModelFileError::Io { path: self.path.clone(), source })
    }
}

/// `blake3:` + the BLAKE3 hex digest of the file at `path` (memory-mapped, hashed on all cores).
pub fn fingerprint(path: &Path) -> io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_mmap_rayon(path)?;
    Ok(format!("blake3:{}", hasher.finalize().to_hex()))
}

/// True when `path` is a file inferno can run, judged by extension (`.gguf`, `.onnx`, any case).
pub fn is_model_path(path: &Path) -> bool {
    has_extension(path, "gguf") || has_extension(path, "onnx")
}

fn has_extension(path: &Path, ext: &str) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::gguf::tiny::write_tiny_llama;

    #[test]
    fn two_spellings_are_one_file_and_the_fingerprint_follows_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        write_tiny_llama(&path).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let other = dir.path().join("sub/../tiny.gguf");
        let link = dir.path().join("link.gguf");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let a = ModelFile::open(&path).unwrap();
        assert_eq!(a, ModelFile::open(&other).unwrap());
        assert_eq!(a, ModelFile::open(&link).unwrap());
        assert_eq!(
            (a.format, a.stem().as_str(), a.file_name().as_str()),
            (ModelFormat::Gguf, "tiny", "tiny.gguf")
        );

        let bytes = std::fs::read(&path).unwrap();
        let expected = format!("blake3:{}", blake3::hash(&bytes).to_hex());
        assert_eq!(a.fingerprint().unwrap(), expected);
        let mut changed = bytes.clone();
        *changed.last_mut().unwrap() ^= 1;
        std::fs::write(&path, &changed).unwrap();
        assert_ne!(a.fingerprint().unwrap(), expected);
        assert_ne!(a.current_stamp().unwrap(), a.stamp, "a rewrite changes the stamp");
    }

    #[test]
    fn formats_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let onnx = dir.path().join("m.onnx");
        std::fs::write(&onnx, b"\x08\x07").unwrap();
        assert_eq!(ModelFile::open(&onnx).unwrap().format, ModelFormat::Onnx);
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, b"hello").unwrap();
        let err = ModelFile::open(&text).unwrap_err().to_string();
        assert!(err.contains("notes.txt") && err.contains("not a model file"), "{err}");
        let err = ModelFile::open(&dir.path().join("missing.gguf")).unwrap_err().to_string();
        assert!(err.contains("missing.gguf"), "{err}");
        assert!(matches!(ModelFile::open(dir.path()), Err(ModelFileError::NotAFile { .. })));
        assert!(is_model_path(Path::new("a/B.GGUF")) && !is_model_path(Path::new("a.txt")));
    }
}
