//! Owner-only files: everything the cache creates — its directory and every directory under it (0700), every
//! file (0600), backups included — is created with these modes whatever the umask (a umask can only take
//! bits away), and [`check`] / [`tighten`] find and fix anything looser that was created before or by hand
//! (`cache status`, `cache verify [--fix]`).

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The mode of every directory the cache creates.
pub const DIR_MODE: u32 = 0o700;
/// The mode of every file the cache creates.
pub const FILE_MODE: u32 = 0o600;

/// `mkdir -p` with mode 0700 for every directory it creates.
pub fn create_dir_all(path: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(path)
}

/// Open options that create files with mode 0600.
pub fn options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(FILE_MODE);
    options
}

/// Creates (or truncates) `path` for writing, 0600.
pub fn create(path: &Path) -> io::Result<File> {
    options().write(true).create(true).truncate(true).open(path)
}

/// Opens `path` for appending, creating it 0600.
pub fn append(path: &Path) -> io::Result<File> {
    options().append(true).create(true).open(path)
}

/// `std::fs::write`, creating the file 0600.
pub fn write(path: &Path, bytes: impl AsRef<[u8]>) -> io::Result<()> {
    use std::io::Write;
    create(path)?.write_all(bytes.as_ref())
}

/// A file or directory more open than the cache's modes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loose {
    /// Where.
    pub path: PathBuf,
    /// Its permission bits, e.g. `0o755`.
    pub mode: u32,
    /// True for a directory.
    pub dir: bool,
}

impl Loose {
    /// `path (0755, want 0700)`.
    pub fn describe(&self) -> String {
        let want = if self.dir { DIR_MODE } else { FILE_MODE };
        format!("{} ({:04o}, want {want:04o})", self.path.display(), self.mode)
    }
}

/// Every directory (the root included) and file under `root` that group or others may use, in path order.
/// Symbolic links are not followed. A missing root has nothing loose.
pub fn check(root: &Path) -> io::Result<Vec<Loose>> {
    let mut out = Vec::new();
    match std::fs::symlink_metadata(root) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    walk(root, &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn walk(path: &Path, out: &mut Vec<Loose>) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        // Removed while we looked (a rotated or compacted file): nothing to report.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        out.push(Loose { path: path.to_path_buf(), mode, dir: meta.is_dir() });
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            walk(&entry?.path(), out)?;
        }
    }
    Ok(())
}

/// Takes group and other bits off each of `loose` (directories become at most 0700, files 0600); returns
/// how many were changed.
pub fn tighten(loose: &[Loose]) -> io::Result<usize> {
    let mut changed = 0;
    for item in loose {
        let want = item.mode & if item.dir { DIR_MODE } else { FILE_MODE };
        match std::fs::set_permissions(&item.path, std::fs::Permissions::from_mode(want)) {
            Ok(()) => changed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", item.path.display()))),
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn created_private_whatever_the_umask_and_loose_modes_are_found_and_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("cache");
        create_dir_all(&root.join("data/sub")).unwrap();
        write(&root.join("data/sub/f"), b"x").unwrap();
        append(&root.join("log")).unwrap();
        for p in [&root, &root.join("data"), &root.join("data/sub")] {
            assert_eq!(mode(p), 0o700, "{}", p.display());
        }
        assert_eq!(mode(&root.join("data/sub/f")), 0o600);
        assert!(check(&root).unwrap().is_empty());

        std::fs::set_permissions(root.join("data"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(root.join("log"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let loose = check(&root).unwrap();
        assert_eq!(loose.len(), 2, "{loose:?}");
        assert_eq!(loose[0].describe(), format!("{} (0755, want 0700)", root.join("data").display()));
        assert_eq!(tighten(&loose).unwrap(), 2);
        assert!(check(&root).unwrap().is_empty());
        assert_eq!(mode(&root.join("log")), 0o600);
        assert!(check(&dir.path().join("missing")).unwrap().is_empty());
    }
}
