//! The remote tier's background work, on its runtime: keeping the connections and the picture of the
//! deployment fresh, writing queued entries, and one read.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use redis::RedisResult;
use tokio::sync::mpsc;

use super::conn::{self, Conn, READ_RETRIES, READ_TIMEOUT, WAIT_MS, WRITE_TIMEOUT};
use super::stats::RemoteCounters;
use super::{Shared, WriteJob, short_of_replicas, value};
use crate::cache::clock::now_ms;

/// How often the deployment is looked at again while connected, and retried while not.
const REFRESH: Duration = Duration::from_secs(5);
const RETRY: Duration = Duration::from_secs(1);
/// Writes in flight at once.
const WRITE_CONCURRENCY: usize = 16;

fn timed_out() -> redis::RedisError {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "the remote tier did not answer in time").into()
}

/// Connects, then looks at the deployment every [`REFRESH`] (every [`RETRY`] while unreachable).
pub(super) async fn maintain(shared: Arc<Shared>) {
    let mut warned_unreachable = false;
    let mut warned_replicas = None;
    loop {
        let outcome = match conn::discover(&shared.endpoints).await {
            Ok(topology) => connect(&shared, &topology).await.map(|()| topology),
            Err(err) => Err(err),
        };
        match outcome {
            Ok(topology) => {
                if warned_unreachable || !shared.attempted.load(Ordering::Relaxed) {
                    tracing::info!(
                        mode = ?topology.mode,
                        primaries = topology.primaries().len(),
                        replicas = topology.min_replicas,
                        "remote tier connected"
                    );
                }
                warned_unreachable = false;
                let wanted = shared.replication_factor - 1;
                if topology.min_replicas < wanted && warned_replicas != Some(topology.min_replicas) {
                    tracing::warn!(
                        "remote tier: {}",
                        short_of_replicas(shared.replication_factor, topology.min_replicas)
                    );
                }
                warned_replicas = Some(topology.min_replicas);
                *shared.topology.write() = Some(topology);
                *shared.last_error.lock() = None;
                shared.reachable.store(true, Ordering::Release);
            }
            Err(err) => {
                if !warned_unreachable {
                    tracing::warn!(
                        "remote tier unreachable, serving from the local tiers until it answers: {err}"
                    );
                    warned_unreachable = true;
                }
                *shared.last_error.lock() = Some(err);
                shared.reachable.store(false, Ordering::Release);
            }
        }
        shared.attempted.store(true, Ordering::Release);
        let reachable = shared.reachable.load(Ordering::Relaxed);
        tokio::time::sleep(if reachable { REFRESH } else { RETRY }).await;
    }
}

/// Opens the read and write connections unless they are open.
async fn connect(shared: &Shared, topology: &conn::Topology) -> Result<(), String> {
    if shared.conns.read().is_some() {
        return Ok(());
    }
    let open = async {
        let read = Conn::open(topology, &shared.endpoints, READ_TIMEOUT).await?;
        let write = Conn::open(topology, &shared.endpoints, WRITE_TIMEOUT).await?;
        RedisResult::Ok((read, write))
    };
    let conns = open.await.map_err(|e| {
        let seed = crate::config::redact_node(&topology.seed);
        format!("connecting to {seed}: {}", shared.endpoints.explain(&e))
    })?;
    *shared.conns.write() = Some(conns);
    Ok(())
}

/// One `GET`, with the retries the connection does not do itself; sends the outcome on `tx`.
pub(super) async fn read(
    mut conn: Conn,
    key: String,
    tx: std::sync::mpsc::SyncSender<RedisResult<Option<Vec<u8>>>>,
) {
    let (attempts, limit) = if conn.retries_itself() {
        (1, READ_TIMEOUT * (READ_RETRIES + 1) + Duration::from_millis(100))
    } else {
        (READ_RETRIES + 1, READ_TIMEOUT)
    };
    let mut last = timed_out();
    for attempt in 0..attempts {
        match tokio::time::timeout(limit, conn.query(redis::cmd("GET").arg(&key))).await {
            Ok(Ok(value)) => {
                let _ = tx.send(Ok(value));
                return;
            }
            Ok(Err(err)) => last = err,
            Err(_) => last = timed_out(),
        }
        if attempt + 1 < attempts {
            tokio::time::sleep(Duration::from_millis(10 * u64::from(attempt + 1))).await;
        }
    }
    let _ = tx.send(Err(last));
}

/// Writes queued entries, [`WRITE_CONCURRENCY`] at a time, until the queue is closed.
pub(super) async fn writer(shared: Arc<Shared>, queue: mpsc::Receiver<WriteJob>) {
    tokio_stream::wrappers::ReceiverStream::new(queue)
        .for_each_concurrent(WRITE_CONCURRENCY, |job| {
            let shared = Arc::clone(&shared);
            async move {
                write(&shared, job).await;
                shared.pending.fetch_sub(1, Ordering::AcqRel);
            }
        })
        .await;
}

async fn write(shared: &Shared, job: WriteJob) {
    let c = &shared.counters;
    let ttl_secs = match job.expires.remaining(now_ms()) {
        None => None,
        Some(left) if !left.is_zero() => Some((left.as_millis() as u64).div_ceil(1_000)),
        Some(_) => return,
    };
    // A write queued while the first connection is being made waits for it (a few seconds at most).
    for _ in 0..500 {
        if shared.attempted.load(Ordering::Acquire) || shared.conns.read().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let Some(mut conn) = shared.conns.read().as_ref().map(|(_, write)| write.clone()) else {
        RemoteCounters::bump(&c.dropped_writes);
        return;
    };
    let bytes = value::encode(
        &shared.codec,
        shared.sealer.as_deref(),
        &job.key,
        &job.name,
        &job.value,
        job.created_ms,
        job.expires,
    );
    let mut pipe = redis::pipe();
    pipe.cmd("SET").arg(value::remote_key(&job.key)).arg(bytes);
    if let Some(ttl) = ttl_secs {
        pipe.arg("EX").arg(ttl);
    }
    pipe.ignore();
    let wanted = u64::from(shared.replication_factor - 1);
    if wanted > 0 {
        pipe.cmd("WAIT").arg(wanted).arg(WAIT_MS);
    }
    let outcome = tokio::time::timeout(WRITE_TIMEOUT, conn.pipeline::<Vec<u64>>(&pipe)).await;
    match outcome.unwrap_or_else(|_| Err(timed_out())) {
        Ok(acks) => {
            RemoteCounters::bump(&c.writes);
            let acked = acks.first().copied().unwrap_or(0);
            if wanted > 0 && acked < wanted {
                let n = c.under_replicated.fetch_add(1, Ordering::Relaxed) + 1;
                if n == 1 || n.is_multiple_of(100) {
                    tracing::warn!(
                        key = job.key,
                        "remote write acknowledged by {acked} of {wanted} replicas within {WAIT_MS} ms \
                         ({n} under-replicated writes so far)"
                    );
                }
            }
        }
        Err(err) => {
            let n = c.write_errors.fetch_add(1, Ordering::Relaxed) + 1;
            if n == 1 || n.is_multiple_of(100) {
                let err = shared.endpoints.explain(&err);
                tracing::warn!(key = job.key, "remote write failed ({n} so far): {err}");
            }
        }
    }
}
