//! `cache clear` on the remote tier: every primary is walked with `SCAN MATCH inferno:v1:resp:*` (never
//! `KEYS`), the records' headers are read with `GETRANGE` when the selection needs names or times, and the
//! selected keys are removed with `UNLINK`, one key per command so that a cluster never sees a cross-slot
//! request.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use serde::Serialize;

use super::conn::{self, Mode};
use super::endpoint::Endpoints;
use super::value::{self, KEY_PREFIX, PEEK_LEN};
use crate::cache::clock::Expiry;

/// Keys asked for per `SCAN` call.
const SCAN_COUNT: u32 = 500;

/// What a remote entry looks like to a selection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peeked {
    /// The response key (without the Redis prefix).
    pub key: String,
    /// Its name (model name); empty when the header was not read.
    pub name: String,
    /// Creation time, ms since the Unix epoch; 0 when the header was not read.
    pub created_ms: u64,
    /// When it stops being served; never when the header was not read.
    pub expires: Expiry,
    /// Decoded value size; 0 when the header was not read.
    pub size: u64,
}

/// What a remote clear did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RemoteRemoval {
    /// Primaries walked.
    pub nodes: usize,
    /// Keys seen under the prefix.
    pub scanned: u64,
    /// Keys removed.
    pub removed: u64,
}

/// Removes the remote entries `select` picks; `peek` says whether it needs the records' headers.
pub async fn clear(
    endpoints: &Endpoints,
    peek: bool,
    select: &(dyn Fn(&Peeked) -> bool + Send + Sync),
) -> Result<RemoteRemoval, String> {
    let topology = conn::discover(endpoints).await?;
    let urls: Vec<String> = match topology.mode {
        Mode::Standalone => vec![conn::seed_url(&topology.seed)],
        Mode::Cluster => topology.primaries().iter().map(|a| conn::node_url(&topology.seed, a)).collect(),
    };
    let mut removal = RemoteRemoval { nodes: urls.len(), ..RemoteRemoval::default() };
    for url in urls {
        let fail = |e: redis::RedisError| format!("{}: {}", conn::host_port(&url), endpoints.explain(&e));
        let mut node = conn::node_connection(endpoints, &url, Duration::from_secs(10)).await.map_err(fail)?;
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{KEY_PREFIX}*"))
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(&mut node)
                .await
                .map_err(fail)?;
            removal.scanned += keys.len() as u64;
            let chosen = choose(&mut node, keys, peek, select).await.map_err(fail)?;
            if !chosen.is_empty() {
                let mut pipe = redis::pipe();
                for key in &chosen {
                    pipe.cmd("UNLINK").arg(key);
                }
                let gone: Vec<u64> = pipe.query_async(&mut node).await.map_err(fail)?;
                removal.removed += gone.iter().sum::<u64>();
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(removal)
}

async fn choose(
    node: &mut MultiplexedConnection,
    keys: Vec<String>,
    peek: bool,
    select: &(dyn Fn(&Peeked) -> bool + Send + Sync),
) -> redis::RedisResult<Vec<String>> {
    let heads: Vec<Vec<u8>> = if peek && !keys.is_empty() {
        let mut pipe = redis::pipe();
        for key in &keys {
            pipe.cmd("GETRANGE").arg(key).arg(0).arg(PEEK_LEN - 1);
        }
        pipe.query_async(node).await?
    } else {
        vec![Vec::new(); keys.len()]
    };
    Ok(keys
        .into_iter()
        .zip(heads)
        .filter(|(key, head)| {
            let Some(local) = value::local_key(key) else { return false };
            let mut entry = Peeked {
                key: local.to_string(),
                name: String::new(),
                created_ms: 0,
                expires: Expiry::NEVER,
                size: 0,
            };
            if peek {
                // A header that cannot be read is selected only when the key itself matches.
                if let Some((name, created_ms, expires, size)) = value::peek(head) {
                    entry = Peeked { name, created_ms, expires, size, ..entry };
                }
            }
            select(&entry)
        })
        .map(|(key, _)| key)
        .collect())
}
