//! The blob side of put and get: how the manager writes a value to the disk tier — whole, or (with dedup)
//! as a small per-key head plus the payload cut into content-addressed chunks shared between entries — and
//! how it reads one back. Chunking and hashes are `cache/dedup`'s; how many entries use a chunk (its
//! refcount) is kept by the disk tier's index (`disk/index.rs`).
//!
//! With a cache key (`[cache.security]`), every head and chunk is compressed, then sealed (`cache/seal`)
//! bound to its record, and chunks are addressed by a keyed hash; reading opens what was sealed and still
//! reads plain records written before encryption was turned on.
//!
//! Response heads and chunks are compressed with the current trained dictionary when there is one
//! (`dictionary.rs`); reading takes the dictionary each part's zstd frame names, whichever is current.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{CacheError, Manager, SplitValue};
use crate::cache::clock::Expiry;
use crate::cache::codec::{Codec, CodecError, CodecId, Dictionaries, Dictionary};
use crate::cache::dedup::hash::ContentHasher;
use crate::cache::dedup::{self, splice};
use crate::cache::disk::{DiskError, DiskStore, EntryWrite, StoredEntry};
use crate::cache::kind::Kind;
use crate::cache::record::{BlobRef, RecordType};
use crate::cache::response_store::legacy;
use crate::cache::seal::{self, Binding, SEALED_CODEC_BIT, Sealer};

/// How values are written: sealed with this sealer (or plain), chunked with this hasher (or whole).
#[derive(Clone, Copy)]
pub(super) struct Writing<'a> {
    pub sealer: Option<&'a Sealer>,
    pub hasher: Option<&'a ContentHasher>,
}

/// An entry to write to the disk tier.
pub(super) struct NewEntry<'a> {
    pub kind: Kind,
    pub key: &'a str,
    pub name: &'a str,
    pub value: SplitValue<'a>,
    pub created_ms: u64,
    pub expires: Expiry,
}

/// A value's stored form: its codec byte (sealed bit included) and bytes (`stored` itself when not sealed,
/// else the sealed bytes written to `out`).
fn seal_value<'a>(
    sealer: Option<&Sealer>,
    binding: Binding<'_>,
    codec: u8,
    stored: &'a [u8],
    out: &'a mut Vec<u8>,
) -> (u8, &'a [u8]) {
    let Some(sealer) = sealer else { return (codec, stored) };
    let codec = codec | SEALED_CODEC_BIT;
    out.clear();
    sealer.seal(&Binding { codec, ..binding }, stored, out);
    (codec, out)
}

/// The plain, still-compressed bytes of a stored value; `Ok(None)` when it was not sealed.
fn open_value(
    sealer: Option<&Sealer>,
    binding: Binding<'_>,
    stored: &[u8],
) -> Result<Option<Vec<u8>>, seal::OpenError> {
    if !seal::is_sealed(binding.codec) {
        return Ok(None);
    }
    seal::open(sealer, &binding, stored).map(Some)
}

impl Manager {
    /// Writes the value to the disk tier; written again once when a chunk it shares vanished between the
    /// check and the write (a compaction or quarantine in between).
    pub(super) fn write_disk(
        &self,
        disk: &DiskStore,
        with: Writing<'_>,
        entry: &NewEntry<'_>,
    ) -> Result<(), CacheError> {
        match self.write_disk_once(disk, with, entry) {
            Err(CacheError::Disk(DiskError::MissingChunk)) => self.write_disk_once(disk, with, entry),
            other => other,
        }
    }

    /// How ordinary puts write: sealed when `[cache.security]` says so, chunked when dedup is on.
    pub(super) fn writing(&self) -> Writing<'_> {
        Writing { sealer: self.sealer.as_deref().filter(|s| s.seals()), hasher: self.hasher.as_ref() }
    }

    fn write_disk_once(
        &self,
        disk: &DiskStore,
        with: Writing<'_>,
        entry: &NewEntry<'_>,
    ) -> Result<(), CacheError> {
        let &NewEntry { kind, key, name, value: SplitValue { bytes: value, per_key }, created_ms, expires } =
            entry;
        // KV states are stored whole with their own codec: a state of hundreds of MB in 4 KiB chunks would
        // pass the record's limit of 65,535 chunk references and cost an index entry per chunk.
        let (hasher, codec) = match kind {
            Kind::Kv => (None, &self.kv_codec),
            _ => (with.hasher, &self.codec),
        };
        let mut refs = Vec::new();
        let mut scratch = Vec::new();
        let mut sealed = Vec::new();
        // Taken here, under the caller's rewrite gate: a new dictionary becomes current only while no write
        // holds an older one (`dictionary.rs`).
        let dictionaries = self.dictionaries.snapshot();
        let dictionary = dictionaries
            .current()
            .filter(|_| kind == Kind::Response && self.config.compression.uses_dictionary())
            .map(|d| &**d);
        let (head, payload_len) = match hasher {
            None => (value.to_vec(), 0),
            Some(hasher) => {
                let (head, payload) = match per_key {
                    [] => (Vec::new(), value.to_vec()),
                    ranges => splice::split(value, ranges),
                };
                // Nothing to share: the value is stored whole, without chunks (an entry without chunks is read as
                // its value alone).
                let (head, payload) =
                    if payload.is_empty() { (value.to_vec(), payload) } else { (head, payload) };
                let chunks = if payload.is_empty() { Vec::new() } else { hasher.chunk_and_hash(&payload) };
                let mut shared = true;
                for chunk in chunks {
                    let blob = chunk.hash.to_bytes();
                    let raw = &payload[chunk.range.clone()];
                    if !disk.has_blob(&blob) {
                        let (codec, stored) = codec.encode_with(raw, &mut scratch, dictionary);
                        let binding = blob_binding(&blob, codec as u8, raw.len() as u32);
                        let (codec, stored) =
                            seal_value(with.sealer, binding, codec as u8, stored, &mut sealed);
                        disk.put_blob(&blob, codec, stored, raw.len() as u32)?;
                    } else if !hasher.collision_resistant()
                        && !dedup::same_bytes(disk, &blob, raw, &dictionaries)
                    {
                        shared = false;
                        break;
                    }
                    refs.push(blob);
                }
                if shared {
                    (head, payload.len() as u64)
                } else {
                    // A weak hash matched other bytes: this value is stored whole, sharing nothing.
                    self.counters.dedup_collisions.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(key, "content hash collision: the value is stored without dedup");
                    refs.clear();
                    (value.to_vec(), 0)
                }
            }
        };
        let (codec, stored) = codec.encode_with(&head, &mut scratch, dictionary);
        let binding = entry_binding(kind.code(), key, name, &refs, codec as u8, head.len() as u32);
        let (codec, stored) = seal_value(with.sealer, binding, codec as u8, stored, &mut sealed);
        disk.put_entry(&EntryWrite {
            kind: kind.code(),
            key: key.as_bytes(),
            name,
            codec,
            value: stored,
            raw_len: head.len() as u32,
            refs: &refs,
            payload_len,
            created_ms,
            expires,
        })?;
        Ok(())
    }

    /// The value of a stored entry: its head opened and decoded, joined with its chunks.
    pub(super) fn decode(
        &self,
        sealer: Option<&Sealer>,
        kind: Kind,
        key: &str,
        stored: &StoredEntry,
    ) -> Result<Vec<u8>, CacheError> {
        decode_value(sealer, &self.dictionaries.snapshot(), kind, key, stored)
    }
}

/// The value of `stored` moved out of it when it is stored as it is (not sealed, not compressed, no chunks):
/// no copy, which matters for KV states of tens of megabytes. `None` (and `stored` untouched) otherwise.
pub(super) fn take_plain(stored: &mut StoredEntry) -> Option<Arc<[u8]>> {
    let plain = stored.chunks.is_empty()
        && stored.codec == CodecId::None as u8
        && stored.value.len() == stored.raw_len as usize;
    plain.then(|| std::mem::take(&mut stored.value))
}

/// Why one stored part (a head or a chunk) could not be read.
pub(super) enum PartError {
    /// It is sealed and could not be opened.
    Sealed(seal::OpenError),
    /// It could not be decoded (a missing dictionary among others).
    Codec(CodecError),
}

/// The raw bytes of one stored part: opened when sealed, then decoded.
pub(super) fn read_part(
    sealer: Option<&Sealer>,
    dictionaries: &Dictionaries,
    binding: Binding<'_>,
    stored: &[u8],
) -> Result<Vec<u8>, PartError> {
    let opened = open_value(sealer, binding, stored).map_err(PartError::Sealed)?;
    let codec = CodecId::try_from(seal::inner_codec(binding.codec)).map_err(PartError::Codec)?;
    let mut out = Vec::new();
    let raw = Codec::decode_with(
        codec,
        opened.as_deref().unwrap_or(stored),
        binding.raw_len as usize,
        &mut out,
        dictionaries,
    )
    .map_err(PartError::Codec)?;
    Ok(raw.to_vec())
}

/// A part's stored form after compressing `raw` with `codec` (and `dictionary`) and sealing it when
/// `sealer` seals: the codec byte and the bytes. `binding.codec` is replaced.
pub(super) fn write_part(
    codec: &Codec,
    dictionary: Option<&Dictionary>,
    sealer: Option<&Sealer>,
    binding: Binding<'_>,
    raw: &[u8],
) -> (u8, Vec<u8>) {
    let mut scratch = Vec::new();
    let mut sealed = Vec::new();
    let (id, stored) = codec.encode_with(raw, &mut scratch, dictionary);
    let (codec, stored) =
        seal_value(sealer, Binding { codec: id as u8, ..binding }, id as u8, stored, &mut sealed);
    (codec, stored.to_vec())
}

/// The decoded parts of a stored entry: its head and its chunks, in order.
pub(super) fn decode_parts(
    sealer: Option<&Sealer>,
    dictionaries: &Dictionaries,
    kind: u8,
    key: &str,
    stored: &StoredEntry,
) -> Result<(Vec<u8>, Vec<Vec<u8>>), PartError> {
    let binding = entry_binding(kind, key, &stored.name, &stored.refs, stored.codec, stored.raw_len);
    let head = read_part(sealer, dictionaries, binding, &stored.value)?;
    let mut chunks = Vec::with_capacity(stored.chunks.len());
    for (chunk, blob) in stored.chunks.iter().zip(&stored.refs) {
        let binding = blob_binding(blob, chunk.codec, chunk.raw_len);
        chunks.push(read_part(sealer, dictionaries, binding, &chunk.bytes)?);
    }
    Ok((head, chunks))
}

/// The value of a stored entry: its head opened and decoded, joined with its chunks.
pub(super) fn decode_value(
    sealer: Option<&Sealer>,
    dictionaries: &Dictionaries,
    kind: Kind,
    key: &str,
    stored: &StoredEntry,
) -> Result<Vec<u8>, CacheError> {
    let fail = |reason: String| CacheError::Decode { kind, key: key.to_string(), reason };
    let (head, mut chunks) =
        decode_parts(sealer, dictionaries, kind.code(), key, stored).map_err(|error| match error {
            PartError::Sealed(why) => CacheError::Sealed { kind, key: key.to_string(), why },
            PartError::Codec(e) => fail(e.to_string()),
        })?;
    // No chunks: the head is the whole value (dedup off, or nothing to share).
    if stored.chunks.is_empty() {
        return Ok(head);
    }
    // One chunk (a small payload) is the payload as it is; more are joined.
    let payload = if chunks.len() == 1 { chunks.pop().unwrap_or_default() } else { chunks.concat() };
    if head.is_empty() {
        return Ok(payload);
    }
    if splice::is_spliced(&head) {
        return splice::join(&head, &payload).map_err(|e| fail(e.to_string()));
    }
    if kind != Kind::Response {
        return Err(fail("an entry with both a head and chunks that is not a response".into()));
    }
    // A response entry written before the byte splitter (format-1 JSON head).
    legacy::join_record(&head, &payload).map_err(|e| fail(e.to_string()))
}

/// What an entry's sealed head is bound to.
pub(super) fn entry_binding<'a>(
    kind: u8,
    key: &'a str,
    name: &'a str,
    refs: &'a [BlobRef],
    codec: u8,
    raw_len: u32,
) -> Binding<'a> {
    Binding {
        record_type: RecordType::Entry,
        kind,
        codec,
        key: key.as_bytes(),
        name: name.as_bytes(),
        refs,
        raw_len,
    }
}

/// What a sealed chunk is bound to: its own reference.
pub(super) fn blob_binding(blob: &BlobRef, codec: u8, raw_len: u32) -> Binding<'_> {
    Binding { record_type: RecordType::Blob, kind: 0, codec, key: blob, name: b"", refs: &[], raw_len }
}
