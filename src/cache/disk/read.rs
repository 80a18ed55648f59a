//! The read path of the disk tier: an entry and its chunks looked up in the index and read back, checked,
//! from the segment files (or from the writer's buffer for records not yet written out). A read that loses a
//! race with compaction looks again; only a record that fails where the index still places it is damage.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use parking_lot::Mutex;

use super::index::{EntrySlot, Loc};
use super::segment::SegmentReader;
use super::{DiskError, DiskStore, StoredChunk, StoredEntry};
use crate::cache::clock::now_ms;
use crate::cache::record::{self, BlobRef};

/// What [`DiskStore::read_entry`] found.
enum Read {
    Found(StoredEntry),
    /// The entry's record, or the chunk at this location, could not be read or failed its check.
    Damaged {
        blob: Option<(BlobRef, Loc)>,
    },
}

impl DiskStore {
    /// The chunk stored under `blob`, checked; `None` when absent or unreadable.
    pub fn get_blob(&self, blob: &BlobRef) -> Result<Option<StoredChunk>, DiskError> {
        let Some(loc) = self.state.read().index.blobs.get(blob).and_then(|b| b.loc) else { return Ok(None) };
        self.read_value(loc)
    }

    /// Reads an entry and its chunks, verifying checksums. Expired, missing and damaged entries are `None`;
    /// a damaged record is counted and quarantined, never returned.
    ///
    /// A read can lose a race with compaction, which moves records and deletes the old segments: a record
    /// that cannot be read where the index said is looked up again, and only a record that fails where the
    /// index still places it is damage.
    pub fn get(&self, kind: u8, key: &[u8]) -> Result<Option<StoredEntry>, DiskError> {
        const ATTEMPTS: usize = 4;
        for attempt in 1..=ATTEMPTS {
            let Some(slot) = self.state.read().index.entry(kind, key).map(|e| e.to_slot()) else {
                return Ok(None);
            };
            if !slot.expires.is_live(now_ms()) {
                return Ok(None);
            }
            match self.read_entry(&slot)? {
                Read::Found(entry) => return Ok(Some(entry)),
                Read::Damaged { blob } => {
                    let moved = self.state.read().index.entry(kind, key).map(|e| e.loc());
                    let blob_moved = blob.is_some_and(|(r, loc)| {
                        self.state.read().index.blobs.get(&r).and_then(|b| b.loc) != Some(loc)
                    });
                    if (moved != Some(slot.loc) || blob_moved) && attempt < ATTEMPTS {
                        continue;
                    }
                    if moved != Some(slot.loc) {
                        // Removed or replaced meanwhile: nothing to quarantine.
                        return Ok(None);
                    }
                    self.counters.checksum_failures.fetch_add(1, Ordering::Relaxed);
                    if let Some((r, loc)) = blob {
                        self.quarantine_blob(&r, loc)?;
                    }
                    self.quarantine_entry(kind, key, slot.loc)?;
                    return Ok(None);
                }
            }
        }
        Ok(None)
    }

    /// Reads the entry `slot` describes and its chunks.
    fn read_entry(&self, slot: &EntrySlot) -> Result<Read, DiskError> {
        let Some(StoredChunk { codec, bytes: value, raw_len }) = self.read_value(slot.loc)? else {
            return Ok(Read::Damaged { blob: None });
        };
        let mut chunks = Vec::with_capacity(slot.refs.len());
        for blob in slot.refs.iter() {
            let loc = self.state.read().index.blobs.get(blob).and_then(|b| b.loc);
            let chunk = match loc {
                Some(loc) => self.read_value(loc)?,
                None => None,
            };
            match chunk {
                Some(chunk) => chunks.push(chunk),
                None => return Ok(Read::Damaged { blob: loc.map(|l| (*blob, l)) }),
            }
        }
        Ok(Read::Found(StoredEntry {
            codec,
            value,
            raw_len,
            chunks,
            refs: slot.refs.to_vec(),
            created_ms: slot.created_ms,
            expires: slot.expires,
            name: slot.name.to_string(),
        }))
    }

    /// Reads and checks the record at `loc` (its codec, stored bytes and decoded length); `None` when it cannot be read there or fails its check (the
    /// caller decides whether that is damage or a lost race).
    fn read_value(&self, loc: Loc) -> Result<Option<StoredChunk>, DiskError> {
        self.counters.reads.fetch_add(1, Ordering::Relaxed);
        let verify = self.options.verify_checksums;
        let found = {
            let state = self.state.read();
            state.readers.get(&loc.segment).map(|reader| read_checked(reader, loc, verify))
        };
        let found = match found {
            Some(Some(found)) => Some(found),
            // Not readable through the file: for the active segment it may still sit in the write buffer.
            _ => {
                let w = self.writer.as_ref().map(Mutex::lock);
                match w {
                    Some(w) if w.id == loc.segment && loc.offset >= w.flushed => {
                        let start = (loc.offset - w.flushed) as usize;
                        w.buf.get(start..start + loc.len as usize).and_then(|b| value_of(b, verify))
                    }
                    // Written out by the writer since the first attempt: read the file again.
                    Some(w) if w.id == loc.segment => {
                        let state = self.state.read();
                        let found =
                            state.readers.get(&loc.segment).and_then(|r| read_checked(r, loc, verify));
                        drop(w);
                        found
                    }
                    _ => None,
                }
            }
        };
        Ok(found)
    }
}

/// Records at least this long are read in two parts from a segment file, the value straight into the buffer
/// that is returned (a KV state of tens of megabytes is then copied once, by the kernel); shorter ones in one
/// read, the value copied out.
const SPLIT_READ_BYTES: usize = 256 * 1024;

/// The codec, value and decoded length of the record at `loc` in `reader`, when it reads and decodes (and,
/// with `verify`, its checksum matches).
fn read_checked(reader: &SegmentReader, loc: Loc, verify: bool) -> Option<StoredChunk> {
    let len = loc.len as usize;
    if reader.is_mapped() || len < SPLIT_READ_BYTES {
        let mut buf = Vec::new();
        return value_of(reader.read(loc.offset, len, &mut buf).ok()?, verify);
    }
    let mut head = Vec::new();
    let header = record::decode_header(reader.read(loc.offset, record::HEADER_LEN, &mut head).ok()?).ok()?;
    let head_len = record::head_len(&header);
    if header.record_len() != len {
        return None;
    }
    reader.read(loc.offset, head_len, &mut head).ok()?;
    // Zeroed by the allocator: fresh pages for a large value, not written twice.
    // SAFETY: zeroed bytes are valid `u8`s.
    let mut value = unsafe { Arc::<[u8]>::new_zeroed_slice(header.value_len as usize).assume_init() };
    let buf = Arc::get_mut(&mut value).expect("just allocated, not shared");
    reader.read_into(loc.offset + head_len as u64, buf).ok()?;
    let header = record::check_split(&head, &value, verify).ok()?;
    Some(StoredChunk { codec: header.codec, bytes: value, raw_len: header.raw_len })
}

/// The codec, value (copied out) and decoded length of the record that starts `bytes`, when it decodes (and,
/// with `verify`, its checksum matches).
fn value_of(bytes: &[u8], verify: bool) -> Option<StoredChunk> {
    let r = record::decode(bytes, verify).ok()?;
    Some(StoredChunk { codec: r.header.codec, bytes: r.value.into(), raw_len: r.header.raw_len })
}
