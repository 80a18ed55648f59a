//! The disk tier: an append-only log of framed, checksummed records in segment files, an in-memory index
//! rebuilt at open from hint files, and a writer lock. It stores bytes it is given (already compressed and
//! chunked by the layers above) and never interprets values. The format is documented in docs/format.md.
//!
//! Durability: appends go to a buffer of `write_buffer_size` bytes, then to the OS; [`DiskStore::flush`]
//! writes the buffer, fsyncs the segment and rewrites its hint. What was flushed survives `kill -9` and power
//! loss; what was appended but not flushed survives `kill -9` only once it left the buffer.

mod compact;
#[cfg(test)]
mod compact_tests;
#[cfg(test)]
mod crash_tests;
mod entries;
mod faults;
#[cfg(test)]
mod golden;
mod hint;
mod index;
#[cfg(test)]
mod index_memory;
#[cfg(test)]
mod index_tests;
mod lock;
mod maintain;
mod names;
mod open;
mod read;
mod segment;
mod snapshot;
mod stats;
pub mod storage;
#[cfg(test)]
mod storage_mem;
mod swap;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

pub use compact::{CompactReport, Reencode, Selection};
pub use faults::{FailureReason, WriteFault, WriteFaultSnapshot, WriteFaults};
pub use index::{BLOB_KIND, EntrySlot, Loc, SegmentUsage};
pub use lock::{LOCK_FILE, WriterLock, holder};
pub use maintain::{DamagedRecord, VerifyReport};
pub use segment::parse_segment_name;
pub use snapshot::consistent_segments;
pub use stats::{DiskStats, FileUsage, KindStats};
pub use storage::{RealFs, Storage, StorageFile};
pub use swap::{OLD_DATA_DIR, RESTORE_STAGING, Recovery, data_dir_for_reading, recover, swap_in, sync_dir};

use crate::cache::clock::{Expiry, now_ms};
use crate::cache::record::{self, BlobRef, RecordRef, RecordType};
use hint::{HintBuilder, HintMark};
use index::Index;
use segment::SegmentReader;

/// Folder of segment and hint files inside the cache directory.
pub const DATA_DIR: &str = "data";
/// Folder that damaged records are copied to.
pub const QUARANTINE_DIR: &str = "quarantine";

/// Errors of the disk tier.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiskError {
    /// Another live process holds the writer lock.
    #[error(
        "cache directory {} is in use by {}; stop it, or use a read-only command",
        .dir.display(),
        .pid.map_or("another process".to_string(), |p| format!("process {p}"))
    )]
    Locked {
        /// The cache directory.
        dir: PathBuf,
        /// The pid written in the lock file, when readable.
        pid: Option<u32>,
    },
    /// A file operation failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A write was attempted on a store opened read-only.
    #[error("the cache was opened read-only")]
    ReadOnly,
    /// An entry refers to a chunk the store no longer has (compaction or quarantine removed it after the
    /// caller checked): write the chunk again.
    #[error("a chunk the entry refers to is no longer stored")]
    MissingChunk,
    /// A key, name or value is larger than the format allows.
    #[error("{what} is {len} bytes; the most the format allows is {max}")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DiskError + '_ {
    move |source| DiskError::Io { path: path.to_path_buf(), source }
}

/// How to open a store.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Where the files live: [`RealFs`] but in tests.
    pub storage: Arc<dyn Storage>,
    /// The cache directory (segments go in `data/` below it).
    pub dir: PathBuf,
    /// Open without the writer lock; writes fail with [`DiskError::ReadOnly`].
    pub read_only: bool,
    /// Bytes buffered before appends are written to the segment file.
    pub write_buffer_size: usize,
    /// A segment is sealed once it reaches this size.
    pub segment_size: u64,
    /// Verify each record's checksum on read (scans, verify and compaction always do).
    pub verify_checksums: bool,
}

impl StoreOptions {
    /// Defaults for `dir`: 1 MB write buffer, 64 MiB segments, checksums verified.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            storage: RealFs::shared(),
            dir: dir.into(),
            read_only: false,
            write_buffer_size: 1_000_000,
            segment_size: 64 << 20,
            verify_checksums: true,
        }
    }
}

/// An entry as stored: its own (maybe compressed) value and the chunks its payload is made of.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEntry {
    /// Codec id of `value`.
    pub codec: u8,
    /// Stored value bytes (the envelope when deduplicated, else the whole value).
    pub value: Arc<[u8]>,
    /// Decoded length of `value`.
    pub raw_len: u32,
    /// The payload's chunks, in order.
    pub chunks: Vec<StoredChunk>,
    /// The chunks' references, in the same order (a sealed value is bound to them).
    pub refs: Vec<BlobRef>,
    /// Creation time (ms).
    pub created_ms: u64,
    /// When it stops being served.
    pub expires: Expiry,
    /// The entry's name (what pattern filters match).
    pub name: String,
}

/// One chunk as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredChunk {
    /// Codec id of `bytes`.
    pub codec: u8,
    /// Stored bytes.
    pub bytes: Arc<[u8]>,
    /// Decoded length.
    pub raw_len: u32,
}

/// An entry to write.
#[derive(Clone, Copy, Debug)]
pub struct EntryWrite<'a> {
    /// Kind code (1 response, 2 model, 3 metadata).
    pub kind: u8,
    /// Key bytes.
    pub key: &'a [u8],
    /// Name for pattern filters.
    pub name: &'a str,
    /// Codec id of `value`.
    pub codec: u8,
    /// Stored value bytes.
    pub value: &'a [u8],
    /// Decoded length of `value`.
    pub raw_len: u32,
    /// Chunk references of the payload (chunks must be written first).
    pub refs: &'a [BlobRef],
    /// Decoded length of all chunks.
    pub payload_len: u64,
    /// Creation time (ms).
    pub created_ms: u64,
    /// When it stops being served.
    pub expires: Expiry,
}

/// Counters kept by the store since it was opened.
#[derive(Debug, Default)]
pub struct DiskCounters {
    /// Records whose checksum failed on read.
    pub checksum_failures: AtomicU64,
    /// Records copied to `quarantine/`.
    pub quarantined: AtomicU64,
    /// Bytes appended.
    pub bytes_written: AtomicU64,
    /// Records read.
    pub reads: AtomicU64,
    /// fsyncs done by `flush`.
    pub syncs: AtomicU64,
}

struct State {
    index: Index,
    readers: BTreeMap<u32, Arc<SegmentReader>>,
    /// Damaged ranges found by scans at open: (segment, damage).
    damage: Vec<(u32, segment::Damage)>,
}

struct Writer {
    id: u32,
    file: Box<dyn StorageFile>,
    path: PathBuf,
    buf: Vec<u8>,
    /// Bytes of the segment already written to the file.
    flushed: u64,
    /// Bytes of the segment flushed and fsynced.
    synced: u64,
    hint: HintBuilder,
    /// Where the hint stood when the buffer was last written out, and when the segment was last synced.
    flushed_mark: HintMark,
    synced_mark: HintMark,
    seq: u64,
    /// For each entry or tombstone appended since the last fsync that replaced an indexed one: its offset,
    /// its key, and where the replaced entry and tombstone were. A failed write that drops the new record
    /// puts the old ones back in the index ([`DiskStore::write_out_or_drop`]); without that, an intact,
    /// flushed entry would read as missing and the next compaction would delete it. Cleared at each fsync,
    /// so it holds at most a segment's worth of keys.
    undo: Vec<(u64, index::EntryKey, Option<Loc>, Option<Loc>)>,
}

impl Writer {
    fn len(&self) -> u64 {
        self.flushed + self.buf.len() as u64
    }

    /// Writes the buffer to the file; true when there was something to write. On failure the buffer and
    /// the file are as they were, except for bytes of a partial write past `flushed`
    /// ([`DiskStore::write_out_or_drop`] cuts those).
    fn write_out(&mut self) -> std::io::Result<bool> {
        if self.buf.is_empty() {
            return Ok(false);
        }
        self.file.append(&self.buf)?;
        self.flushed += self.buf.len() as u64;
        self.flushed_mark = self.hint.mark();
        self.buf.clear();
        Ok(true)
    }
}

/// The disk tier of one cache directory.
pub struct DiskStore {
    options: StoreOptions,
    data_dir: PathBuf,
    state: RwLock<State>,
    writer: Option<Mutex<Writer>>,
    counters: DiskCounters,
    faults: WriteFaults,
    /// One compaction pass at a time.
    compaction: Mutex<()>,
    /// The next segment id to create, shared by the writer and compaction so they never pick the same.
    next_segment: AtomicU32,
    _lock: Option<WriterLock>,
}

impl std::fmt::Debug for DiskStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskStore").field("dir", &self.options.dir).finish_non_exhaustive()
    }
}

/// Takes the writer lock of the cache directory `dir` without opening the store (for restore).
pub fn lock_dir(dir: &Path) -> Result<WriterLock, DiskError> {
    WriterLock::acquire(dir)
}

impl DiskStore {
    /// The options the store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// The files' storage.
    fn fs(&self) -> &dyn Storage {
        &*self.options.storage
    }

    /// Counters since open.
    pub fn counters(&self) -> &DiskCounters {
        &self.counters
    }

    fn writer(&self) -> Result<parking_lot::MutexGuard<'_, Writer>, DiskError> {
        self.writer.as_ref().map(Mutex::lock).ok_or(DiskError::ReadOnly)
    }

    /// Appends one record under the writer lock and indexes it; returns its location.
    fn append(&self, w: &mut Writer, mut rec: RecordRef<'_>) -> Result<Loc, DiskError> {
        check_len("key", rec.key.len(), u16::MAX as usize)?;
        check_len("name", rec.name.len(), u16::MAX as usize)?;
        check_len("chunk list", rec.refs.len(), u16::MAX as usize)?;
        check_len("value", rec.value.len(), u32::MAX as usize)?;
        if w.len() >= self.options.segment_size {
            self.roll(w)?;
        }
        w.seq += 1;
        rec.seq = w.seq;
        let offset = w.len();
        let start = w.buf.len();
        let len = record::encode(&rec, &mut w.buf);
        let loc = Loc { segment: w.id, offset, len: len as u32 };
        w.hint.add(offset, &w.buf[start..]);
        let decoded = record::decode(&w.buf[start..], false).expect("a record just encoded decodes");
        {
            let mut state = self.state.write();
            if decoded.header.record_type != RecordType::Blob {
                let (kind, key) = (decoded.header.kind, decoded.key);
                let entry = state.index.entry(kind, key).map(|e| e.loc());
                let tombstone = state.index.tombstone(kind, key).map(|(_, l)| l);
                if entry.is_some() || tombstone.is_some() {
                    w.undo.push((offset, (kind, key.into()), entry, tombstone));
                }
            }
            state.index.apply(&decoded, loc);
        }
        self.counters.bytes_written.fetch_add(len as u64, Ordering::Relaxed);
        if w.buf.len() >= self.options.write_buffer_size {
            self.write_out_or_drop(w)?;
        }
        Ok(loc)
    }

    /// Seals the active segment (flush, fsync, hint, map) and starts the next one. When the next one cannot
    /// be created (a full disk), the active segment stays active and is sealed on a later try.
    fn roll(&self, w: &mut Writer) -> Result<(), DiskError> {
        self.sync_locked(w)?;
        let path = w.path.clone();
        let reader = SegmentReader::map(self.fs(), &path).map_err(io_err(&path))?;
        let mut state = self.state.write();
        let next =
            open::new_segment(self.fs(), &self.data_dir, self.allocate_segment_id(), w.seq, &mut state);
        let next = next.inspect_err(|e| {
            if let DiskError::Io { path, source } = e {
                self.faults.record(path, source, 0);
            }
        })?;
        self.next_segment.fetch_max(next.id + 1, Ordering::Relaxed);
        state.readers.insert(w.id, Arc::new(reader));
        *w = next;
        Ok(())
    }

    /// A segment id no other segment of this process has or will get.
    fn allocate_segment_id(&self) -> u32 {
        self.next_segment.fetch_add(1, Ordering::Relaxed)
    }

    fn sync_locked(&self, w: &mut Writer) -> Result<(), DiskError> {
        self.write_out_or_drop(w)?;
        if w.synced == w.flushed {
            return Ok(());
        }
        self.sync_or_drop(w)?;
        self.counters.syncs.fetch_add(1, Ordering::Relaxed);
        // The records are durable; a hint that cannot be written only makes the next open scan more.
        let hint_path = segment::hint_path(&self.data_dir, w.id);
        if let Err(error) = w.hint.write(self.fs(), &hint_path, w.id, w.flushed) {
            self.faults.record(&hint_path, &error, 0);
        }
        Ok(())
    }

    /// Makes every write so far durable: writes the buffer, fsyncs the segment, rewrites its hint.
    pub fn flush(&self) -> Result<(), DiskError> {
        match &self.writer {
            Some(w) => self.sync_locked(&mut w.lock()),
            None => Ok(()),
        }
    }

    /// True when a chunk with this reference is stored and readable.
    pub fn has_blob(&self, blob: &BlobRef) -> bool {
        self.state.read().index.blobs.get(blob).is_some_and(|b| b.loc.is_some())
    }

    /// Stores a chunk unless one with the same reference is already stored; returns true when written.
    pub fn put_blob(
        &self,
        blob: &BlobRef,
        codec: u8,
        stored: &[u8],
        raw_len: u32,
    ) -> Result<bool, DiskError> {
        let mut w = self.writer()?;
        if self.has_blob(blob) {
            return Ok(false);
        }
        self.append(
            &mut w,
            RecordRef {
                record_type: RecordType::Blob,
                kind: BLOB_KIND,
                codec,
                seq: 0,
                created_ms: now_ms(),
                expires_ms: 0,
                key: blob,
                name: b"",
                refs: &[],
                value: stored,
                raw_len,
                payload_len: 0,
            },
        )?;
        Ok(true)
    }

    /// Stores an entry, replacing any older one with the same kind and key.
    pub fn put_entry(&self, e: &EntryWrite<'_>) -> Result<(), DiskError> {
        let mut w = self.writer()?;
        {
            let state = self.state.read();
            if !e.refs.iter().all(|r| state.index.blobs.get(r).is_some_and(|b| b.loc.is_some())) {
                return Err(DiskError::MissingChunk);
            }
        }
        self.append(
            &mut w,
            RecordRef {
                record_type: RecordType::Entry,
                kind: e.kind,
                codec: e.codec,
                seq: 0,
                created_ms: e.created_ms,
                expires_ms: e.expires.as_ms(),
                key: e.key,
                name: e.name.as_bytes(),
                refs: e.refs,
                value: e.value,
                raw_len: e.raw_len,
                payload_len: e.payload_len,
            },
        )?;
        Ok(())
    }

    /// Removes an entry; returns true when it existed.
    pub fn remove(&self, kind: u8, key: &[u8]) -> Result<bool, DiskError> {
        let mut w = self.writer()?;
        if self.state.read().index.entry(kind, key).is_none() {
            return Ok(false);
        }
        self.write_tombstone(&mut w, kind, key)?;
        Ok(true)
    }

    fn write_tombstone(&self, w: &mut Writer, kind: u8, key: &[u8]) -> Result<(), DiskError> {
        let rec = RecordRef {
            record_type: RecordType::Tombstone,
            kind,
            codec: 0,
            seq: 0,
            created_ms: now_ms(),
            expires_ms: 0,
            key,
            name: b"",
            refs: &[],
            value: &[],
            raw_len: 0,
            payload_len: 0,
        };
        self.append(w, rec).map(|_| ())
    }

    /// The expiry of the entry under `kind`/`key`, if the index has one.
    pub fn expiry(&self, kind: u8, key: &[u8]) -> Option<Expiry> {
        self.state.read().index.entry(kind, key).map(|e| e.expires())
    }

    /// Live entries' index slots, for listing and filtering.
    pub fn entries(&self) -> Vec<(u8, Vec<u8>, EntrySlot)> {
        let state = self.state.read();
        state.index.entries().map(|e| (e.kind(), e.key().into_owned(), e.to_slot())).collect()
    }

    /// The keys of up to `max` live entries of `kind`, spread evenly over the index (for measuring a sample
    /// without copying the whole index).
    pub fn sample_keys(&self, kind: u8, max: usize) -> Vec<Vec<u8>> {
        let now = now_ms();
        let state = self.state.read();
        let of_kind = || state.index.entries().filter(|e| e.kind() == kind && e.expires().is_live(now));
        let step = of_kind().count().div_ceil(max.max(1)).max(1);
        of_kind().step_by(step).map(|e| e.key().into_owned()).collect()
    }

    /// Bytes of all segment and hint files on disk.
    pub fn file_bytes(&self) -> u64 {
        compact::dir_bytes(self.fs(), &self.data_dir)
    }

    /// Live entries in the index (expired ones included until they are cleaned up).
    pub fn entry_count(&self) -> u64 {
        self.state.read().index.entry_count() as u64
    }

    /// Bytes of memory the in-memory index holds (see `Index::heap_bytes`).
    pub fn index_bytes(&self) -> u64 {
        self.state.read().index.heap_bytes() as u64
    }

    /// Record bytes per segment id.
    pub fn segment_usage(&self) -> Vec<(u32, SegmentUsage)> {
        self.state.read().index.segments.iter().map(|(id, usage)| (*id, *usage)).collect()
    }

    /// The cache directory's `data/` folder.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// (live, total) bytes of records: what is still needed, and what the segments hold including garbage.
    pub fn usage(&self) -> (u64, u64) {
        let state = self.state.read();
        (state.index.live_bytes(), state.index.total_bytes())
    }
}

fn check_len(what: &'static str, len: usize, max: usize) -> Result<(), DiskError> {
    if len > max { Err(DiskError::TooLarge { what, len, max }) } else { Ok(()) }
}
