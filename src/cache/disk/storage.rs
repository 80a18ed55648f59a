//! The storage seam under the disk tier: every file operation of segments, hints, quarantine, compaction and
//! the `data/` swap goes through a [`Storage`], so tests can run the engine on a filesystem that loses power
//! or fails writes (`storage_mem.rs`) while production uses [`RealFs`]. The shape follows redb's
//! `StorageBackend`: open/create, append, read at an offset, fsync a file or a directory, rename, remove,
//! list and length — nothing the engine does not use. Files and directories are created owner-only
//! (src/cache/private.rs).
//!
//! The writer lock (`lock.rs`) stays on the real filesystem: it is a process lock, not data.

use std::fmt::Debug;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// Read-only bytes of a whole file, as [`Storage::map`] gives them (a memory map for [`RealFs`]).
pub type Mapped = Box<dyn AsRef<[u8]> + Send + Sync>;

/// One open file.
pub trait StorageFile: Send + Sync + Debug {
    /// Appends all of `bytes` at the end of the file. On failure a prefix of them may have been written.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Fills `buf` from `offset`; fails when the file ends first.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Makes the file's data and length durable (`fdatasync`).
    fn sync(&self) -> io::Result<()>;
    /// Cuts (or extends) the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// The file's length.
    fn size(&self) -> io::Result<u64>;
}

/// The file operations the disk tier uses. Paths are absolute or relative to the process, as given.
pub trait Storage: Send + Sync + Debug {
    /// Creates `path` for appending; fails with `AlreadyExists` when it exists.
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Creates or truncates `path` for appending.
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Opens an existing file for appending.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Opens an existing file for reading.
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// The whole file, mapped or copied; the bytes must not change while held (sealed files only).
    fn map(&self, path: &Path) -> io::Result<Mapped>;
    /// Lets this process's memory drop the pages of a mapping from [`Storage::map`]; they are read again
    /// from the file when next touched. A hint for long scans (`verify`) that touch every page once.
    fn release(&self, _map: &Mapped) {}
    /// The whole file, read into memory.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// The length of a file.
    fn len(&self, path: &Path) -> io::Result<u64>;
    /// Names of the entries of a directory (files and folders), in no particular order.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Whether a file or directory exists at `path`.
    fn exists(&self, path: &Path) -> bool;
    /// Whether `path` is a directory.
    fn is_dir(&self, path: &Path) -> bool;
    /// Renames a file or a directory, replacing a file at `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Removes a directory and everything in it.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// `mkdir -p`, owner-only.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creates, renames, removes in it) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
}

/// Writes `bytes` to `path` whole and durably: a `.tmp` sibling written, fsynced and renamed over `path`.
/// The rename itself is durable once the caller fsyncs the directory.
pub fn write_file_synced(storage: &dyn Storage, path: &Path, tmp: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = storage.create(tmp)?;
    file.append(bytes)?;
    file.sync()?;
    storage.rename(tmp, path)
}

/// The real filesystem, used in production.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

impl RealFs {
    /// A shared handle, what [`super::StoreOptions::new`] uses.
    pub fn shared() -> Arc<dyn Storage> {
        Arc::new(RealFs)
    }
}

/// A file of the real filesystem.
#[derive(Debug)]
pub struct RealFile(File);

impl StorageFile for RealFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes)
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }
    fn sync(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
}

fn boxed(file: File) -> Box<dyn StorageFile> {
    Box::new(RealFile(file))
}

impl Storage for RealFs {
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        crate::cache::private::options().create_new(true).append(true).open(path).map(boxed)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        crate::cache::private::create(path).map(boxed)
    }
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        std::fs::OpenOptions::new().append(true).open(path).map(boxed)
    }
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        File::open(path).map(boxed)
    }
    fn map(&self, path: &Path) -> io::Result<Mapped> {
        Ok(Box::new(super::segment::map_file(path)?))
    }
    fn release(&self, map: &Mapped) {
        let bytes = (**map).as_ref();
        if bytes.is_empty() {
            return;
        }
        // SAFETY: `map` is a read-only shared file mapping made by `map` above (page-aligned at its start);
        // MADV_DONTNEED only drops this process's page-table entries for it, and the next access reads the
        // same, unchanged file pages again (sealed segments are never written in place).
        unsafe {
            libc::madvise(bytes.as_ptr() as *mut libc::c_void, bytes.len(), libc::MADV_DONTNEED);
        }
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }
    fn len(&self, path: &Path) -> io::Result<u64> {
        Ok(std::fs::metadata(path)?.len())
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        std::fs::read_dir(dir)?.map(|e| Ok(e?.file_name().to_string_lossy().into_owned())).collect()
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(path)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        crate::cache::private::create_dir_all(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }
}
