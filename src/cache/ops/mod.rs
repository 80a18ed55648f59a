//! Operations on a whole cache directory, beside the per-entry API of the manager.
//!
//! - [`backup`]: consistent backups with checksummed manifests, restore and rotation.
//! - [`rebuild`]: checking a restored cache, and putting damaged entries back from backups.
//! - [`transfer`]: JSONL import and export of response entries.

pub mod backup;
pub mod rebuild;
pub mod transfer;
