//! The cache engine: tiers, codecs and the manager that composes them.
//!
//! Each tier is its own module and never names another tier, the CLI or the server; the manager (to come)
//! is the only place that wires them together.
//!
//! - [`codec`]: how a value's bytes are stored (raw, gzip or zstd), with the on-disk codec ids.
//! - [`memory`]: the in-RAM LRU tier, bounded by entry count and by bytes.

pub mod codec;
pub mod memory;
