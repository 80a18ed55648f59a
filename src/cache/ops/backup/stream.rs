//! Streaming one backup file through fixed-size buffers — BLAKE3 computed incrementally, zstd through its
//! streaming encoder and decoder — so backup, verify and restore use the same memory whatever the size of
//! the cache. Also the one place that creates files in a backup folder or a restore's staging folder.

use std::fs::File;
use std::io::{BufWriter, ErrorKind, Read, Write};
use std::path::Path;

use super::{BackupError, FileEntry, io, stored_name};

/// Bytes moved per read or write.
const BUF_LEN: usize = 256 * 1024;
/// zstd level of compressed backups.
const ZSTD_LEVEL: i32 = 3;

/// Creates a new file for a backup or a restore (failing if it exists), owner-only (0600): the one place
/// files are created.
pub(super) fn create_file(path: &Path) -> std::io::Result<File> {
    crate::cache::private::options().write(true).create_new(true).open(path)
}

/// Writes `content` into the backup folder `dest` as the file `rel` (compressed when `compress`), fsynced,
/// and returns its manifest entry.
pub(super) fn write_file(
    dest: &Path,
    rel: &str,
    content: &[u8],
    compress: bool,
) -> Result<FileEntry, BackupError> {
    let target = dest.join(stored_name(rel, compress));
    if let Some(parent) = target.parent() {
        crate::cache::private::create_dir_all(parent).map_err(io(parent))?;
    }
    let out = BufWriter::with_capacity(BUF_LEN, create_file(&target).map_err(io(&target))?);
    let mut hasher = blake3::Hasher::new();
    let out = if compress {
        let mut encoder = zstd::stream::Encoder::new(out, ZSTD_LEVEL).map_err(io(&target))?;
        for chunk in content.chunks(BUF_LEN) {
            hasher.update(chunk);
            encoder.write_all(chunk).map_err(io(&target))?;
        }
        encoder.finish().map_err(io(&target))?
    } else {
        let mut out = out;
        for chunk in content.chunks(BUF_LEN) {
            hasher.update(chunk);
            out.write_all(chunk).map_err(io(&target))?;
        }
        out
    };
    let file = out.into_inner().map_err(|e| io(&target)(e.into_error()))?;
    file.sync_all().map_err(io(&target))?;
    Ok(FileEntry {
        path: rel.to_string(),
        size: content.len() as u64,
        blake3: hasher.finalize().to_hex().to_string(),
    })
}

/// Reads the backup's copy of `file` (decompressing when `compressed`), checks its size and BLAKE3 against
/// the manifest, and writes its content to `out` (`out_path` names it in errors) as it goes. Never produces
/// more than the manifest's size plus one byte, so a hostile compressed file cannot fill the disk.
///
/// What reached `out` before a mismatch was found is not valid: the caller discards it.
pub(super) fn copy_checked(
    backup: &Path,
    compressed: bool,
    file: &FileEntry,
    out: &mut impl Write,
    out_path: &Path,
) -> Result<(), BackupError> {
    let path = backup.join(stored_name(&file.path, compressed));
    let mismatch = |reason: String| BackupError::Checksum { path: path.clone(), reason };
    let stored = File::open(&path).map_err(io(&path))?;
    let reader: Box<dyn Read> = if compressed {
        Box::new(zstd::stream::Decoder::new(stored).map_err(io(&path))?)
    } else {
        Box::new(stored)
    };
    let mut reader = reader.take(file.size.saturating_add(1));
    let mut buf = vec![0u8; BUF_LEN];
    let mut hasher = blake3::Hasher::new();
    let mut size = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) if compressed => return Err(mismatch(format!("cannot decompress: {err}"))),
            Err(err) => return Err(io(&path)(err)),
        };
        size += n as u64;
        if size > file.size {
            return Err(mismatch(format!("longer than the {} bytes the manifest says", file.size)));
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io(out_path))?;
    }
    if size != file.size {
        return Err(mismatch(format!("{size} bytes, manifest says {}", file.size)));
    }
    let sum = hasher.finalize().to_hex();
    if sum.as_str() != file.blake3 {
        return Err(mismatch(format!("BLAKE3 {sum}, manifest says {}", file.blake3)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(content: &[u8]) -> FileEntry {
        FileEntry {
            path: "data/seg-0000000001.log".into(),
            size: content.len() as u64,
            blake3: blake3::hash(content).to_hex().to_string(),
        }
    }

    #[test]
    fn round_trips_plain_and_compressed_across_buffer_boundaries() {
        let content: Vec<u8> = (0..BUF_LEN * 2 + 17).map(|i| (i * 7 % 251) as u8).collect();
        for compress in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let written = write_file(dir.path(), &entry(b"").path, &content, compress).unwrap();
            assert_eq!(written, entry(&content));
            let mut out = Vec::new();
            copy_checked(dir.path(), compress, &written, &mut out, Path::new("out")).unwrap();
            assert_eq!(out, content);
        }
    }

    #[test]
    fn short_long_damaged_and_undecodable_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let content = vec![b'x'; 1000];
        let good = write_file(dir.path(), "data/seg-0000000001.log", &content, false).unwrap();
        let check = |entry: &FileEntry, compressed: bool| {
            let err = copy_checked(dir.path(), compressed, entry, &mut std::io::sink(), Path::new("out"))
                .unwrap_err();
            assert!(matches!(err, BackupError::Checksum { .. }), "{err}");
            err.to_string()
        };
        assert!(check(&FileEntry { size: 999, ..good.clone() }, false).contains("longer than the 999 bytes"));
        assert!(
            check(&FileEntry { size: 1001, ..good.clone() }, false)
                .contains("1000 bytes, manifest says 1001")
        );
        assert!(check(&FileEntry { blake3: "00".into(), ..good.clone() }, false).contains("BLAKE3"));
        // Plain bytes read as zstd.
        std::fs::copy(dir.path().join(&good.path), dir.path().join(format!("{}.zst", good.path))).unwrap();
        assert!(check(&good, true).contains("cannot decompress"));
        // A small zstd file that would expand far beyond its manifest size stops at size + 1.
        let bomb = zstd::bulk::compress(&vec![0u8; 64 << 20], 19).unwrap();
        std::fs::write(dir.path().join(format!("{}.zst", good.path)), bomb).unwrap();
        let mut out = Vec::new();
        let err = copy_checked(dir.path(), true, &good, &mut out, Path::new("out")).unwrap_err();
        assert!(err.to_string().contains("longer than"), "{err}");
        assert!(out.len() <= 1001);
    }
}
