//! The manager's side of the remote tier: starting it, reading through it on a local miss (and filling the
//! local tiers), `cache clear` on it, and its status. Only response entries go to Redis.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::values::NewEntry;
use super::{Access, Cached, EntryInfo, Filter, Manager, Removal, SplitValue, memory_key};
use crate::cache::CacheError;
use crate::cache::clock::now_ms;
use crate::cache::kind::Kind;
use crate::cache::observe::stats::Counters;
use crate::cache::observe::trace::Op;
use crate::cache::remote::{self, RemoteRemoval, RemoteStatus, RemoteTier};
use crate::cache::response_store;
use crate::cache::seal::Sealer;
use crate::config::CacheConfig;

/// The remote tier for a writable manager when `cache.distributed.enabled` and responses are cached.
pub(super) fn start(
    config: &CacheConfig,
    access: Access,
    sealer: Option<&Arc<Sealer>>,
    counters: &Counters,
) -> std::io::Result<Option<RemoteTier>> {
    let wanted = config.distributed.enabled
        && !config.distributed.cluster_nodes.is_empty()
        && access == Access::ReadWrite
        && config.enabled
        && config.response.enabled;
    if !wanted {
        return Ok(None);
    }
    let codec = crate::cache::codec::Codec::from_cache_config(config);
    // With encryption on, Redis holds only sealed values and accepts no other (a planted value is a miss).
    let sealer = sealer.filter(|s| s.seals()).cloned();
    RemoteTier::start(&config.distributed, codec, sealer, Arc::clone(&counters.remote)).map(Some)
}

impl Manager {
    /// The value of a response entry from the remote tier after a local miss; a hit is written to the local
    /// tiers. Counts the hit or the miss.
    pub(super) fn read_through(&self, kind: Kind, key: &str) -> Option<Arc<[u8]>> {
        let counters = self.counters.kind(kind);
        let found = self.remote.as_ref().filter(|_| kind == Kind::Response).and_then(|r| r.get(key));
        let Some(entry) = found else {
            counters.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        counters.remote_hits.fetch_add(1, Ordering::Relaxed);
        self.tracer.record(Op::Read, kind, key, Some("remote"), Some(true), entry.value.len() as u64);
        // Only response entries come from Redis: keep them split as `response_store::put` would, so their
        // payloads are shared with the local ones.
        let per_key = response_store::per_key_ranges(&entry.value).unwrap_or_default();
        // Under the rewrite gate like a put: a new dictionary never becomes current while this write holds the
        // previous one.
        let no_reseal = self.rewrite_gate.read();
        if let Some(disk) = &self.disk
            && let Err(err) = self.write_disk(
                disk,
                self.writing(),
                &NewEntry {
                    kind,
                    key,
                    name: &entry.name,
                    value: SplitValue { bytes: &entry.value, per_key: &per_key },
                    created_ms: entry.created_ms,
                    expires: entry.expires,
                },
            )
        {
            tracing::warn!(key, "keeping a remote hit on disk failed: {err}");
        }
        drop(no_reseal);
        let bytes: Arc<[u8]> = entry.value.into();
        if let Some(memory) = self.memory_of(kind) {
            let cached = Cached {
                bytes: bytes.clone(),
                name: entry.name.as_str().into(),
                created_ms: entry.created_ms,
                expires: entry.expires,
            };
            let evicted = memory.insert(memory_key(kind, key).into(), cached);
            self.note_evicted(evicted);
        }
        Some(bytes)
    }

    /// Whether this manager runs a remote tier.
    pub fn has_remote(&self) -> bool {
        self.remote.is_some()
    }

    /// Waits until the remote tier's first connection attempt has finished, at most `limit`; true when
    /// Redis answered. False at once without a remote tier.
    pub fn wait_remote(&self, limit: Duration) -> bool {
        self.remote.as_ref().is_some_and(|r| r.wait_ready(limit))
    }

    /// The remote tier's status: this process's view when it runs the tier, else a fresh look from here
    /// (a few seconds at most); `None` when `cache.distributed.enabled` is false.
    pub fn remote_status(&self, probe: bool) -> Option<RemoteStatus> {
        let config = &self.config.distributed;
        match &self.remote {
            Some(tier) => Some(tier.status(config)),
            None if config.enabled && probe => Some(remote::probe(config)),
            None => None,
        }
    }

    /// Removes the remote entries `filter` selects (response entries only: a filter of other kinds selects
    /// none). `None` without a remote tier; an error when Redis cannot be reached.
    pub fn clear_remote(&self, filter: &Filter) -> Option<Result<RemoteRemoval, String>> {
        let tier = self.remote.as_ref()?;
        if !filter.kinds.is_empty() && !filter.kinds.contains(&Kind::Response) {
            return Some(Ok(RemoteRemoval::default()));
        }
        let peek = filter.pattern.is_some() || filter.older_than.is_some();
        let filter_copy = filter.clone();
        let filter = filter.clone();
        let now = now_ms();
        let select = Arc::new(move |p: &remote::Peeked| {
            let entry = EntryInfo {
                kind: Kind::Response,
                key: p.key.clone(),
                name: p.name.clone(),
                created_ms: p.created_ms,
                expires: p.expires,
                size: p.size,
            };
            filter.matches(&entry, now)
        });
        let removal = tier.clear(peek, select);
        if removal.is_ok() {
            tier.announce_clear(notice_of(&filter_copy));
        }
        Some(removal)
    }

    /// The clears other replicas of the shared tier announce, as filters for the local tiers; `None` without
    /// a remote tier. A server removes what each selects (`Manager::remove_matching`).
    pub fn clear_notices(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<remote::ClearNotice>> {
        self.remote.as_ref().map(RemoteTier::clear_notices)
    }

    /// Removes from the local tiers what another replica's clear selected; `Ok(None)` for a notice this
    /// version cannot read (an unknown kind, a bad pattern).
    pub fn apply_clear_notice(&self, notice: &remote::ClearNotice) -> Result<Option<Removal>, CacheError> {
        match filter_of(notice) {
            Some(filter) => self.remove_matching(&filter).map(Some),
            None => Ok(None),
        }
    }
}

/// The notice that describes `filter` (the sender fills in its id).
fn notice_of(filter: &Filter) -> remote::ClearNotice {
    remote::ClearNotice {
        from: String::new(),
        kinds: filter.kinds.iter().map(|k| k.name().to_string()).collect(),
        key: filter.key.clone(),
        pattern: filter.pattern.as_ref().map(|p| p.as_str().to_string()),
        older_than_ms: filter.older_than.map(|d| d.as_millis() as u64),
    }
}

/// The filter a notice describes; `None` when it names an unknown kind or a bad pattern.
fn filter_of(notice: &remote::ClearNotice) -> Option<Filter> {
    let kinds = notice.kinds.iter().map(|k| k.parse::<Kind>().ok()).collect::<Option<Vec<_>>>()?;
    let pattern = match &notice.pattern {
        Some(p) => Some(glob::Pattern::new(p).ok()?),
        None => None,
    };
    Some(Filter {
        kinds,
        key: notice.key.clone(),
        pattern,
        older_than: notice.older_than_ms.map(Duration::from_millis),
    })
}
