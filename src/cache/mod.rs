//! The cache engine: tiers, codecs and the manager that composes them.
//!
//! Each tier is its own module and never names another tier, the CLI or the server; the manager is the only
//! place that wires them together.
//!
//! - [`Manager`]: what the CLI and the server use; composes the tiers per `[cache]`.
//! - [`memory`]: the in-RAM LRU tier, bounded by entry count and by bytes.
//! - [`disk`]: the disk tier — framed, checksummed records in append-only segments.
//! - [`remote`]: the shared tier on Redis (standalone or cluster) behind both, for fleets of servers.
//! - [`codec`]: how a value's bytes are stored (raw, gzip or zstd), with the on-disk codec ids.
//! - [`hash`]: content hashes as `[cache.deduplication]` configures them.
//! - [`chunk`]: content-defined chunking of large values.
//! - [`response`]: the response cache key and the envelope/payload split of responses.
//! - [`transfer`]: JSONL import and export of response entries.
//! - [`report`]: the measured picture that `stats`, `metrics` and `export` print.
//! - [`prometheus`]: that picture in Prometheus text format.
//! - [`analysis`]: period summaries and advice from the history.
//! - [`history`]: counter snapshots over time and the writer's live figures.
//! - [`trace`]: streaming a running writer's operations to `cache trace`.
//! - [`backup`]: consistent backups with checksummed manifests, restore and rotation.

pub mod analysis;
pub mod backup;
pub mod chunk;
pub mod codec;
pub mod disk;
pub mod hash;
pub mod history;
mod kind;
mod manager;
pub mod memory;
pub mod private;
pub mod prometheus;
pub mod remote;
pub mod report;
pub mod response;
mod stats;
pub mod trace;
pub mod transfer;

pub use kind::Kind;
pub use manager::{Access, CacheError, EntryInfo, Filter, HousekeepingReport, Manager, Removal};
pub use report::CacheReport;
pub use stats::{CounterSnapshot, Counters, KindCounters, KindSnapshot};
