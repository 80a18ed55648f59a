//! Hint files: for one segment, every record's offset, header, key, name and chunk references (no values),
//! so opening a store reads hints instead of whole segments. A hint covers the segment up to `covered_len`;
//! anything after that is scanned. A hint whose trailing checksum fails is ignored and the segment scanned.

use std::path::Path;

use xxhash_rust::xxh3::xxh3_64;

use super::index::{Index, Loc};
use super::storage::Storage;
use crate::cache::record::{self, HEADER_LEN, Header, REF_LEN, RecordType};

/// First eight bytes of a hint file.
pub const HINT_MAGIC: [u8; 8] = *b"INFHINT\n";
const HINT_HEADER_LEN: usize = 32;

/// Collects hint lines while a segment is written or scanned.
#[derive(Debug, Default, Clone)]
pub struct HintBuilder {
    bytes: Vec<u8>,
    count: u64,
}

/// A position in a [`HintBuilder`], to rewind to when the records after it never reached the file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HintMark {
    bytes: usize,
    count: u64,
}

impl HintBuilder {
    /// The current position.
    pub fn mark(&self) -> HintMark {
        HintMark { bytes: self.bytes.len(), count: self.count }
    }

    /// Drops every line added after `mark`.
    pub fn rewind(&mut self, mark: HintMark) {
        self.bytes.truncate(mark.bytes);
        self.count = mark.count;
    }

    /// Adds the record at `offset`; `record_bytes` is the whole encoded record.
    pub fn add(&mut self, offset: u64, record_bytes: &[u8]) {
        let header = record::decode_header(record_bytes).expect("hint lines come from valid records");
        let meta_len =
            HEADER_LEN + header.key_len as usize + header.name_len as usize + header.refs as usize * REF_LEN;
        self.bytes.extend_from_slice(&offset.to_le_bytes());
        self.bytes.extend_from_slice(&record_bytes[..meta_len]);
        self.count += 1;
    }

    /// Writes the hint for `segment` covering `covered_len` bytes, atomically (temp file + rename).
    pub fn write(
        &self,
        fs: &dyn Storage,
        path: &Path,
        segment: u32,
        covered_len: u64,
    ) -> std::io::Result<()> {
        let mut out = Vec::with_capacity(HINT_HEADER_LEN + self.bytes.len() + 8);
        out.extend_from_slice(&HINT_MAGIC);
        out.extend_from_slice(&super::segment::FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&segment.to_le_bytes());
        out.extend_from_slice(&covered_len.to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.bytes);
        let sum = xxh3_64(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        super::storage::write_file_synced(fs, path, &path.with_extension("hint.tmp"), &out)
    }
}

/// Applies a hint file's lines for `segment` to `index`; returns the covered length and a builder holding
/// the same lines (to extend while the segment is still written), or `None` when the hint is missing, for
/// another segment, damaged, or covers more than the segment's `segment_len` bytes (then the caller scans
/// the segment).
///
/// With `beyond_len` a hint covering more than the segment is applied all the same, and the covered length
/// it returns exceeds `segment_len`. That is the writer's view: nothing else appends to the segment, so it
/// has lost durable bytes, and the lines past its end name the records lost with them. A reader without the
/// lock cannot tell that from a writer that grew the segment after it was mapped, and scans instead.
///
/// `segments_left` counts the segments still to load, this one included; the index is sized up front as if
/// each held as many entries and chunks as this one, so that it is not rehashed segment after segment (the
/// entries' vectors only for this one: see `Entries::reserve`).
pub fn load(
    fs: &dyn Storage,
    path: &Path,
    segment: u32,
    segment_len: u64,
    beyond_len: bool,
    segments_left: usize,
    index: &mut Index,
) -> Option<(u64, HintBuilder)> {
    let mut bytes = fs.read(path).ok()?;
    if bytes.len() < HINT_HEADER_LEN + 8 || bytes[..8] != HINT_MAGIC {
        return None;
    }
    let (body, sum) = bytes.split_at(bytes.len() - 8);
    if xxh3_64(body) != u64::from_le_bytes(sum.try_into().ok()?) {
        return None;
    }
    let version = u16::from_le_bytes([body[8], body[9]]);
    let id = u32::from_le_bytes(body[12..16].try_into().ok()?);
    if version != super::segment::FORMAT_VERSION || id != segment {
        return None;
    }
    let covered = u64::from_le_bytes(body[16..24].try_into().ok()?);
    let count = u64::from_le_bytes(body[24..32].try_into().ok()?);
    if covered > segment_len && !beyond_len {
        return None;
    }
    // Check every line before applying any (a hint is applied whole or not at all), counting entry and blob
    // lines to size the index.
    let (mut entry_lines, mut key_bytes, mut blob_lines) = (0usize, 0usize, 0usize);
    let mut pos = HINT_HEADER_LEN;
    for _ in 0..count {
        let (line, next) = parse_line(body, pos)?;
        match line.header.record_type {
            RecordType::Entry => {
                entry_lines += 1;
                key_bytes += Index::stored_key_len(line.key);
            }
            RecordType::Blob => blob_lines += 1,
            RecordType::Tombstone => {}
        }
        pos = next;
    }
    if pos != body.len() {
        return None;
    }
    index.reserve_entries(entry_lines, key_bytes, entry_lines.saturating_mul(segments_left));
    index.blobs.reserve(blob_lines.saturating_mul(segments_left));
    let mut pos = HINT_HEADER_LEN;
    for _ in 0..count {
        let (line, next) = parse_line(body, pos)?;
        pos = next;
        let refs = match line.refs {
            [] => Vec::new(),
            refs => refs.chunks_exact(REF_LEN).map(|r| r.try_into().expect("REF_LEN bytes")).collect(),
        };
        let loc = Loc { segment, offset: line.offset, len: line.header.record_len() as u32 };
        index.apply_parts(&line.header, line.key, line.name, refs, loc);
    }
    // The builder keeps the lines; reuse the buffer they were read into rather than copying them.
    let lines_end = bytes.len() - 8;
    bytes.copy_within(HINT_HEADER_LEN..lines_end, 0);
    bytes.truncate(lines_end - HINT_HEADER_LEN);
    let builder = HintBuilder { bytes, count };
    Some((covered, builder))
}

/// One hint line, borrowing from the hint's bytes.
struct Line<'a> {
    offset: u64,
    header: Header,
    key: &'a [u8],
    name: &'a [u8],
    refs: &'a [u8],
}

/// The line at `pos` of `body` and where the next one starts; `None` when it runs past the end or its header
/// is not a record header.
fn parse_line(body: &[u8], pos: usize) -> Option<(Line<'_>, usize)> {
    let offset = u64::from_le_bytes(body.get(pos..pos + 8)?.try_into().ok()?);
    let mut pos = pos + 8;
    let header = record::decode_header(body.get(pos..)?).ok()?;
    pos += HEADER_LEN;
    let key = body.get(pos..pos + header.key_len as usize)?;
    pos += key.len();
    let name = body.get(pos..pos + header.name_len as usize)?;
    pos += name.len();
    let refs = body.get(pos..pos + header.refs as usize * REF_LEN)?;
    pos += refs.len();
    Some((Line { offset, header, key, name, refs }, pos))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Loading any bytes as a hint never panics and, unless they form a valid hint, changes nothing.
        #[test]
        fn garbage_hints_are_ignored(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("seg-0000000001.hint");
            std::fs::write(&path, &bytes).unwrap();
            let mut index = Index::default();
            let loaded = load(&super::super::RealFs, &path, 1, u64::MAX, false, 1, &mut index);
            prop_assert!(loaded.is_none());
            prop_assert!(index.entry_count() == 0 && index.blobs.is_empty());
        }
    }
}
