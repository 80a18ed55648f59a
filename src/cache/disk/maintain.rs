//! Maintenance of a disk store: quarantining damaged records and verifying every record (compaction is
//! `compact.rs`).

use std::collections::HashSet;

use super::index::{BLOB_KIND, Loc};
use super::segment;
use super::{DiskError, DiskStore, QUARANTINE_DIR, io_err};
use crate::cache::record::{self, BlobRef};

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

fn key_text(kind: u8, key: &[u8]) -> String {
    match (kind, std::str::from_utf8(key)) {
        (BLOB_KIND, _) | (_, Err(_)) => key.iter().map(|b| format!("{b:02x}")).collect(),
        (_, Ok(text)) => text.to_string(),
    }
}

impl DiskStore {
    /// The raw bytes at `loc`, as far as they can be read.
    pub(super) fn raw_record(&self, loc: Loc) -> Option<Vec<u8>> {
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
        self.fs().create_dir_all(&dir).map_err(io_err(&dir))?;
        let path = dir.join(format!("seg-{:010}-{:012}.rec", loc.segment, loc.offset));
        let bytes = self.raw_record(loc).unwrap_or_default();
        let tmp = path.with_extension("rec.tmp");
        super::storage::write_file_synced(self.fs(), &path, &tmp, &bytes).map_err(io_err(&path))?;
        self.fs().sync_dir(&dir).map_err(io_err(&dir))?;
        self.counters.quarantined.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(path = %path.display(), "quarantined a damaged record");
        Ok(())
    }

    /// Copies a damaged entry aside and removes it from the store (a tombstone when writable).
    pub(super) fn quarantine_entry(&self, kind: u8, key: &[u8], loc: Loc) -> Result<(), DiskError> {
        self.copy_to_quarantine(loc)?;
        match &self.writer {
            Some(writer) => {
                let mut w = writer.lock();
                let still_there = self.state.read().index.entry(kind, key).is_some_and(|e| e.loc() == loc);
                if still_there {
                    self.write_tombstone(&mut w, kind, key)?;
                }
            }
            None => self.state.write().index.forget_entry(kind, key),
        }
        Ok(())
    }

    /// Copies the entry under `kind`/`key` aside and removes it, although its checksum holds: for entries
    /// the layers above cannot read (their zstd dictionary is gone). Returns false when there is none.
    pub fn quarantine(&self, kind: u8, key: &[u8]) -> Result<bool, DiskError> {
        let loc = self.state.read().index.entry(kind, key).map(|e| e.loc());
        match loc {
            Some(loc) => self.quarantine_entry(kind, key, loc).map(|()| true),
            None => Ok(false),
        }
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
                    self.write_out_or_drop(&mut w)?;
                    Some(w)
                }
                None => None,
            };
            let state = self.state.read();
            let entries: Vec<_> = state
                .index
                .entries()
                .map(|e| (e.kind(), e.key().into_owned(), e.loc(), e.refs().to_vec()))
                .collect();
            let blobs: Vec<_> = state.index.blobs.iter().map(|(r, s)| (*r, s.loc)).collect();
            let ranges = state.damage.iter().map(|(seg, d)| (*seg, d.offset, d.len)).collect();
            (entries, blobs, ranges)
        };
        // Records are read in file order, and each segment's pages are let go once it is done, so the
        // memory a verify touches stays about one segment, whatever the size of the cache.
        let (mut entries, mut blobs) = (entries, blobs);
        blobs.sort_by_key(|(_, loc)| loc.map(|l| (l.segment, l.offset)));
        entries.sort_by_key(|(_, _, loc, _)| (loc.segment, loc.offset));
        let mut reading = None;
        let mut report = VerifyReport { damaged_ranges: ranges, ..VerifyReport::default() };
        let mut bad_blobs = HashSet::new();
        for (blob, loc) in &blobs {
            let Some(loc) = loc else { continue };
            self.move_to_segment(&mut reading, loc.segment);
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
        self.move_to_segment(&mut reading, u32::MAX);
        for (kind, key, loc, refs) in &entries {
            self.move_to_segment(&mut reading, loc.segment);
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
        self.move_to_segment(&mut reading, u32::MAX);
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
                w.hint.write(self.fs(), &hint_path, w.id, w.flushed).map_err(io_err(&hint_path))?;
            }
        }
        Ok(report)
    }

    /// Notes that reading moves on to `segment` (`u32::MAX`: done); lets the previous segment's pages go.
    fn move_to_segment(&self, reading: &mut Option<u32>, segment: u32) {
        if let Some(previous) = *reading
            && previous != segment
            && let Some(reader) = self.state.read().readers.get(&previous)
        {
            reader.release(self.fs());
        }
        *reading = Some(segment);
    }

    fn check_record(&self, loc: Loc) -> Option<String> {
        match self.raw_record(loc) {
            None => Some("record is truncated or its segment is missing".into()),
            Some(bytes) => record::decode(&bytes, true).err().map(|e| e.to_string()),
        }
    }
}
