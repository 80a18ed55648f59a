//! The writer lock: one process at a time may write a cache directory. The lock is an OS file lock
//! (`flock`) on `LOCK`, which the kernel releases when the process dies, even by `kill -9`; the file also
//! holds the owner's pid so a second writer can be told who has it.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

use super::DiskError;

/// Name of the lock file in the cache directory.
pub const LOCK_FILE: &str = "LOCK";

/// A held writer lock; released on drop.
#[derive(Debug)]
pub struct WriterLock {
    _file: File,
}

impl WriterLock {
    /// Takes the lock on `dir`, or fails with [`DiskError::Locked`] naming the pid that holds it.
    pub fn acquire(dir: &Path) -> Result<Self, DiskError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| DiskError::Io { path: path.clone(), source };
        let mut file = crate::cache::private::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let pid = text.trim().parse().ok();
                return Err(DiskError::Locked { dir: dir.to_path_buf(), pid });
            }
            Err(TryLockError::Error(source)) => return Err(io(source)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(Self { _file: file })
    }
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        // Unlock explicitly rather than rely on the close: a child process this one is spawning holds a
        // copy of the descriptor until its exec, and the lock would last as long as that copy.
        let _ = self._file.unlock();
    }
}

/// The pid in `dir`'s lock file when a live process holds the lock, else `None`.
pub fn holder(dir: &Path) -> Option<u32> {
    let path = dir.join(LOCK_FILE);
    let mut file = File::open(&path).ok()?;
    match file.try_lock_shared() {
        Ok(()) => None,
        Err(_) => {
            let mut text = String::new();
            file.read_to_string(&mut text).ok()?;
            text.trim().parse().ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_writer_is_refused_with_the_pid() {
        let dir = tempfile::tempdir().unwrap();
        let lock = WriterLock::acquire(dir.path()).unwrap();
        match WriterLock::acquire(dir.path()) {
            Err(DiskError::Locked { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected Locked, got {other:?}"),
        }
        assert_eq!(holder(dir.path()), Some(std::process::id()));
        drop(lock);
        assert_eq!(holder(dir.path()), None);
        WriterLock::acquire(dir.path()).unwrap();
    }
}
