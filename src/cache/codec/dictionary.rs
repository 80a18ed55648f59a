//! Zstandard dictionaries trained on the cache's own values: training one from samples, giving it its id,
//! preparing it for compression and decompression, and the set of dictionaries a cache holds.
//!
//! A dictionary's id is written in its header (bytes 4..8 after the magic) and zstd copies it into every
//! frame compressed with it, so a stored value names the dictionary it needs (codec 4, `zstd-dict`,
//! docs/format.md). The id is derived from the dictionary's content (BLAKE3 of everything after the id
//! field), so two different dictionaries get the same id only by a 2^-31 chance, and a dictionary whose
//! bytes do not match its id is refused when it is loaded. Where dictionaries are stored and when they are
//! trained is the manager's business (`manager/dictionary.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use thiserror::Error;

/// The magic number that starts a zstd dictionary (little-endian `0xEC30A437`).
const DICTIONARY_MAGIC: [u8; 4] = 0xEC30_A437u32.to_le_bytes();
/// Ids below this are reserved by zstd for registered dictionaries; content ids are mapped above it.
const FIRST_FREE_ID: u32 = 32_768;
/// The smallest dictionary zstd's trainer accepts to produce.
pub const MIN_DICTIONARY_BYTES: usize = 1024;

/// Why a dictionary could not be trained or loaded.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DictionaryError {
    /// Training found too little to learn from.
    #[error("not enough samples to train a dictionary: {0}")]
    Training(String),
    /// The bytes are not a zstd dictionary, or its id does not match its content.
    #[error("not a valid zstd dictionary: {0}")]
    Invalid(String),
}

/// A trained dictionary, prepared for compression (at one level) and decompression.
pub struct Dictionary {
    id: u32,
    bytes: Arc<[u8]>,
    level: i32,
    compress: zstd::zstd_safe::CDict<'static>,
    decompress: zstd::zstd_safe::DDict<'static>,
}

impl std::fmt::Debug for Dictionary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dictionary").field("id", &self.id).field("len", &self.bytes.len()).finish()
    }
}

impl Dictionary {
    /// Prepares `bytes` (a dictionary made by [`train`]) for compression at `level`.
    ///
    /// Refuses bytes that are not a zstd dictionary, or whose id is not the one their content gives.
    pub fn load(bytes: &[u8], level: u32) -> Result<Dictionary, DictionaryError> {
        let id = header_id(bytes)?;
        let expected = content_id(bytes);
        if id != expected {
            return Err(DictionaryError::Invalid(format!(
                "its header says id {id} but its content gives {expected}: the bytes were changed"
            )));
        }
        let level = level as i32;
        let compress = zstd::zstd_safe::CDict::try_create(bytes, level)
            .ok_or_else(|| DictionaryError::Invalid("zstd cannot prepare it for compression".into()))?;
        let decompress = zstd::zstd_safe::DDict::try_create(bytes)
            .ok_or_else(|| DictionaryError::Invalid("zstd cannot prepare it for decompression".into()))?;
        Ok(Dictionary { id, bytes: bytes.into(), level, compress, decompress })
    }

    /// The id stored in the dictionary and in every frame compressed with it.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The dictionary's bytes, as stored.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The compression level it was prepared for.
    pub fn level(&self) -> u32 {
        self.level as u32
    }

    pub(super) fn for_compression(&self) -> &zstd::zstd_safe::CDict<'static> {
        &self.compress
    }

    pub(super) fn for_decompression(&self) -> &zstd::zstd_safe::DDict<'static> {
        &self.decompress
    }
}

/// The dictionaries a cache holds: every one by id (to read values written under any of them), and the
/// current one (new values are written under it). Immutable: a change makes a new set.
#[derive(Clone, Debug, Default)]
pub struct Dictionaries {
    by_id: HashMap<u32, Arc<Dictionary>>,
    current: Option<Arc<Dictionary>>,
}

impl Dictionaries {
    /// A set of `all`, with `current` (which must be among them) for new values.
    pub fn new(all: impl IntoIterator<Item = Arc<Dictionary>>, current: Option<u32>) -> Dictionaries {
        let by_id: HashMap<u32, Arc<Dictionary>> = all.into_iter().map(|d| (d.id(), d)).collect();
        let current = current.and_then(|id| by_id.get(&id).cloned());
        Dictionaries { by_id, current }
    }

    /// The dictionary new values are compressed with.
    pub fn current(&self) -> Option<&Arc<Dictionary>> {
        self.current.as_ref()
    }

    /// The dictionary with this id.
    pub fn get(&self, id: u32) -> Option<&Arc<Dictionary>> {
        self.by_id.get(&id)
    }

    /// Every dictionary, in no particular order.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Dictionary>> {
        self.by_id.values()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// This set with `dictionary` added (or kept) and made current.
    pub fn with_current(&self, dictionary: Arc<Dictionary>) -> Dictionaries {
        let mut by_id = self.by_id.clone();
        by_id.insert(dictionary.id(), dictionary.clone());
        Dictionaries { by_id, current: Some(dictionary) }
    }

    /// This set without the dictionaries `drop` names (the current one is always kept).
    pub fn without(&self, drop: &[u32]) -> Dictionaries {
        let keep = |id: &u32| !drop.contains(id) || self.current.as_ref().is_some_and(|c| c.id() == *id);
        let by_id = self.by_id.iter().filter(|(id, _)| keep(id)).map(|(id, d)| (*id, d.clone())).collect();
        Dictionaries { by_id, current: self.current.clone() }
    }
}

/// Trains a dictionary of at most `max_bytes` on `samples` and gives it its content id.
pub fn train<S: AsRef<[u8]>>(samples: &[S], max_bytes: usize) -> Result<Vec<u8>, DictionaryError> {
    if samples.len() < 8 {
        return Err(DictionaryError::Training(format!("{} samples (at least 8 are needed)", samples.len())));
    }
    let mut bytes = zstd::dict::from_samples(samples, max_bytes.max(MIN_DICTIONARY_BYTES))
        .map_err(|e| DictionaryError::Training(e.to_string()))?;
    header_id(&bytes).map_err(|e| DictionaryError::Training(e.to_string()))?;
    let id = content_id(&bytes);
    bytes[4..8].copy_from_slice(&id.to_le_bytes());
    Ok(bytes)
}

/// The id a dictionary's content gives: BLAKE3 of every byte after the id field, mapped to
/// `32768..=u32::MAX` (zstd reserves the ids below for registered dictionaries).
pub fn content_id(bytes: &[u8]) -> u32 {
    let hash = blake3::hash(bytes.get(8..).unwrap_or_default());
    let word = u32::from_le_bytes(hash.as_bytes()[..4].try_into().expect("4 bytes"));
    FIRST_FREE_ID + word % (u32::MAX - FIRST_FREE_ID + 1)
}

/// The id in a dictionary's header.
fn header_id(bytes: &[u8]) -> Result<u32, DictionaryError> {
    if bytes.len() < 8 || bytes[..4] != DICTIONARY_MAGIC {
        return Err(DictionaryError::Invalid("it does not start with the zstd dictionary magic".into()));
    }
    Ok(u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")))
}

/// The id of the dictionary a zstd frame was compressed with; `None` when it names none (or is no frame).
pub fn frame_dictionary_id(stored: &[u8]) -> Option<u32> {
    zstd::zstd_safe::get_dict_id_from_frame(stored).map(|id| id.get())
}
