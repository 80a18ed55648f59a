//! Segment files: naming, the 16-byte file header, reading records back, and scanning a segment for every
//! intact record (skipping damaged ones and resynchronising on the next record magic).
//!
//! Sealed segments are read through a read-only memory map; the active one through `pread`, since it grows.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::storage::{Mapped, Storage, StorageFile};

use crate::cache::record::{self, FrameError, HEADER_LEN, RECORD_MAGIC, Record};

/// First eight bytes of a segment file (PNG-style: the CR LF catches line-ending mangling).
pub const SEGMENT_MAGIC: [u8; 8] = *b"INFSEG\r\n";
/// The on-disk format version written in every segment header.
pub const FORMAT_VERSION: u16 = 1;
/// Size of the segment file header.
pub const SEGMENT_HEADER_LEN: u64 = 16;

/// File name of segment `id`: `seg-0000000001.log`.
pub fn segment_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("seg-{id:010}.log"))
}

/// File name of the hint file of segment `id`.
pub fn hint_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("seg-{id:010}.hint"))
}

/// The segment id in a file name like `seg-0000000001.log`.
pub fn parse_segment_name(name: &str) -> Option<u32> {
    name.strip_prefix("seg-")?.strip_suffix(".log")?.parse().ok()
}

/// The 16-byte header of segment `id`.
pub fn file_header(id: u32) -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    h[..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[10..14].copy_from_slice(&id.to_le_bytes());
    h
}

/// Checks a segment's header; returns a description of what is wrong.
pub fn check_file_header(bytes: &[u8], id: u32) -> Result<(), String> {
    if bytes.len() < SEGMENT_HEADER_LEN as usize || bytes[..8] != SEGMENT_MAGIC {
        return Err("not an inferno segment (bad magic)".into());
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != FORMAT_VERSION {
        return Err(format!("format version {version}, this build reads version {FORMAT_VERSION}"));
    }
    let found = u32::from_le_bytes(bytes[10..14].try_into().expect("4 bytes"));
    if found != id {
        return Err(format!("header says segment {found}, file name says {id}"));
    }
    Ok(())
}

/// Maps a segment file read-only.
pub fn map_file(path: &Path) -> std::io::Result<Mmap> {
    let file = File::open(path)?;
    // SAFETY: sealed segments are never modified in place; compaction writes new files and unlinks old
    // ones, which keeps an existing mapping valid. A process outside inferno truncating the file could
    // still fault the mapping; that is the usual caveat of memmap2 and documented in docs/format.md.
    unsafe { Mmap::map(&file) }
}

/// Read access to one segment.
pub enum SegmentReader {
    /// A sealed segment, mapped.
    Mapped(Mapped),
    /// The active segment, read with `pread`.
    File(Box<dyn StorageFile>),
}

impl std::fmt::Debug for SegmentReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Mapped(map) => write!(f, "Mapped({} bytes)", (**map).as_ref().len()),
            Self::File(file) => write!(f, "File({file:?})"),
        }
    }
}

impl SegmentReader {
    /// Maps a sealed segment file.
    pub fn map(storage: &dyn Storage, path: &Path) -> std::io::Result<Self> {
        storage.map(path).map(Self::Mapped)
    }

    /// Lets the process drop the pages of a mapped segment (see [`Storage::release`]); nothing for the
    /// active segment, which is read with `pread`.
    pub fn release(&self, storage: &dyn Storage) {
        if let Self::Mapped(map) = self {
            storage.release(map);
        }
    }

    /// Reads `len` bytes at `offset` into `buf` (or borrows them from the map).
    pub fn read<'a>(&'a self, offset: u64, len: usize, buf: &'a mut Vec<u8>) -> Result<&'a [u8], FrameError> {
        match self {
            Self::Mapped(map) => {
                let start = usize::try_from(offset).map_err(|_| FrameError::Truncated)?;
                (**map).as_ref().get(start..start.saturating_add(len)).ok_or(FrameError::Truncated)
            }
            Self::File(file) => {
                if buf.capacity() == 0 {
                    // Zeroed by the allocator (fresh pages for a large value) rather than written twice.
                    *buf = vec![0; len];
                } else {
                    buf.resize(len, 0);
                }
                file.read_at(buf, offset).map_err(|_| FrameError::Truncated)?;
                Ok(buf)
            }
        }
    }

    /// Fills `buf` with the bytes at `offset`.
    pub fn read_into(&self, offset: u64, buf: &mut [u8]) -> Result<(), FrameError> {
        match self {
            Self::Mapped(map) => {
                let start = usize::try_from(offset).map_err(|_| FrameError::Truncated)?;
                let end = start.checked_add(buf.len()).ok_or(FrameError::Truncated)?;
                buf.copy_from_slice((**map).as_ref().get(start..end).ok_or(FrameError::Truncated)?);
                Ok(())
            }
            Self::File(file) => file.read_at(buf, offset).map_err(|_| FrameError::Truncated),
        }
    }

    /// True when reads borrow from a memory map rather than copying into the caller's buffer.
    pub fn is_mapped(&self) -> bool {
        matches!(self, Self::Mapped(_))
    }
}

/// One record found by [`scan`].
#[derive(Debug)]
pub struct Scanned<'a> {
    /// Offset of the record in the file.
    pub offset: u64,
    /// The record.
    pub record: Record<'a>,
}

/// Damage found by [`scan`]: a byte range that holds no intact record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// Where the bad range starts.
    pub offset: u64,
    /// How many bytes were skipped.
    pub len: u64,
    /// What was wrong at `offset`.
    pub error: FrameError,
}

/// Walks `bytes` (a whole segment, or its tail from `start`) and returns every intact record and every
/// damaged range. After a bad record it searches for the next `IREC` magic whose record checks out, so one
/// flipped byte costs one record, not the rest of the file. A bad range that runs to the end of the file is
/// reported with `error = Truncated` when it is an incomplete last record (a torn write).
pub fn scan(bytes: &[u8], start: u64) -> (Vec<Scanned<'_>>, Vec<Damage>) {
    let mut records = Vec::new();
    let mut damage = Vec::new();
    let mut pos = start as usize;
    while pos < bytes.len() {
        match record::decode(&bytes[pos..], true) {
            Ok(record) => {
                let len = record.header.record_len();
                records.push(Scanned { offset: pos as u64, record });
                pos += len;
            }
            Err(error) => {
                let next = find_next_record(bytes, pos + 1).unwrap_or(bytes.len());
                damage.push(Damage { offset: pos as u64, len: (next - pos) as u64, error });
                pos = next;
            }
        }
    }
    (records, damage)
}

fn find_next_record(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while at + HEADER_LEN <= bytes.len() {
        let found = bytes[at..].windows(RECORD_MAGIC.len()).position(|w| w == RECORD_MAGIC)? + at;
        if record::decode(&bytes[found..], true).is_ok() {
            return Some(found);
        }
        at = found + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::record::{RecordRef, RecordType, encode};

    fn records(n: usize) -> (Vec<u8>, Vec<u64>) {
        let mut out = file_header(1).to_vec();
        let mut offsets = Vec::new();
        for i in 0..n {
            offsets.push(out.len() as u64);
            let key = format!("key-{i}");
            let value = vec![b'v'; 50 + i];
            encode(
                &RecordRef {
                    record_type: RecordType::Entry,
                    kind: 1,
                    codec: 0,
                    seq: i as u64,
                    created_ms: 1,
                    expires_ms: 0,
                    key: key.as_bytes(),
                    name: b"",
                    refs: &[],
                    value: &value,
                    raw_len: value.len() as u32,
                    payload_len: 0,
                },
                &mut out,
            );
        }
        (out, offsets)
    }

    #[test]
    fn scan_finds_every_record() {
        let (bytes, offsets) = records(10);
        let (found, damage) = scan(&bytes, SEGMENT_HEADER_LEN);
        assert!(damage.is_empty());
        assert_eq!(found.iter().map(|s| s.offset).collect::<Vec<_>>(), offsets);
    }

    #[test]
    fn one_flipped_byte_costs_one_record() {
        let (mut bytes, offsets) = records(10);
        bytes[offsets[4] as usize + 70] ^= 0xFF;
        let (found, damage) = scan(&bytes, SEGMENT_HEADER_LEN);
        assert_eq!(found.len(), 9);
        assert_eq!(damage.len(), 1);
        assert_eq!(damage[0].offset, offsets[4]);
        assert_eq!(damage[0].offset + damage[0].len, offsets[5]);
    }

    #[test]
    fn torn_tail_is_reported_as_truncated() {
        let (bytes, offsets) = records(3);
        let cut = &bytes[..offsets[2] as usize + 10];
        let (found, damage) = scan(cut, SEGMENT_HEADER_LEN);
        assert_eq!(found.len(), 2);
        assert_eq!(damage, vec![Damage { offset: offsets[2], len: 10, error: FrameError::Truncated }]);
    }

    #[test]
    fn names_and_headers() {
        assert_eq!(parse_segment_name("seg-0000000042.log"), Some(42));
        assert_eq!(parse_segment_name("seg-0000000042.hint"), None);
        assert_eq!(segment_path(Path::new("/d"), 42), PathBuf::from("/d/seg-0000000042.log"));
        assert!(check_file_header(&file_header(3), 3).is_ok());
        assert!(check_file_header(&file_header(3), 4).is_err());
        assert!(check_file_header(b"garbage garbage!", 1).is_err());
    }
}

#[cfg(test)]
mod arbitrary_bytes {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Scanning any bytes never panics, and every record it returns decodes with a valid checksum.
        #[test]
        fn scanning_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..4096), start in 0u64..64) {
            let (records, damage) = scan(&bytes, start.min(bytes.len() as u64));
            for r in &records {
                let end = r.offset as usize + r.record.header.record_len();
                prop_assert!(record::decode(&bytes[r.offset as usize..end], true).is_ok());
            }
            for d in &damage {
                prop_assert!(d.offset + d.len <= bytes.len() as u64);
            }
        }

        /// A valid record embedded in garbage is found by the resynchronising scan.
        #[test]
        fn a_record_in_garbage_is_found(prefix in proptest::collection::vec(any::<u8>(), 0..300), suffix in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut bytes = prefix.clone();
            let at = bytes.len();
            record::encode(&record::RecordRef {
                record_type: record::RecordType::Entry, kind: 1, codec: 0, seq: 1, created_ms: 0, expires_ms: 0,
                key: b"needle", name: b"", refs: &[], value: b"value", raw_len: 5, payload_len: 0,
            }, &mut bytes);
            bytes.extend_from_slice(&suffix);
            let (records, _) = scan(&bytes, 0);
            prop_assert!(records.iter().any(|r| r.offset as usize == at && r.record.key == b"needle"));
        }
    }
}
