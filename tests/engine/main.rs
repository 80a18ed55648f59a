//! Engine tests of the cache through its library API (`inferno::cache`): a model-based property test of the
//! manager against a `HashMap` oracle, crash safety under real `SIGKILL`, recovery from flipped bytes and
//! truncated files, and the dedup and compression figures checked against numbers computed independently.

/// Configurations, a seeded RNG, value generators and a reader of the documented record framing.
mod util;

/// Random operation sequences against a `HashMap` oracle, for every type, codec and dedup setting.
mod model;

/// `kill -9` of a writing child process at random moments; what was flushed survives, nothing else is wrong.
mod crash;

/// Flipped bytes and truncated files: never wrong data, and `verify` accounts for every loss.
mod corruption;

/// Dedup and compression figures against numbers computed in the test.
mod figures;

/// A small tmpfs mounted by the test.
#[path = "../common/tmpfs.rs"]
mod tmpfs;

/// A tmpfs that fills up under the disk tier: dropped writes are counted and never served; writes resume.
mod full_disk;

/// Peak RSS of backup and restore on a large cache (ignored; the figures in docs/performance.md).
mod restore_rss;
