//! Measures the index's memory at the allocator: a counting global allocator for the library's test binary,
//! and a test that builds the index of `benches/disk_tier.rs`'s `open` store (64-hex keys, a 28-byte name,
//! small values, no chunk references) and reports the bytes it holds per entry.
//!
//! Run the 1M figure with
//! `cargo test --release --no-default-features --lib index_memory -- --ignored --nocapture`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use super::index::{Index, Loc};
use crate::cache::record::{Header, RecordType};

/// The system allocator, counting the bytes each thread has live (requested sizes: malloc's own per-block
/// overhead, 8-16 bytes per allocation, is not included). Per thread, so tests running in parallel do not
/// disturb each other's counts.
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    // `try_with`: the thread's slot may be gone while it exits; those frees do not matter here.
    let _ = LIVE.try_with(|live| live.set(live.get() + delta));
}

// SAFETY: every call is forwarded to `System` with the caller's arguments unchanged; counting only reads the
// layout's size. The unsafe is what the `GlobalAlloc` trait requires, nothing more.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Bytes this thread has live now.
pub fn live_bytes() -> isize {
    LIVE.with(Cell::get)
}

const NAME: &[u8] = b"llama-3.1-8b-instruct-q4_k_m";

/// Builds the index of the `open` bench's store of `entries` entries, applied from `segments` hints the way
/// `hint::load` does (the index reserved at each segment for its lines times the segments left); returns it
/// and the bytes it holds at the allocator.
pub fn bench_index(entries: usize, segments: usize) -> (Index, usize) {
    let mut state = entries as u64 | 1;
    let mut keys = Vec::with_capacity(entries * 64);
    for _ in 0..entries * 4 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        keys.extend_from_slice(format!("{state:016x}").as_bytes());
    }
    let per_segment = entries.div_ceil(segments);
    let before = live_bytes();
    let mut index = Index::default();
    let mut offset = 0u64;
    for (i, key) in keys.chunks_exact(64).enumerate() {
        if i % per_segment == 0 {
            let left = segments - i / per_segment;
            let lines = per_segment.min(entries - i);
            index.reserve_entries(lines, Index::stored_key_len(key) * lines, lines * left);
            offset = 0;
        }
        let value_len = 64 + (i as u32 * 7919) % 137;
        let header = Header {
            record_type: RecordType::Entry,
            kind: 1,
            codec: 0,
            seq: i as u64 + 1,
            created_ms: 1_780_000_000_000 + i as u64,
            expires_ms: 0,
            key_len: 64,
            name_len: NAME.len() as u16,
            refs: 0,
            value_len,
            raw_len: value_len,
            payload_len: 0,
            checksum: 0,
        };
        let len = header.record_len() as u32;
        let loc = Loc { segment: 1 + (i / per_segment) as u32, offset, len };
        offset += len as u64;
        index.apply_parts(&header, key, NAME, Vec::new(), loc);
    }
    let held = (live_bytes() - before) as usize;
    drop(keys);
    (index, held)
}

#[test]
fn heap_bytes_is_what_the_allocator_counts() {
    let (index, held) = bench_index(20_000, 3);
    let estimate = index.heap_bytes();
    assert!(estimate.abs_diff(held) <= held / 100, "heap_bytes {estimate} vs {held} counted");
}

#[test]
#[ignore = "a release-mode measurement: builds a 1M-entry index"]
fn index_memory_at_1m_entries() {
    const ENTRIES: usize = 1_000_000;
    let (index, held) = bench_index(ENTRIES, 5);
    println!(
        "index of {ENTRIES} entries: {held} bytes at the allocator, {:.1} bytes/entry (heap_bytes: {:.1})",
        held as f64 / ENTRIES as f64,
        index.heap_bytes() as f64 / ENTRIES as f64
    );
}
