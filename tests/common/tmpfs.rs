//! A small tmpfs mounted by a test, to fill a real filesystem: shared by the engine and end-to-end tests
//! (included with `#[path]`). Mounting needs root (CI runs as root); elsewhere the test says why it did not
//! run, and with `CI` set it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of `size` bytes mounted on a new temp folder; unmounted on drop.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` (after saying why) when it cannot be mounted outside CI.
    pub fn mount(size: u64) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status();
        if status.is_ok_and(|s| s.success()) {
            return Some(Self { dir });
        }
        let msg = "cannot mount a tmpfs (needs root): the full-disk test did not run";
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!("SKIPPED (not run): {msg}\n").as_bytes(),
        );
        None
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Fills the filesystem at `dir` with the file `name` until about `leave` bytes are free; returns the file.
pub fn fill(dir: &Path, name: &str, leave: u64) -> PathBuf {
    let path = dir.join(name);
    let free = free_bytes(dir);
    std::fs::write(&path, vec![0u8; free.saturating_sub(leave) as usize]).unwrap();
    path
}

/// Bytes free on the filesystem holding `dir`.
pub fn free_bytes(dir: &Path) -> u64 {
    let out = Command::new("df").args(["--output=avail", "-B1"]).arg(dir).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().nth(1).unwrap().trim().parse().unwrap()
}
