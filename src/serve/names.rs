//! The server's table of the models in `models.dir`: name → model file, found by walking the directory once
//! and walked again only when inotify reports a change, so that a request names its model without a
//! directory walk or a file open.
//!
//! Every directory of the tree is watched, and so is the directory holding each model's real file (a symlink
//! may point outside the tree): creating, deleting, renaming, writing or re-attributing anything there marks
//! the table stale, and the next lookup rebuilds it before answering. A lookup checks for events with one
//! non-blocking `read` of the inotify descriptor, so a change made before a request is seen by that request.
//! Where inotify is not available (no descriptors left, another OS), every lookup walks the directory, as a
//! table that is always stale.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::models::catalog;
use crate::models::file::ModelFile;

/// What a name stands for in `models.dir`.
#[derive(Clone, Debug)]
pub enum Found {
    /// One model file: the path found, and the file identified (`None` when it could not be opened).
    One(PathBuf, Option<ModelFile>),
    /// Several files share the name (in different subdirectories): the name answers nothing.
    Ambiguous,
}

/// The names in `models.dir`, kept current by inotify.
pub struct ModelNames {
    dir: PathBuf,
    watch: Option<OwnedFd>,
    table: RwLock<Arc<HashMap<String, Found>>>,
    rebuilding: Mutex<()>,
}

const EVENTS: u32 = libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_MOVED_FROM
    | libc::IN_MOVED_TO
    | libc::IN_MODIFY
    | libc::IN_ATTRIB
    | libc::IN_CLOSE_WRITE
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF;

impl ModelNames {
    /// The table of `dir`, built now.
    pub fn new(dir: &Path) -> Self {
        // SAFETY: inotify_init1 takes no pointers; a non-negative result is a descriptor this process owns.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        // SAFETY: `fd` was just returned by inotify_init1 and is owned by nothing else.
        let watch = (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) });
        let names = Self {
            dir: dir.to_path_buf(),
            watch,
            table: RwLock::new(Arc::default()),
            rebuilding: Mutex::new(()),
        };
        names.rebuild();
        names
    }

    /// What `name` stands for now; `None` when no model has that name.
    pub fn find(&self, name: &str) -> Option<Found> {
        self.current().get(name).cloned()
    }

    /// The table, rebuilt first when something changed since it was built.
    fn current(&self) -> Arc<HashMap<String, Found>> {
        if self.changed() {
            self.rebuild();
        }
        Arc::clone(&self.table.read())
    }

    /// Whether inotify reported events since the last call (all of them are read); always true without it.
    fn changed(&self) -> bool {
        let Some(fd) = &self.watch else { return true };
        let mut buf = [0u8; 4096];
        let mut any = false;
        loop {
            // SAFETY: `buf` is a live, writable buffer of `buf.len()` bytes for the whole call.
            let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return any;
            }
            any = true;
        }
    }

    /// Walks the directory, watches what it found and swaps the table in. Events that arrive during the walk
    /// stay queued, so the next lookup walks again.
    fn rebuild(&self) {
        let _one_at_a_time = self.rebuilding.lock();
        let mut table: HashMap<String, Found> = HashMap::new();
        let found = catalog::discover(&self.dir).unwrap_or_default();
        let mut dirs = vec![self.dir.clone()];
        for path in found {
            let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let file = ModelFile::open(&path).ok();
            dirs.extend(path.parent().map(Path::to_path_buf));
            dirs.extend(file.as_ref().and_then(|f| f.path.parent()).map(Path::to_path_buf));
            table.entry(name).and_modify(|found| *found = Found::Ambiguous).or_insert(Found::One(path, file));
        }
        if let Some(fd) = &self.watch {
            dirs.extend(subdirectories(&self.dir));
            dirs.sort();
            dirs.dedup();
            for dir in dirs {
                let Ok(path) = CString::new(dir.as_os_str().as_bytes()) else { continue };
                // SAFETY: `path` is a NUL-terminated string that outlives the call. Watching a directory twice
                // returns the same watch; a failure only means that directory's changes go unseen.
                unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), EVENTS) };
            }
        }
        *self.table.write() = Arc::new(table);
    }
}

/// Every directory below `dir` that the catalog's walk enters (hidden ones skipped, symlinks followed).
fn subdirectories(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_name().as_bytes().starts_with(b".") || !path.is_dir() || out.len() > 10_000 {
                continue;
            }
            out.push(path.clone());
            stack.push(path);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(names: &ModelNames, name: &str) -> Option<PathBuf> {
        match names.find(name)? {
            Found::One(path, _) => Some(path),
            Found::Ambiguous => None,
        }
    }

    #[test]
    fn the_table_follows_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.gguf"), b"GGUF....").unwrap();
        let names = ModelNames::new(dir.path());
        assert_eq!(one(&names, "a"), Some(dir.path().join("a.gguf")));
        assert!(names.find("b").is_none());
        assert!(!names.changed(), "nothing changed since the table was built");

        // A new file, in a new subdirectory, is found by the next lookup.
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b.onnx"), b"onnx").unwrap();
        assert_eq!(one(&names, "b"), Some(dir.path().join("sub/b.onnx")));

        // A second `a` in the subdirectory makes the name ambiguous; removing it makes it whole again.
        std::fs::write(dir.path().join("sub/a.gguf"), b"GGUF....").unwrap();
        assert!(matches!(names.find("a"), Some(Found::Ambiguous)));
        std::fs::remove_file(dir.path().join("sub/a.gguf")).unwrap();
        assert_eq!(one(&names, "a"), Some(dir.path().join("a.gguf")));

        // Rewriting a model gives a new stamp; removing it removes the name.
        let before = match names.find("a") {
            Some(Found::One(_, Some(file))) => file.stamp,
            other => panic!("{other:?}"),
        };
        std::fs::write(dir.path().join("a.gguf"), b"GGUF......more").unwrap();
        let after = match names.find("a") {
            Some(Found::One(_, Some(file))) => file.stamp,
            other => panic!("{other:?}"),
        };
        assert_ne!(before, after);
        std::fs::remove_file(dir.path().join("a.gguf")).unwrap();
        assert!(names.find("a").is_none());
    }

    #[test]
    fn a_repointed_symlink_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::write(elsewhere.path().join("one.gguf"), b"GGUF.1").unwrap();
        std::fs::write(elsewhere.path().join("two.gguf"), b"GGUF.22").unwrap();
        std::os::unix::fs::symlink(elsewhere.path().join("one.gguf"), dir.path().join("m.gguf")).unwrap();
        let names = ModelNames::new(dir.path());
        let real = |names: &ModelNames| match names.find("m") {
            Some(Found::One(_, Some(file))) => file.path,
            other => panic!("{other:?}"),
        };
        assert!(real(&names).ends_with("one.gguf"));
        std::fs::remove_file(dir.path().join("m.gguf")).unwrap();
        std::os::unix::fs::symlink(elsewhere.path().join("two.gguf"), dir.path().join("m.gguf")).unwrap();
        assert!(real(&names).ends_with("two.gguf"));
        // The target rewritten in place, outside the models directory, is seen too.
        let stamp = |names: &ModelNames| match names.find("m") {
            Some(Found::One(_, Some(file))) => file.stamp,
            other => panic!("{other:?}"),
        };
        let before = stamp(&names);
        std::fs::write(elsewhere.path().join("two.gguf"), b"GGUF.22222222").unwrap();
        assert_ne!(stamp(&names), before);
    }
}
