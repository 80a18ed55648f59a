//! gzip framing (RFC 1952) around raw DEFLATE from per-thread, reused flate2 contexts.
//!
//! `flate2::write::GzEncoder` builds a fresh deflate state (hundreds of KiB) for every value, which costs
//! more than compressing a 2 KiB response. Here each thread keeps one `Compress` and one `Decompress`, resets
//! them per value, and the 10-byte header and 8-byte trailer are written by hand. The reader accepts any
//! single-member gzip stream, optional header fields included, so values written by other tools decode too;
//! the optional header CRC is skipped, not checked, since records carry their own checksum.

use std::cell::RefCell;

use flate2::{Compress, Compression, Crc, Decompress, FlushCompress, FlushDecompress, Status};

use super::{CodecError, CodecId};

const HEADER_LEN: usize = 10;
const TRAILER_LEN: usize = 8;
const METHOD_DEFLATE: u8 = 8;
const FLAG_HCRC: u8 = 0x02;
const FLAG_EXTRA: u8 = 0x04;
const FLAG_NAME: u8 = 0x08;
const FLAG_COMMENT: u8 = 0x10;
const FLAG_RESERVED: u8 = 0xe0;
const OS_UNKNOWN: u8 = 255;

thread_local! {
    static DEFLATER: RefCell<Option<(u32, Compress)>> = const { RefCell::new(None) };
    static INFLATER: RefCell<Option<Decompress>> = const { RefCell::new(None) };
}

/// Compresses `raw` into `out` as one gzip member; false when the member would not be smaller than `raw`.
pub(super) fn compress(raw: &[u8], level: u32, out: &mut Vec<u8>) -> bool {
    if raw.len() <= HEADER_LEN + TRAILER_LEN {
        return false;
    }
    let extra_flags = match level {
        9 => 2,
        1 => 4,
        _ => 0,
    };
    out.clear();
    // Room for anything smaller than `raw`: a deflate stream that does not fit was not worth keeping.
    out.reserve(raw.len() - TRAILER_LEN);
    out.extend_from_slice(&[0x1f, 0x8b, METHOD_DEFLATE, 0, 0, 0, 0, 0, extra_flags, OS_UNKNOWN]);
    let finished = DEFLATER.with_borrow_mut(|slot| {
        match slot {
            Some((current, deflater)) if *current == level => deflater.reset(),
            _ => *slot = Some((level, Compress::new(Compression::new(level), false))),
        }
        let Some((_, deflater)) = slot.as_mut() else { return false };
        let finished =
            matches!(deflater.compress_vec(raw, out, FlushCompress::Finish), Ok(Status::StreamEnd));
        if !finished {
            // A stream given up on for want of room is dropped, not reset and reused: zlib-rs 0.6's reset
            // leaves state behind after such a stream, and a few of them later deflate panics.
            *slot = None;
        }
        finished
    });
    if !finished || out.len() + TRAILER_LEN >= raw.len() {
        return false;
    }
    let mut crc = Crc::new();
    crc.update(raw);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    // ISIZE is the length modulo 2^32, so the truncation is the format's.
    out.extend_from_slice(&(raw.len() as u32).to_le_bytes());
    true
}

/// Decompresses one gzip member into exactly `raw_len` bytes of `out`, checking its CRC-32 and length.
pub(super) fn decompress(stored: &[u8], raw_len: usize, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let codec = CodecId::Gzip;
    let body_start = body_offset(stored)?;
    let Some(body_len) = stored.len().checked_sub(body_start + TRAILER_LEN) else {
        return Err(corrupt("truncated before the trailer"));
    };
    let body = &stored[body_start..body_start + body_len];
    let &[c0, c1, c2, c3, s0, s1, s2, s3] = &stored[body_start + body_len..] else {
        return Err(corrupt("truncated before the trailer"));
    };
    let recorded_crc = u32::from_le_bytes([c0, c1, c2, c3]);
    let recorded_size = u32::from_le_bytes([s0, s1, s2, s3]);
    if recorded_size != raw_len as u32 {
        let found = u64::from(recorded_size);
        return Err(CodecError::LengthMismatch { codec, expected: raw_len as u64, found });
    }

    out.clear();
    out.resize(raw_len, 0);
    let (status, consumed, produced) = INFLATER.with_borrow_mut(|slot| {
        match slot {
            Some(inflater) => inflater.reset(false),
            None => *slot = Some(Decompress::new(false)),
        }
        let Some(inflater) = slot.as_mut() else { return Err(corrupt("no inflate context")) };
        // The output is exactly `raw_len` long, so a longer stream stops here instead of growing.
        let status = inflater
            .decompress(body, out.as_mut_slice(), FlushDecompress::Finish)
            .map_err(|e| corrupt_owned(e.to_string()))?;
        Ok((status, inflater.total_in(), inflater.total_out()))
    })?;
    let result = if status != Status::StreamEnd && produced == raw_len as u64 {
        Err(CodecError::TooLong { codec, expected: raw_len as u64 })
    } else if status != Status::StreamEnd {
        Err(corrupt("the deflate stream ends early"))
    } else if produced != raw_len as u64 {
        Err(CodecError::LengthMismatch { codec, expected: raw_len as u64, found: produced })
    } else if consumed != body.len() as u64 {
        Err(corrupt("bytes follow the deflate stream"))
    } else {
        let mut crc = Crc::new();
        crc.update(out);
        if crc.sum() == recorded_crc { Ok(()) } else { Err(corrupt("CRC-32 mismatch")) }
    };
    if result.is_err() {
        out.clear();
    }
    result
}

/// The offset of the DEFLATE data: the fixed header plus any optional fields its flags announce.
fn body_offset(stored: &[u8]) -> Result<usize, CodecError> {
    let &[0x1f, 0x8b, method, flags, ..] = stored else {
        return Err(corrupt("no gzip magic number"));
    };
    if method != METHOD_DEFLATE {
        return Err(corrupt_owned(format!("compression method {method} is not DEFLATE")));
    }
    if flags & FLAG_RESERVED != 0 {
        return Err(corrupt_owned(format!("reserved header flags are set ({flags:#04x})")));
    }
    let mut pos = HEADER_LEN;
    if flags & FLAG_EXTRA != 0 {
        let Some(&[lo, hi]) = stored.get(pos..pos + 2) else {
            return Err(corrupt("truncated in the header"));
        };
        pos += 2 + usize::from(u16::from_le_bytes([lo, hi]));
    }
    for flag in [FLAG_NAME, FLAG_COMMENT] {
        if flags & flag != 0 {
            let Some(nul) = stored.get(pos..).and_then(|rest| rest.iter().position(|&b| b == 0)) else {
                return Err(corrupt("truncated in the header"));
            };
            pos += nul + 1;
        }
    }
    if flags & FLAG_HCRC != 0 {
        pos += 2;
    }
    if pos > stored.len() {
        return Err(corrupt("truncated in the header"));
    }
    Ok(pos)
}

fn corrupt(reason: &str) -> CodecError {
    corrupt_owned(reason.to_string())
}

fn corrupt_owned(reason: String) -> CodecError {
    CodecError::Corrupt { codec: CodecId::Gzip, reason }
}
