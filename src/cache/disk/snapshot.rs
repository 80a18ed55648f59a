//! Consistent copies of a disk store while it may be in use: each segment up to the end of its last intact
//! record. Segments are append-only, so such a prefix is a state the store really had; a torn or still
//! growing tail is left out. Used by `inferno cache backup`.

use std::path::Path;

use super::open::list_segments;
use super::segment::{self, SEGMENT_HEADER_LEN};
use super::{DiskError, io_err};

/// Calls `each(file name, bytes)` for every segment in `data_dir`, oldest first, with the segment's bytes up
/// to the end of its last intact record. Fails with [`DiskError::Io`] (kind `NotFound`) when a segment
/// disappears during the walk, which happens when a writer compacts at the same time: run it again.
pub fn consistent_segments(
    data_dir: &Path,
    mut each: impl FnMut(&str, &[u8]) -> std::io::Result<()>,
) -> Result<u64, DiskError> {
    let mut copied = 0;
    for id in list_segments(&super::RealFs, data_dir, false)? {
        let path = segment::segment_path(data_dir, id);
        let map = segment::map_file(&path).map_err(io_err(&path))?;
        let (records, _) = segment::scan(&map, SEGMENT_HEADER_LEN);
        let end =
            records.last().map_or(SEGMENT_HEADER_LEN, |r| r.offset + r.record.header.record_len() as u64);
        let end = (end as usize).min(map.len());
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        each(&name, &map[..end]).map_err(io_err(&path))?;
        copied += end as u64;
    }
    Ok(copied)
}
