//! What the cache reports about itself. Every figure here comes from counters the engine keeps; nothing is
//! computed for display only.
//!
//! - [`stats`]: the live counters per kind and tier, and their persisted totals.
//! - [`history`]: counter snapshots over time and the writer's live figures.
//! - [`jsonl`]: the capped, owner-only JSON-lines files the histories are kept in.
//! - [`report`]: the measured picture that `stats`, `metrics` and `export` print.
//! - [`prometheus`]: that picture in Prometheus text format.
//! - [`analysis`]: period summaries and advice from the history.
//! - [`trace`]: recording a running writer's operations for `cache trace`; [`follow`]: reading them.

pub mod analysis;
pub mod follow;
pub mod history;
pub mod jsonl;
pub mod prometheus;
pub mod report;
pub mod stats;
pub mod trace;
