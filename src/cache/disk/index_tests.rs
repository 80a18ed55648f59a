//! The index against a model: random sequences of records applied, entries forgotten and moved, checked
//! after every step against the index as it was before its compact layout (hash maps of owned keys and
//! slots, kept here as the model), so the layout changes nothing the rest of the store can see.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;

use super::entries::Meta;
use super::index::{BLOB_KIND, BlobSlot, EntryKey, EntrySlot, Index, Loc, SegmentUsage};
use crate::cache::record::{BlobRef, Header, RecordType};

/// The index as it was: every entry an owned key and slot in a hash map.
#[derive(Default)]
struct Model {
    entries: HashMap<EntryKey, EntrySlot>,
    blobs: HashMap<BlobRef, BlobSlot>,
    tombstones: HashMap<EntryKey, (u64, Loc)>,
    segments: BTreeMap<u32, SegmentUsage>,
    max_seq: u64,
}

impl Model {
    fn live(&mut self, segment: u32) -> &mut u64 {
        &mut self.segments.entry(segment).or_default().live
    }

    fn apply(&mut self, h: &Header, key: &[u8], name: &[u8], refs: Vec<BlobRef>, loc: Loc) {
        self.max_seq = self.max_seq.max(h.seq);
        self.segments.entry(loc.segment).or_default().total += loc.len as u64;
        let entry_key: EntryKey = (h.kind, key.into());
        match h.record_type {
            RecordType::Blob => {
                let Ok(blob_ref) = BlobRef::try_from(key) else { return };
                let slot = self.blobs.entry(blob_ref).or_default();
                if slot.loc.is_some() && slot.seq > h.seq {
                    return;
                }
                let old = slot.loc.replace(loc);
                (slot.seq, slot.raw_len, slot.stored_len) = (h.seq, h.raw_len, h.value_len);
                if let Some(old) = old {
                    *self.live(old.segment) -= old.len as u64;
                }
                *self.live(loc.segment) += loc.len as u64;
            }
            RecordType::Entry => {
                if self.newer_than(&entry_key, h.seq) {
                    return;
                }
                self.drop_key(&entry_key);
                for r in &refs {
                    self.blobs.entry(*r).or_default().refcount += 1;
                }
                let slot =
                    EntrySlot::new(Meta::of(h, loc), String::from_utf8_lossy(name).into(), refs.into());
                self.entries.insert(entry_key, slot);
                *self.live(loc.segment) += loc.len as u64;
            }
            RecordType::Tombstone if h.kind == BLOB_KIND => {
                if let Ok(blob_ref) = BlobRef::try_from(key)
                    && self.blobs.get(&blob_ref).is_some_and(|b| b.loc.is_some() && b.seq < h.seq)
                {
                    self.forget_blob(&blob_ref);
                }
                *self.live(loc.segment) += loc.len as u64;
            }
            RecordType::Tombstone => {
                if self.newer_than(&entry_key, h.seq) {
                    return;
                }
                self.drop_key(&entry_key);
                *self.live(loc.segment) += loc.len as u64;
                self.tombstones.insert(entry_key, (h.seq, loc));
            }
        }
    }

    fn newer_than(&self, key: &EntryKey, seq: u64) -> bool {
        self.entries.get(key).is_some_and(|e| e.seq > seq)
            || self.tombstones.get(key).is_some_and(|t| t.0 > seq)
    }

    fn drop_key(&mut self, key: &EntryKey) {
        if let Some(old) = self.entries.remove(key) {
            *self.live(old.loc.segment) -= old.loc.len as u64;
            for r in old.refs.iter() {
                if let Some(blob) = self.blobs.get_mut(r) {
                    blob.refcount = blob.refcount.saturating_sub(1);
                }
            }
        }
        if let Some((_, loc)) = self.tombstones.remove(key) {
            *self.live(loc.segment) -= loc.len as u64;
        }
    }

    fn forget_blob(&mut self, blob: &BlobRef) {
        if let Some(loc) = self.blobs.get_mut(blob).and_then(|slot| slot.loc.take()) {
            *self.live(loc.segment) -= loc.len as u64;
        }
    }

    fn forget_from(&mut self, segment: u32, offset: u64, end: u64) -> u64 {
        let beyond = |loc: &Loc| loc.segment == segment && loc.offset >= offset;
        let mut keys: Vec<EntryKey> =
            self.entries.iter().filter(|(_, s)| beyond(&s.loc)).map(|(k, _)| k.clone()).collect();
        keys.extend(self.tombstones.iter().filter(|(_, (_, l))| beyond(l)).map(|(k, _)| k.clone()));
        let blobs: Vec<BlobRef> =
            self.blobs.iter().filter(|(_, b)| b.loc.as_ref().is_some_and(beyond)).map(|(r, _)| *r).collect();
        for key in &keys {
            self.drop_key(key);
        }
        for blob in &blobs {
            self.forget_blob(blob);
            if self.blobs.get(blob).is_some_and(|b| b.refcount == 0) {
                self.blobs.remove(blob);
            }
        }
        let usage = self.segments.entry(segment).or_default();
        usage.total = usage.total.saturating_sub(end.saturating_sub(offset));
        (keys.len() + blobs.len()) as u64
    }
}

/// Keys of every shape the arena treats differently: packed hex (short, 64 digits, the longest packed),
/// hex too long to pack, odd-length, upper-case and non-hex keys, the empty key.
fn key_pool() -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = ["ab", "0123456789abcdef", "abc", "ABCD", "k", "", "zz"]
        .iter()
        .map(|k| k.as_bytes().to_vec())
        .collect();
    keys.push("5f".repeat(32).into_bytes());
    keys.push("e7".repeat(64).into_bytes());
    keys.push("e7".repeat(65).into_bytes());
    keys.push(vec![0, 1, 255]);
    keys
}

fn blob(i: usize) -> BlobRef {
    [i as u8 + 1; 33]
}

#[derive(Clone, Debug)]
enum Op {
    Entry { kind: u8, key: usize, seq: u64, name: usize, refs: Vec<usize>, payload: u64, expires: u64 },
    Tombstone { kind: u8, key: usize, seq: u64 },
    Blob { blob: usize, seq: u64 },
    ForgetEntry { kind: u8, key: usize },
    ForgetBlob { blob: usize },
    ForgetFrom { back: u64 },
    Relocate { kind: u8, key: usize, stored_len: u32 },
    ForgetSegment,
}

fn op() -> impl Strategy<Value = Op> {
    let kind = 0u8..3;
    let key = 0usize..11;
    let seq = 1u64..40;
    prop_oneof![
        6 => (kind.clone(), key.clone(), seq.clone(), 0usize..4, proptest::collection::vec(0usize..4, 0..3), 0u64..3, 0u64..3)
            .prop_map(|(kind, key, seq, name, refs, payload, expires)| Op::Entry { kind, key, seq, name, refs, payload, expires }),
        3 => (kind.clone(), key.clone(), seq.clone()).prop_map(|(kind, key, seq)| Op::Tombstone { kind, key, seq }),
        2 => (0usize..4, seq).prop_map(|(blob, seq)| Op::Blob { blob, seq }),
        1 => (kind.clone(), key.clone()).prop_map(|(kind, key)| Op::ForgetEntry { kind, key }),
        1 => (0usize..4).prop_map(|blob| Op::ForgetBlob { blob }),
        1 => (0u64..400).prop_map(|back| Op::ForgetFrom { back }),
        2 => (kind, key, 0u32..500).prop_map(|(kind, key, stored_len)| Op::Relocate { kind, key, stored_len }),
        1 => Just(Op::ForgetSegment),
    ]
}

fn check(index: &Index, model: &Model, keys: &[Vec<u8>]) -> Result<(), TestCaseError> {
    let entries: HashMap<EntryKey, EntrySlot> =
        index.entries().map(|e| ((e.kind(), e.key().into()), e.to_slot())).collect();
    prop_assert_eq!(&entries, &model.entries);
    prop_assert_eq!(index.entry_count(), model.entries.len());
    for kind in 0..3 {
        for key in keys {
            let found = index.entry(kind, key).map(|e| e.to_slot());
            prop_assert_eq!(found.as_ref(), model.entries.get(&(kind, key[..].into())));
        }
    }
    let tombstones: HashMap<EntryKey, (u64, Loc)> =
        index.tombstones().map(|(kind, key, seq, loc)| ((kind, key.into()), (seq, loc))).collect();
    prop_assert_eq!(&tombstones, &model.tombstones);
    let blobs: HashMap<BlobRef, BlobSlot> = index.blobs.iter().map(|(r, b)| (*r, b.clone())).collect();
    prop_assert_eq!(&blobs, &model.blobs);
    prop_assert_eq!(&index.segments, &model.segments);
    prop_assert_eq!(index.max_seq, model.max_seq);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_index_behaves_as_the_hash_map_model(ops in proptest::collection::vec(op(), 1..120)) {
        let keys = key_pool();
        let names: [&[u8]; 4] = [b"", b"llama", b"qwen", &[0xff, b'x']];
        let (mut index, mut model) = (Index::default(), Model::default());
        let mut offset = 0u64;
        for (step, op) in ops.into_iter().enumerate() {
            // Records go to segment 1 to 3 in turn, at growing offsets, as a writer and compaction put them.
            let segment = 1 + (step % 3) as u32;
            let len = 70 + (step as u32 * 37) % 90;
            let loc = Loc { segment, offset, len };
            offset += len as u64;
            let header = |record_type, kind, seq, key_len: usize| Header {
                record_type,
                kind,
                codec: 0,
                seq,
                created_ms: 1_000 + step as u64,
                expires_ms: 0,
                key_len: key_len as u16,
                name_len: 0,
                refs: 0,
                value_len: len / 2,
                raw_len: len,
                payload_len: 0,
                checksum: 0,
            };
            match op {
                Op::Entry { kind, key, seq, name, refs, payload, expires } => {
                    let refs: Vec<BlobRef> = refs.into_iter().map(blob).collect();
                    let mut h = header(RecordType::Entry, kind, seq, keys[key].len());
                    (h.payload_len, h.expires_ms) = (payload * 1000, expires * 5000);
                    index.apply_parts(&h, &keys[key], names[name], refs.clone(), loc);
                    model.apply(&h, &keys[key], names[name], refs, loc);
                }
                Op::Tombstone { kind, key, seq } => {
                    // A tombstone of kind 0 removes a chunk: its key is a chunk reference.
                    let key = if kind == BLOB_KIND { blob(key % 4).to_vec() } else { keys[key].clone() };
                    let h = header(RecordType::Tombstone, kind, seq, key.len());
                    index.apply_parts(&h, &key, b"", Vec::new(), loc);
                    model.apply(&h, &key, b"", Vec::new(), loc);
                }
                Op::Blob { blob: b, seq } => {
                    let h = header(RecordType::Blob, BLOB_KIND, seq, 33);
                    index.apply_parts(&h, &blob(b), b"", Vec::new(), loc);
                    model.apply(&h, &blob(b), b"", Vec::new(), loc);
                }
                Op::ForgetEntry { kind, key } => {
                    index.forget_entry(kind, &keys[key]);
                    model.drop_key(&(kind, keys[key][..].into()));
                }
                Op::ForgetBlob { blob: b } => {
                    index.forget_blob(&blob(b));
                    model.forget_blob(&blob(b));
                }
                Op::ForgetFrom { back } => {
                    let from = offset.saturating_sub(back);
                    let gone = index.forget_from(segment, from, offset);
                    prop_assert_eq!(gone, model.forget_from(segment, from, offset));
                }
                Op::Relocate { kind, key, stored_len } => {
                    // As compaction's install does: the move only happens where the entry still is.
                    let from = model.entries.get(&(kind, keys[key][..].into())).map_or(loc, |s| s.loc);
                    let moved = index.relocate_entry(kind, &keys[key], from, loc, stored_len);
                    let expected = model.entries.get_mut(&(kind, keys[key][..].into())).map(|s| {
                        s.loc = loc;
                        std::mem::replace(&mut s.stored_len, stored_len)
                    });
                    prop_assert_eq!(moved, expected);
                    if moved.is_some() {
                        for m in [&mut index.segments, &mut model.segments] {
                            m.entry(from.segment).or_default().live -= from.len as u64;
                            m.entry(loc.segment).or_default().live += loc.len as u64;
                        }
                    }
                }
                Op::ForgetSegment => {
                    // As compaction's retire does with a victim: its entries and tombstones leave.
                    let victim = |l: &Loc| l.segment == segment;
                    index.forget_entries_where(victim);
                    index.forget_tombstones_where(victim);
                    let keys: Vec<EntryKey> = model
                        .entries
                        .iter()
                        .filter(|(_, s)| victim(&s.loc))
                        .map(|(k, _)| k.clone())
                        .chain(model.tombstones.iter().filter(|(_, (_, l))| victim(l)).map(|(k, _)| k.clone()))
                        .collect();
                    for key in &keys {
                        model.drop_key(key);
                    }
                }
            }
            check(&index, &model, &keys)?;
        }
    }
}

/// Many keys removed and re-added: the arena is compacted along the way and every key stays findable.
#[test]
fn removals_compact_the_key_arena_and_keep_every_key() {
    let mut index = Index::default();
    let key = |i: u64| format!("{i:064x}").into_bytes();
    let apply = |index: &mut Index, record_type, i: u64, seq: u64| {
        let h = Header {
            record_type,
            kind: 1,
            codec: 0,
            seq,
            created_ms: 0,
            expires_ms: 0,
            key_len: 64,
            name_len: 1,
            refs: 0,
            value_len: 1,
            raw_len: 1,
            payload_len: 0,
            checksum: 0,
        };
        index.apply_parts(&h, &key(i), b"n", Vec::new(), Loc { segment: 1, offset: seq, len: 70 });
    };
    let mut seq = 0;
    for round in 0..4u64 {
        for i in 0..3000 {
            seq += 1;
            apply(&mut index, RecordType::Entry, round * 1000 + i, seq);
        }
        for i in 0..2500 {
            seq += 1;
            apply(&mut index, RecordType::Tombstone, round * 1000 + i, seq);
        }
    }
    let live: Vec<u64> = (0..6000).filter(|i| index.entry(1, &key(*i)).is_some()).collect();
    // Each round's tombstones also remove what the round before left.
    let expected: Vec<u64> = (5500..6000).collect();
    assert_eq!(live, expected);
    assert_eq!(index.entry_count(), expected.len());
    for e in index.entries() {
        assert_eq!(e.key().len(), 64);
        assert_eq!(e.name(), "n");
    }
}
