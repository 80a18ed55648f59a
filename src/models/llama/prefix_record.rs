//! The bytes the prompt-prefix cache keeps under a chain key: a *state record* (a sequence's saved KV state
//! with the token ids it holds) or an *alias record* (a block key that points at a state record holding a
//! longer prompt with the same prefix). Writing, checking and reading them; never trusting them: a record is
//! only used once its magic, version, kind, length and checksum read right, and the caller still compares its
//! fingerprint and token ids with the request's.
//!
//! All integers are little-endian. The layout (docs/kv-cache.md, "Record format"):
//!
//! ```text
//! state:  magic[8] version:u32 kind:u8=1 fingerprint[32] n_tokens:u32 tokens:i32×n state_len:u64 state[..] xxh3_128[16]
//! alias:  magic[8] version:u32 kind:u8=2 fingerprint[32] target_key[32]                                     xxh3_128[16]
//! ```
//!
//! The checksum (XXH3-128 of every byte before it) catches damage between llama.cpp and the next restore
//! (storage, transport, a store without checksums of its own); it is not a MAC: the cache's encryption, where
//! configured, is the store's business.

use super::prefix_chain::FORMAT_VERSION;

/// The first 8 bytes of every record.
pub(super) const MAGIC: [u8; 8] = *b"INFKVPFX";
const KIND_STATE: u8 = 1;
const KIND_ALIAS: u8 = 2;
const VERSION_AT: usize = MAGIC.len();
const KIND_AT: usize = VERSION_AT + 4;
const FINGERPRINT_AT: usize = KIND_AT + 1;
/// Where a state record's `n_tokens` and an alias record's target key start.
const BODY_AT: usize = FINGERPRINT_AT + 32;
const CHECKSUM_LEN: usize = 16;

/// Why bytes are not a usable record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum RecordError {
    /// Shorter than its header or its declared lengths.
    #[error("the record is truncated")]
    Truncated,
    /// Not a prefix-cache record.
    #[error("the record has no prefix-cache magic")]
    Magic,
    /// Written by another format version.
    #[error("the record has format version {0}, this build reads {FORMAT_VERSION}")]
    Version(u32),
    /// An unknown record kind.
    #[error("the record has unknown kind {0}")]
    Kind(u8),
    /// Bytes after the declared lengths.
    #[error("the record has bytes after its end")]
    Trailing,
    /// The checksum does not match: the bytes were damaged.
    #[error("the record's checksum does not match")]
    Checksum,
}

/// A record that reads right.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Record<'a> {
    /// A saved sequence state.
    State(StateRecord<'a>),
    /// A block key pointing at the state record stored under `target`.
    Alias {
        /// The fingerprint the alias was written under.
        fingerprint: [u8; 32],
        /// The key of the state record.
        target: [u8; 32],
    },
}

/// A saved sequence state, borrowed from the record's bytes.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct StateRecord<'a> {
    /// The fingerprint the state was saved under.
    pub fingerprint: [u8; 32],
    /// The token ids the state holds, as i32 LE.
    tokens: &'a [u8],
    /// Where the state bytes are in the record.
    pub state: std::ops::Range<usize>,
}

impl StateRecord<'_> {
    /// How many tokens the state holds.
    pub fn n_tokens(&self) -> usize {
        self.tokens.len() / 4
    }

    /// How many leading tokens the state shares with `prompt`.
    pub fn common_prefix(&self, prompt: &[i32]) -> usize {
        self.tokens.chunks_exact(4).zip(prompt).take_while(|(t, p)| **t == p.to_le_bytes()).count()
    }
}

/// A state record being written: the header and token ids first, then llama.cpp copies the state into
/// [`state_mut`](Self::state_mut), then [`finish`](Self::finish) adds the checksum. One allocation of the exact
/// size, so the state bytes are copied once (by llama.cpp) on the decode thread.
pub(super) struct StateRecordWriter {
    bytes: Vec<u8>,
    state_at: usize,
}

impl StateRecordWriter {
    /// A record for `tokens` and a state of `state_len` bytes (zeroed until filled).
    pub fn new(fingerprint: &[u8; 32], tokens: &[i32], state_len: usize) -> Self {
        let state_at = BODY_AT + 4 + tokens.len() * 4 + 8;
        let mut bytes = Vec::with_capacity(state_at + state_len + CHECKSUM_LEN);
        header(&mut bytes, KIND_STATE, fingerprint);
        bytes.extend_from_slice(&(tokens.len() as u32).to_le_bytes());
        bytes.extend(tokens.iter().flat_map(|t| t.to_le_bytes()));
        bytes.extend_from_slice(&(state_len as u64).to_le_bytes());
        bytes.resize(state_at + state_len, 0);
        Self { bytes, state_at }
    }

    /// Where the state bytes go.
    pub fn state_mut(&mut self) -> &mut [u8] {
        &mut self.bytes[self.state_at..]
    }

    /// The whole record, checksum added.
    pub fn finish(mut self) -> Vec<u8> {
        let sum = xxhash_rust::xxh3::xxh3_128(&self.bytes);
        self.bytes.extend_from_slice(&sum.to_le_bytes());
        self.bytes
    }
}

/// An alias record: the block key it is stored under names a prefix of the prompt saved under `target`.
pub(super) fn alias(fingerprint: &[u8; 32], target: &[u8; 32]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(BODY_AT + 32 + CHECKSUM_LEN);
    header(&mut bytes, KIND_ALIAS, fingerprint);
    bytes.extend_from_slice(target);
    let sum = xxhash_rust::xxh3::xxh3_128(&bytes);
    bytes.extend_from_slice(&sum.to_le_bytes());
    bytes
}

fn header(bytes: &mut Vec<u8>, kind: u8, fingerprint: &[u8; 32]) {
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.push(kind);
    bytes.extend_from_slice(fingerprint);
}

/// Reads a record, checking everything but its meaning (fingerprint and tokens are the caller's to compare).
pub(super) fn parse(bytes: &[u8]) -> Result<Record<'_>, RecordError> {
    if bytes.len() < BODY_AT + CHECKSUM_LEN {
        return Err(RecordError::Truncated);
    }
    if bytes[..VERSION_AT] != MAGIC {
        return Err(RecordError::Magic);
    }
    let version = u32::from_le_bytes(array(&bytes[VERSION_AT..]));
    if version != FORMAT_VERSION {
        return Err(RecordError::Version(version));
    }
    let fingerprint = array(&bytes[FINGERPRINT_AT..]);
    let (end, record) = match bytes[KIND_AT] {
        KIND_STATE => {
            let mut at = BODY_AT;
            let n_tokens = u32::from_le_bytes(array(take(bytes, &mut at, 4)?)) as usize;
            let tokens = take(bytes, &mut at, n_tokens.checked_mul(4).ok_or(RecordError::Truncated)?)?;
            let state_len = u64::from_le_bytes(array(take(bytes, &mut at, 8)?));
            let state_len = usize::try_from(state_len).map_err(|_| RecordError::Truncated)?;
            let state_at = at;
            take(bytes, &mut at, state_len)?;
            (at, Record::State(StateRecord { fingerprint, tokens, state: state_at..at }))
        }
        KIND_ALIAS => {
            let mut at = BODY_AT;
            let target = array(take(bytes, &mut at, 32)?);
            (at, Record::Alias { fingerprint, target })
        }
        kind => return Err(RecordError::Kind(kind)),
    };
    let rest = &bytes[end..];
    if rest.len() < CHECKSUM_LEN {
        return Err(RecordError::Truncated);
    }
    if rest.len() > CHECKSUM_LEN {
        return Err(RecordError::Trailing);
    }
    if xxhash_rust::xxh3::xxh3_128(&bytes[..end]).to_le_bytes() != rest {
        return Err(RecordError::Checksum);
    }
    Ok(record)
}

/// The `len` bytes at `*at`, moving `at` past them.
fn take<'a>(bytes: &'a [u8], at: &mut usize, len: usize) -> Result<&'a [u8], RecordError> {
    let end = at.checked_add(len).filter(|end| *end <= bytes.len()).ok_or(RecordError::Truncated)?;
    let slice = &bytes[*at..end];
    *at = end;
    Ok(slice)
}

/// The first `N` bytes of `bytes` (the caller checked the length).
fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    bytes[..N].try_into().expect("length checked")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_record(tokens: &[i32], state: &[u8]) -> Vec<u8> {
        let mut w = StateRecordWriter::new(&[3u8; 32], tokens, state.len());
        w.state_mut().copy_from_slice(state);
        w.finish()
    }

    #[test]
    fn golden_bytes_of_a_state_record() {
        let bytes = state_record(&[1, -2], b"xyz");
        let mut expected = b"INFKVPFX".to_vec();
        expected.extend([1, 0, 0, 0, 1]);
        expected.extend([3u8; 32]);
        expected.extend([2, 0, 0, 0, 1, 0, 0, 0, 0xFE, 0xFF, 0xFF, 0xFF]);
        expected.extend([3, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend(b"xyz");
        expected.extend(xxhash_rust::xxh3::xxh3_128(&expected).to_le_bytes());
        assert_eq!(bytes, expected);
        let Record::State(record) = parse(&bytes).unwrap() else { panic!("a state record") };
        assert_eq!((record.fingerprint, record.n_tokens()), ([3u8; 32], 2));
        assert_eq!(&bytes[record.state.clone()], b"xyz");
        assert_eq!(record.common_prefix(&[1, -2, 5]), 2);
        assert_eq!(record.common_prefix(&[1, 2]), 1);
        assert_eq!(record.common_prefix(&[1]), 1);
    }

    #[test]
    fn an_alias_round_trips() {
        let bytes = alias(&[4u8; 32], &[9u8; 32]);
        assert_eq!(bytes.len(), 8 + 4 + 1 + 32 + 32 + 16);
        assert_eq!(parse(&bytes).unwrap(), Record::Alias { fingerprint: [4u8; 32], target: [9u8; 32] });
    }

    #[test]
    fn every_truncation_and_every_bit_flip_is_refused() {
        for bytes in [state_record(&[5, 6, 7], &[0xAB; 40]), alias(&[1u8; 32], &[2u8; 32])] {
            for len in 0..bytes.len() {
                assert!(parse(&bytes[..len]).is_err(), "truncated to {len}");
            }
            for bit in 0..bytes.len() * 8 {
                let mut flipped = bytes.clone();
                flipped[bit / 8] ^= 1 << (bit % 8);
                assert!(parse(&flipped).is_err(), "bit {bit} flipped");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(parse(&longer).is_err());
        }
    }

    #[test]
    fn other_versions_and_kinds_are_named() {
        let mut bytes = alias(&[1u8; 32], &[2u8; 32]);
        bytes[VERSION_AT] = 2;
        assert_eq!(parse(&bytes), Err(RecordError::Version(2)));
        let mut bytes = alias(&[1u8; 32], &[2u8; 32]);
        bytes[KIND_AT] = 9;
        assert_eq!(parse(&bytes), Err(RecordError::Kind(9)));
        assert_eq!(parse(&[0u8; 64]), Err(RecordError::Magic));
    }

    #[test]
    fn huge_declared_lengths_are_truncation_not_a_panic() {
        let mut bytes = state_record(&[1], b"s");
        bytes[BODY_AT..BODY_AT + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse(&bytes), Err(RecordError::Truncated));
        let mut bytes = state_record(&[1], b"s");
        let len_at = BODY_AT + 4 + 4;
        bytes[len_at..len_at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(parse(&bytes), Err(RecordError::Truncated));
    }
}
