//! The blob side of put and get: how the manager writes a value to the disk tier — whole, or (with dedup)
//! as a small per-key head plus the payload cut into content-addressed chunks shared between entries — and
//! how it reads one back. Chunking and hashes are `cache/dedup`'s; how many entries use a chunk (its
//! refcount) is kept by the disk tier's index (`disk/index.rs`).

use std::sync::atomic::Ordering;

use super::{CacheError, Manager, SplitValue};
use crate::cache::clock::{Expiry, now_ms};
use crate::cache::codec::{Codec, CodecId};
use crate::cache::dedup::{self, splice};
use crate::cache::disk::{DiskError, DiskStore, EntryWrite, StoredEntry};
use crate::cache::kind::Kind;
use crate::cache::response_store::legacy;

impl Manager {
    /// Writes the value to the disk tier; written again once when a chunk it shares vanished between the
    /// check and the write (a compaction or quarantine in between).
    pub(super) fn write_disk(
        &self,
        disk: &DiskStore,
        kind: Kind,
        key: &str,
        name: &str,
        value: SplitValue<'_>,
        expires: Expiry,
    ) -> Result<(), CacheError> {
        match self.write_disk_once(disk, kind, key, name, value, expires) {
            Err(CacheError::Disk(DiskError::MissingChunk)) => {
                self.write_disk_once(disk, kind, key, name, value, expires)
            }
            other => other,
        }
    }

    fn write_disk_once(
        &self,
        disk: &DiskStore,
        kind: Kind,
        key: &str,
        name: &str,
        value: SplitValue<'_>,
        expires: Expiry,
    ) -> Result<(), CacheError> {
        let SplitValue { bytes: value, per_key } = value;
        let mut refs = Vec::new();
        let mut scratch = Vec::new();
        let (head, payload_len) = match &self.hasher {
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
                        let (codec, stored) = self.codec.encode(raw, &mut scratch);
                        disk.put_blob(&blob, codec as u8, stored, raw.len() as u32)?;
                    } else if !hasher.collision_resistant() && !dedup::same_bytes(disk, &blob, raw) {
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
        let (codec, stored) = self.codec.encode(&head, &mut scratch);
        disk.put_entry(&EntryWrite {
            kind: kind.code(),
            key: key.as_bytes(),
            name,
            codec: codec as u8,
            value: stored,
            raw_len: head.len() as u32,
            refs: &refs,
            payload_len,
            created_ms: now_ms(),
            expires,
        })?;
        Ok(())
    }

    /// The value of a stored entry: its head decoded, joined with its chunks.
    pub(super) fn decode(&self, kind: Kind, key: &str, stored: &StoredEntry) -> Result<Vec<u8>, CacheError> {
        let fail = |reason: String| CacheError::Decode { kind, key: key.to_string(), reason };
        let codec = CodecId::try_from(stored.codec).map_err(|e| fail(e.to_string()))?;
        let mut out = Vec::new();
        let head = Codec::decode(codec, &stored.value, stored.raw_len as usize, &mut out)
            .map_err(|e| fail(e.to_string()))?
            .to_vec();
        // No chunks: the head is the whole value (dedup off, or nothing to share).
        if stored.chunks.is_empty() {
            return Ok(head);
        }
        let mut payload = Vec::new();
        for chunk in &stored.chunks {
            let codec = CodecId::try_from(chunk.codec).map_err(|e| fail(e.to_string()))?;
            let mut buf = Vec::new();
            let raw = Codec::decode(codec, &chunk.bytes, chunk.raw_len as usize, &mut buf)
                .map_err(|e| fail(e.to_string()))?;
            payload.extend_from_slice(raw);
        }
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
}
