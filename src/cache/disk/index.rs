//! The in-memory index of a disk store: where the newest live record of every key is, chunk reference
//! counts, and live/dead byte counts per segment (which drive compaction).
//!
//! Records may be applied in any order: the highest sequence number wins, and tombstones are remembered so
//! an older entry seen later (e.g. after a compaction moved it) does not come back.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use hashbrown::Equivalent;

use super::entries::{self, Entries, EntryRef, Meta, Upsert};
use crate::cache::clock::Expiry;
use crate::cache::record::{BlobRef, Header, Record, RecordType};

/// The index's hash maps. Keys are content hashes and cache keys (themselves digests), so a fast seeded hasher
/// is enough; with std's SipHash, hashing was a quarter of the time spent opening a store.
pub type Map<K, V> = hashbrown::HashMap<K, V, foldhash::fast::RandomState>;

/// The kind code of blob records (and of tombstones that remove a quarantined blob).
pub const BLOB_KIND: u8 = 0;

/// Where a record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loc {
    /// Segment id.
    pub segment: u32,
    /// Offset of the record in the segment file.
    pub offset: u64,
    /// Length of the whole record.
    pub len: u32,
}

/// An entry's key: kind code and key bytes.
pub type EntryKey = (u8, Box<[u8]>);

/// An [`EntryKey`] borrowed: looks up the tombstones without allocating (hashes as the tuple does).
struct KeyRef<'a>(u8, &'a [u8]);

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
        self.1.hash(state);
    }
}

impl Equivalent<EntryKey> for KeyRef<'_> {
    fn equivalent(&self, key: &EntryKey) -> bool {
        self.0 == key.0 && self.1 == &*key.1
    }
}

/// What the index keeps about a live entry, as an owned copy (the index itself holds it more compactly, see
/// [`super::entries`]).
#[derive(Clone, Debug, PartialEq)]
pub struct EntrySlot {
    /// Where its record is.
    pub loc: Loc,
    /// Its write sequence number.
    pub seq: u64,
    /// Creation time (ms).
    pub created_ms: u64,
    /// When it stops being served.
    pub expires: Expiry,
    /// Decoded length of the entry's own value (the envelope when deduplicated).
    pub raw_len: u32,
    /// Stored length of the entry's own value.
    pub stored_len: u32,
    /// Decoded length of the referenced chunks.
    pub payload_len: u64,
    /// The name used by pattern filters.
    pub name: Box<str>,
    /// Chunk references.
    pub refs: Box<[BlobRef]>,
}

impl EntrySlot {
    /// The view of an entry with these header fields, `name` and chunk `refs`.
    pub fn new(meta: Meta, name: Box<str>, refs: Box<[BlobRef]>) -> Self {
        let Meta { loc, seq, created_ms, expires, raw_len, stored_len, payload_len } = meta;
        Self { loc, seq, created_ms, expires, raw_len, stored_len, payload_len, name, refs }
    }

    /// Decoded size of the whole value.
    pub fn logical_len(&self) -> u64 {
        self.raw_len as u64 + self.payload_len
    }
}

/// What the index keeps about a chunk.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BlobSlot {
    /// Where its record is, once seen.
    pub loc: Option<Loc>,
    /// Its write sequence number.
    pub seq: u64,
    /// Decoded length.
    pub raw_len: u32,
    /// Stored length.
    pub stored_len: u32,
    /// Live entries referring to it.
    pub refcount: u32,
}

/// Bytes in one segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegmentUsage {
    /// Bytes of records in the segment (excluding the file header).
    pub total: u64,
    /// Bytes of records that are still the newest for their key.
    pub live: u64,
}

/// The index.
#[derive(Debug, Default)]
pub struct Index {
    /// Live entries.
    entries: Entries,
    /// Chunks, referenced or not.
    pub blobs: Map<BlobRef, BlobSlot>,
    /// Newest tombstone seq per key, for keys with no newer entry.
    tombstones: Map<EntryKey, (u64, Loc)>,
    /// Usage per segment.
    pub segments: BTreeMap<u32, SegmentUsage>,
    /// Highest sequence number seen.
    pub max_seq: u64,
}

impl Index {
    /// Applies one record found at `loc`.
    pub fn apply(&mut self, record: &Record<'_>, loc: Loc) {
        self.apply_parts(&record.header, record.key, record.name, record.refs().collect(), loc)
    }

    /// Applies a record given by its header and body parts (as read from a hint file).
    pub fn apply_parts(&mut self, h: &Header, key: &[u8], name: &[u8], refs: Vec<BlobRef>, loc: Loc) {
        self.max_seq = self.max_seq.max(h.seq);
        self.segments.entry(loc.segment).or_default().total += loc.len as u64;
        match h.record_type {
            RecordType::Blob => {
                let Ok(blob_ref) = BlobRef::try_from(key) else { return };
                let slot = self.blobs.entry(blob_ref).or_default();
                if slot.loc.is_some() && slot.seq > h.seq {
                    return;
                }
                if let Some(old) = slot.loc {
                    self.segments.entry(old.segment).or_default().live -= old.len as u64;
                }
                slot.loc = Some(loc);
                slot.seq = h.seq;
                slot.raw_len = h.raw_len;
                slot.stored_len = h.value_len;
                self.segments.entry(loc.segment).or_default().live += loc.len as u64;
            }
            RecordType::Entry => {
                // Same effect as `newer_than`, `drop_key` and an insert, with one hash lookup of the entries
                // (opening a store applies every record once) and none of the tombstones while there are none.
                let tombstone = if self.tombstones.is_empty() {
                    None
                } else {
                    self.tombstones.get(&KeyRef(h.kind, key)).copied()
                };
                if tombstone.is_some_and(|(seq, _)| seq > h.seq) {
                    return;
                }
                let meta = Meta::of(h, loc);
                let id = match self.entries.upsert(h.kind, key, meta, name, refs) {
                    Upsert::Older => return,
                    Upsert::Inserted(id) => id,
                    Upsert::Replaced(id, old, old_refs) => {
                        self.release(old, &old_refs);
                        id
                    }
                };
                if let Some((_, old)) = tombstone {
                    self.tombstones.remove(&KeyRef(h.kind, key));
                    self.segments.entry(old.segment).or_default().live -= old.len as u64;
                }
                for r in self.entries.get(id).refs() {
                    self.blobs.entry(*r).or_default().refcount += 1;
                }
                self.segments.entry(loc.segment).or_default().live += loc.len as u64;
            }
            RecordType::Tombstone if h.kind == BLOB_KIND => {
                if let Ok(blob_ref) = BlobRef::try_from(key)
                    && self.blobs.get(&blob_ref).is_some_and(|b| b.loc.is_some() && b.seq < h.seq)
                {
                    self.forget_blob(&blob_ref);
                }
                self.segments.entry(loc.segment).or_default().live += loc.len as u64;
            }
            RecordType::Tombstone => {
                if self.newer_than(h.kind, key, h.seq) {
                    return;
                }
                self.drop_key(h.kind, key);
                self.segments.entry(loc.segment).or_default().live += loc.len as u64;
                self.tombstones.insert((h.kind, key.into()), (h.seq, loc));
            }
        }
    }

    fn newer_than(&self, kind: u8, key: &[u8], seq: u64) -> bool {
        self.entries.find(kind, key).is_some_and(|id| self.entries.get(id).seq() > seq)
            || self.tombstones.get(&KeyRef(kind, key)).is_some_and(|t| t.0 > seq)
    }

    /// Takes a removed or replaced entry's record out of the live bytes and its chunks' reference counts.
    fn release(&mut self, loc: Loc, refs: &[BlobRef]) {
        self.segments.entry(loc.segment).or_default().live -= loc.len as u64;
        for r in refs {
            if let Some(blob) = self.blobs.get_mut(r) {
                blob.refcount = blob.refcount.saturating_sub(1);
            }
        }
    }

    /// Forgets the entry or tombstone at `kind`/`key`, releasing its chunk references and live bytes.
    fn drop_key(&mut self, kind: u8, key: &[u8]) {
        if let Some(id) = self.entries.find(kind, key) {
            let (loc, refs) = self.entries.remove(id);
            self.release(loc, &refs);
        }
        if let Some((_, loc)) = self.tombstones.remove(&KeyRef(kind, key)) {
            self.segments.entry(loc.segment).or_default().live -= loc.len as u64;
        }
    }

    /// Removes an entry from the index without a tombstone (used for quarantined records).
    pub fn forget_entry(&mut self, kind: u8, key: &[u8]) {
        self.drop_key(kind, key);
    }

    /// Removes the entries whose record is at a location `pred` picks (no tombstones); returns how many.
    pub fn forget_entries_where(&mut self, pred: impl Fn(&Loc) -> bool) -> usize {
        let ids: Vec<u32> = self.entries.ids().filter(|&id| pred(&self.entries.get(id).loc())).collect();
        for &id in &ids {
            let (loc, refs) = self.entries.remove(id);
            self.release(loc, &refs);
        }
        ids.len()
    }

    /// Removes the tombstones whose record is at a location `pred` picks; returns how many.
    pub fn forget_tombstones_where(&mut self, pred: impl Fn(&Loc) -> bool) -> usize {
        let before = self.tombstones.len();
        let segments = &mut self.segments;
        self.tombstones.retain(|_, (_, loc)| {
            let keep = !pred(loc);
            if !keep {
                segments.entry(loc.segment).or_default().live -= loc.len as u64;
            }
            keep
        });
        before - self.tombstones.len()
    }

    /// Removes a chunk from the index (used for quarantined records).
    pub fn forget_blob(&mut self, blob: &BlobRef) {
        if let Some(slot) = self.blobs.get_mut(blob)
            && let Some(loc) = slot.loc.take()
        {
            self.segments.entry(loc.segment).or_default().live -= loc.len as u64;
        }
    }

    /// Forgets every record at `offset` or beyond in `segment`, whose bytes up to `end` never reached the
    /// file (a failed write of the active segment's buffer): entries, tombstones and chunks there leave the
    /// index as if never written. Returns how many records went.
    pub fn forget_from(&mut self, segment: u32, offset: u64, end: u64) -> u64 {
        let beyond = |loc: &Loc| loc.segment == segment && loc.offset >= offset;
        // A key never has both an entry and a tombstone, so the two passes forget what one pass over the
        // keys of both did.
        let mut gone = self.forget_entries_where(beyond) + self.forget_tombstones_where(beyond);
        let blobs: Vec<BlobRef> =
            self.blobs.iter().filter(|(_, b)| b.loc.as_ref().is_some_and(beyond)).map(|(r, _)| *r).collect();
        for blob in &blobs {
            self.forget_blob(blob);
            if self.blobs.get(blob).is_some_and(|b| b.refcount == 0) {
                self.blobs.remove(blob);
            }
        }
        gone += blobs.len();
        let usage = self.segments.entry(segment).or_default();
        usage.total = usage.total.saturating_sub(end.saturating_sub(offset));
        gone as u64
    }

    /// The live entry under `kind`/`key`.
    pub fn entry(&self, kind: u8, key: &[u8]) -> Option<EntryRef<'_>> {
        self.entries.find(kind, key).map(|id| self.entries.get(id))
    }

    /// Every live entry, in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = EntryRef<'_>> + '_ {
        self.entries.ids().map(|id| self.entries.get(id))
    }

    /// How many live entries there are.
    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }

    /// Points the entry under `kind`/`key` at `to` (its value now `stored_len` bytes) if it is at `from`;
    /// returns its previous stored length when it was. Live bytes are the caller's to move.
    pub fn relocate_entry(
        &mut self,
        kind: u8,
        key: &[u8],
        from: Loc,
        to: Loc,
        stored_len: u32,
    ) -> Option<u32> {
        let id = self.entries.find(kind, key).filter(|&id| self.entries.get(id).loc() == from)?;
        Some(self.entries.relocate(id, to, stored_len))
    }

    /// The tombstone under `kind`/`key`: its sequence number and location.
    pub fn tombstone(&self, kind: u8, key: &[u8]) -> Option<(u64, Loc)> {
        self.tombstones.get(&KeyRef(kind, key)).copied()
    }

    /// Every tombstone: kind, key, sequence number and location.
    pub fn tombstones(&self) -> impl Iterator<Item = (u8, &[u8], u64, Loc)> + '_ {
        self.tombstones.iter().map(|((kind, key), (seq, loc))| (*kind, &**key, *seq, *loc))
    }

    /// Points the tombstone under `kind`/`key` at `to` if it is at `from`; true when it was.
    pub fn relocate_tombstone(&mut self, kind: u8, key: &[u8], from: Loc, to: Loc) -> bool {
        match self.tombstones.get_mut(&KeyRef(kind, key)) {
            Some((_, loc)) if *loc == from => {
                *loc = to;
                true
            }
            _ => false,
        }
    }

    /// Makes room for `entries` more entries with `key_bytes` bytes of keys in all, as
    /// [`Index::stored_key_len`] counts them, and sizes the hash table for `expected` more.
    pub fn reserve_entries(&mut self, entries: usize, key_bytes: usize, expected: usize) {
        self.entries.reserve(entries, key_bytes, expected);
    }

    /// The bytes a key takes in the index's key arena (a lowercase hex key is stored packed, in half).
    pub fn stored_key_len(key: &[u8]) -> usize {
        entries::stored_key_len(key)
    }

    /// Bytes of memory the index holds (capacities: entries, chunks, tombstones and their keys, segments);
    /// within a percent of what the allocator counts (see `index_memory.rs`), malloc's per-block overhead
    /// aside.
    pub fn heap_bytes(&self) -> usize {
        const BTREE_NODE: usize = 11 * (size_of::<u32>() + size_of::<SegmentUsage>()) + 16;
        self.entries.heap_bytes()
            + self.blobs.allocation_size()
            + self.tombstones.allocation_size()
            + self.tombstones.keys().map(|(_, key)| key.len()).sum::<usize>()
            + self.segments.len().div_ceil(5) * BTREE_NODE
    }

    /// Bytes of live records in the whole store.
    pub fn live_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.live).sum()
    }

    /// Bytes of all records in the whole store.
    pub fn total_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.total).sum()
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::record::{RecordRef, decode, encode};

    fn rec(t: RecordType, seq: u64, key: &[u8], refs: &[BlobRef]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(
            &RecordRef {
                record_type: t,
                kind: if t == RecordType::Blob { 0 } else { 1 },
                codec: 0,
                seq,
                created_ms: 0,
                expires_ms: 0,
                key,
                name: b"n",
                refs,
                value: b"vv",
                raw_len: 2,
                payload_len: 0,
            },
            &mut out,
        );
        out
    }

    fn apply(index: &mut Index, bytes: &[u8], segment: u32) {
        let r = decode(bytes, true).unwrap();
        index.apply(&r, Loc { segment, offset: 0, len: bytes.len() as u32 });
    }

    #[test]
    fn newest_seq_wins_in_any_order() {
        let blob = [7u8; 33];
        let old = rec(RecordType::Entry, 1, b"k", &[blob]);
        let tomb = rec(RecordType::Tombstone, 2, b"k", &[]);
        let b = rec(RecordType::Blob, 0, &blob, &[]);
        let mut in_order = Index::default();
        for (bytes, seg) in [(&b, 1), (&old, 1), (&tomb, 2)] {
            apply(&mut in_order, bytes, seg);
        }
        let mut reversed = Index::default();
        for (bytes, seg) in [(&tomb, 2), (&old, 1), (&b, 1)] {
            apply(&mut reversed, bytes, seg);
        }
        for index in [&in_order, &reversed] {
            assert_eq!(index.entry_count(), 0);
            assert_eq!(index.blobs[&blob].refcount, 0);
            assert_eq!(index.live_bytes(), (b.len() + tomb.len()) as u64);
            assert_eq!(index.total_bytes(), (b.len() + old.len() + tomb.len()) as u64);
        }
    }

    #[test]
    fn newer_entry_replaces_tombstone_and_older_entry() {
        let (a, b) = ([1u8; 33], [2u8; 33]);
        let tomb = rec(RecordType::Tombstone, 1, b"k", &[]);
        let old = rec(RecordType::Entry, 2, b"k", &[a]);
        let new = rec(RecordType::Entry, 3, b"k", &[b]);
        let mut index = Index::default();
        for bytes in [&tomb, &old, &new, &old] {
            apply(&mut index, bytes, 1);
        }
        assert!(index.tombstones().next().is_none());
        assert_eq!(index.entry(1, b"k").unwrap().seq(), 3);
        assert_eq!(index.blobs[&a].refcount, 0);
        assert_eq!(index.blobs[&b].refcount, 1);
        assert_eq!(index.live_bytes(), new.len() as u64);
        assert_eq!(index.total_bytes(), (tomb.len() + 2 * old.len() + new.len()) as u64);
    }

    #[test]
    fn overwrite_moves_refcounts() {
        let (a, b) = ([1u8; 33], [2u8; 33]);
        let mut index = Index::default();
        apply(&mut index, &rec(RecordType::Entry, 1, b"k", &[a]), 1);
        apply(&mut index, &rec(RecordType::Entry, 2, b"j", &[a]), 1);
        assert_eq!(index.blobs[&a].refcount, 2);
        apply(&mut index, &rec(RecordType::Entry, 3, b"k", &[b]), 1);
        assert_eq!(index.blobs[&a].refcount, 1);
        assert_eq!(index.blobs[&b].refcount, 1);
    }
}
