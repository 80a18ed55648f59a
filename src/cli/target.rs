//! Where a maintenance command runs: through the running `inferno serve` that holds the cache directory
//! (its admin socket), or on the cache opened here. Each command has one code path: it asks its [`Target`],
//! and either way the work is the library's `admin::ops` — the server calls it on its own cache.

use crate::admin::ops::{self, OpError};
use crate::admin::{
    BackupRequest, BackupView, ClearRequest, CompactView, RemovalView, VerifyRequest, VerifyView,
};
use crate::cache::{Access, TrainReport};
use crate::config::{self, LoadOptions};

use super::UsageError;
use super::live::LiveServer;
use super::transfer::open_cache;

/// The cache a command works on.
pub(super) enum Target<'a> {
    /// A running server holds the directory: requests go to its admin socket.
    Live(LiveServer),
    /// No server: the command opens the cache itself.
    Local(&'a LoadOptions),
}

impl<'a> Target<'a> {
    /// The running server for the configuration in effect, else the cache itself.
    pub(super) fn for_options(options: &'a LoadOptions) -> anyhow::Result<Self> {
        Ok(match LiveServer::for_options(options)? {
            Some(server) => Self::Live(server),
            None => Self::Local(options),
        })
    }

    /// Removes what `request` selects ([`ops::clear`]).
    pub(super) fn clear(&self, request: &ClearRequest) -> anyhow::Result<RemovalView> {
        match self {
            Self::Live(server) => server.delete(&format!("/v1/cache?{}", request.query_string())),
            Self::Local(options) => {
                let cache = open_cache(options, Access::ReadWrite)?;
                ops::clear(&cache, request).map_err(usage)
            }
        }
    }

    /// Rewrites the disk tier without dead records ([`ops::compact`]).
    pub(super) fn compact(&self) -> anyhow::Result<CompactView> {
        match self {
            Self::Live(server) => server.post("/v1/cache/compact", &serde_json::json!({})),
            Self::Local(options) => ops::compact(&open_cache(options, Access::ReadWrite)?).map_err(usage),
        }
    }

    /// Trains a zstd dictionary on the cached responses ([`ops::train_dictionary`]).
    pub(super) fn train_dictionary(&self) -> anyhow::Result<TrainReport> {
        match self {
            Self::Live(server) => server.post("/v1/cache/train-dictionary", &serde_json::json!({})),
            Self::Local(options) => {
                ops::train_dictionary(&open_cache(options, Access::ReadWrite)?).map_err(usage)
            }
        }
    }

    /// Checks every record, quarantining what is damaged with `fix` ([`ops::verify`]).
    pub(super) fn verify(&self, request: &VerifyRequest) -> anyhow::Result<VerifyView> {
        match self {
            Self::Live(server) => server.post("/v1/cache/verify", request),
            Self::Local(options) => {
                let access = if request.fix { Access::ReadWrite } else { Access::ReadOnly };
                ops::verify(&open_cache(options, access)?, request).map_err(usage)
            }
        }
    }

    /// Backs the cache up ([`ops::backup`]); the server flushes first.
    pub(super) fn backup(&self, request: &BackupRequest) -> anyhow::Result<BackupView> {
        match self {
            Self::Live(server) => server.post("/v1/cache/backup", request),
            Self::Local(options) => {
                let config = config::load(options)?.config;
                ops::backup(&config.cache, None, request).map_err(usage)
            }
        }
    }
}

/// An operation's error for `main`: a request that is not valid is a usage error (exit 2).
fn usage(error: OpError) -> anyhow::Error {
    match error {
        OpError::Invalid(message) => UsageError(message).into(),
        other => other.into(),
    }
}
