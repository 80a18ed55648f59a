//! The live entries of the disk index, laid out to cost little per entry: the part of the index that grows
//! with the store.
//!
//! - Each entry is one 64-byte [`Slot`] in a vector (full-width fields: nothing the format allows overflows),
//!   found through a `hashbrown::HashTable` of `u32` slot ids (5 bytes a bucket). Removed slots go on a free
//!   list and are reused; the vector and the table keep their size after removals (as the hash map did).
//! - Keys live in one byte arena; a key of lowercase hex digits (even length, up to 128) is stored packed to
//!   binary, half the bytes, with a flag, and compared packed (a key is packed exactly when it is such hex,
//!   so two keys are equal exactly when their packed forms and flags are).
//! - Names are interned ([`Names`]): a slot keeps a 4-byte id.
//! - Chunk references and the payload length, which most entries lack, are kept aside in a map by slot id.
//!
//! A removed key's bytes stay in the arena as garbage until the garbage is half of it (and at least 64 KiB):
//! then the live keys are copied into a fresh arena. Each copy moves at most twice the bytes removed since the
//! last, so compaction costs O(1) per removed byte amortised.

use std::borrow::Cow;
use std::hash::BuildHasher;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

use super::index::{EntrySlot, Loc, Map};
use super::names::Names;
use crate::cache::clock::Expiry;
use crate::cache::record::{BlobRef, Header};

/// Longest key packed from hex, in packed bytes.
const PACK_MAX: usize = 64;
/// Garbage below this many arena bytes is never compacted away (little in tests, so they compact).
const MIN_GARBAGE: usize = if cfg!(test) { 256 } else { 64 << 10 };

/// Slot flags.
const FREE: u8 = 1;
const HEX: u8 = 2;
const ASIDE: u8 = 4;

/// One entry.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    seq: u64,
    created_ms: u64,
    expires_ms: u64,
    offset: u64,
    /// Where the key's bytes start in the arena.
    key_at: u64,
    segment: u32,
    len: u32,
    raw_len: u32,
    stored_len: u32,
    /// Interned name id.
    name: u32,
    /// Stored (maybe packed) key length.
    key_len: u16,
    kind: u8,
    flags: u8,
}

const _: () = assert!(size_of::<Slot>() == 64);

/// What a few entries have: chunk references and their decoded length.
#[derive(Debug)]
struct Aside {
    payload_len: u64,
    refs: Box<[BlobRef]>,
}

/// The fields of an entry that come from its record header and location.
#[derive(Clone, Copy, Debug)]
pub struct Meta {
    pub loc: Loc,
    pub seq: u64,
    pub created_ms: u64,
    pub expires: Expiry,
    pub raw_len: u32,
    pub stored_len: u32,
    pub payload_len: u64,
}

impl Meta {
    /// The fields of the record with header `h` found at `loc`.
    pub fn of(h: &Header, loc: Loc) -> Self {
        Self {
            loc,
            seq: h.seq,
            created_ms: h.created_ms,
            expires: Expiry::from_ms(h.expires_ms),
            raw_len: h.raw_len,
            stored_len: h.value_len,
            payload_len: h.payload_len,
        }
    }
}

/// What [`Entries::upsert`] did.
pub enum Upsert {
    /// The stored entry is newer: nothing changed.
    Older,
    /// A new entry, with this id.
    Inserted(u32),
    /// An older entry was replaced (the id kept): where it was and the chunks it referred to.
    Replaced(u32, Loc, Box<[BlobRef]>),
}

/// A key as the table holds it: packed from hex or not.
struct Packed<'a> {
    kind: u8,
    hex: bool,
    buf: [u8; PACK_MAX],
    raw: &'a [u8],
}

impl<'a> Packed<'a> {
    fn new(kind: u8, key: &'a [u8]) -> Self {
        let mut buf = [0u8; PACK_MAX];
        let hex = pack_hex(key, &mut buf);
        Self { kind, hex, buf, raw: key }
    }

    fn bytes(&self) -> &[u8] {
        if self.hex { &self.buf[..self.raw.len() / 2] } else { self.raw }
    }
}

/// The value of each lowercase hex digit; 16 for every other byte.
const NIBBLE: [u8; 256] = {
    let mut table = [16u8; 256];
    let mut i = 0;
    while i < 16 {
        table[b"0123456789abcdef"[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// Packs `key` into `buf` when it is lowercase hex of even length up to `2 * PACK_MAX`; false (and `buf`
/// meaningless) otherwise. Branch-free over the digits: it runs once per record at open.
fn pack_hex(key: &[u8], buf: &mut [u8; PACK_MAX]) -> bool {
    if key.is_empty() || !key.len().is_multiple_of(2) || key.len() > 2 * PACK_MAX {
        return false;
    }
    let mut bad = 0u8;
    for (pair, out) in key.chunks_exact(2).zip(buf.iter_mut()) {
        let (hi, lo) = (NIBBLE[pair[0] as usize], NIBBLE[pair[1] as usize]);
        bad |= hi | lo;
        *out = hi << 4 | lo;
    }
    bad & 16 == 0
}

/// The arena bytes a key takes.
pub fn stored_key_len(key: &[u8]) -> usize {
    Packed::new(0, key).bytes().len()
}

/// The live entries.
#[derive(Default)]
pub struct Entries {
    slots: Vec<Slot>,
    table: HashTable<u32>,
    hasher: foldhash::fast::RandomState,
    keys: Vec<u8>,
    /// Arena bytes of removed keys.
    garbage: usize,
    free: Vec<u32>,
    names: Names,
    aside: Map<u32, Aside>,
}

impl std::fmt::Debug for Entries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entries").field("len", &self.len()).finish_non_exhaustive()
    }
}

fn key_of<'a>(keys: &'a [u8], slot: &Slot) -> &'a [u8] {
    &keys[slot.key_at as usize..slot.key_at as usize + slot.key_len as usize]
}

fn hash(hasher: &foldhash::fast::RandomState, kind: u8, hex: bool, bytes: &[u8]) -> u64 {
    hasher.hash_one((kind, hex, bytes))
}

fn slot_hash(hasher: &foldhash::fast::RandomState, slots: &[Slot], keys: &[u8], id: u32) -> u64 {
    let slot = &slots[id as usize];
    hash(hasher, slot.kind, slot.flags & HEX != 0, key_of(keys, slot))
}

fn matches(slots: &[Slot], keys: &[u8], id: u32, key: &Packed<'_>) -> bool {
    let slot = &slots[id as usize];
    slot.kind == key.kind && (slot.flags & HEX != 0) == key.hex && key_of(keys, slot) == key.bytes()
}

impl Entries {
    /// Live entries.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Makes room for `entries` more entries whose keys take `key_bytes` arena bytes ([`stored_key_len`]),
    /// and in the table for `expected` more in all. Only the table is sized ahead: growing it rehashes every
    /// key (random reads of the arena), while the vectors grow by one copy (on Linux a remap for these sizes),
    /// and sizing them on a guess would leave the guess's error in memory for good.
    pub fn reserve(&mut self, entries: usize, key_bytes: usize, expected: usize) {
        let Self { slots, table, hasher, keys, .. } = self;
        slots.reserve_exact(entries.saturating_sub(self.free.len()));
        table.reserve(expected.max(entries), |&id| slot_hash(hasher, slots, keys, id));
        keys.reserve_exact(key_bytes);
    }

    /// The id of the entry under `kind`/`key`.
    pub fn find(&self, kind: u8, key: &[u8]) -> Option<u32> {
        let packed = Packed::new(kind, key);
        let h = hash(&self.hasher, kind, packed.hex, packed.bytes());
        self.table.find(h, |&id| matches(&self.slots, &self.keys, id, &packed)).copied()
    }

    /// Inserts the entry, or replaces the one under the same key unless that one has a higher `seq`.
    pub fn upsert(&mut self, kind: u8, key: &[u8], meta: Meta, name: &[u8], refs: Vec<BlobRef>) -> Upsert {
        let packed = Packed::new(kind, key);
        let h = hash(&self.hasher, kind, packed.hex, packed.bytes());
        let Self { slots, table, hasher, keys, free, names, aside, .. } = self;
        let (id, done) = match table.entry(
            h,
            |&id| matches(slots, keys, id, &packed),
            |&id| slot_hash(hasher, slots, keys, id),
        ) {
            Entry::Occupied(o) => {
                let id = *o.get();
                let slot = &mut slots[id as usize];
                if slot.seq > meta.seq {
                    return Upsert::Older;
                }
                let old_loc = loc_of(slot);
                let old_refs = match slot.flags & ASIDE {
                    0 => Box::default(),
                    _ => aside.remove(&id).map(|a| a.refs).unwrap_or_default(),
                };
                slot.flags &= !ASIDE;
                if names.get(slot.name).as_bytes() != name {
                    let new = names.intern(name);
                    names.release(std::mem::replace(&mut slot.name, new));
                }
                (id, Upsert::Replaced(id, old_loc, old_refs))
            }
            Entry::Vacant(v) => {
                let stored = packed.bytes();
                let slot = Slot {
                    key_at: keys.len() as u64,
                    key_len: stored.len() as u16,
                    kind,
                    flags: if packed.hex { HEX } else { 0 },
                    name: names.intern(name),
                    ..Slot::default()
                };
                keys.extend_from_slice(stored);
                let id = match free.pop() {
                    Some(id) => {
                        slots[id as usize] = slot;
                        id
                    }
                    None => {
                        slots.push(slot);
                        u32::try_from(slots.len() - 1).expect("the disk index holds fewer than 2^32 entries")
                    }
                };
                v.insert(id);
                (id, Upsert::Inserted(id))
            }
        };
        let slot = &mut slots[id as usize];
        slot.seq = meta.seq;
        slot.created_ms = meta.created_ms;
        slot.expires_ms = meta.expires.as_ms();
        slot.raw_len = meta.raw_len;
        slot.stored_len = meta.stored_len;
        set_loc(slot, meta.loc);
        if !refs.is_empty() || meta.payload_len != 0 {
            slot.flags |= ASIDE;
            aside.insert(id, Aside { payload_len: meta.payload_len, refs: refs.into() });
        }
        done
    }

    /// Removes the entry `id`; returns where it was and the chunks it referred to.
    pub fn remove(&mut self, id: u32) -> (Loc, Box<[BlobRef]>) {
        let Self { slots, table, hasher, keys, .. } = self;
        let h = slot_hash(hasher, slots, keys, id);
        if let Ok(found) = table.find_entry(h, |&other| other == id) {
            found.remove();
        }
        let slot = &mut slots[id as usize];
        let loc = loc_of(slot);
        let refs = match slot.flags & ASIDE {
            0 => Box::default(),
            _ => self.aside.remove(&id).map(|a| a.refs).unwrap_or_default(),
        };
        slot.flags = FREE;
        self.names.release(slot.name);
        self.garbage += slot.key_len as usize;
        self.free.push(id);
        if self.garbage >= MIN_GARBAGE && self.garbage * 2 >= self.keys.len() {
            self.compact_keys();
        }
        (loc, refs)
    }

    /// Copies the live keys into a fresh arena, dropping the garbage.
    fn compact_keys(&mut self) {
        let mut keys = Vec::with_capacity(self.keys.len() - self.garbage);
        for slot in self.slots.iter_mut().filter(|s| s.flags & FREE == 0) {
            let at = keys.len() as u64;
            keys.extend_from_slice(key_of(&self.keys, slot));
            slot.key_at = at;
        }
        self.keys = keys;
        self.garbage = 0;
    }

    /// Moves entry `id` to `loc`, whose stored value is `stored_len` bytes; returns the old stored length.
    pub fn relocate(&mut self, id: u32, loc: Loc, stored_len: u32) -> u32 {
        let slot = &mut self.slots[id as usize];
        set_loc(slot, loc);
        std::mem::replace(&mut slot.stored_len, stored_len)
    }

    /// Ids of the live entries.
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots.iter().enumerate().filter(|(_, s)| s.flags & FREE == 0).map(|(id, _)| id as u32)
    }

    /// The entry `id`.
    pub fn get(&self, id: u32) -> EntryRef<'_> {
        EntryRef { entries: self, slot: &self.slots[id as usize], id }
    }

    /// Bytes held on the heap: the slot vector, the table, the arena, the free list, names and the side map
    /// with its chunk lists (capacities, not lengths).
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * size_of::<Slot>()
            + self.table.allocation_size()
            + self.keys.capacity()
            + self.free.capacity() * size_of::<u32>()
            + self.names.heap_bytes()
            + self.aside.allocation_size()
            + self.aside.values().map(|a| a.refs.len() * size_of::<BlobRef>()).sum::<usize>()
    }
}

fn loc_of(slot: &Slot) -> Loc {
    Loc { segment: slot.segment, offset: slot.offset, len: slot.len }
}

fn set_loc(slot: &mut Slot, loc: Loc) {
    slot.segment = loc.segment;
    slot.offset = loc.offset;
    slot.len = loc.len;
}

/// One live entry, read in place.
#[derive(Clone, Copy)]
pub struct EntryRef<'a> {
    entries: &'a Entries,
    slot: &'a Slot,
    id: u32,
}

impl<'a> EntryRef<'a> {
    pub fn kind(&self) -> u8 {
        self.slot.kind
    }

    /// The key as written (unpacked when stored packed).
    pub fn key(&self) -> Cow<'a, [u8]> {
        let stored = key_of(&self.entries.keys, self.slot);
        if self.slot.flags & HEX == 0 {
            return Cow::Borrowed(stored);
        }
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        Cow::Owned(
            stored.iter().flat_map(|b| [DIGITS[(b >> 4) as usize], DIGITS[(b & 15) as usize]]).collect(),
        )
    }

    pub fn loc(&self) -> Loc {
        loc_of(self.slot)
    }

    pub fn seq(&self) -> u64 {
        self.slot.seq
    }

    pub fn created_ms(&self) -> u64 {
        self.slot.created_ms
    }

    pub fn expires(&self) -> Expiry {
        Expiry::from_ms(self.slot.expires_ms)
    }

    pub fn raw_len(&self) -> u32 {
        self.slot.raw_len
    }

    pub fn stored_len(&self) -> u32 {
        self.slot.stored_len
    }

    fn aside(&self) -> Option<&'a Aside> {
        if self.slot.flags & ASIDE == 0 { None } else { self.entries.aside.get(&self.id) }
    }

    pub fn payload_len(&self) -> u64 {
        self.aside().map_or(0, |a| a.payload_len)
    }

    /// Decoded size of the whole value.
    pub fn logical_len(&self) -> u64 {
        self.raw_len() as u64 + self.payload_len()
    }

    pub fn name(&self) -> &'a str {
        self.entries.names.get(self.slot.name)
    }

    pub fn refs(&self) -> &'a [BlobRef] {
        self.aside().map_or(&[][..], |a| &a.refs[..])
    }

    /// An owned copy of what the index keeps about it.
    pub fn to_slot(self) -> EntrySlot {
        let meta = Meta {
            loc: self.loc(),
            seq: self.seq(),
            created_ms: self.created_ms(),
            expires: self.expires(),
            raw_len: self.raw_len(),
            stored_len: self.stored_len(),
            payload_len: self.payload_len(),
        };
        EntrySlot::new(meta, self.name().into(), self.refs().into())
    }
}
