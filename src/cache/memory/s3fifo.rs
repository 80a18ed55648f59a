//! One shard of the memory tier: the S3-FIFO eviction policy (Yang et al., SOSP 2023) over a slab.
//!
//! Entries live in a slab (`Vec` of slots plus a free list), found through a `hashbrown::HashTable` of slab
//! indices, and sit in one of two FIFO queues kept as doubly linked lists through the slab:
//! - **small** (a tenth of the shard's entries and bytes): where new keys enter;
//! - **main**: keys that were read while in small, and keys remembered by the ghost queue.
//!
//! A hit only raises the entry's 2-bit frequency (an atomic, so lookups share a read lock and move nothing).
//! To make room, the head of small leaves: to main if it was read since it entered, otherwise out of the
//! tier (its hash goes to the ghost queue, so a quick return enters main directly). The head of main, if
//! read since it last passed the head, goes back to the tail with its frequency lowered by one; otherwise it
//! leaves. One-hit wonders thus leave from small without pushing out entries that are read again and again,
//! which is why S3-FIFO's hit ratio matches or beats LRU's on skewed traces (benches/memory_tier.rs measures
//! it on Zipf traces) while a hit costs no list surgery.

use std::borrow::Borrow;
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU8, Ordering};

use hashbrown::HashTable;

/// Highest frequency an entry can reach; reads beyond it are not counted.
const MAX_FREQ: u8 = 3;
/// "No slot": the end of a list.
const NIL: u32 = u32::MAX;

/// The queue an entry is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Queue {
    Small,
    Main,
}

/// What one step of [`Shard::evict_one`] did.
enum Step<K, V> {
    /// This entry left the tier.
    Evicted(K, V),
    /// The head of small was read while there, and moved to main.
    Moved,
    /// Only the entry being inserted is left to choose (cannot happen while over a bound; a guard).
    Stuck,
}

/// One entry. `repr(C)` keeps what a hit touches — the key compared, the value cloned, the frequency raised —
/// together at the front, so a hit reads no more cache lines than needed.
#[repr(C)]
struct Entry<K, V> {
    key: K,
    value: V,
    freq: AtomicU8,
    queue: Queue,
    prev: u32,
    next: u32,
    weight: u64,
    hash: u64,
}

/// A FIFO queue threaded through the slab: entries leave at the head and enter at the tail.
#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
    len: u64,
    bytes: u64,
}

impl List {
    const EMPTY: List = List { head: NIL, tail: NIL, len: 0, bytes: 0 };
}

/// One shard's entries and queues. Callers hold the shard's lock: a read lock for [`Shard::get`] and
/// [`Shard::peek`], a write lock for everything else.
pub(super) struct Shard<K, V> {
    table: HashTable<u32>,
    slots: Vec<Option<Entry<K, V>>>,
    free: Vec<u32>,
    small: List,
    main: List,
    /// Hashes of keys that recently left from small unread, oldest first; at most `max_entries` of them.
    ghost_order: VecDeque<u64>,
    ghost: HashSet<u64, foldhash::fast::FixedState>,
    max_entries: u64,
    max_bytes: u64,
}

impl<K: Eq, V: Clone> Shard<K, V> {
    /// An empty shard bounded by `max_entries` and `max_bytes`.
    pub(super) fn new(max_entries: u64, max_bytes: u64) -> Self {
        Shard {
            table: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
            small: List::EMPTY,
            main: List::EMPTY,
            ghost_order: VecDeque::new(),
            ghost: HashSet::default(),
            max_entries,
            max_bytes,
        }
    }

    /// Entries held.
    pub(super) fn len(&self) -> u64 {
        self.small.len + self.main.len
    }

    /// Bytes held, as charged on insert.
    pub(super) fn bytes(&self) -> u64 {
        self.small.bytes + self.main.bytes
    }

    /// The value under `key` (whose hash is `hash`), counting a read of it.
    pub(super) fn get<Q>(&self, hash: u64, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let entry = self.entry(hash, key)?;
        let freq = entry.freq.load(Ordering::Relaxed);
        if freq < MAX_FREQ {
            // Two readers may both store freq + 1: a lost count, harmless for an eviction hint.
            entry.freq.store(freq + 1, Ordering::Relaxed);
        }
        Some(entry.value.clone())
    }

    /// The value under `key`, without counting a read.
    pub(super) fn peek<Q>(&self, hash: u64, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.entry(hash, key).map(|entry| entry.value.clone())
    }

    /// Stores `value` under `key` and returns the entries that left to make room, in the order they left. The caller has checked that the value
    /// fits on its own (`weight <= max_bytes`, `max_entries > 0`), so the new entry itself never leaves here.
    /// A key already present keeps its queue, position and frequency; only its value and weight change.
    pub(super) fn insert(&mut self, hash: u64, key: K, value: V, weight: u64) -> Vec<(K, V)> {
        let index = match self.index_of(hash, &key) {
            Some(index) => {
                let entry = self.slot_mut(index);
                let old = std::mem::replace(&mut entry.weight, weight);
                entry.value = value;
                let list = self.list_mut(self.slot(index).queue);
                list.bytes = list.bytes - old + weight;
                index
            }
            None => {
                let queue = if self.ghost.remove(&hash) { Queue::Main } else { Queue::Small };
                let entry =
                    Entry { key, value, weight, hash, freq: AtomicU8::new(0), queue, prev: NIL, next: NIL };
                let index = match self.free.pop() {
                    Some(index) => {
                        self.slots[index as usize] = Some(entry);
                        index
                    }
                    None => {
                        self.slots.push(Some(entry));
                        u32::try_from(self.slots.len() - 1).expect("a shard holds fewer than 2^32 entries")
                    }
                };
                let slots = &self.slots;
                self.table.insert_unique(hash, index, |&i| slot_in(slots, i).hash);
                self.push_tail(index, queue);
                index
            }
        };
        let mut evicted = Vec::new();
        while self.len() > self.max_entries || self.bytes() > self.max_bytes {
            match self.evict_one(index) {
                Step::Evicted(key, value) => evicted.push((key, value)),
                Step::Moved => {}
                Step::Stuck => break,
            }
        }
        evicted
    }

    /// Removes `key`, returning its value.
    pub(super) fn remove<Q>(&mut self, hash: u64, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let index = self.index_of(hash, key)?;
        Some(self.take(index).1)
    }

    /// Keeps the entries `keep` accepts; returns how many were removed.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) -> usize {
        let doomed: Vec<u32> = (0..self.slots.len() as u32)
            .filter(|&i| self.slots[i as usize].as_ref().is_some_and(|e| !keep(&e.key, &e.value)))
            .collect();
        for &index in &doomed {
            self.take(index);
        }
        doomed.len()
    }

    /// Drops every entry and the ghost queue's memory of them.
    pub(super) fn clear(&mut self) {
        *self = Shard::new(self.max_entries, self.max_bytes);
    }

    fn entry<Q>(&self, hash: u64, key: &Q) -> Option<&Entry<K, V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.index_of(hash, key).map(|index| self.slot(index))
    }

    fn index_of<Q>(&self, hash: u64, key: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.table.find(hash, |&i| slot_in(&self.slots, i).key.borrow() == key).copied()
    }

    /// Makes room by one step, never choosing `protect` (the entry being inserted).
    fn evict_one(&mut self, protect: u32) -> Step<K, V> {
        let others = |list: &List| list.len > 1 || (list.len == 1 && list.head != protect);
        let (small_others, main_others) = (others(&self.small), others(&self.main));
        let small_over =
            self.small.len > (self.max_entries / 10).max(1) || self.small.bytes > self.max_bytes / 10;
        if small_others && (small_over || !main_others) {
            // `protect`, when in small, is its tail: the head is another entry.
            let index = self.small.head;
            self.unlink(index);
            let entry = self.slot_mut(index);
            if entry.freq.load(Ordering::Relaxed) > 0 {
                entry.freq.store(0, Ordering::Relaxed);
                self.push_tail(index, Queue::Main);
                return Step::Moved;
            }
            let hash = entry.hash;
            self.remember(hash);
            let (key, value) = self.forget(index);
            return Step::Evicted(key, value);
        }
        if !main_others {
            return Step::Stuck;
        }
        loop {
            let index = self.main.head;
            self.unlink(index);
            let entry = self.slot_mut(index);
            let freq = entry.freq.load(Ordering::Relaxed);
            if index != protect && freq == 0 {
                let (key, value) = self.forget(index);
                return Step::Evicted(key, value);
            }
            if index != protect {
                entry.freq.store(freq - 1, Ordering::Relaxed);
            }
            self.push_tail(index, Queue::Main);
        }
    }

    /// Adds a hash to the ghost queue, dropping the oldest beyond `max_entries`.
    fn remember(&mut self, hash: u64) {
        if self.ghost.insert(hash) {
            self.ghost_order.push_back(hash);
        }
        while self.ghost_order.len() as u64 > self.max_entries {
            if let Some(old) = self.ghost_order.pop_front() {
                self.ghost.remove(&old);
            }
        }
    }

    /// Unlinks and frees the entry at `index`, returning its key and value.
    fn take(&mut self, index: u32) -> (K, V) {
        self.unlink(index);
        self.forget(index)
    }

    /// Frees an entry already unlinked from its queue.
    fn forget(&mut self, index: u32) -> (K, V) {
        let hash = self.slot(index).hash;
        if let Ok(found) = self.table.find_entry(hash, |&i| i == index) {
            found.remove();
        }
        let entry = self.slots[index as usize].take().expect("a linked slot is occupied");
        self.free.push(index);
        (entry.key, entry.value)
    }

    fn push_tail(&mut self, index: u32, queue: Queue) {
        let tail = self.list_mut(queue).tail;
        let entry = self.slot_mut(index);
        entry.queue = queue;
        entry.prev = tail;
        entry.next = NIL;
        let weight = entry.weight;
        if tail == NIL {
            self.list_mut(queue).head = index;
        } else {
            self.slot_mut(tail).next = index;
        }
        let list = self.list_mut(queue);
        list.tail = index;
        list.len += 1;
        list.bytes += weight;
    }

    fn unlink(&mut self, index: u32) {
        let entry = self.slot(index);
        let (prev, next, queue, weight) = (entry.prev, entry.next, entry.queue, entry.weight);
        if prev == NIL {
            self.list_mut(queue).head = next;
        } else {
            self.slot_mut(prev).next = next;
        }
        if next == NIL {
            self.list_mut(queue).tail = prev;
        } else {
            self.slot_mut(next).prev = prev;
        }
        let list = self.list_mut(queue);
        list.len -= 1;
        list.bytes -= weight;
    }

    fn list_mut(&mut self, queue: Queue) -> &mut List {
        match queue {
            Queue::Small => &mut self.small,
            Queue::Main => &mut self.main,
        }
    }

    fn slot(&self, index: u32) -> &Entry<K, V> {
        slot_in(&self.slots, index)
    }

    fn slot_mut(&mut self, index: u32) -> &mut Entry<K, V> {
        self.slots[index as usize].as_mut().expect("an indexed slot is occupied")
    }
}

fn slot_in<K, V>(slots: &[Option<Entry<K, V>>], index: u32) -> &Entry<K, V> {
    slots[index as usize].as_ref().expect("an indexed slot is occupied")
}
