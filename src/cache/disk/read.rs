//! The read path of the disk tier: an entry and its chunks looked up in the index and read back, checked,
//! from the segment files (or from the writer's buffer for records not yet written out). A read that loses a
//! race with compaction looks again; only a record that fails where the index still places it is damage.

use std::sync::atomic::Ordering;

use parking_lot::Mutex;

use super::index::{EntrySlot, Loc};
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
        Ok(self.read_value(loc)?.map(|(codec, bytes, raw_len)| StoredChunk { codec, bytes, raw_len }))
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
        let Some((codec, value, raw_len)) = self.read_value(slot.loc)? else {
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
                Some((codec, bytes, raw_len)) => chunks.push(StoredChunk { codec, bytes, raw_len }),
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

    /// Reads and checks the record at `loc`; `None` when it cannot be read there or fails its check (the
    /// caller decides whether that is damage or a lost race).
    fn read_value(&self, loc: Loc) -> Result<Option<(u8, Vec<u8>, u32)>, DiskError> {
        self.counters.reads.fetch_add(1, Ordering::Relaxed);
        let verify = self.options.verify_checksums;
        let decode = |bytes: &[u8]| match record::decode(bytes, verify) {
            Ok(r) => Some((r.header.codec, r.value.to_vec(), r.header.raw_len)),
            Err(_) => None,
        };
        let found = {
            let state = self.state.read();
            match state.readers.get(&loc.segment) {
                Some(reader) => {
                    let mut buf = Vec::new();
                    Some(reader.read(loc.offset, loc.len as usize, &mut buf).ok().and_then(decode))
                }
                None => None,
            }
        };
        let found = match found {
            Some(Some(found)) => Some(found),
            // Not readable through the file: for the active segment it may still sit in the write buffer.
            _ => {
                let w = self.writer.as_ref().map(Mutex::lock);
                match w {
                    Some(w) if w.id == loc.segment && loc.offset >= w.flushed => {
                        let start = (loc.offset - w.flushed) as usize;
                        w.buf.get(start..start + loc.len as usize).and_then(decode)
                    }
                    // Written out by the writer since the first attempt: read the file again.
                    Some(w) if w.id == loc.segment => {
                        let state = self.state.read();
                        let mut buf = Vec::new();
                        let reader = state.readers.get(&loc.segment);
                        let found = reader
                            .and_then(|r| r.read(loc.offset, loc.len as usize, &mut buf).ok())
                            .and_then(decode);
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
