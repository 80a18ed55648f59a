//! Content-defined chunking: cuts a value where its content says to (FastCDC 2020), so an insertion near the
//! start moves only the chunks around it and the rest still deduplicate.
//!
//! This file owns the cut points and the size bounds only. Hashing the chunks is `hash.rs`'s job, storing them
//! the dedup store's. Cut points are not part of the on-disk format: changing the bounds costs sharing between
//! old and new entries, never correctness.

use fastcdc::v2020::{AVERAGE_MAX, AVERAGE_MIN, FastCDC, MAXIMUM_MAX, MAXIMUM_MIN, MINIMUM_MAX, MINIMUM_MIN};

/// The chunk sizes FastCDC is run with for one configured average.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkBounds {
    /// No chunk but the last is shorter.
    pub min: usize,
    /// The size chunks tend towards.
    pub avg: usize,
    /// No chunk is longer.
    pub max: usize,
}

impl ChunkBounds {
    /// Bounds for `avg_size`: min = avg/4, max = avg*4.
    ///
    /// Each is clamped to what fastcdc accepts (average 256 B-4 MiB, minimum 64 B-1 MiB, maximum 1 KiB-16 MiB)
    /// and rounded down to an even number, as fastcdc requires. The configured range of
    /// `cache.deduplication.chunk_size` (256 B-4 MiB) needs no clamping beyond the rounding.
    pub fn for_average(avg_size: u32) -> Self {
        let avg = (avg_size as usize).clamp(AVERAGE_MIN, AVERAGE_MAX) & !1;
        let min = ((avg / 4) & !1).clamp(MINIMUM_MIN, MINIMUM_MAX);
        let max = (avg * 4).clamp(MAXIMUM_MIN, MAXIMUM_MAX);
        Self { min, avg, max }
    }
}

/// The chunks of one value, in order; see [`chunks`].
#[derive(Debug)]
pub struct Chunks<'a> {
    data: &'a [u8],
    state: State<'a>,
}

#[derive(Debug)]
enum State<'a> {
    Whole,
    Cdc(FastCDC<'a>),
    Done,
}

/// Cuts `data` into content-defined chunks averaging `avg_size` bytes (bounds: [`ChunkBounds::for_average`]).
///
/// A value no longer than the (clamped) average is one chunk, the empty value included; so there is always at
/// least one chunk, and the chunks concatenate back to `data`. The same input always gives the same chunks.
pub fn chunks(data: &[u8], avg_size: u32) -> Chunks<'_> {
    let bounds = ChunkBounds::for_average(avg_size);
    let state = if data.len() <= bounds.avg {
        State::Whole
    } else {
        State::Cdc(FastCDC::new(data, bounds.min, bounds.avg, bounds.max))
    };
    Chunks { data, state }
}

impl<'a> Iterator for Chunks<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match &mut self.state {
            State::Whole => {
                self.state = State::Done;
                Some(self.data)
            }
            State::Cdc(cdc) => cdc.next().map(|c| &self.data[c.offset..c.offset + c.length]),
            State::Done => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// Deterministic pseudo-random bytes (xorshift64), so the test needs no RNG crate and never flakes.
    fn noise(len: usize, mut state: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 32) as u8
            })
            .collect()
    }

    fn hashes<'a>(pieces: impl Iterator<Item = &'a [u8]>) -> Vec<blake3::Hash> {
        pieces.map(blake3::hash).collect()
    }

    #[test]
    fn chunks_concatenate_back_to_the_input() {
        for (len, avg) in [(0, 4096), (1, 256), (4096, 4096), (4097, 4096), (300_000, 1024), (1 << 20, 4096)]
        {
            let data = noise(len, 7 + len as u64);
            let joined: Vec<u8> = chunks(&data, avg).flatten().copied().collect();
            assert_eq!(joined, data, "len {len} avg {avg}");
        }
    }

    #[test]
    fn small_values_are_one_chunk() {
        assert_eq!(chunks(b"", 4096).collect::<Vec<_>>(), vec![&b""[..]]);
        let data = noise(4096, 1);
        assert_eq!(chunks(&data, 4096).count(), 1);
        assert!(chunks(&noise(64 * 1024, 1), 4096).count() > 1);
    }

    #[test]
    fn chunk_sizes_stay_within_bounds() {
        let data = noise(1 << 20, 3);
        let b = ChunkBounds::for_average(4096);
        assert_eq!(b, ChunkBounds { min: 1024, avg: 4096, max: 16384 });
        let sizes: Vec<usize> = chunks(&data, 4096).map(<[u8]>::len).collect();
        for &s in &sizes[..sizes.len() - 1] {
            assert!((b.min..=b.max).contains(&s), "{s}");
        }
        let mean = data.len() / sizes.len();
        assert!((2048..=8192).contains(&mean), "mean chunk {mean}");
    }

    #[test]
    fn bounds_are_clamped_and_even() {
        assert_eq!(ChunkBounds::for_average(0), ChunkBounds { min: 64, avg: 256, max: 1024 });
        assert_eq!(ChunkBounds::for_average(262), ChunkBounds { min: 64, avg: 262, max: 1048 });
        assert_eq!(ChunkBounds::for_average(4099), ChunkBounds { min: 1024, avg: 4098, max: 16392 });
        let top = ChunkBounds::for_average(u32::MAX);
        assert_eq!(top, ChunkBounds { min: 1 << 20, avg: 4 << 20, max: 16 << 20 });
        // An odd average still chunks (fastcdc debug-asserts on odd sizes).
        assert!(chunks(&noise(100_000, 5), 1001).count() > 1);
    }

    #[test]
    fn chunking_is_deterministic() {
        let data = noise(1 << 20, 11);
        assert_eq!(hashes(chunks(&data, 4096)), hashes(chunks(&data, 4096)));
    }

    #[test]
    fn an_insertion_near_the_start_leaves_most_chunks_shared() {
        let original = noise(1 << 20, 42);
        let mut edited = original.clone();
        edited.splice(1000..1000, noise(100, 9));

        let before = hashes(chunks(&original, 4096));
        let after: HashSet<_> = hashes(chunks(&edited, 4096)).into_iter().collect();
        let shared = before.iter().filter(|h| after.contains(*h)).count();
        assert!(shared * 100 >= before.len() * 80, "{shared} of {} chunks shared", before.len());

        // Fixed 4 KiB blocks lose almost everything after the insertion point: the reason for CDC.
        let fixed_before = hashes(original.chunks(4096));
        let fixed_after: HashSet<_> = hashes(edited.chunks(4096)).into_iter().collect();
        let fixed_shared = fixed_before.iter().filter(|h| fixed_after.contains(*h)).count();
        assert!(fixed_shared * 100 < fixed_before.len() * 5, "{fixed_shared} fixed blocks shared");
    }
}
