//! The cache engine: tiers, codecs and the manager that composes them.
//!
//! - [`disk`]: the disk tier — framed, checksummed records in append-only segments.
//! - [`hash`]: content hashes as `[cache.deduplication]` configures them.
//! - [`chunk`]: content-defined chunking of large values.
//! - [`response`]: the response cache key and the envelope/payload split of responses.

pub mod chunk;
pub mod disk;
pub mod hash;
pub mod response;
