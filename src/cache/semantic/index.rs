//! The semantic index in memory: unit-length vectors grouped by scope, searched by brute force within one
//! group, bounded by a most-entries limit that drops the oldest first.
//!
//! A vector is stored under its request's response key, with the text it embeds (the guards compare
//! texts). A group's vectors lie in one contiguous `f32` array, beside sign bits and 4-bit codes of the same
//! vectors ([`quantized`]): a search is one pass over the copies of that group alone (other groups are never
//! read), which skips the rows that provably cannot reach the threshold, and the exact `f32` dot product
//! (cosine similarity, the vectors being unit length) of the others. docs/semantic-cache.md says why brute
//! force rather than an approximate index.

use std::collections::{HashMap, VecDeque};

use super::quantized::{self, QueryCodes};

/// A scope group's identity: a hash of the request's canonical form without its last user message.
pub type GroupId = [u8; 32];

/// A stored vector found by a search.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// The response key it was stored under.
    pub key: String,
    /// The text it embeds.
    pub text: String,
    /// Cosine similarity to the query.
    pub similarity: f32,
}

#[derive(Debug)]
struct Group {
    keys: Vec<String>,
    texts: Vec<String>,
    vectors: Vec<f32>,
    codes: quantized::Rows,
}

/// Where a key's vector is.
#[derive(Clone, Copy, Debug)]
struct Slot {
    group: GroupId,
    /// Its insertion number.
    number: u64,
    /// Its row in the group.
    at: usize,
}

/// The index.
#[derive(Debug)]
pub struct Index {
    dims: usize,
    max_entries: usize,
    groups: HashMap<GroupId, Group>,
    /// Key → its group, insertion number and row.
    slots: HashMap<String, Slot>,
    /// Insertion numbers and keys, oldest first; an entry whose number no longer matches `slots` is stale.
    order: VecDeque<(u64, String)>,
    next: u64,
}

/// Makes `vector` unit length in place; false when it has no length (all zeros) or is not finite.
pub fn normalize(vector: &mut [f32]) -> bool {
    let norm = vector.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt();
    if !norm.is_finite() || norm == 0.0 {
        return false;
    }
    vector.iter_mut().for_each(|x| *x = (f64::from(*x) / norm) as f32);
    true
}

/// The dot product of `a` and `b` (over the shorter), in 8 lanes summed at the end. On x86-64 CPUs with
/// AVX2 the same operations run in one 256-bit register (same order, so the same result to the bit).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    dot_fn()(a, b)
}

/// [`dot`] for this CPU, chosen once per call site (a search picks it once for the whole scan).
fn dot_fn() -> fn(&[f32], &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        return |a, b| {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { dot_avx2(a, b) }
        };
    }
    dot_lanes
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes(a, b)
}

#[inline(always)]
fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8.remainder().iter().zip(b8.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a8.zip(b8) {
        for ((lane, x), y) in lanes.iter_mut().zip(x).zip(y) {
            *lane += x * y;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

impl Index {
    /// An empty index of `dims`-wide vectors holding at most `max_entries` (at least 1).
    pub fn new(dims: usize, max_entries: usize) -> Self {
        Self {
            dims,
            max_entries: max_entries.max(1),
            groups: HashMap::new(),
            slots: HashMap::new(),
            order: VecDeque::new(),
            next: 0,
        }
    }

    /// The vectors' width.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Vectors held.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Vectors in `group`.
    pub fn group_len(&self, group: &GroupId) -> usize {
        self.groups.get(group).map_or(0, |g| g.keys.len())
    }

    /// True when `key` has a vector.
    pub fn contains(&self, key: &str) -> bool {
        self.slots.contains_key(key)
    }

    /// Adds (or replaces) `key`'s unit-length `vector` and `text` in `group`; returns the keys dropped, oldest
    /// first, to stay within `max_entries`. A vector of another width is refused (`None`).
    pub fn insert(&mut self, group: GroupId, key: &str, text: &str, vector: &[f32]) -> Option<Vec<String>> {
        if vector.len() != self.dims {
            return None;
        }
        self.remove(key);
        let dims = self.dims;
        let g = self.groups.entry(group).or_insert_with(|| Group {
            keys: Vec::new(),
            texts: Vec::new(),
            vectors: Vec::new(),
            codes: quantized::Rows::new(dims),
        });
        let at = g.keys.len();
        g.keys.push(key.to_string());
        g.texts.push(text.to_string());
        g.vectors.extend_from_slice(vector);
        g.codes.push(vector);
        self.slots.insert(key.to_string(), Slot { group, number: self.next, at });
        self.order.push_back((self.next, key.to_string()));
        self.next += 1;
        let mut dropped = Vec::new();
        while self.slots.len() > self.max_entries {
            let Some((number, oldest)) = self.order.pop_front() else { break };
            if self.slots.get(&oldest).is_some_and(|slot| slot.number == number) {
                self.remove(&oldest);
                dropped.push(oldest);
            }
        }
        self.compact_order();
        Some(dropped)
    }

    /// Removes `key`'s vector; true when it had one.
    pub fn remove(&mut self, key: &str) -> bool {
        let Some(Slot { group, at, .. }) = self.slots.remove(key) else { return false };
        let Some(g) = self.groups.get_mut(&group) else { return true };
        g.keys.swap_remove(at);
        g.texts.swap_remove(at);
        let last = g.keys.len();
        if at != last {
            let (head, tail) = g.vectors.split_at_mut(last * self.dims);
            head[at * self.dims..(at + 1) * self.dims].copy_from_slice(&tail[..self.dims]);
            // The group's last row moved into the gap.
            if let Some(moved) = self.slots.get_mut(&g.keys[at]) {
                moved.at = at;
            }
        }
        g.vectors.truncate(last * self.dims);
        g.codes.swap_remove(at);
        if g.keys.is_empty() {
            self.groups.remove(&group);
        }
        true
    }

    /// Drops every vector.
    pub fn clear(&mut self) {
        self.groups.clear();
        self.slots.clear();
        self.order.clear();
    }

    /// The vectors of `group` whose cosine similarity to the unit-length `query` is at least `threshold`,
    /// most similar first.
    pub fn search(&self, group: &GroupId, query: &[f32], threshold: f32) -> Vec<Candidate> {
        let Some(g) = self.groups.get(group).filter(|_| query.len() == self.dims) else { return Vec::new() };
        let dot = dot_fn();
        let mut found: Vec<(usize, f32)> = Vec::new();
        for at in g.codes.candidates(&QueryCodes::new(query), threshold) {
            let similarity = dot(&g.vectors[at * self.dims..(at + 1) * self.dims], query);
            if similarity >= threshold {
                found.push((at, similarity));
            }
        }
        found.sort_by(|a, b| b.1.total_cmp(&a.1));
        found
            .into_iter()
            .map(|(at, similarity)| Candidate {
                key: g.keys[at].clone(),
                text: g.texts[at].clone(),
                similarity,
            })
            .collect()
    }

    /// Drops stale entries from the front of the insertion order, and rebuilds it when mostly stale.
    fn compact_order(&mut self) {
        while let Some((number, key)) = self.order.front() {
            if self.slots.get(key).is_some_and(|slot| slot.number == *number) {
                break;
            }
            self.order.pop_front();
        }
        if self.order.len() > 2 * self.slots.len() + 64 {
            let slots = &self.slots;
            self.order.retain(|(number, key)| slots.get(key).is_some_and(|slot| slot.number == *number));
        }
    }
}

#[cfg(test)]
mod tests;
