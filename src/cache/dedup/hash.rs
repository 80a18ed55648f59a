//! Content hashing as `[cache.deduplication]` configures it: one [`ContentHasher`] turns bytes into a
//! [`ContentHash`], the fixed-size, algorithm-tagged address the dedup store and response keys use.
//!
//! This file owns the hash functions, the algorithm ids written to disk ([`HashKind`]) and the hex form.
//! It does not decide where chunk boundaries fall (`chunk.rs`) or what a request's key covers (`response_store/`).

use std::fmt;
use std::ops::Range;

use thiserror::Error;

use super::chunk;
use crate::config::{DeduplicationConfig, HashAlgorithm, XxhashVariant};

/// Values at least this long are chunk-hashed on several threads when `enable_parallel` is set.
pub const PARALLEL_MIN_BYTES: usize = 128 * 1024;

/// Most threads [`ContentHasher::chunk_and_hash`] uses for one value.
const MAX_THREADS: usize = 4;

/// Which hash function produced a [`ContentHash`].
///
/// The discriminants are the algorithm ids of the on-disk format and must never change or be reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum HashKind {
    /// BLAKE3, 32-byte digest. Id 1.
    Blake3 = 1,
    /// xxh32, 4-byte digest (big-endian, as xxHash prints it). Id 2.
    Xxh32 = 2,
    /// xxh64, 8-byte digest (big-endian). Id 3.
    Xxh64 = 3,
    /// XXH3 in its 128-bit form, 16-byte digest (big-endian). Id 4.
    Xxh3_128 = 4,
}

impl HashKind {
    /// The one-byte id stored on disk.
    pub const fn id(self) -> u8 {
        self as u8
    }

    /// The kind for an on-disk id, or `None` for an id no version of inferno wrote.
    pub const fn from_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(Self::Blake3),
            2 => Some(Self::Xxh32),
            3 => Some(Self::Xxh64),
            4 => Some(Self::Xxh3_128),
            _ => None,
        }
    }

    /// How many bytes of the 32-byte field the digest fills.
    pub const fn digest_len(self) -> usize {
        match self {
            Self::Blake3 => 32,
            Self::Xxh32 => 4,
            Self::Xxh64 => 8,
            Self::Xxh3_128 => 16,
        }
    }

    /// The kind whose hex form has `len` characters (every kind has a different digest length).
    fn from_hex_len(len: usize) -> Option<Self> {
        [Self::Blake3, Self::Xxh32, Self::Xxh64, Self::Xxh3_128]
            .into_iter()
            .find(|k| k.digest_len() * 2 == len)
    }
}

/// A digest tagged with the function that made it, so digests of different functions never compare equal.
///
/// The digest sits left-aligned in 32 bytes, zero-padded. Ordering is by kind, then bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContentHash {
    kind: HashKind,
    bytes: [u8; 32],
}

/// Why text or bytes are not a [`ContentHash`].
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseHashError {
    /// The hex text has a length no hash kind produces.
    #[error("{len} hex characters is not a content hash (expected 8, 16, 32 or 64)")]
    HexLength {
        /// Characters found.
        len: usize,
    },
    /// A character is not a hex digit.
    #[error("character {index} of the content hash is not a hex digit")]
    HexDigit {
        /// Byte offset of the bad character.
        index: usize,
    },
    /// The algorithm id byte is not one of [`HashKind`]'s.
    #[error("unknown content hash algorithm id {id} (known: 1-4)")]
    UnknownKind {
        /// The id found.
        id: u8,
    },
    /// Bytes past the digest are not zero.
    #[error("content hash of kind {kind:?} has non-zero padding after its {len}-byte digest")]
    Padding {
        /// The kind named by the id byte.
        kind: HashKind,
        /// Its digest length.
        len: usize,
    },
}

impl ContentHash {
    /// Length of [`ContentHash::to_bytes`]: one id byte, then the 32-byte field.
    pub const ENCODED_LEN: usize = 33;

    fn from_digest(kind: HashKind, digest: &[u8]) -> Self {
        let mut bytes = [0u8; 32];
        bytes[..digest.len()].copy_from_slice(digest);
        Self { kind, bytes }
    }

    /// The function that made this hash.
    pub fn kind(&self) -> HashKind {
        self.kind
    }

    /// The digest alone, without padding.
    pub fn digest(&self) -> &[u8] {
        &self.bytes[..self.kind.digest_len()]
    }

    /// Lower-case hex of the digest alone: 64 characters for BLAKE3, 8/16/32 for xxh32/xxh64/xxh3.
    pub fn to_hex(&self) -> String {
        encode_hex(self.digest())
    }

    /// Parses [`ContentHash::to_hex`] output; the length tells the kind. Upper-case digits are accepted.
    pub fn from_hex(text: &str) -> Result<Self, ParseHashError> {
        let kind = HashKind::from_hex_len(text.len()).ok_or(ParseHashError::HexLength { len: text.len() })?;
        let mut digest = [0u8; 32];
        let raw = text.as_bytes();
        for (i, out) in digest[..kind.digest_len()].iter_mut().enumerate() {
            let hi = hex_value(raw[2 * i]).ok_or(ParseHashError::HexDigit { index: 2 * i })?;
            let lo = hex_value(raw[2 * i + 1]).ok_or(ParseHashError::HexDigit { index: 2 * i + 1 })?;
            *out = (hi << 4) | lo;
        }
        Ok(Self { kind, bytes: digest })
    }

    /// The on-disk form: the [`HashKind::id`] byte followed by the zero-padded 32-byte field.
    pub fn to_bytes(&self) -> [u8; Self::ENCODED_LEN] {
        let mut out = [0u8; Self::ENCODED_LEN];
        out[0] = self.kind.id();
        out[1..].copy_from_slice(&self.bytes);
        out
    }

    /// Reads [`ContentHash::to_bytes`] output, rejecting unknown ids and non-zero padding.
    pub fn from_bytes(raw: &[u8; Self::ENCODED_LEN]) -> Result<Self, ParseHashError> {
        let kind = HashKind::from_id(raw[0]).ok_or(ParseHashError::UnknownKind { id: raw[0] })?;
        let len = kind.digest_len();
        if raw[1 + len..].iter().any(|&b| b != 0) {
            return Err(ParseHashError::Padding { kind, len });
        }
        Ok(Self::from_digest(kind, &raw[1..1 + len]))
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({:?}:{})", self.kind, self.to_hex())
    }
}

/// One content-defined chunk of a value and its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashedChunk {
    /// Where the chunk lies in the value.
    pub range: Range<usize>,
    /// The hash of those bytes.
    pub hash: ContentHash,
}

/// Hashes bytes with the function, seed and chunking that the configuration names.
///
/// BLAKE3 has no seed and ignores `seed`; every xxhash variant honours it. `enabled` is not read here: whether
/// to deduplicate at all is the store's decision, and response keys are hashed either way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentHasher {
    kind: HashKind,
    seed: u64,
    chunk_size: u32,
    parallel: bool,
    keyed: Option<HashKey>,
}

/// The key of keyed BLAKE3 (derived from the cache key; see `cache/seal`). Never printed.
#[derive(Clone, PartialEq, Eq)]
struct HashKey([u8; 32]);

impl fmt::Debug for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashKey(..)")
    }
}

impl ContentHasher {
    /// A hasher for `[cache.deduplication]`: its algorithm, variant, seed, chunk size and `enable_parallel`.
    ///
    /// `enable_parallel` applies to [`ContentHasher::chunk_and_hash`] only: chunks of a value of at least
    /// [`PARALLEL_MIN_BYTES`] are hashed on up to 4 scoped threads. A single [`ContentHasher::hash`] call
    /// always runs on the calling thread (blake3's rayon feature is not enabled).
    pub fn new(config: &DeduplicationConfig) -> Self {
        let kind = match (config.algorithm, config.variant) {
            (HashAlgorithm::Blake3, _) => HashKind::Blake3,
            (HashAlgorithm::Xxhash, XxhashVariant::Xxh32) => HashKind::Xxh32,
            (HashAlgorithm::Xxhash, XxhashVariant::Xxh64) => HashKind::Xxh64,
            (HashAlgorithm::Xxhash, XxhashVariant::Xxh3) => HashKind::Xxh3_128,
        };
        let chunk_size = u32::try_from(config.chunk_size.bytes()).unwrap_or(u32::MAX);
        Self { kind, seed: config.seed, chunk_size, parallel: config.enable_parallel, keyed: None }
    }

    /// This hasher in BLAKE3's keyed mode under `key`, whatever the algorithm configured: with encryption
    /// on, a chunk's address is a MAC of its bytes, so equal payloads still share and the address tells
    /// nothing about the bytes to anyone without the key.
    pub fn keyed(self, key: &[u8; 32]) -> Self {
        Self { kind: HashKind::Blake3, seed: 0, keyed: Some(HashKey(*key)), ..self }
    }

    /// A hasher for `cache.response.hash_algorithm`: BLAKE3, or xxh3 (128-bit) with seed 0; no threads.
    pub fn for_algorithm(algorithm: HashAlgorithm) -> Self {
        let kind = match algorithm {
            HashAlgorithm::Blake3 => HashKind::Blake3,
            HashAlgorithm::Xxhash => HashKind::Xxh3_128,
        };
        let chunk_size = u32::try_from(DeduplicationConfig::default().chunk_size.bytes()).unwrap_or(u32::MAX);
        Self { kind, seed: 0, chunk_size, parallel: false, keyed: None }
    }

    /// The function this hasher uses.
    pub fn kind(&self) -> HashKind {
        self.kind
    }

    /// Whether equal digests may be taken for equal bytes: true for BLAKE3 (256 bits) and XXH3-128, where a
    /// chance collision is not a practical concern; false for xxh32 and xxh64, whose collisions do happen at
    /// cache sizes (xxh32: ~1% at 10k distinct chunks), so the dedup store compares bytes before sharing.
    pub fn collision_resistant(&self) -> bool {
        matches!(self.kind, HashKind::Blake3 | HashKind::Xxh3_128)
    }

    /// Hashes `bytes` in one piece.
    pub fn hash(&self, bytes: &[u8]) -> ContentHash {
        match self.kind {
            HashKind::Blake3 => {
                let digest = match &self.keyed {
                    Some(key) => blake3::keyed_hash(&key.0, bytes),
                    None => blake3::hash(bytes),
                };
                ContentHash::from_digest(self.kind, digest.as_bytes())
            }
            HashKind::Xxh32 => {
                // xxh32 takes a 32-bit seed; the configured u64 is truncated to its low 32 bits.
                let digest = xxhash_rust::xxh32::xxh32(bytes, self.seed as u32);
                ContentHash::from_digest(self.kind, &digest.to_be_bytes())
            }
            HashKind::Xxh64 => {
                let digest = xxhash_rust::xxh64::xxh64(bytes, self.seed);
                ContentHash::from_digest(self.kind, &digest.to_be_bytes())
            }
            HashKind::Xxh3_128 => {
                let digest = xxhash_rust::xxh3::xxh3_128_with_seed(bytes, self.seed);
                ContentHash::from_digest(self.kind, &digest.to_be_bytes())
            }
        }
    }

    /// Cuts `data` into content-defined chunks of the configured average size and hashes each one.
    ///
    /// The result is in order and its ranges cover `data` exactly. With `enable_parallel`, a value of at least
    /// [`PARALLEL_MIN_BYTES`] with several chunks is hashed on up to 4 threads; the result is the same.
    pub fn chunk_and_hash(&self, data: &[u8]) -> Vec<HashedChunk> {
        let mut ranges = Vec::new();
        let mut offset = 0;
        for piece in chunk::chunks(data, self.chunk_size) {
            ranges.push(offset..offset + piece.len());
            offset += piece.len();
        }
        let threads = if self.parallel && data.len() >= PARALLEL_MIN_BYTES {
            std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_THREADS)
        } else {
            1
        };
        self.hash_ranges(data, ranges, threads)
    }

    /// Hashes each range of `data`, on `threads` scoped threads when there are at least two per thread.
    fn hash_ranges(&self, data: &[u8], ranges: Vec<Range<usize>>, threads: usize) -> Vec<HashedChunk> {
        if threads < 2 || ranges.len() < 2 * threads {
            return ranges.into_iter().map(|range| self.hashed(data, range)).collect();
        }
        let per_thread = ranges.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = ranges
                .chunks(per_thread)
                .map(|group| {
                    scope
                        .spawn(move || group.iter().map(|r| self.hashed(data, r.clone())).collect::<Vec<_>>())
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|handle| handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
                .collect()
        })
    }

    fn hashed(&self, data: &[u8], range: Range<usize>) -> HashedChunk {
        let hash = self.hash(&data[range.clone()]);
        HashedChunk { range, hash }
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::units::Size;

    fn hasher(algorithm: HashAlgorithm, variant: XxhashVariant, seed: u64) -> ContentHasher {
        ContentHasher::new(&DeduplicationConfig {
            algorithm,
            variant,
            seed,
            ..DeduplicationConfig::default()
        })
    }

    #[test]
    fn known_vectors_of_the_empty_input() {
        let cases = [
            (
                HashAlgorithm::Blake3,
                XxhashVariant::Xxh3,
                "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
            ),
            (HashAlgorithm::Xxhash, XxhashVariant::Xxh32, "02cc5d05"),
            (HashAlgorithm::Xxhash, XxhashVariant::Xxh64, "ef46db3751d8e999"),
            (HashAlgorithm::Xxhash, XxhashVariant::Xxh3, "99aa06d3014798d86001c324468d497f"),
        ];
        for (algorithm, variant, hex) in cases {
            assert_eq!(hasher(algorithm, variant, 0).hash(b"").to_hex(), hex, "{algorithm:?} {variant:?}");
        }
    }

    #[test]
    fn seed_changes_every_xxhash_variant_but_not_blake3() {
        for variant in [XxhashVariant::Xxh32, XxhashVariant::Xxh64, XxhashVariant::Xxh3] {
            let a = hasher(HashAlgorithm::Xxhash, variant, 0).hash(b"inferno");
            let b = hasher(HashAlgorithm::Xxhash, variant, 42).hash(b"inferno");
            assert_ne!(a, b, "{variant:?}");
        }
        let a = hasher(HashAlgorithm::Blake3, XxhashVariant::Xxh3, 0).hash(b"inferno");
        let b = hasher(HashAlgorithm::Blake3, XxhashVariant::Xxh3, 42).hash(b"inferno");
        assert_eq!(a, b);
    }

    #[test]
    fn different_algorithms_never_compare_equal() {
        // Same digest bytes under two kinds must still differ.
        let a = ContentHash::from_digest(HashKind::Xxh32, &[1, 2, 3, 4]);
        let b = ContentHash::from_digest(HashKind::Xxh64, &[1, 2, 3, 4, 0, 0, 0, 0]);
        assert_eq!(a.bytes, b.bytes);
        assert_ne!(a, b);
        let all: Vec<ContentHash> = [
            hasher(HashAlgorithm::Blake3, XxhashVariant::Xxh3, 0),
            hasher(HashAlgorithm::Xxhash, XxhashVariant::Xxh32, 0),
            hasher(HashAlgorithm::Xxhash, XxhashVariant::Xxh64, 0),
            hasher(HashAlgorithm::Xxhash, XxhashVariant::Xxh3, 0),
        ]
        .iter()
        .map(|h| h.hash(b"same input"))
        .collect();
        for (i, x) in all.iter().enumerate() {
            for y in &all[i + 1..] {
                assert_ne!(x, y);
                assert_ne!(x.to_hex(), y.to_hex());
            }
        }
    }

    #[test]
    fn hex_and_bytes_round_trip() {
        for variant in [XxhashVariant::Xxh32, XxhashVariant::Xxh64, XxhashVariant::Xxh3] {
            for algorithm in [HashAlgorithm::Blake3, HashAlgorithm::Xxhash] {
                let h = hasher(algorithm, variant, 7).hash(b"round trip");
                assert_eq!(ContentHash::from_hex(&h.to_hex()), Ok(h));
                assert_eq!(ContentHash::from_hex(&h.to_hex().to_uppercase()), Ok(h));
                assert_eq!(ContentHash::from_bytes(&h.to_bytes()), Ok(h));
                assert_eq!(h.to_bytes()[0], h.kind().id());
            }
        }
    }

    #[test]
    fn bad_hex_and_bytes_are_rejected() {
        assert_eq!(ContentHash::from_hex("abc"), Err(ParseHashError::HexLength { len: 3 }));
        assert_eq!(ContentHash::from_hex("0000000g"), Err(ParseHashError::HexDigit { index: 7 }));
        let mut raw = [0u8; ContentHash::ENCODED_LEN];
        assert_eq!(ContentHash::from_bytes(&raw), Err(ParseHashError::UnknownKind { id: 0 }));
        raw[0] = HashKind::Xxh32.id();
        raw[5] = 1;
        assert_eq!(
            ContentHash::from_bytes(&raw),
            Err(ParseHashError::Padding { kind: HashKind::Xxh32, len: 4 })
        );
        for id in 1..=4 {
            assert_eq!(HashKind::from_id(id).map(HashKind::id), Some(id));
        }
    }

    #[test]
    fn response_key_hasher_uses_xxh3_with_seed_zero() {
        let h = ContentHasher::for_algorithm(HashAlgorithm::Xxhash);
        assert_eq!(h.kind(), HashKind::Xxh3_128);
        assert_eq!(h.hash(b"x"), hasher(HashAlgorithm::Xxhash, XxhashVariant::Xxh3, 0).hash(b"x"));
        assert_eq!(ContentHasher::for_algorithm(HashAlgorithm::Blake3).kind(), HashKind::Blake3);
    }

    #[test]
    fn parallel_chunk_hashing_matches_sequential() {
        let data: Vec<u8> =
            (0..(512 * 1024u32)).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let config = |enable_parallel| DeduplicationConfig {
            chunk_size: Size(1024),
            enable_parallel,
            ..DeduplicationConfig::default()
        };
        let parallel = ContentHasher::new(&config(true)).chunk_and_hash(&data);
        let sequential = ContentHasher::new(&config(false)).chunk_and_hash(&data);
        assert_eq!(parallel, sequential);
        // Whatever this machine's core count, the threaded path itself must agree too.
        let h = ContentHasher::new(&config(true));
        let ranges: Vec<_> = sequential.iter().map(|c| c.range.clone()).collect();
        assert_eq!(h.hash_ranges(&data, ranges, 3), sequential);
        assert!(parallel.len() > 16);
        assert_eq!(parallel.first().map(|c| c.range.start), Some(0));
        assert_eq!(parallel.last().map(|c| c.range.end), Some(data.len()));
        for pair in parallel.windows(2) {
            assert_eq!(pair[0].range.end, pair[1].range.start);
        }
        for c in &parallel {
            assert_eq!(c.hash, ContentHasher::new(&config(false)).hash(&data[c.range.clone()]));
        }
    }
}
