//! The OS page cache and model files: how much of a file is cached in memory, dropping it from the cache,
//! and reading it in ahead of time.
//!
//! llama.cpp memory-maps a GGUF file and reads every weight before its first answer (the version in use maps
//! with `MAP_POPULATE`, so `load` itself reads the file; a lazy mapping would fault the weights in during the
//! first inference), so a model whose file is not in the OS page cache pays for a full read from disk on its
//! first request. [`warm`] (behind `inferno cache warm`) reads the file once, sequentially, so that a later
//! load finds its pages in memory, and hashes it on the way so the same pass yields the file's fingerprint.
//! [`residency`] says how much of a file is cached; [`drop_from_page_cache`] asks the kernel to evict it
//! (the load benchmark uses it to measure cold loads).
//!
//! Everything here is Linux-first: residency comes from `mincore(2)` and dropping from
//! `posix_fadvise(2)`, both only as good as the kernel's answer (see each function). The page cache is
//! shared by every process on the machine, so what one process warms another may evict.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Size of each read in [`warm`]; progress is reported after each one.
const READ_CHUNK: usize = 8 << 20;

/// How much of a file is in the OS page cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Residency {
    /// Bytes of the file whose pages are cached (the last, partial page counts only its file bytes).
    pub resident_bytes: u64,
    /// The file's length.
    pub total_bytes: u64,
}

impl Residency {
    /// The cached share, 0.0 to 1.0 (1.0 for an empty file: nothing is missing).
    pub fn fraction(&self) -> f64 {
        if self.total_bytes == 0 { 1.0 } else { self.resident_bytes as f64 / self.total_bytes as f64 }
    }

    /// True when every page of the file is cached.
    pub fn is_full(&self) -> bool {
        self.resident_bytes == self.total_bytes
    }
}

/// What [`warm`] did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WarmReport {
    /// Bytes read (the file's length, unless it changed during the read).
    pub bytes: u64,
    /// How long the read-and-hash pass took (the residency checks around it are not included).
    #[serde(rename = "elapsed_s", serialize_with = "seconds", deserialize_with = "from_seconds")]
    pub elapsed: Duration,
    /// Residency before the read.
    pub resident_before: Residency,
    /// Residency after the read.
    pub resident_after: Residency,
    /// `blake3:` + the BLAKE3 hex digest of the bytes read, as [`super::file::fingerprint`] computes it.
    pub fingerprint: String,
}

impl WarmReport {
    /// Read throughput in MB/s (10^6 bytes per second); 0.0 when nothing was read or no time passed.
    pub fn mb_per_s(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if self.bytes == 0 || secs == 0.0 { 0.0 } else { self.bytes as f64 / 1e6 / secs }
    }
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn from_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    Duration::try_from_secs_f64(f64::deserialize(d)?).map_err(serde::de::Error::custom)
}

/// How much of the file at `path` is in the OS page cache, from `mincore(2)` on a read-only mapping of it.
/// Mapping the file reads none of it. An empty file is 0 of 0 bytes (and is not mapped).
///
/// Linux reveals page-cache residency only for files the caller owns or could open for writing (a guard
/// against cache side channels); for any other file `mincore` reports every page resident, and so does this.
/// The answer is a snapshot: pages may be evicted or read in right after.
pub fn residency(path: &Path) -> io::Result<Residency> {
    let file = open_regular(path)?;
    let total_bytes = file.metadata().map_err(|e| named(path, e))?.len();
    if total_bytes == 0 {
        return Ok(Residency { resident_bytes: 0, total_bytes: 0 });
    }
    // SAFETY: the mapping is never read or written through, only its address range is passed to mincore,
    // so a concurrent truncation or modification of the file cannot cause undefined behaviour here.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| named(path, e))?;
    let page = page_size();
    let pages = map.len().div_ceil(page);
    let mut vec = vec![0u8; pages];
    // SAFETY: `map` is a live mapping of `map.len()` bytes starting at a page-aligned address (mmap returns
    // page-aligned addresses), and `vec` holds one byte for each of its `pages` pages, as mincore requires.
    let rc = unsafe { libc::mincore(map.as_ptr() as *mut libc::c_void, map.len(), vec.as_mut_ptr().cast()) };
    if rc != 0 {
        return Err(named(path, io::Error::last_os_error()));
    }
    let len = map.len() as u64;
    let resident_bytes = vec
        .iter()
        .enumerate()
        .filter(|(_, v)| **v & 1 == 1)
        .map(|(i, _)| {
            let start = (i * page) as u64;
            (len - start).min(page as u64)
        })
        .sum();
    Ok(Residency { resident_bytes, total_bytes: len })
}

/// Asks the kernel to drop the file at `path` from the OS page cache: `fdatasync`, so that pages written
/// but not yet on disk become clean and droppable, then `posix_fadvise(POSIX_FADV_DONTNEED)` over the whole
/// file. Needs no privileges beyond opening the file for reading.
///
/// The advice is advisory: the kernel keeps pages that are mapped by a process (a loaded model), locked,
/// or still being written back, and filesystems whose files live in memory (tmpfs, ramfs) keep them all.
/// Check with [`residency`] when it matters.
pub fn drop_from_page_cache(path: &Path) -> io::Result<()> {
    let file = open_regular(path)?;
    file.sync_data().map_err(|e| named(path, e))?;
    fadvise(&file, Advice::DontNeed).map_err(|e| named(path, e))
}

/// Reads the whole file at `path` once, sequentially (`POSIX_FADV_SEQUENTIAL`, 8 MiB reads), so that its
/// pages are in the OS page cache for a later load, and hashes it on the way: the report's fingerprint
/// equals [`super::file::fingerprint`] of the same content. Residency is measured before and after.
///
/// `on_progress(done, total)` is called after each 8 MiB read short of the end, with `total` the length when
/// the file was opened, and once at the end with `done == total` == the bytes read (`(0, 0)` for an empty
/// file; the bytes read differ from the opening length only when the file changed during the read).
/// The page cache is shared and may evict the file again at any time, for example when the file is larger
/// than free memory; `resident_after` says what stayed.
pub fn warm(path: &Path, mut on_progress: impl FnMut(u64, u64)) -> io::Result<WarmReport> {
    let resident_before = residency(path)?;
    let mut file = open_regular(path)?;
    let total = file.metadata().map_err(|e| named(path, e))?.len();
    fadvise(&file, Advice::Sequential).map_err(|e| named(path, e))?;
    let started = Instant::now();
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; READ_CHUNK];
    let mut bytes = 0u64;
    loop {
        let n = read_full(&mut file, &mut buf).map_err(|e| named(path, e))?;
        if n == 0 {
            break;
        }
        // A chunk this large hashes faster on all cores than on one, and the kernel's readahead keeps
        // reading the next one meanwhile.
        hasher.update_rayon(&buf[..n]);
        bytes += n as u64;
        if bytes < total {
            on_progress(bytes, total);
        }
    }
    let elapsed = started.elapsed();
    on_progress(bytes, bytes);
    let resident_after = residency(path)?;
    let fingerprint = format!("blake3:{}", hasher.finalize().to_hex());
    Ok(WarmReport { bytes, elapsed, resident_before, resident_after, fingerprint })
}

/// Opens `path` for reading, refusing directories and other non-regular files with an error naming it.
fn open_regular(path: &Path) -> io::Result<File> {
    let file = File::open(path).map_err(|e| named(path, e))?;
    if !file.metadata().map_err(|e| named(path, e))?.is_file() {
        let e = io::Error::new(io::ErrorKind::InvalidInput, "not a regular file");
        return Err(named(path, e));
    }
    Ok(file)
}

/// `e` with the path in front of its message, keeping its kind.
fn named(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Fills `buf` unless the file ends first; returns the bytes read (0 at the end of the file).
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions; _SC_PAGESIZE is always supported on Linux.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).ok().filter(|s| *s > 0).unwrap_or(4096)
}

#[derive(Clone, Copy)]
enum Advice {
    Sequential,
    DontNeed,
}

/// `posix_fadvise` over the whole file.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn fadvise(file: &File, advice: Advice) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let advice = match advice {
        Advice::Sequential => libc::POSIX_FADV_SEQUENTIAL,
        Advice::DontNeed => libc::POSIX_FADV_DONTNEED,
    };
    // SAFETY: the descriptor belongs to `file`, which is open for the whole call; offset 0 and length 0
    // mean the whole file. posix_fadvise touches no memory of ours.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, advice) };
    // posix_fadvise returns the error number instead of setting errno.
    if rc == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(rc)) }
}

/// Without `posix_fadvise` (macOS) the advice is not given: it is only advice.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn fadvise(_file: &File, _advice: Advice) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::models::file::fingerprint;

    /// Writes `len` pseudo-random bytes (xorshift, so no two chunks hash alike) to `dir/name`.
    fn sample_file(dir: &Path, name: &str, len: usize) -> PathBuf {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut bytes = Vec::with_capacity(len + 8);
        while bytes.len() < len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            bytes.extend_from_slice(&state.to_le_bytes());
        }
        bytes.truncate(len);
        let path = dir.join(name);
        std::fs::write(&path, &bytes).unwrap();
        path
    }

    /// Whether `path` is on a filesystem that keeps files in memory (tmpfs, ramfs): there the page cache *is*
    /// the file, and `POSIX_FADV_DONTNEED` drops nothing. Decided by the filesystem's magic number rather
    /// than by trying a drop first, so that a broken drop fails the test on a disk-backed filesystem instead
    /// of being taken for an unsupported one.
    #[cfg(target_os = "linux")]
    fn in_memory_fs(path: &Path) -> bool {
        use std::os::unix::ffi::OsStrExt;
        let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: statfs only writes the struct it is given; an all-zero statfs is a valid value.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: `c_path` is a NUL-terminated string and `st` a writable statfs, both live for the call.
        assert_eq!(unsafe { libc::statfs(c_path.as_ptr(), &mut st) }, 0, "statfs {}", path.display());
        // ramfs's magic number (linux/magic.h), which the libc crate does not define.
        const RAMFS_MAGIC: u64 = 0x8584_58f6;
        let magic = st.f_type as u64;
        magic == libc::TMPFS_MAGIC as u64 || magic == RAMFS_MAGIC
    }

    /// Elsewhere the drop is not done at all (no `posix_fadvise`), so nothing is expected of it.
    #[cfg(not(target_os = "linux"))]
    fn in_memory_fs(_path: &Path) -> bool {
        true
    }

    #[test]
    fn warm_reads_the_whole_file_hashes_it_like_fingerprint_and_reports_progress() {
        let dir = tempfile::tempdir().unwrap();
        // Not a multiple of the page size: the partial last page counts only its file bytes.
        let len = (20 << 20) + 123;
        let path = sample_file(dir.path(), "model.gguf", len);
        let mut calls = Vec::new();
        let report = warm(&path, |done, total| calls.push((done, total))).unwrap();

        assert_eq!(report.bytes, len as u64);
        assert_eq!(report.fingerprint, fingerprint(&path).unwrap());
        assert_eq!(report.resident_after, Residency { resident_bytes: len as u64, total_bytes: len as u64 });
        assert_eq!(residency(&path).unwrap().total_bytes, len as u64);
        assert!(report.mb_per_s() > 0.0, "{report:?}");

        // After each 8 MiB read (8, 16 MiB), then once at the end with everything done.
        assert_eq!(calls, [(8 << 20, len as u64), (16 << 20, len as u64), (len as u64, len as u64)]);

        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["bytes"], len as u64);
        assert!(json["elapsed_s"].as_f64().is_some(), "{json}");
        assert_eq!(json["resident_after"]["total_bytes"], len as u64);
    }

    #[test]
    fn dropping_evicts_the_file_and_warming_brings_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let len = (16 << 20) + 1;
        let path = sample_file(dir.path(), "model.gguf", len);
        let total = len as u64;
        let droppable = !in_memory_fs(&path);
        // Slack for pages the kernel keeps for its own reasons; a working drop leaves next to nothing.
        let low = |r: Residency| r.resident_bytes <= total / 4;

        // The file was just written, so its pages are cached and dirty: the drop has to sync them first.
        assert!(residency(&path).unwrap().resident_bytes > 0);
        drop_from_page_cache(&path).unwrap();
        let dropped = residency(&path).unwrap();
        assert_eq!(dropped.total_bytes, total);
        if droppable {
            assert!(low(dropped), "after the drop: {dropped:?}");
        } else {
            eprintln!("{} is on tmpfs or ramfs: dropping is not checked", path.display());
        }

        let report = warm(&path, |_, _| {}).unwrap();
        if droppable {
            assert!(low(report.resident_before), "{report:?}");
            assert!(report.resident_before.resident_bytes < total, "{report:?}");
        }
        assert!(report.resident_after.is_full(), "{report:?}");
        assert!(residency(&path).unwrap().is_full());
        assert_eq!(report.fingerprint, fingerprint(&path).unwrap());

        // And again: a warmed file drops like a freshly written one.
        drop_from_page_cache(&path).unwrap();
        if droppable {
            let again = residency(&path).unwrap();
            assert!(low(again), "after the second drop: {again:?}");
        }
    }

    #[test]
    fn empty_files_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.gguf");
        std::fs::write(&empty, b"").unwrap();
        assert_eq!(residency(&empty).unwrap(), Residency { resident_bytes: 0, total_bytes: 0 });
        drop_from_page_cache(&empty).unwrap();
        let mut calls = Vec::new();
        let report = warm(&empty, |done, total| calls.push((done, total))).unwrap();
        assert_eq!((report.bytes, report.fingerprint.clone()), (0, fingerprint(&empty).unwrap()));
        assert_eq!(calls, [(0, 0)]);
        assert_eq!(report.mb_per_s(), 0.0);

        let missing = dir.path().join("missing.gguf");
        for err in [
            residency(&missing).unwrap_err(),
            drop_from_page_cache(&missing).unwrap_err(),
            warm(&missing, |_, _| {}).unwrap_err(),
        ] {
            assert_eq!(err.kind(), io::ErrorKind::NotFound);
            assert!(err.to_string().contains("missing.gguf"), "{err}");
        }
        let sub = dir.path().join("models-dir");
        std::fs::create_dir(&sub).unwrap();
        let err = warm(&sub, |_, _| {}).unwrap_err().to_string();
        assert!(err.contains("models-dir") && err.contains("not a regular file"), "{err}");
        assert!(residency(&sub).unwrap_err().to_string().contains("models-dir"));
    }
}
