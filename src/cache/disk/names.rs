//! The entry names of the disk index, each distinct name held once and counted: entries keep a 4-byte id.
//!
//! Names are what pattern filters match besides the key; in practice a handful of them (the model's name for
//! every response, an empty name for KV states) are shared by millions of entries, so holding each once is
//! what keeps them out of the per-entry cost. A name no entry uses any more is freed and its id reused.

use hashbrown::HashTable;
use std::hash::BuildHasher;

/// Interned names with reference counts.
#[derive(Default)]
pub struct Names {
    /// Per id: the name and how many entries use it (0: free, on `free`).
    list: Vec<(Box<str>, u32)>,
    /// Ids of `list`, by the name's hash.
    table: HashTable<u32>,
    hasher: foldhash::fast::RandomState,
    free: Vec<u32>,
    /// The id interned last: names come in runs (a store holds one model's answers), so checking it first
    /// saves the hash and the lookup.
    last: u32,
}

impl Names {
    /// The id of `name` (decoded as UTF-8, invalid bytes replaced), its count raised by one.
    pub fn intern(&mut self, name: &[u8]) -> u32 {
        let name = String::from_utf8_lossy(name);
        if let Some((held, count)) = self.list.get_mut(self.last as usize)
            && *count > 0
            && **held == *name
        {
            *count += 1;
            return self.last;
        }
        let Self { list, table, hasher, free, .. } = self;
        let hash = hasher.hash_one(&*name);
        let id = match table.entry(
            hash,
            |&id| *list[id as usize].0 == *name,
            |&id| hasher.hash_one(&*list[id as usize].0),
        ) {
            hashbrown::hash_table::Entry::Occupied(o) => *o.get(),
            hashbrown::hash_table::Entry::Vacant(v) => {
                let id = match free.pop() {
                    Some(id) => {
                        list[id as usize] = (name.into(), 0);
                        id
                    }
                    None => {
                        list.push((name.into(), 0));
                        u32::try_from(list.len() - 1).expect("fewer than 2^32 distinct names")
                    }
                };
                v.insert(id);
                id
            }
        };
        list[id as usize].1 += 1;
        self.last = id;
        id
    }

    /// Lowers the count of `id`, freeing the name when no entry uses it.
    pub fn release(&mut self, id: u32) {
        let (name, count) = &mut self.list[id as usize];
        *count -= 1;
        if *count == 0 {
            let hash = self.hasher.hash_one(&**name);
            if let Ok(found) = self.table.find_entry(hash, |&other| other == id) {
                found.remove();
            }
            *name = Box::default();
            self.free.push(id);
        }
    }

    /// The name with this id.
    pub fn get(&self, id: u32) -> &str {
        &self.list[id as usize].0
    }

    /// Bytes held on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.list.capacity() * size_of::<(Box<str>, u32)>()
            + self.list.iter().map(|(name, _)| name.len()).sum::<usize>()
            + self.table.allocation_size()
            + self.free.capacity() * size_of::<u32>()
    }
}
