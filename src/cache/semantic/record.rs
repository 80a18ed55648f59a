//! A semantic-cache vector as stored in the cache (kind `semantic`, under its request's response key):
//! `ISV1`, the 32-byte scope group, the width as a little-endian `u32`, the unit-length vector as
//! little-endian `f32`s, then the embedded text (UTF-8) to the end. docs/format.md lists it with the kinds.

use super::index::GroupId;

const MAGIC: &[u8; 4] = b"ISV1";

/// A decoded record.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredVector {
    /// Its scope group.
    pub group: GroupId,
    /// The unit-length embedding.
    pub vector: Vec<f32>,
    /// The text embedded (the request's last user message).
    pub text: String,
}

/// The record's bytes.
pub fn encode(group: &GroupId, vector: &[f32], text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(40 + vector.len() * 4 + text.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(group);
    out.extend_from_slice(&(vector.len() as u32).to_le_bytes());
    for x in vector {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.extend_from_slice(text.as_bytes());
    out
}

/// The record in `bytes`, or what is wrong with it.
pub fn decode(bytes: &[u8]) -> Result<StoredVector, String> {
    let rest = bytes.strip_prefix(MAGIC).ok_or("not a semantic vector record (no ISV1 header)")?;
    if rest.len() < 36 {
        return Err("truncated semantic vector record".into());
    }
    let (group, rest) = rest.split_at(32);
    let (width, rest) = rest.split_at(4);
    let width = u32::from_le_bytes(width.try_into().map_err(|_| "bad width")?) as usize;
    let floats = width.checked_mul(4).filter(|n| *n <= rest.len()).ok_or("truncated semantic vector")?;
    let (vector, text) = rest.split_at(floats);
    let vector: Vec<f32> =
        vector.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    if vector.iter().any(|x| !x.is_finite()) {
        return Err("the semantic vector holds a number that is not finite".into());
    }
    let text = std::str::from_utf8(text).map_err(|_| "the semantic vector's text is not UTF-8")?.to_string();
    let group: GroupId = group.try_into().map_err(|_| "bad group")?;
    Ok(StoredVector { group, vector, text })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_damage() {
        let group = [7u8; 32];
        let bytes = encode(&group, &[0.6, -0.8], "Capital of France?");
        let back = decode(&bytes).unwrap();
        assert_eq!(back, StoredVector { group, vector: vec![0.6, -0.8], text: "Capital of France?".into() });
        assert!(decode(&bytes[..30]).is_err());
        assert!(decode(&bytes[..bytes.len() - 19 - 4]).is_err(), "a vector cut short");
        assert!(decode(b"XXXX").is_err());
        let mut nan = encode(&group, &[f32::NAN], "");
        assert!(decode(&nan).is_err());
        nan.truncate(4);
        assert!(decode(&nan).is_err());
    }
}
