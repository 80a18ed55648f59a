//! Content dedup: how equal payloads come to share storage.
//!
//! - [`chunk`]: content-defined chunking (FastCDC) of large values.
//! - [`hash`]: content hashes as `[cache.deduplication]` configures them.
//!
//! A stored response is split (by `response_store`) into a per-key head and a payload; the manager hashes
//! the payload (and its chunks) here and stores each distinct piece once as a blob record. How many entries
//! share a blob — its refcount — is kept by the disk tier's index (`disk/index.rs`), which drops a blob when
//! the last entry using it goes.

pub mod chunk;
pub mod hash;
