//! Opening a disk store: taking the lock, reading hints, scanning what they do not cover, recovering from a
//! torn or damaged tail, and choosing the segment to append to (docs/format.md, "Opening and recovery").

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::hint::{self, HintBuilder, HintMark};
use super::index::{Index, Loc};
use super::lock::WriterLock;
use super::segment::{self, SEGMENT_HEADER_LEN, SegmentReader};
use super::storage::Storage;
use super::swap;
use super::{DATA_DIR, DiskCounters, DiskError, DiskStore, State, StoreOptions, Writer, io_err};
use crate::cache::record;

impl DiskStore {
    /// Opens (or, unless read-only, creates) the store in `options.dir`.
    pub fn open(options: StoreOptions) -> Result<Self, DiskError> {
        let fs = &*options.storage;
        let (data_dir, lock) = if options.read_only {
            (swap::data_dir_for_reading_in(fs, &options.dir), None)
        } else {
            create_dir_synced(fs, &options.dir)?;
            // The writer lock is a process lock: it lives on the real filesystem whatever the storage.
            crate::cache::private::create_dir_all(&options.dir).map_err(io_err(&options.dir))?;
            let lock = WriterLock::acquire(&options.dir)?;
            // An interrupted restore is finished or undone before `data/` is read or created.
            swap::recover_in(fs, &options.dir)?;
            let data_dir = options.dir.join(DATA_DIR);
            create_dir_synced(fs, &data_dir)?;
            (data_dir, Some(lock))
        };
        let ids = list_segments(fs, &data_dir, !options.read_only)?;
        let mut state = State { index: Index::default(), readers: BTreeMap::new(), damage: Vec::new() };
        let last = ids.last().copied();
        let mut active_hint = HintBuilder::default();
        let mut active_len = SEGMENT_HEADER_LEN;
        // Whether the last segment can be appended to: not when its header is bad, nor when it is shorter
        // than its hint (appends would reuse the offsets of the lost records the hint names).
        let mut append_to_last = false;
        for (i, &id) in ids.iter().enumerate() {
            let path = segment::segment_path(&data_dir, id);
            let map = fs.map(&path).map_err(io_err(&path))?;
            let bytes = (*map).as_ref();
            if let Err(why) = segment::check_file_header(bytes, id) {
                tracing::warn!(segment = %path.display(), "skipping segment: {why}");
                let damage = segment::Damage {
                    offset: 0,
                    len: bytes.len() as u64,
                    error: record::FrameError::BadMagic,
                };
                state.damage.push((id, damage));
                continue;
            }
            let hint_path = segment::hint_path(&data_dir, id);
            let segments_left = ids.len() - i;
            let writer = !options.read_only;
            let hinted =
                hint::load(fs, &hint_path, id, bytes.len() as u64, writer, segments_left, &mut state.index);
            let covered = hinted.as_ref().map(|(covered, _)| *covered);
            // Shorter than its hint: the records past the end stay indexed, so reads and `verify` report
            // each lost entry by key instead of losing it silently.
            let cut_short = covered.is_some_and(|c| c > bytes.len() as u64);
            // A last segment already at its size limit is sealed like the others (mapped, hinted): the writer
            // starts the next one, and reads of its records still need a reader.
            let full = bytes.len() as u64 >= options.segment_size;
            let is_active = !options.read_only && Some(id) == last && !cut_short && !full;
            let mut builder = hinted.map(|(_, b)| b).unwrap_or_default();
            let (records, damage) = segment::scan(bytes, covered.unwrap_or(SEGMENT_HEADER_LEN));
            for scanned in &records {
                let len = scanned.record.header.record_len();
                let loc = Loc { segment: id, offset: scanned.offset, len: len as u32 };
                state.index.apply(&scanned.record, loc);
                builder.add(scanned.offset, &bytes[scanned.offset as usize..scanned.offset as usize + len]);
            }
            let valid_end = records.last().map_or(covered.unwrap_or(SEGMENT_HEADER_LEN), |s| {
                s.offset + s.record.header.record_len() as u64
            });
            let torn_tail = damage.last().is_some_and(|d| {
                d.error == record::FrameError::Truncated && d.offset + d.len == bytes.len() as u64
            });
            for d in damage {
                let is_tail = torn_tail && d.offset + d.len == bytes.len() as u64;
                if !(is_tail && is_active) {
                    state.damage.push((id, d));
                }
            }
            if is_active {
                append_to_last = true;
                active_hint = builder;
                active_len = if torn_tail { valid_end.max(SEGMENT_HEADER_LEN) } else { bytes.len() as u64 };
            } else {
                if covered.is_none_or(|c| c < bytes.len() as u64) && !options.read_only {
                    let hint_path = segment::hint_path(&data_dir, id);
                    builder.write(fs, &hint_path, id, bytes.len() as u64).map_err(io_err(&hint_path))?;
                }
                // A scan touched every page of the segment: let them go, so opening a cache without hints
                // (a restored backup) does not hold it all in memory.
                fs.release(&map);
                state.readers.insert(id, Arc::new(SegmentReader::Mapped(map)));
            }
        }
        let writer = if options.read_only {
            None
        } else {
            let seq = state.index.max_seq;
            let writer = match last {
                Some(id) if append_to_last && active_len < options.segment_size => {
                    reopen_active(fs, &data_dir, id, active_len, active_hint, seq, &mut state)?
                }
                _ => new_segment(fs, &data_dir, last.map_or(1, |id| id + 1), seq, &mut state)?,
            };
            Some(Mutex::new(writer))
        };
        let next_segment =
            writer.as_ref().map_or(last.map_or(1, |id| id + 1), |w: &Mutex<Writer>| w.lock().id + 1);
        Ok(Self {
            options,
            data_dir,
            state: RwLock::new(state),
            writer,
            compaction: Mutex::new(()),
            next_segment: next_segment.into(),
            counters: DiskCounters::default(),
            faults: Default::default(),
            _lock: lock,
        })
    }
}

/// Creates `dir` (and what is missing above it) unless it exists, and fsyncs its parent so that its entry
/// survives a power loss: without that, a new cache's `data/` folder — and every segment fsynced in it —
/// could vanish with the next power cut. The parent is fsynced even when `dir` exists, since an earlier
/// open may have created it and failed before its fsync.
fn create_dir_synced(fs: &dyn Storage, dir: &Path) -> Result<(), DiskError> {
    fs.create_dir_all(dir).map_err(io_err(dir))?;
    let parent = match dir.parent() {
        Some(p) if p.as_os_str().is_empty() => Path::new("."),
        Some(p) => p,
        None => return Ok(()),
    };
    fs.sync_dir(parent).map_err(io_err(parent))
}

/// Segment ids in `dir`, ascending; with `cleanup`, leftover temp files of interrupted writes are removed,
/// and so are hint files whose segment is gone (a power loss can keep a hint's rename and lose its
/// segment's): a later segment with the same id must never be read through a hint of other bytes.
pub(super) fn list_segments(fs: &dyn Storage, dir: &Path, cleanup: bool) -> Result<Vec<u32>, DiskError> {
    let names = match fs.list(dir) {
        Ok(names) => names,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(io_err(dir)(err)),
    };
    let mut ids = Vec::new();
    let mut hints = Vec::new();
    for name in names {
        if let Some(id) = segment::parse_segment_name(&name) {
            ids.push(id);
        } else if cleanup && name.ends_with(".tmp") {
            let path = dir.join(&name);
            fs.remove_file(&path).map_err(io_err(&path))?;
        } else if cleanup && let Some(id) = name.strip_suffix(".hint").and_then(|n| n.strip_prefix("seg-")) {
            hints.push((id.parse::<u32>().ok(), dir.join(&name)));
        }
    }
    ids.sort_unstable();
    for (id, path) in hints {
        if id.is_none_or(|id| ids.binary_search(&id).is_err()) {
            tracing::warn!(hint = %path.display(), "removing a hint file whose segment is gone");
            fs.remove_file(&path).map_err(io_err(&path))?;
        }
    }
    Ok(ids)
}

/// Starts the active segment `id`, or the first free id after it: a file left by a compaction that failed
/// after renaming its output is never overwritten, and never blocks the writer. A segment that cannot be
/// created whole (a full disk) is removed again.
pub(super) fn new_segment(
    fs: &dyn Storage,
    dir: &Path,
    id: u32,
    seq: u64,
    state: &mut State,
) -> Result<Writer, DiskError> {
    let mut id = id;
    let (path, mut file) = loop {
        let path = segment::segment_path(dir, id);
        match fs.create_new(&path) {
            Ok(file) => break (path, file),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists && id < u32::MAX => id += 1,
            Err(err) => return Err(io_err(&path)(err)),
        }
    };
    // A hint left by an earlier segment with this id (one a power loss or a failed pass took away) would
    // describe other bytes; it goes before the new segment is made durable with the same fsync.
    let stale_hint = segment::hint_path(dir, id);
    let started = match fs.remove_file(&stale_hint) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    };
    let started = started
        .and_then(|()| file.append(&segment::file_header(id)))
        .and_then(|()| file.sync())
        .and_then(|()| fs.sync_dir(dir));
    if let Err(err) = started {
        let _ = fs.remove_file(&path);
        return Err(io_err(&path)(err));
    }
    add_file_reader(fs, state, id, &path)?;
    Ok(Writer {
        id,
        file,
        path,
        buf: Vec::new(),
        flushed: SEGMENT_HEADER_LEN,
        synced: SEGMENT_HEADER_LEN,
        hint: HintBuilder::default(),
        flushed_mark: HintMark::default(),
        synced_mark: HintMark::default(),
        seq,
        undo: Vec::new(),
    })
}

fn reopen_active(
    fs: &dyn Storage,
    dir: &Path,
    id: u32,
    valid_len: u64,
    hint: HintBuilder,
    seq: u64,
    state: &mut State,
) -> Result<Writer, DiskError> {
    let path = segment::segment_path(dir, id);
    let file = fs.open_append(&path).map_err(io_err(&path))?;
    if file.size().map_err(io_err(&path))? != valid_len {
        tracing::warn!(segment = %path.display(), valid_len, "truncating a torn write at the end of the segment");
        file.set_len(valid_len).map_err(io_err(&path))?;
        file.sync().map_err(io_err(&path))?;
    }
    add_file_reader(fs, state, id, &path)?;
    let mark = hint.mark();
    Ok(Writer {
        id,
        file,
        path,
        buf: Vec::new(),
        flushed: valid_len,
        synced: valid_len,
        hint,
        flushed_mark: mark,
        synced_mark: mark,
        seq,
        undo: Vec::new(),
    })
}

/// Registers the active segment `id` for reads through `pread`.
fn add_file_reader(fs: &dyn Storage, state: &mut State, id: u32, path: &Path) -> Result<(), DiskError> {
    state.index.segments.entry(id).or_default();
    let file = fs.open_read(path).map_err(io_err(path))?;
    state.readers.insert(id, Arc::new(SegmentReader::File(file)));
    Ok(())
}
