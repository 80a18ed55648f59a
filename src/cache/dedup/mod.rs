//! Content dedup: how equal payloads come to share storage.
//!
//! - [`chunk`]: content-defined chunking (FastCDC) of large values.
//! - [`hash`]: content hashes as `[cache.deduplication]` configures them.
//! - [`splice`]: a value split at per-key byte ranges into a head and a shared payload, and joined back.
//!
//! A caller names the per-key byte ranges of a value (for responses, `response_store` does); the manager
//! splits it with [`splice`], hashes the payload (and its chunks) here and stores each distinct piece once as
//! a blob record. How many entries
//! share a blob — its refcount — is kept by the disk tier's index (`disk/index.rs`), which drops a blob when
//! the last entry using it goes.

pub mod chunk;
pub mod hash;
pub mod splice;
