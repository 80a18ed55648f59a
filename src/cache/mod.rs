//! The cache engine: tiers, codecs and the manager that composes them.
//!
//! Each tier is its own module and never names another tier, the CLI or the server; the manager is the only
//! place that wires them together. Where to look:
//!
//! - [`Manager`]: what the CLI and the server use; composes the tiers per `[cache]`.
//! - [`clock`]: the cache's clock and [`clock::Expiry`], the one "is this entry still live" rule (TTL expiry).
//! - [`memory`]: the in-RAM tier, bounded by entry count and by bytes.
//! - [`disk`]: the disk tier — append-only segments, the index (with dedup refcounts), compaction.
//! - [`remote`]: the shared tier on Redis (standalone or cluster) behind both, for fleets of servers.
//! - [`record`]: the framing of one stored record (header, body, checksum), shared by the disk and remote tiers.
//! - [`codec`]: how a value's bytes are stored (raw, gzip, zstd, or zstd with a dictionary trained on the
//!   cache's own responses), with the on-disk codec ids.
//! - [`dedup`]: content-defined chunking and content hashes: how equal payloads come to share storage.
//! - [`response_store`]: the cache key of a request (canonical form) and the envelope/payload split of
//!   responses.
//! - [`observe`]: what the cache reports: counters, history, reports, Prometheus text, analysis, trace.
//! - [`ops`]: operations on a whole cache: backups and restore, JSONL import and export.
//! - [`private`]: files and folders created owner-only (0600/0700) whatever the umask, and the check of them.
//! - [`seal`]: encryption at rest: values sealed with an AEAD under the cache key (`[cache.security]`).
//! - [`kv`]: saved prompt-prefix KV states (kind `kv`): their budget, background writer and counters.

pub mod clock;
pub mod codec;
pub mod dedup;
pub mod disk;
mod kind;
pub mod kv;
mod manager;
pub mod memory;
pub mod observe;
pub mod ops;
pub mod private;
pub mod record;
pub mod remote;
pub mod response_store;
pub mod seal;
pub mod semantic;

pub use kind::Kind;
pub use manager::{
    Access, CacheError, DICTIONARY_KIND, DictionaryReport, EntryInfo, Filter, HousekeepingReport, Manager,
    Removal, ResealReport, TrainReport,
};
pub use observe::report::CacheReport;
pub use observe::stats::{CounterSnapshot, Counters, KindCounters, KindSnapshot, KvSnapshot};
