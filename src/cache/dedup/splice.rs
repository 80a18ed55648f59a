//! A value split into the bytes it shares with other values (the payload, deduplicated) and the bytes that
//! belong to its key alone (the head), and joined back: byte work only, whatever the value's format.
//!
//! The caller (for responses, `response_store`) names the per-key byte ranges of a value; everything between
//! them, concatenated, is the payload. The head records each per-key piece with the payload offset it goes
//! back in:
//!
//! ```text
//! head = 0x00 0x01 (piece)*          0x00 never starts JSON, so format-1 JSON heads stay recognisable
//! piece = u32 LE payload offset, u32 LE length, that many bytes
//! ```
//!
//! Offsets never decrease; joining copies the payload up to each offset, then the piece.

use std::ops::Range;

/// The first two bytes of a head written here.
pub const HEAD_MAGIC: [u8; 2] = [0x00, 0x01];

/// Why a head could not be joined with its payload.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the stored head does not fit its payload: {0}")]
pub struct SpliceError(&'static str);

/// Whether `head` was written by [`split`] (rather than being a format-1 JSON head).
pub fn is_spliced(head: &[u8]) -> bool {
    head.starts_with(&HEAD_MAGIC)
}

/// Splits `value` at `per_key`: sorted, non-overlapping ranges within `value`. Returns (head, payload).
/// Ranges that are out of order, overlap or lie outside `value` are skipped (their bytes stay in the payload),
/// so the join always gives `value` back.
pub fn split(value: &[u8], per_key: &[Range<usize>]) -> (Vec<u8>, Vec<u8>) {
    let kept: usize = per_key.iter().map(|r| r.len()).sum();
    let mut head = Vec::with_capacity(HEAD_MAGIC.len() + kept + 8 * per_key.len());
    let mut payload = Vec::with_capacity(value.len().saturating_sub(kept));
    head.extend_from_slice(&HEAD_MAGIC);
    let mut at = 0;
    for range in per_key {
        if range.start < at || range.end < range.start || range.end > value.len() {
            continue;
        }
        payload.extend_from_slice(&value[at..range.start]);
        head.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        head.extend_from_slice(&(range.len() as u32).to_le_bytes());
        head.extend_from_slice(&value[range.clone()]);
        at = range.end;
    }
    payload.extend_from_slice(&value[at..]);
    (head, payload)
}

/// Rebuilds the value from a head written by [`split`] and its payload.
pub fn join(head: &[u8], payload: &[u8]) -> Result<Vec<u8>, SpliceError> {
    let mut rest = head.strip_prefix(&HEAD_MAGIC).ok_or(SpliceError("no splice magic"))?;
    let mut out = Vec::with_capacity(head.len() + payload.len());
    let mut at = 0;
    while !rest.is_empty() {
        let (offset, len, tail) = piece(rest).ok_or(SpliceError("a piece is cut short"))?;
        if offset < at || offset > payload.len() {
            return Err(SpliceError("a piece's offset is out of order or past the payload"));
        }
        out.extend_from_slice(&payload[at..offset]);
        out.extend_from_slice(&tail[..len]);
        at = offset;
        rest = &tail[len..];
    }
    out.extend_from_slice(&payload[at..]);
    Ok(out)
}

/// One piece's offset and length, and the bytes from its content on (at least `len` of them).
fn piece(bytes: &[u8]) -> Option<(usize, usize, &[u8])> {
    let offset = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let len = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?) as usize;
    let tail = &bytes[8..];
    (tail.len() >= len).then_some((offset, len, tail))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn split_moves_the_named_ranges_to_the_head() {
        let value = b"{\"id\":\"a\",\"text\":\"shared\",\"created\":1}";
        let (head, payload) = split(value, &[1..10, 25..37]);
        assert_eq!(payload, b"{\"text\":\"shared\"}");
        assert!(is_spliced(&head));
        assert_eq!(join(&head, &payload).unwrap(), value);
        let (_, other) = split(b"{\"id\":\"b\",\"text\":\"shared\",\"created\":2}", &[1..10, 25..37]);
        assert_eq!(other, payload);
    }

    #[test]
    fn damaged_heads_are_errors() {
        let (head, payload) = split(b"abcdef", &[1..2, 4..5]);
        assert!(join(&head[..head.len() - 1], &payload).is_err());
        assert!(join(b"{\"envelope\":{}}", &payload).is_err());
        let mut past = HEAD_MAGIC.to_vec();
        past.extend_from_slice(&99u32.to_le_bytes());
        past.extend_from_slice(&0u32.to_le_bytes());
        assert!(join(&past, b"abc").is_err());
        let one = 3..4;
        let mut backwards = split(b"abcdef", std::slice::from_ref(&one)).0;
        backwards.extend_from_slice(&0u32.to_le_bytes());
        backwards.extend_from_slice(&0u32.to_le_bytes());
        assert!(join(&backwards, b"abcde").is_err());
    }

    proptest! {
        #[test]
        fn join_gives_back_the_value(value in proptest::collection::vec(any::<u8>(), 0..300),
                                     cuts in proptest::collection::vec((0usize..320, 0usize..40), 0..8)) {
            let per_key: Vec<Range<usize>> = cuts.into_iter().map(|(s, l)| s..s + l).collect();
            let (head, payload) = split(&value, &per_key);
            prop_assert_eq!(join(&head, &payload).unwrap(), value);
        }
    }
}
