//! What the remote tier stores: the key layout and the value bytes.
//!
//! A key is `inferno:v1:resp:<response key>` (see [`remote_key`]). `v1` is the namespace: it names this
//! layout and value format, and changes (so that old keys simply miss) if either ever does. It is written
//! without braces on purpose: a `{...}` part would be a Redis Cluster hash tag and put every key in one slot.
//!
//! A value is one framed, checksummed record exactly as the disk tier writes it (docs/format.md, "Record"):
//! type entry, kind response, the entry's key, name, creation and expiry times, and the whole value
//! compressed with the configured codec. Chunk references are never used remotely (dedup chunks live in
//! the local disk tier), so a record read from Redis is self-contained. Reading checks the checksum, the
//! kind and that the record's key is the key asked for: a damaged or misplaced value is reported, never
//! served.
//!
//! With a cache key (`[cache.security]`, encryption on), the value is sealed exactly as on disk (codec bit 7,
//! `cache/seal`), bound to the entry's type, kind, key and name; reading then accepts only a value sealed
//! with the key, so a client that can write to Redis but has no key cannot plant an answer: an unsealed,
//! forged or other-key value is rejected (a counted miss).

use crate::cache::clock::Expiry;
use crate::cache::codec::{Codec, CodecId};
use crate::cache::kind::Kind;
use crate::cache::record::{self, HEADER_LEN, RecordRef, RecordType};
use crate::cache::seal::{self, Binding, SEALED_CODEC_BIT, Sealer};

/// Every key the remote tier writes starts with this.
pub const KEY_PREFIX: &str = "inferno:v1:resp:";

/// The Redis key of the response entry `key`.
pub fn remote_key(key: &str) -> String {
    format!("{KEY_PREFIX}{key}")
}

/// The response key inside a Redis key made by [`remote_key`].
pub fn local_key(remote: &str) -> Option<&str> {
    remote.strip_prefix(KEY_PREFIX)
}

/// An entry read back from the remote tier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteEntry {
    /// The decoded value.
    pub value: Vec<u8>,
    /// The entry's name (the model name for responses).
    pub name: String,
    /// Creation time, ms since the Unix epoch.
    pub created_ms: u64,
    /// When it stops being served.
    pub expires: Expiry,
}

/// The record bytes stored under [`remote_key`]`(key)`.
pub fn encode(
    codec: &Codec,
    sealer: Option<&Sealer>,
    key: &str,
    name: &str,
    value: &[u8],
    created_ms: u64,
    expires: Expiry,
) -> Vec<u8> {
    let mut scratch = Vec::new();
    let (codec, stored) = codec.encode(value, &mut scratch);
    let mut sealed = Vec::new();
    let (codec, stored) = match sealer {
        Some(sealer) => {
            let codec = codec as u8 | SEALED_CODEC_BIT;
            sealer.seal(&binding(key, name, codec, value.len() as u32), stored, &mut sealed);
            (codec, &sealed[..])
        }
        None => (codec as u8, stored),
    };
    let mut out = Vec::with_capacity(HEADER_LEN + key.len() + name.len() + stored.len());
    record::encode(
        &RecordRef {
            record_type: RecordType::Entry,
            kind: Kind::Response.code(),
            codec,
            seq: 0,
            created_ms,
            expires_ms: expires.as_ms(),
            key: key.as_bytes(),
            name: name.as_bytes(),
            refs: &[],
            value: stored,
            raw_len: value.len() as u32,
            payload_len: 0,
        },
        &mut out,
    );
    out
}

/// What a sealed remote value is bound to.
fn binding<'a>(key: &'a str, name: &'a str, codec: u8, raw_len: u32) -> Binding<'a> {
    Binding {
        record_type: RecordType::Entry,
        kind: Kind::Response.code(),
        codec,
        key: key.as_bytes(),
        name: name.as_bytes(),
        refs: &[],
        raw_len,
    }
}

/// Decodes and checks the record stored for `key`; the error says what is wrong with it. With `sealer`,
/// only a value sealed with its key is accepted.
pub fn decode(key: &str, bytes: &[u8], sealer: Option<&Sealer>) -> Result<RemoteEntry, String> {
    let record = record::decode(bytes, true).map_err(|e| e.to_string())?;
    let header = record.header;
    if header.record_type != RecordType::Entry || header.kind != Kind::Response.code() {
        return Err(format!("not a response entry (type {:?}, kind {})", header.record_type, header.kind));
    }
    if record.key != key.as_bytes() {
        return Err("the record belongs to another key".into());
    }
    if header.refs != 0
        || record.value.len() + HEADER_LEN + record.key.len() + record.name.len() != bytes.len()
    {
        return Err("unexpected chunk references or trailing bytes".into());
    }
    let name = String::from_utf8_lossy(record.name).into_owned();
    let opened = match (seal::is_sealed(header.codec), sealer) {
        (false, Some(_)) => return Err("the value is not sealed, and a cache key is configured".into()),
        (false, None) => None,
        (true, sealer) => Some(
            seal::open(sealer, &binding(key, &name, header.codec, header.raw_len), record.value)
                .map_err(|e| e.to_string())?,
        ),
    };
    let codec = CodecId::try_from(seal::inner_codec(header.codec)).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let value =
        Codec::decode(codec, opened.as_deref().unwrap_or(record.value), header.raw_len as usize, &mut out)
            .map_err(|e| e.to_string())?;
    Ok(RemoteEntry {
        value: value.to_vec(),
        name,
        created_ms: header.created_ms,
        expires: Expiry::from_ms(header.expires_ms),
    })
}

/// The name, creation time, expiry and decoded size of a record from its first bytes (a `GETRANGE`
/// prefix), without the value and without checking the checksum: enough for `clear --pattern`.
pub fn peek(prefix: &[u8]) -> Option<(String, u64, Expiry, u64)> {
    let header = record::decode_header(prefix).ok()?;
    let name_at = HEADER_LEN + header.key_len as usize;
    let name = prefix.get(name_at..name_at + header.name_len as usize)?;
    Some((
        String::from_utf8_lossy(name).into_owned(),
        header.created_ms,
        Expiry::from_ms(header.expires_ms),
        header.raw_len as u64,
    ))
}

/// Bytes of a record that [`peek`] needs for any key and name up to these lengths.
pub const PEEK_LEN: usize = HEADER_LEN + 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CacheConfig;

    #[test]
    fn round_trip_and_damage_is_an_error() {
        let codec = Codec::from_cache_config(&CacheConfig::default());
        let value =
            br#"{"response":"hello hello hello hello hello hello hello hello hello hello"}"#.repeat(40);
        let bytes = encode(&codec, None, "abc123", "tiny", &value, 7, Expiry::from_ms(9));
        assert!(bytes.len() < value.len(), "compressed");
        let entry = decode("abc123", &bytes, None).unwrap();
        assert_eq!(
            entry,
            RemoteEntry {
                value: value.clone(),
                name: "tiny".into(),
                created_ms: 7,
                expires: Expiry::from_ms(9)
            }
        );
        assert_eq!(
            peek(&bytes[..PEEK_LEN.min(bytes.len())]),
            Some(("tiny".into(), 7, Expiry::from_ms(9), value.len() as u64))
        );
        assert!(decode("other", &bytes, None).unwrap_err().contains("another key"));
        for at in [0, 10, HEADER_LEN + 2, bytes.len() - 1] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x40;
            assert!(decode("abc123", &damaged, None).is_err(), "flip at {at} went unnoticed");
        }
        assert!(decode("abc123", &bytes[..bytes.len() - 1], None).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode("abc123", &longer, None).is_err());
    }

    #[test]
    fn with_a_key_only_sealed_values_are_accepted() {
        use crate::cache::seal::{Algorithm, CacheKey};
        let codec = Codec::from_cache_config(&CacheConfig::default());
        let sealer = Sealer::new(Algorithm::Aes256Gcm, CacheKey::from_bytes(&[5; 32]));
        let value = br#"{"response":"MARKER-remote-secret"}"#;
        let sealed = encode(&codec, Some(&sealer), "k1", "tiny", value, 7, Expiry::NEVER);
        assert!(!sealed.windows(6).any(|w| w == b"MARKER"), "the value is not in the clear");
        assert_eq!(decode("k1", &sealed, Some(&sealer)).unwrap().value, value);
        let planted = encode(&codec, None, "k1", "tiny", value, 7, Expiry::NEVER);
        assert!(decode("k1", &planted, Some(&sealer)).unwrap_err().contains("not sealed"));
        let other = Sealer::new(Algorithm::Aes256Gcm, CacheKey::from_bytes(&[6; 32]));
        let foreign = encode(&codec, Some(&other), "k1", "tiny", value, 7, Expiry::NEVER);
        assert!(decode("k1", &foreign, Some(&sealer)).unwrap_err().contains("written with key"));
        assert!(decode("k1", &sealed, None).unwrap_err().contains("the configured key is none"));
        // Moved to another key with a recomputed checksum: the seal is bound to the key.
        let moved = encode(&codec, Some(&sealer), "k2", "tiny", value, 7, Expiry::NEVER);
        let record = record::decode(&moved, true).unwrap();
        let mut rebuilt = Vec::new();
        record::encode(
            &RecordRef {
                record_type: RecordType::Entry,
                kind: Kind::Response.code(),
                codec: record.header.codec,
                seq: 0,
                created_ms: 7,
                expires_ms: 0,
                key: b"k1",
                name: b"tiny",
                refs: &[],
                value: record.value,
                raw_len: record.header.raw_len,
                payload_len: 0,
            },
            &mut rebuilt,
        );
        assert!(decode("k1", &rebuilt, Some(&sealer)).unwrap_err().contains("failed authentication"));
    }

    #[test]
    fn keys_have_no_hash_tag() {
        let key = remote_key("k1");
        assert_eq!(key, "inferno:v1:resp:k1");
        assert!(!key.contains('{'));
        assert_eq!(local_key(&key), Some("k1"));
    }
}
