//! The cache engine: tiers, codecs and the manager that composes them.
//!
//! - [`disk`]: the disk tier — framed, checksummed records in append-only segments.
//! - [`hash`]: content hashes as `[cache.deduplication]` configures them.
//! - [`chunk`]: content-defined chunking of large values.
//! - [`response`]: the response cache key and the envelope/payload split of responses.
//! - [`codec`]: how a value's bytes are stored (raw, gzip or zstd), with the on-disk codec ids.
//! - [`memory`]: the in-RAM LRU tier, bounded by entry count and by bytes.

pub mod chunk;
pub mod codec;
pub mod disk;
pub mod hash;
pub mod memory;
pub mod response;
