//! Compaction's re-encoding: the [`Reencode`] hook that makes compaction (background and `cache compact`)
//! copy response values under the current zstd dictionary, and notes which dictionary every copied record
//! uses, so a full pass can tell which dictionaries nothing uses any more (`dictionary.rs`).
//!
//! Re-encoded: response entries and the chunks a response entry uses, when they are not under the current
//! dictionary yet (raw, plain zstd, or an older dictionary), and any record under an older dictionary. A
//! record that cannot be read (a missing dictionary, a key the cache does not hold) is copied as it is.

use std::collections::HashSet;

use parking_lot::Mutex;

use super::values::{read_part, write_part};
use crate::cache::codec::{Codec, CodecId, Dictionaries, dictionary};
use crate::cache::disk::Reencode;
use crate::cache::kind::Kind;
use crate::cache::record::{BlobRef, Record, RecordType};
use crate::cache::seal::{self, Binding, Sealer};
use crate::config::CacheConfig;

/// The hook, for one pass.
pub(super) struct Reencoder<'a> {
    pub(super) codec: Codec,
    pub(super) dictionaries: &'a Dictionaries,
    /// Opens sealed values.
    pub(super) reading: Option<&'a Sealer>,
    /// Seals rewritten values (`None` with encryption off).
    pub(super) writing: Option<&'a Sealer>,
    /// Whether values move to the current dictionary (`cache.compression.dictionary` with zstd).
    use_current: bool,
    /// What the pass saw.
    pub(super) seen: Mutex<Seen>,
}

/// The dictionaries the records a pass copied use.
#[derive(Default)]
pub(super) struct Seen {
    /// Ids of the dictionaries records use after the pass.
    pub(super) used: HashSet<u32>,
    /// True when some record's dictionary could not be told (it could not be opened): nothing may be deleted.
    pub(super) unknown: bool,
}

impl<'a> Reencoder<'a> {
    pub(super) fn new(
        config: &CacheConfig,
        dictionaries: &'a Dictionaries,
        reading: Option<&'a Sealer>,
        writing: Option<&'a Sealer>,
    ) -> Self {
        let codec = Codec::from_cache_config(config);
        let use_current = config.compression.uses_dictionary() && codec.takes_dictionary();
        Reencoder { codec, dictionaries, reading, writing, use_current, seen: Mutex::default() }
    }

    fn note(&self, dictionary: Option<u32>) {
        if let Some(id) = dictionary {
            self.seen.lock().used.insert(id);
        }
    }

    fn note_unknown(&self) {
        self.seen.lock().unknown = true;
    }
}

impl Reencode for Reencoder<'_> {
    fn reencode(&self, record: &Record<'_>, used_by: u8) -> Option<(u8, Vec<u8>)> {
        let header = &record.header;
        let refs: Vec<BlobRef> = record.refs().collect();
        let binding = match header.record_type {
            RecordType::Tombstone => return None,
            record_type => Binding {
                record_type,
                kind: header.kind,
                codec: header.codec,
                key: record.key,
                name: record.name,
                refs: &refs,
                raw_len: header.raw_len,
            },
        };
        let under_dictionary = seal::inner_codec(header.codec) == CodecId::ZstdDict as u8;
        let current = self.dictionaries.current().filter(|_| self.use_current);
        let wanted = current.is_some() && used_by == Kind::Response.code();
        if !under_dictionary && !wanted {
            return None;
        }
        let has = match under_dictionary {
            true => match self.frame_id(header.codec, record.value, binding) {
                Some(id) => Some(id),
                None => {
                    // Sealed under a key this cache does not hold: its dictionary cannot be told.
                    self.note_unknown();
                    return None;
                }
            },
            false => None,
        };
        let Some(current) = current.filter(|c| has != Some(c.id())) else {
            // Already under the current dictionary, or no dictionary to move to.
            self.note(has);
            return None;
        };
        let Ok(raw) = read_part(self.reading, self.dictionaries, binding, record.value) else {
            // A missing dictionary, or a part that does not decode: copied as it is.
            self.note(has);
            return None;
        };
        let (codec, value) = write_part(&self.codec, Some(current), self.writing, binding, &raw);
        if seal::inner_codec(codec) == CodecId::ZstdDict as u8 {
            self.note(Some(current.id()));
        }
        Some((codec, value))
    }
}

impl Reencoder<'_> {
    /// The dictionary id in a part's zstd frame (opened first when sealed).
    fn frame_id(&self, codec: u8, stored: &[u8], binding: Binding<'_>) -> Option<u32> {
        if !seal::is_sealed(codec) {
            return dictionary::frame_dictionary_id(stored);
        }
        let opened = seal::open(self.reading, &binding, stored).ok()?;
        dictionary::frame_dictionary_id(&opened)
    }
}
