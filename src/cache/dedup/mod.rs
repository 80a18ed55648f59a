//! Content dedup: how equal payloads come to share storage.
//!
//! - [`chunk`]: content-defined chunking (FastCDC) of large values.
//! - [`hash`]: content hashes as `[cache.deduplication]` configures them.
//! - [`splice`]: a value split at per-key byte ranges into a head and a shared payload, and joined back.
//!
//! A caller names the per-key byte ranges of a value (for responses, `response_store` does); the manager
//! (`manager/values.rs`) splits it with [`splice`], hashes the payload (and its chunks) here and stores each
//! distinct piece once as a blob record. How many entries share a blob — its refcount — is kept by the disk
//! tier's index (`disk/index.rs`), which drops a blob when the last entry using it goes. With a weak hash (xxh32, xxh64) a chunk is shared only after its bytes are
//! compared ([`same_bytes`]); docs/format.md, "Dedup", says why.

pub mod chunk;
pub mod hash;
pub mod splice;

use crate::cache::codec::{Codec, CodecId, Dictionaries};
use crate::cache::disk::DiskStore;
use crate::cache::record::BlobRef;

/// Whether the chunk stored under `blob` holds exactly `raw`: the check a weak hash needs before a new value
/// shares a stored chunk. A chunk that cannot be read or decoded (with `dictionaries`) is not the same.
pub fn same_bytes(disk: &DiskStore, blob: &BlobRef, raw: &[u8], dictionaries: &Dictionaries) -> bool {
    let Ok(Some(chunk)) = disk.get_blob(blob) else { return false };
    if chunk.raw_len as usize != raw.len() {
        return false;
    }
    let Ok(codec) = CodecId::try_from(chunk.codec) else { return false };
    let mut out = Vec::new();
    Codec::decode_with(codec, &chunk.bytes, chunk.raw_len as usize, &mut out, dictionaries)
        .is_ok_and(|decoded| decoded == raw)
}
