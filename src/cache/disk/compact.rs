//! Compaction: giving back the space of removed, overwritten and expired records without stalling writes.
//!
//! A pass first seals the active segment (the writer moves on to a new one, so every record written
//! before the pass lives in a sealed segment), then picks its victims among the sealed segments: all of
//! them ([`Selection::All`], `inferno cache compact`), or those whose dead bytes reach a share of their
//! size ([`Selection::DeadRatio`], the background pass). The live records of the victims — unexpired
//! entries, the chunks they use, and (in a partial pass) the tombstones that must keep hiding older
//! records elsewhere — are copied byte for byte, sequence numbers unchanged, into new segments written as
//! `.tmp` files and renamed once fsynced. The copy runs without the writer lock: puts go on into the
//! active segment. After each new segment is renamed, the index is pointed at the copies under the state
//! lock, one segment's records at a time, for every record the index still places where it was copied
//! from (a record replaced or removed meanwhile keeps its newer state; its copy is dead bytes). Last,
//! under the writer lock for a moment: chunks that a put made after the snapshot started to use again are
//! copied through the writer, the index forgets what is still in the victims (expired entries, chunks
//! nothing uses, in a full pass the tombstones) and the victims are deleted.
//!
//! A pass may be given a [`Reencode`] hook: each record it copies is offered to it, and a record it
//! rewrites is copied with the new codec byte and value (same sequence number, new checksum). The manager
//! uses it to re-encode values under its current zstd dictionary; this module never interprets values.
//!
//! It needs free space of about one segment beyond what it frees. A crash at any point leaves the victims
//! and the renamed copies side by side; records carry their sequence numbers, so reopening gives the same
//! index. A pass that fails removes its copies and leaves the store as it was, still accepting writes.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::hint::HintBuilder;
use super::index::{EntryKey, Loc};
use super::segment::{self, SEGMENT_HEADER_LEN, SegmentReader};
use super::storage::{Storage, StorageFile};
use super::{DiskError, DiskStore, io_err};
use crate::cache::clock::now_ms;
use crate::cache::record::{self, BlobRef, Record, RecordRef};

/// Which sealed segments a pass rewrites.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Selection {
    /// Every segment (`inferno cache compact`, and after removals that asked for the space back).
    All,
    /// Segments whose dead bytes are at least this share of their record bytes (0.0–1.0).
    DeadRatio(f64),
}

/// A rewrite of the values compaction copies (see the module doc).
pub trait Reencode: Sync {
    /// The codec byte and value bytes to copy `record` with, or `None` to copy it as it is. `used_by` is the
    /// record's kind code for an entry; for a chunk, 1 when a response entry uses it, else the kind code of
    /// another entry using it, or 0 when unknown. The value must decode to the same bytes as before.
    fn reencode(&self, record: &Record<'_>, used_by: u8) -> Option<(u8, Vec<u8>)>;
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
    /// Segments rewritten.
    pub segments_rewritten: u64,
    /// Records whose value the [`Reencode`] hook rewrote.
    pub reencoded: u64,
}

/// What a pass has copied so far: its files, and the moves the index made to them.
#[derive(Default)]
struct Copied {
    files: Vec<PathBuf>,
    /// (from, to, what, the stored value length the index had before).
    moves: Vec<(Loc, Loc, Target, u32)>,
}

/// A record to copy: what it is in the index, and where it is.
#[derive(Clone, Debug)]
enum Target {
    Entry(EntryKey),
    Blob(BlobRef),
    Tombstone(EntryKey),
}

impl DiskStore {
    /// Rewrites every sealed segment (see the module doc); returns when done.
    pub fn compact(&self) -> Result<CompactReport, DiskError> {
        self.compact_selected(Selection::All)
    }

    /// One compaction pass over the segments `selection` picks.
    pub fn compact_selected(&self, selection: Selection) -> Result<CompactReport, DiskError> {
        self.compact_with(selection, None)
    }

    /// One compaction pass over the segments `selection` picks, offering every record it copies to `hook`.
    pub fn compact_with(
        &self,
        selection: Selection,
        hook: Option<&dyn Reencode>,
    ) -> Result<CompactReport, DiskError> {
        let _one_pass = self.compaction.lock();
        let mut report =
            CompactReport { bytes_before: dir_bytes(self.fs(), &self.data_dir), ..CompactReport::default() };
        let victims = self.seal_and_pick(selection)?;
        if victims.is_empty() {
            report.bytes_after = report.bytes_before;
            return Ok(report);
        }
        let full = selection == Selection::All;
        let items = self.live_records(&victims, full);
        let mut done = Copied::default();
        let copied = self.copy(items, hook, &mut report, &mut done);
        let synced = copied.and_then(|()| self.fs().sync_dir(&self.data_dir).map_err(io_err(&self.data_dir)));
        if let Err(err) = synced.and_then(|()| self.retire(&victims, full, hook)) {
            self.abandon(&done);
            return Err(err);
        }
        report.segments_rewritten = victims.len() as u64;
        report.bytes_after = dir_bytes(self.fs(), &self.data_dir);
        Ok(report)
    }

    /// Seals the active segment and returns the sealed segments `selection` picks.
    fn seal_and_pick(&self, selection: Selection) -> Result<Vec<u32>, DiskError> {
        let mut w = self.writer()?;
        if w.len() > SEGMENT_HEADER_LEN {
            self.roll(&mut w)?;
        } else {
            self.sync_locked(&mut w)?;
        }
        let state = self.state.read();
        let sealed = state.readers.keys().copied().filter(|id| *id != w.id);
        Ok(match selection {
            Selection::All => sealed.collect(),
            Selection::DeadRatio(ratio) => sealed
                .filter(|id| {
                    let usage = state.index.segments.get(id).copied().unwrap_or_default();
                    usage.total > 0
                        && (usage.total - usage.live.min(usage.total)) as f64 >= ratio * usage.total as f64
                })
                .collect(),
        })
    }

    /// The records of `victims` to copy, in sequence order, each with the kind code that uses it (see
    /// [`Reencode`]): live entries, the chunks they use, and in a partial pass the tombstones.
    fn live_records(&self, victims: &[u32], full: bool) -> Vec<(u64, Loc, Target, u8)> {
        let victims: HashSet<u32> = victims.iter().copied().collect();
        let now = now_ms();
        let state = self.state.read();
        let mut items = Vec::new();
        let mut used: HashMap<BlobRef, u8> = HashMap::new();
        for slot in state.index.entries() {
            let kind = slot.kind();
            if slot.expires().is_live(now) {
                for blob in slot.refs() {
                    let by = used.entry(*blob).or_insert(kind);
                    if kind == RESPONSE_KIND {
                        *by = RESPONSE_KIND;
                    }
                }
                if victims.contains(&slot.loc().segment) {
                    items.push((slot.seq(), slot.loc(), Target::Entry((kind, slot.key().into())), kind));
                }
            }
        }
        for (blob, by) in used {
            if let Some(slot) = state.index.blobs.get(&blob)
                && let Some(loc) = slot.loc.filter(|l| victims.contains(&l.segment))
            {
                items.push((slot.seq, loc, Target::Blob(blob), by));
            }
        }
        if !full {
            for (kind, key, seq, loc) in state.index.tombstones() {
                if victims.contains(&loc.segment) {
                    items.push((seq, loc, Target::Tombstone((kind, key.into())), kind));
                }
            }
        }
        // Sorted after the read lock is let go: a put waiting for the index must not wait for the sort too.
        drop(state);
        items.sort_unstable_by_key(|(seq, _, _, _)| *seq);
        items
    }

    /// Copies `items` into new segments, pointing the index at each segment's copies once it is renamed.
    fn copy(
        &self,
        items: Vec<(u64, Loc, Target, u8)>,
        hook: Option<&dyn Reencode>,
        report: &mut CompactReport,
        done: &mut Copied,
    ) -> Result<(), DiskError> {
        let mut out: Option<NewSegment> = None;
        for (_, loc, target, used_by) in items {
            let Some(bytes) = self.raw_record(loc) else {
                report.damaged_skipped += 1;
                continue;
            };
            let bytes = match record::decode(&bytes, true) {
                Err(_) => {
                    report.damaged_skipped += 1;
                    continue;
                }
                Ok(rec) => match reencoded(&rec, used_by, hook) {
                    Some(new) => {
                        report.reencoded += 1;
                        new
                    }
                    None => bytes,
                },
            };
            if out.as_ref().is_some_and(|s| s.len >= self.options.segment_size) {
                let full = out.take().expect("checked");
                self.install(full, done)?;
            }
            let seg = match &mut out {
                Some(seg) => seg,
                None => {
                    let id = self.allocate_segment_id();
                    done.files.push(segment::segment_path(&self.data_dir, id).with_extension("log.tmp"));
                    out.insert(NewSegment::create(self.fs(), &self.data_dir, id)?)
                }
            };
            seg.push(&bytes, loc, target)?;
            report.records_kept += 1;
        }
        if let Some(last) = out.take() {
            self.install(last, done)?;
        }
        Ok(())
    }

    /// Finishes a new segment and points the index at its copies where the index still has the originals.
    fn install(&self, seg: NewSegment, done: &mut Copied) -> Result<(), DiskError> {
        let (id, moved, len) = (seg.id, seg.moved.clone(), seg.len);
        done.files.push(segment::segment_path(&self.data_dir, id));
        let reader = seg.finish(self.fs(), &self.data_dir)?;
        let mut state = self.state.write();
        state.readers.insert(id, Arc::new(reader));
        let index = &mut state.index;
        index.segments.entry(id).or_default().total += len - SEGMENT_HEADER_LEN;
        for (old, new, target, stored_len) in moved {
            let before = match &target {
                Target::Entry((kind, key)) => index.relocate_entry(*kind, key, old, new, stored_len),
                Target::Blob(blob) => match index.blobs.get_mut(blob) {
                    Some(slot) if slot.loc == Some(old) => {
                        slot.loc = Some(new);
                        Some(std::mem::replace(&mut slot.stored_len, stored_len))
                    }
                    _ => None,
                },
                Target::Tombstone((kind, key)) => index.relocate_tombstone(*kind, key, old, new).then_some(0),
            };
            if let Some(before) = before {
                index.segments.entry(old.segment).or_default().live -= old.len as u64;
                index.segments.entry(id).or_default().live += new.len as u64;
                done.moves.push((old, new, target, before));
            }
        }
        Ok(())
    }

    /// The last step, under the writer lock: chunks used again since the snapshot are copied through the
    /// writer, what is left in the victims leaves the index, and the victims are deleted.
    fn retire(&self, victims: &[u32], full: bool, hook: Option<&dyn Reencode>) -> Result<(), DiskError> {
        let victims: HashSet<u32> = victims.iter().copied().collect();
        let mut w = self.writer()?;
        let in_victims = |loc: &Loc| victims.contains(&loc.segment);
        let revived: Vec<Loc> = {
            let state = self.state.read();
            state
                .index
                .blobs
                .values()
                .filter(|b| b.refcount > 0)
                .filter_map(|b| b.loc)
                .filter(in_victims)
                .collect()
        };
        for loc in revived {
            let bytes = self.raw_record(loc);
            let checked = bytes.as_deref().and_then(|b| record::decode(b, true).ok());
            // Offered to the hook too (the user is unknown), so it sees every record the pass keeps.
            match checked.map(|rec| reencoded(&rec, 0, hook)) {
                Some(Some(new)) => self.append_copy(&mut w, &new)?,
                Some(None) => self.append_copy(&mut w, bytes.as_deref().unwrap_or_default())?,
                _ => tracing::warn!(
                    segment = loc.segment,
                    offset = loc.offset,
                    "a chunk in use could not be copied"
                ),
            }
        }
        self.sync_locked(&mut w)?;
        if w.len() == SEGMENT_HEADER_LEN {
            // Nothing was written during the pass: the writer moves past the copies, so its segment stays
            // the last one and no empty segment is left behind among them.
            let empty = (w.id, w.path.clone());
            let mut state = self.state.write();
            let next = super::open::new_segment(
                self.fs(),
                &self.data_dir,
                self.allocate_segment_id(),
                w.seq,
                &mut state,
            )?;
            self.next_segment.fetch_max(next.id + 1, std::sync::atomic::Ordering::Relaxed);
            state.readers.remove(&empty.0);
            state.index.segments.remove(&empty.0);
            *w = next;
            drop(state);
            let _ = self.fs().remove_file(&empty.1);
            let _ = self.fs().remove_file(&segment::hint_path(&self.data_dir, empty.0));
        }
        {
            let mut guard = self.state.write();
            let state = &mut *guard;
            let index = &mut state.index;
            index.forget_entries_where(in_victims);
            let blobs: Vec<BlobRef> = index
                .blobs
                .iter()
                .filter(|(_, b)| b.loc.as_ref().is_some_and(in_victims))
                .map(|(r, _)| *r)
                .collect();
            for blob in &blobs {
                index.blobs.remove(blob);
            }
            if full {
                index.forget_tombstones_where(in_victims);
            }
            for id in &victims {
                index.segments.remove(id);
                state.readers.remove(id);
            }
            state.damage.retain(|(id, _)| !victims.contains(id));
        }
        drop(w);
        // Oldest first: a failure leaves newer victims (and the tombstones in them) behind, never an older
        // record without the tombstone that hides it. A victim left behind is read again at the next open,
        // where sequence numbers sort it out; its space comes back at the next pass.
        let mut ids: Vec<u32> = victims.into_iter().collect();
        ids.sort_unstable();
        for id in ids {
            for path in [segment::segment_path(&self.data_dir, id), segment::hint_path(&self.data_dir, id)] {
                if let Err(err) = self.fs().remove_file(&path)
                    && err.kind() != std::io::ErrorKind::NotFound
                {
                    tracing::warn!(path = %path.display(), "compaction could not delete a rewritten segment: {err}");
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// After a failed pass: points the index back at the originals (still in place), forgets and deletes
    /// the copies, so the store is as it was and keeps accepting writes.
    fn abandon(&self, done: &Copied) {
        let mut guard = self.state.write();
        let state = &mut *guard;
        let index = &mut state.index;
        for (old, new, target, stored_len) in &done.moves {
            let back = match target {
                Target::Entry((kind, key)) => {
                    index.relocate_entry(*kind, key, *new, *old, *stored_len).map(|_| ())
                }
                Target::Blob(blob) => index.blobs.get_mut(blob).filter(|s| s.loc == Some(*new)).map(|s| {
                    s.loc = Some(*old);
                    s.stored_len = *stored_len;
                }),
                Target::Tombstone((kind, key)) => {
                    index.relocate_tombstone(*kind, key, *new, *old).then_some(())
                }
            };
            if back.is_some() {
                index.segments.entry(old.segment).or_default().live += old.len as u64;
            }
        }
        for path in &done.files {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if let Some(id) = segment::parse_segment_name(name.trim_end_matches(".tmp")) {
                state.readers.remove(&id);
                state.index.segments.remove(&id);
                let _ = self.fs().remove_file(&segment::hint_path(&self.data_dir, id));
            }
            let _ = self.fs().remove_file(path);
        }
        tracing::warn!(
            "compaction failed and was abandoned; the cache keeps its segments and accepts writes"
        );
    }

    /// Appends a record copied byte for byte (its sequence number kept) through the writer.
    fn append_copy(&self, w: &mut super::Writer, bytes: &[u8]) -> Result<(), DiskError> {
        if w.len() >= self.options.segment_size {
            self.roll(w)?;
        }
        let offset = w.len();
        w.buf.extend_from_slice(bytes);
        w.hint.add(offset, bytes);
        let decoded = record::decode(bytes, false).expect("checked by the caller");
        let loc = Loc { segment: w.id, offset, len: bytes.len() as u32 };
        self.state.write().index.apply(&decoded, loc);
        Ok(())
    }
}

/// A segment being written by compaction.
struct NewSegment {
    id: u32,
    tmp: PathBuf,
    file: Box<dyn StorageFile>,
    /// Bytes not yet appended to `file` (written out a megabyte at a time).
    buf: Vec<u8>,
    len: u64,
    hint: HintBuilder,
    /// (from, to, what, stored value length) for each record copied here.
    moved: Vec<(Loc, Loc, Target, u32)>,
}

impl NewSegment {
    const BUFFER: usize = 1 << 20;

    fn create(fs: &dyn Storage, dir: &Path, id: u32) -> Result<Self, DiskError> {
        let tmp = segment::segment_path(dir, id).with_extension("log.tmp");
        let file = fs.create(&tmp).map_err(io_err(&tmp))?;
        let mut buf = Vec::with_capacity(Self::BUFFER);
        buf.extend_from_slice(&segment::file_header(id));
        let (hint, moved) = (HintBuilder::default(), Vec::new());
        Ok(Self { id, tmp, file, buf, len: SEGMENT_HEADER_LEN, hint, moved })
    }

    fn push(&mut self, bytes: &[u8], from: Loc, target: Target) -> Result<(), DiskError> {
        let offset = self.len;
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= Self::BUFFER {
            self.file.append(&self.buf).map_err(io_err(&self.tmp))?;
            self.buf.clear();
        }
        self.len += bytes.len() as u64;
        self.hint.add(offset, bytes);
        let stored_len = record::decode_header(bytes).map_or(0, |h| h.value_len);
        self.moved.push((
            from,
            Loc { segment: self.id, offset, len: bytes.len() as u32 },
            target,
            stored_len,
        ));
        Ok(())
    }

    fn finish(mut self, fs: &dyn Storage, dir: &Path) -> Result<SegmentReader, DiskError> {
        self.file.append(&self.buf).map_err(io_err(&self.tmp))?;
        self.file.sync().map_err(io_err(&self.tmp))?;
        let path = segment::segment_path(dir, self.id);
        fs.rename(&self.tmp, &path).map_err(io_err(&path))?;
        let hint_path = segment::hint_path(dir, self.id);
        self.hint.write(fs, &hint_path, self.id, self.len).map_err(io_err(&hint_path))?;
        SegmentReader::map(fs, &path).map_err(io_err(&path))
    }
}

/// The kind code of response entries, whose chunks [`Reencode`] is told about.
const RESPONSE_KIND: u8 = 1;

/// `rec` framed again with the value `hook` gives it (sequence number, times, key, name and references
/// kept); `None` when the hook keeps it as it is. Tombstones are never offered.
fn reencoded(rec: &Record<'_>, used_by: u8, hook: Option<&dyn Reencode>) -> Option<Vec<u8>> {
    if rec.header.record_type == record::RecordType::Tombstone {
        return None;
    }
    let (codec, value) = hook?.reencode(rec, used_by)?;
    let refs: Vec<BlobRef> = rec.refs().collect();
    let h = &rec.header;
    let mut out = Vec::with_capacity(record::HEADER_LEN + h.body_len());
    record::encode(
        &RecordRef {
            record_type: h.record_type,
            kind: h.kind,
            codec,
            seq: h.seq,
            created_ms: h.created_ms,
            expires_ms: h.expires_ms,
            key: rec.key,
            name: rec.name,
            refs: &refs,
            value: &value,
            raw_len: h.raw_len,
            payload_len: h.payload_len,
        },
        &mut out,
    );
    Some(out)
}

/// Bytes of all files in `dir`.
pub(super) fn dir_bytes(fs: &dyn Storage, dir: &Path) -> u64 {
    let names = fs.list(dir).unwrap_or_default();
    names.iter().filter_map(|name| fs.len(&dir.join(name)).ok()).sum()
}
