//! Record framing: the 64-byte header, the body layout and the checksum of one record in a segment file.
//!
//! This file knows bytes only; which records are live is `index.rs`'s business. The layout is documented
//! byte by byte in docs/format.md and pinned by the golden-bytes test below.

use xxhash_rust::xxh3::Xxh3;

/// First four bytes of every record.
pub const RECORD_MAGIC: [u8; 4] = *b"IREC";
/// Size of the fixed header.
pub const HEADER_LEN: usize = 64;
/// Size of one chunk reference: algorithm id + 32 digest bytes.
pub const REF_LEN: usize = 33;

const TYPE_OFFSET: usize = RECORD_MAGIC.len();
const KIND_OFFSET: usize = TYPE_OFFSET + 1;
const CODEC_OFFSET: usize = KIND_OFFSET + 1;
const FLAGS_OFFSET: usize = CODEC_OFFSET + 1;
const SEQ_OFFSET: usize = FLAGS_OFFSET + 1;
const CREATED_OFFSET: usize = SEQ_OFFSET + 8;
const EXPIRES_OFFSET: usize = CREATED_OFFSET + 8;
const KEY_LEN_OFFSET: usize = EXPIRES_OFFSET + 8;
const NAME_LEN_OFFSET: usize = KEY_LEN_OFFSET + 2;
const REFS_OFFSET: usize = NAME_LEN_OFFSET + 2;
const RESERVED_OFFSET: usize = REFS_OFFSET + 2;
const VALUE_LEN_OFFSET: usize = RESERVED_OFFSET + 2;
const RAW_LEN_OFFSET: usize = VALUE_LEN_OFFSET + 4;
const PAYLOAD_LEN_OFFSET: usize = RAW_LEN_OFFSET + 4;
const CHECKSUM_OFFSET: usize = PAYLOAD_LEN_OFFSET + 8;
const _: () = assert!(CHECKSUM_OFFSET + 8 == HEADER_LEN);

/// A chunk reference: algorithm id followed by a 32-byte digest (zero-padded for shorter hashes).
pub type BlobRef = [u8; REF_LEN];

/// What a record is. The numbers are part of the file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RecordType {
    /// A cache entry: key, name, envelope/value bytes and chunk references.
    Entry = 1,
    /// A content-addressed chunk; its key is the chunk reference.
    Blob = 2,
    /// Removes the entry with the same kind and key written before it.
    Tombstone = 3,
}

impl RecordType {
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Entry),
            2 => Some(Self::Blob),
            3 => Some(Self::Tombstone),
            _ => None,
        }
    }
}

/// The fixed-size part of a record, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Entry, blob or tombstone.
    pub record_type: RecordType,
    /// Entry kind code (0 for blobs); see `cache::Kind`.
    pub kind: u8,
    /// Codec id of the value bytes.
    pub codec: u8,
    /// Global write sequence number; the highest wins when a key appears twice.
    pub seq: u64,
    /// Creation time, ms since the Unix epoch.
    pub created_ms: u64,
    /// Expiry time, ms since the Unix epoch; 0 = never.
    pub expires_ms: u64,
    /// Length of the key.
    pub key_len: u16,
    /// Length of the name.
    pub name_len: u16,
    /// Number of chunk references.
    pub refs: u16,
    /// Length of the stored (maybe compressed) value.
    pub value_len: u32,
    /// Length of the value once decoded.
    pub raw_len: u32,
    /// Total decoded length of the referenced chunks.
    pub payload_len: u64,
    /// xxh3-64 of header bytes 0..56 and the body.
    pub checksum: u64,
}

impl Header {
    /// Length of the body that follows the header.
    pub fn body_len(&self) -> usize {
        self.key_len as usize
            + self.name_len as usize
            + self.refs as usize * REF_LEN
            + self.value_len as usize
    }

    /// Length of the whole record.
    pub fn record_len(&self) -> usize {
        HEADER_LEN + self.body_len()
    }
}

/// A record to write.
#[derive(Clone, Copy, Debug)]
pub struct RecordRef<'a> {
    /// Entry, blob or tombstone.
    pub record_type: RecordType,
    /// Entry kind code.
    pub kind: u8,
    /// Codec id of `value`.
    pub codec: u8,
    /// Write sequence number.
    pub seq: u64,
    /// Creation time (ms).
    pub created_ms: u64,
    /// Expiry time (ms), 0 = never.
    pub expires_ms: u64,
    /// Key bytes (a chunk reference for blobs).
    pub key: &'a [u8],
    /// Name used by `clear --pattern` (model name or file name).
    pub name: &'a [u8],
    /// Chunk references making up the payload.
    pub refs: &'a [BlobRef],
    /// Stored value bytes.
    pub value: &'a [u8],
    /// Decoded length of `value`.
    pub raw_len: u32,
    /// Decoded length of all referenced chunks.
    pub payload_len: u64,
}

/// Why a byte range is not a valid record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Fewer bytes than the header or the body needs (a torn write or a truncated file).
    #[error("record is truncated")]
    Truncated,
    /// The first four bytes are not `IREC`.
    #[error("bad record magic")]
    BadMagic,
    /// The record type byte is unknown.
    #[error("unknown record type {0}")]
    BadType(u8),
    /// The stored checksum does not match the bytes.
    #[error("checksum mismatch (stored {stored:#018x}, computed {computed:#018x})")]
    Checksum {
        /// Checksum in the header.
        stored: u64,
        /// Checksum of the bytes read.
        computed: u64,
    },
}

/// Appends the encoded record to `out`; returns its length.
pub fn encode(record: &RecordRef<'_>, out: &mut Vec<u8>) -> usize {
    let start = out.len();
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(&RECORD_MAGIC);
    h[TYPE_OFFSET] = record.record_type as u8;
    h[KIND_OFFSET] = record.kind;
    h[CODEC_OFFSET] = record.codec;
    h[SEQ_OFFSET..SEQ_OFFSET + 8].copy_from_slice(&record.seq.to_le_bytes());
    h[CREATED_OFFSET..CREATED_OFFSET + 8].copy_from_slice(&record.created_ms.to_le_bytes());
    h[EXPIRES_OFFSET..EXPIRES_OFFSET + 8].copy_from_slice(&record.expires_ms.to_le_bytes());
    h[KEY_LEN_OFFSET..KEY_LEN_OFFSET + 2].copy_from_slice(&(record.key.len() as u16).to_le_bytes());
    h[NAME_LEN_OFFSET..NAME_LEN_OFFSET + 2].copy_from_slice(&(record.name.len() as u16).to_le_bytes());
    h[REFS_OFFSET..REFS_OFFSET + 2].copy_from_slice(&(record.refs.len() as u16).to_le_bytes());
    h[VALUE_LEN_OFFSET..VALUE_LEN_OFFSET + 4].copy_from_slice(&(record.value.len() as u32).to_le_bytes());
    h[RAW_LEN_OFFSET..RAW_LEN_OFFSET + 4].copy_from_slice(&record.raw_len.to_le_bytes());
    h[PAYLOAD_LEN_OFFSET..PAYLOAD_LEN_OFFSET + 8].copy_from_slice(&record.payload_len.to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(record.key);
    out.extend_from_slice(record.name);
    for r in record.refs {
        out.extend_from_slice(r);
    }
    out.extend_from_slice(record.value);
    let checksum = checksum(&out[start..start + CHECKSUM_OFFSET], &out[start + HEADER_LEN..]);
    out[start + CHECKSUM_OFFSET..start + HEADER_LEN].copy_from_slice(&checksum.to_le_bytes());
    out.len() - start
}

fn checksum(header_prefix: &[u8], body: &[u8]) -> u64 {
    let mut hasher = Xxh3::new();
    hasher.update(header_prefix);
    hasher.update(body);
    hasher.digest()
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Decodes the header at the start of `bytes` without checking the body.
pub fn decode_header(bytes: &[u8]) -> Result<Header, FrameError> {
    if bytes.len() < HEADER_LEN {
        return Err(FrameError::Truncated);
    }
    if bytes[..4] != RECORD_MAGIC {
        return Err(FrameError::BadMagic);
    }
    let record_type =
        RecordType::from_u8(bytes[TYPE_OFFSET]).ok_or(FrameError::BadType(bytes[TYPE_OFFSET]))?;
    Ok(Header {
        record_type,
        kind: bytes[KIND_OFFSET],
        codec: bytes[CODEC_OFFSET],
        seq: u64_at(bytes, SEQ_OFFSET),
        created_ms: u64_at(bytes, CREATED_OFFSET),
        expires_ms: u64_at(bytes, EXPIRES_OFFSET),
        key_len: u16_at(bytes, KEY_LEN_OFFSET),
        name_len: u16_at(bytes, NAME_LEN_OFFSET),
        refs: u16_at(bytes, REFS_OFFSET),
        value_len: u32_at(bytes, VALUE_LEN_OFFSET),
        raw_len: u32_at(bytes, RAW_LEN_OFFSET),
        payload_len: u64_at(bytes, PAYLOAD_LEN_OFFSET),
        checksum: u64_at(bytes, CHECKSUM_OFFSET),
    })
}

/// A decoded record borrowing its body from the segment bytes.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    /// The header.
    pub header: Header,
    /// Key bytes.
    pub key: &'a [u8],
    /// Name bytes.
    pub name: &'a [u8],
    /// Chunk references, `REF_LEN` bytes each.
    pub refs: &'a [u8],
    /// Stored value bytes.
    pub value: &'a [u8],
}

impl Record<'_> {
    /// The chunk references.
    pub fn refs(&self) -> impl Iterator<Item = BlobRef> + '_ {
        self.refs.chunks_exact(REF_LEN).map(|r| r.try_into().expect("REF_LEN bytes"))
    }
}

/// Decodes the record at the start of `bytes`; with `verify`, checks the checksum too.
pub fn decode(bytes: &[u8], verify: bool) -> Result<Record<'_>, FrameError> {
    let header = decode_header(bytes)?;
    let len = header.record_len();
    if bytes.len() < len {
        return Err(FrameError::Truncated);
    }
    if verify {
        let computed = checksum(&bytes[..CHECKSUM_OFFSET], &bytes[HEADER_LEN..len]);
        if computed != header.checksum {
            return Err(FrameError::Checksum { stored: header.checksum, computed });
        }
    }
    let body = &bytes[HEADER_LEN..len];
    let (key, rest) = body.split_at(header.key_len as usize);
    let (name, rest) = rest.split_at(header.name_len as usize);
    let (refs, value) = rest.split_at(header.refs as usize * REF_LEN);
    Ok(Record { header, key, name, refs, value })
}

/// Checks a record read in two parts, `head` (header, key, name and refs) and its `value`, as [`decode`]
/// does for one slice (the checksum only with `verify`); returns the header. Lets a large value be read
/// straight into its own buffer.
pub fn check_split(head: &[u8], value: &[u8], verify: bool) -> Result<Header, FrameError> {
    let header = decode_header(head)?;
    if header.value_len as usize != value.len() || header.record_len() != head.len() + value.len() {
        return Err(FrameError::Truncated);
    }
    if verify {
        let mut hasher = Xxh3::new();
        hasher.update(&head[..CHECKSUM_OFFSET]);
        hasher.update(&head[HEADER_LEN..]);
        hasher.update(value);
        let computed = hasher.digest();
        if computed != header.checksum {
            return Err(FrameError::Checksum { stored: header.checksum, computed });
        }
    }
    Ok(header)
}

/// Length of the part of a record before its value: header, key, name and refs.
pub fn head_len(header: &Header) -> usize {
    header.record_len() - header.value_len as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut out = Vec::new();
        let mut blob = [0u8; REF_LEN];
        blob[0] = 1;
        blob[1] = 0xAB;
        encode(
            &RecordRef {
                record_type: RecordType::Entry,
                kind: 1,
                codec: 2,
                seq: 7,
                created_ms: 1_700_000_000_000,
                expires_ms: 0,
                key: b"k1",
                name: b"tiny",
                refs: &[blob],
                value: b"{}",
                raw_len: 2,
                payload_len: 100,
            },
            &mut out,
        );
        out
    }

    #[test]
    fn golden_bytes() {
        let bytes = sample();
        assert_eq!(bytes.len(), HEADER_LEN + 2 + 4 + REF_LEN + 2);
        let hex: String = bytes[..CHECKSUM_OFFSET].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            concat!(
                "49524543",
                "01",
                "01",
                "02",
                "00",
                "0700000000000000",
                "0068e5cf8b010000",
                "0000000000000000",
                "0200",
                "0400",
                "0100",
                "0000",
                "02000000",
                "02000000",
                "6400000000000000"
            )
        );
        assert_eq!(&bytes[HEADER_LEN..HEADER_LEN + 6], b"k1tiny");
    }

    #[test]
    fn round_trip_and_every_flipped_bit_is_caught() {
        let bytes = sample();
        let record = decode(&bytes, true).unwrap();
        assert_eq!(record.key, b"k1");
        assert_eq!(record.name, b"tiny");
        assert_eq!(record.value, b"{}");
        assert_eq!(record.refs().count(), 1);
        assert_eq!(record.header.payload_len, 100);
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[i] ^= 1 << bit;
                assert!(decode(&damaged, true).is_err(), "flip of bit {bit} in byte {i} went unnoticed");
            }
        }
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut], true).is_err());
        }
    }

    #[test]
    fn a_record_checked_in_two_parts_reads_as_in_one_and_every_flipped_bit_is_caught() {
        let bytes = sample();
        let head = head_len(&decode_header(&bytes).unwrap());
        assert_eq!(head, bytes.len() - 2, "the value is the record's last bytes");
        let header = check_split(&bytes[..head], &bytes[head..], true).unwrap();
        assert_eq!(header, decode(&bytes, true).unwrap().header);
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[i] ^= 1 << bit;
                assert!(
                    check_split(&damaged[..head], &damaged[head..], true).is_err(),
                    "flip of bit {bit} in byte {i} went unnoticed"
                );
            }
        }
        assert!(check_split(&bytes[..head], &bytes[head..head + 1], true).is_err(), "a short value");
        assert!(check_split(&bytes[..head - 1], &bytes[head..], true).is_err(), "a short head");
    }
}
