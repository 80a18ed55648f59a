//! Maintenance of a disk store: quarantining damaged records, verifying every record, and compaction.
//!
//! Compaction copies the live records (unexpired entries and the chunks they use), in sequence order and
//! byte for byte, into new segments written as `.tmp` files and renamed once complete; only then are the
//! old segments deleted, oldest first. A crash at any point leaves either the old segments, or old and new
//! side by side (the higher sequence number wins, so the result is the same), never a torn store.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use super::hint::HintBuilder;
use super::index::{BLOB_KIND, Index, Loc};
use super::open::new_segment;
use super::record::{self, BlobRef};
use super::segment::{self, SEGMENT_HEADER_LEN, SegmentReader};
use super::{DiskError, DiskStore, QUARANTINE_DIR, io_err, now_ms};

/// One record that failed its check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DamagedRecord {
    /// Kind code (0 for chunks).
    pub kind: u8,
    /// The key (for chunks, the chunk reference), lossily as text or hex.
    pub key: String,
    /// Segment id.
    pub segment: u32,
    /// Offset in the segment.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
}

/// What [`DiskStore::verify`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Entries checked.
    pub entries_checked: u64,
    /// Chunks checked.
    pub chunks_checked: u64,
    /// Damaged entries and chunks.
    pub damaged: Vec<DamagedRecord>,
    /// Byte ranges holding no intact record, found when the store was opened: (segment, offset, length).
    pub damaged_ranges: Vec<(u32, u64, u64)>,
    /// True when damage was found and fixed: damaged records quarantined, damaged ranges dropped.
    pub fixed: bool,
}

impl VerifyReport {
    /// True when nothing is damaged.
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty() && self.damaged_ranges.is_empty()
    }
}

/// What [`DiskStore::compact`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// Bytes of segment and hint files before.
    pub bytes_before: u64,
    /// Bytes of segment and hint files after.
    pub bytes_after: u64,
    /// Records copied.
    pub records_kept: u64,
    /// Damaged records left behind.
    pub damaged_skipped: u64,
}

fn key_text(kind: u8, key: &[u8]) -> String {
    match (kind, std::str::from_utf8(key)) {
        (BLOB_KIND, _) | (_, Err(_)) => key.iter().map(|b| format!("{b:02x}")).collect(),
        (_, Ok(text)) => text.to_string(),
    }
}

impl DiskStore {
    /// The raw bytes at `loc`, as far as they can be read.
    fn raw_record(&self, loc: Loc) -> Option<Vec<u8>> {
        let state = self.state.read();
        let reader = state.readers.get(&loc.segment)?;
        let mut buf = Vec::new();
        reader.read(loc.offset, loc.len as usize, &mut buf).ok().map(<[u8]>::to_vec)
    }

    fn copy_to_quarantine(&self, loc: Loc) -> Result<(), DiskError> {
        if self.writer.is_none() {
            // A read-only open changes nothing on disk; the writer quarantines when it meets the record.
            tracing::warn!(segment = loc.segment, offset = loc.offset, "damaged record skipped (read-only)");
            return Ok(());
        }
        let dir = self.options.dir.join(QUARANTINE_DIR);
        crate::cache::private::create_dir_all(&dir).map_err(io_err(&dir))?;
        let path = dir.join(format!("seg-{:010}-{:012}.rec", loc.segment, loc.offset));
        let bytes = self.raw_record(loc).unwrap_or_default();
        crate::cache::private::write(&path, bytes).map_err(io_err(&path))?;
        self.counters.quarantined.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(path = %path.display(), "quarantined a damaged record");
        Ok(())
    }

    /// Copies a damaged entry aside and removes it from the store (a tombstone when writable).
    pub(super) fn quarantine_entry(&self, kind: u8, key: &[u8], loc: Loc) -> Result<(), DiskError> {
        self.copy_to_quarantine(loc)?;
        let key_box: (u8, Box<[u8]>) = (kind, key.into());
        match &self.writer {
            Some(writer) => {
                let mut w = writer.lock();
                let still_there = self.state.read().index.entries.get(&key_box).is_some_and(|s| s.loc == loc);
                if still_there {
                    self.write_tombstone(&mut w, kind, key)?;
                }
            }
            None => self.state.write().index.forget_entry(&key_box),
        }
        Ok(())
    }

    /// Copies a damaged chunk aside and removes it from the store.
    pub(super) fn quarantine_blob(&self, blob: &BlobRef, loc: Loc) -> Result<(), DiskError> {
        self.copy_to_quarantine(loc)?;
        match &self.writer {
            Some(writer) => {
                let mut w = writer.lock();
                let still_there = self.state.read().index.blobs.get(blob).is_some_and(|b| b.loc == Some(loc));
                if still_there {
                    self.write_tombstone(&mut w, BLOB_KIND, blob)?;
                }
            }
            None => self.state.write().index.forget_blob(blob),
        }
        Ok(())
    }

    /// Reads every live entry and chunk and checks its checksum and references; with `fix`, quarantines
    /// what is damaged and drops the damaged ranges found at open (needs a writable store for this to last).
    pub fn verify(&self, fix: bool) -> Result<VerifyReport, DiskError> {
        let (entries, blobs, ranges) = {
            // A record still in the write buffer cannot be read through its file and would look damaged:
            // write the buffer out and list the records while appends wait (a live server verifying itself).
            let _appends_wait = match &self.writer {
                Some(writer) => {
                    let mut w = writer.lock();
                    w.write_out()?;
                    Some(w)
                }
                None => None,
            };
            let state = self.state.read();
            let entries: Vec<_> = state
                .index
                .entries
                .iter()
                .map(|((k, key), s)| (*k, key.clone(), s.loc, s.refs.clone()))
                .collect();
            let blobs: Vec<_> = state.index.blobs.iter().map(|(r, s)| (*r, s.loc)).collect();
            let ranges = state.damage.iter().map(|(seg, d)| (*seg, d.offset, d.len)).collect();
            (entries, blobs, ranges)
        };
        let mut report = VerifyReport { damaged_ranges: ranges, ..VerifyReport::default() };
        let mut bad_blobs = HashSet::new();
        for (blob, loc) in &blobs {
            let Some(loc) = loc else { continue };
            report.chunks_checked += 1;
            if let Some(reason) = self.check_record(*loc) {
                bad_blobs.insert(*blob);
                report.damaged.push(DamagedRecord {
                    kind: BLOB_KIND,
                    key: key_text(BLOB_KIND, blob),
                    segment: loc.segment,
                    offset: loc.offset,
                    reason,
                });
                if fix {
                    self.quarantine_blob(blob, *loc)?;
                }
            }
        }
        let present: HashSet<BlobRef> = blobs.iter().filter(|(_, l)| l.is_some()).map(|(r, _)| *r).collect();
        for (kind, key, loc, refs) in &entries {
            report.entries_checked += 1;
            let reason = self.check_record(*loc).or_else(|| {
                refs.iter()
                    .find(|r| bad_blobs.contains(*r) || !present.contains(*r))
                    .map(|r| format!("chunk {} is missing or damaged", key_text(BLOB_KIND, r)))
            });
            if let Some(reason) = reason {
                report.damaged.push(DamagedRecord {
                    kind: *kind,
                    key: key_text(*kind, key),
                    segment: loc.segment,
                    offset: loc.offset,
                    reason,
                });
                if fix {
                    self.quarantine_entry(*kind, key, *loc)?;
                }
            }
        }
        report.fixed = fix && !report.is_clean();
        if fix {
            self.state.write().damage.clear();
            self.flush()?;
            if let Some(writer) = self.writer.as_ref().filter(|_| !report.damaged_ranges.is_empty()) {
                // The dropped ranges stay in their segments. Sealed segments got a hint covering them when
                // the store opened; the active one gets a hint only when a sync writes something, so write
                // it now, or the next open scans the segment and finds the same ranges again.
                let w = writer.lock();
                let hint_path = segment::hint_path(&self.data_dir, w.id);
                w.hint.write(&hint_path, w.id, w.flushed).map_err(io_err(&hint_path))?;
            }
        }
        Ok(report)
    }

    fn check_record(&self, loc: Loc) -> Option<String> {
        match self.raw_record(loc) {
            None => Some("record is truncated or its segment is missing".into()),
            Some(bytes) => record::decode(&bytes, true).err().map(|e| e.to_string()),
        }
    }

    /// Rewrites the live records into new segments and deletes the old ones, reclaiming the space of
    /// removed, overwritten and expired entries and of unreferenced chunks.
    pub fn compact(&self) -> Result<CompactReport, DiskError> {
        let mut w = self.writer()?;
        self.sync_locked(&mut w)?;
        let mut report =
            CompactReport { bytes_before: dir_bytes(&self.data_dir), ..CompactReport::default() };
        let now = now_ms();
        let (items, old_ids) = {
            let state = self.state.read();
            let mut live_blobs = HashSet::new();
            let mut items = Vec::new();
            for slot in state.index.entries.values() {
                if slot.expires_ms == 0 || slot.expires_ms > now {
                    items.push((slot.seq, slot.loc));
                    live_blobs.extend(slot.refs.iter().copied());
                }
            }
            for blob in &live_blobs {
                if let Some(slot) = state.index.blobs.get(blob)
                    && let Some(loc) = slot.loc
                {
                    items.push((slot.seq, loc));
                }
            }
            items.sort_unstable_by_key(|(seq, _)| *seq);
            (items, state.readers.keys().copied().collect::<Vec<u32>>())
        };

        let mut index = Index::default();
        let mut readers = std::collections::BTreeMap::new();
        let mut out: Option<NewSegment> = None;
        let mut next_id = w.id + 1;
        for (_, loc) in items {
            let Some(bytes) = self.raw_record(loc) else {
                report.damaged_skipped += 1;
                continue;
            };
            let Ok(rec) = record::decode(&bytes, true) else {
                report.damaged_skipped += 1;
                continue;
            };
            if out.as_ref().is_some_and(|s| s.len >= self.options.segment_size) {
                let done = out.take().expect("checked");
                readers.insert(done.id, done.finish(&self.data_dir)?);
            }
            let seg = match &mut out {
                Some(seg) => seg,
                None => {
                    out = Some(NewSegment::create(&self.data_dir, next_id)?);
                    next_id += 1;
                    out.as_mut().expect("just set")
                }
            };
            let offset = seg.len;
            seg.file.write_all(&bytes).map_err(io_err(&seg.tmp))?;
            seg.len += bytes.len() as u64;
            seg.hint.add(offset, &bytes);
            index.apply(&rec, Loc { segment: seg.id, offset, len: bytes.len() as u32 });
            report.records_kept += 1;
        }
        if let Some(done) = out.take() {
            readers.insert(done.id, done.finish(&self.data_dir)?);
        }
        File::open(&self.data_dir).and_then(|d| d.sync_all()).map_err(io_err(&self.data_dir))?;
        index.max_seq = index.max_seq.max(w.seq);
        {
            let mut state = self.state.write();
            state.index = index;
            state.readers = readers.into_iter().map(|(id, r)| (id, std::sync::Arc::new(r))).collect();
            state.damage.clear();
            *w = new_segment(&self.data_dir, next_id, w.seq, &mut state)?;
        }
        for id in old_ids {
            for path in [segment::segment_path(&self.data_dir, id), segment::hint_path(&self.data_dir, id)] {
                match std::fs::remove_file(&path) {
                    Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(io_err(&path)(err)),
                    _ => {}
                }
            }
        }
        report.bytes_after = dir_bytes(&self.data_dir);
        Ok(report)
    }
}

/// A segment being written by compaction.
struct NewSegment {
    id: u32,
    tmp: std::path::PathBuf,
    file: BufWriter<File>,
    len: u64,
    hint: HintBuilder,
}

impl NewSegment {
    fn create(dir: &Path, id: u32) -> Result<Self, DiskError> {
        let tmp = segment::segment_path(dir, id).with_extension("log.tmp");
        let file = crate::cache::private::create(&tmp).map_err(io_err(&tmp))?;
        let mut file = BufWriter::with_capacity(1 << 20, file);
        file.write_all(&segment::file_header(id)).map_err(io_err(&tmp))?;
        Ok(Self { id, tmp, file, len: SEGMENT_HEADER_LEN, hint: HintBuilder::default() })
    }

    fn finish(self, dir: &Path) -> Result<SegmentReader, DiskError> {
        let file = self.file.into_inner().map_err(|e| io_err(&self.tmp)(e.into_error()))?;
        file.sync_all().map_err(io_err(&self.tmp))?;
        let path = segment::segment_path(dir, self.id);
        std::fs::rename(&self.tmp, &path).map_err(io_err(&path))?;
        let hint_path = segment::hint_path(dir, self.id);
        self.hint.write(&hint_path, self.id, self.len).map_err(io_err(&hint_path))?;
        SegmentReader::map(&path).map_err(io_err(&path))
    }
}

/// Bytes of all files in `dir`.
pub(super) fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries.filter_map(Result::ok).filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum()
        })
        .unwrap_or(0)
}
