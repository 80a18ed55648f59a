//! The cache engine: tiers, codecs and the manager that composes them.
//!
//! - [`hash`]: content hashes as `[cache.deduplication]` configures them.
//! - [`chunk`]: content-defined chunking of large values.
//! - [`response`]: the response cache key and the envelope/payload split of responses.

pub mod chunk;
pub mod hash;
pub mod response;
