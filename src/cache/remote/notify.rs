//! Clears seen by every replica: after removing entries from the shared tier, a replica PUBLISHes what it
//! selected on the Redis channel `inferno:v1:clear`; every replica with the tier SUBSCRIBEs to it (on the
//! first seed that answers — Redis Cluster forwards a PUBLISH to every node) and removes the same entries
//! from its own memory and disk tiers, so none keeps serving a local copy of a cleared answer.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::conn;
use super::endpoint::Endpoints;
use crate::config::redact_node;

/// The Redis channel clears are announced on.
pub const CLEAR_CHANNEL: &str = "inferno:v1:clear";

/// What one replica cleared, as announced to the others.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClearNotice {
    /// The announcing tier's id, so it ignores its own notice.
    pub from: String,
    /// Only these kinds (names); empty = every kind.
    pub kinds: Vec<String>,
    /// Only this key.
    pub key: Option<String>,
    /// Only names or keys matching this glob.
    pub pattern: Option<String>,
    /// Only entries created longer ago than this many ms.
    pub older_than_ms: Option<u64>,
}

/// PUBLISHes `notice` through the first seed that answers.
pub async fn publish(endpoints: &Endpoints, notice: &ClearNotice) -> Result<(), String> {
    let payload = serde_json::to_string(notice).map_err(|e| e.to_string())?;
    let mut last = "no seed".to_string();
    for seed in &endpoints.seeds {
        match conn::node_connection(endpoints, seed, Duration::from_secs(2)).await {
            Ok(mut c) => {
                let sent: redis::RedisResult<i64> =
                    redis::cmd("PUBLISH").arg(CLEAR_CHANNEL).arg(&payload).query_async(&mut c).await;
                match sent {
                    Ok(_) => return Ok(()),
                    Err(e) => last = format!("{}: {}", redact_node(seed), endpoints.explain(&e)),
                }
            }
            Err(e) => last = format!("{}: {}", redact_node(seed), endpoints.explain(&e)),
        }
    }
    Err(last)
}

/// Listens on the channel (reconnecting every second while no seed answers) and forwards every notice not
/// sent by `me`, until the receiver is gone.
pub async fn subscribe(endpoints: Arc<Endpoints>, me: String, tx: mpsc::UnboundedSender<ClearNotice>) {
    while !tx.is_closed() {
        for seed in &endpoints.seeds {
            let Ok(client) = endpoints.client(seed) else { continue };
            let seed = redact_node(seed);
            let Ok(mut pubsub) = client.get_async_pubsub().await else { continue };
            if pubsub.subscribe(CLEAR_CHANNEL).await.is_err() {
                continue;
            }
            tracing::debug!(seed, "listening for clears of other replicas");
            let mut messages = pubsub.on_message();
            while let Some(message) = messages.next().await {
                let Ok(payload) = message.get_payload::<String>() else { continue };
                match serde_json::from_str::<ClearNotice>(&payload) {
                    Ok(notice) if notice.from != me => {
                        if tx.send(notice).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!("unreadable clear notice on {CLEAR_CHANNEL}: {e}"),
                }
            }
            tracing::warn!(seed, "the clear notice subscription closed; resubscribing");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
