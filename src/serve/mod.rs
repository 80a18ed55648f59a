//! `inferno serve`: an OpenAI-compatible HTTP server (axum on tokio) with the response cache in front of
//! inference.
//!
//! Start-up: open the cache for writing (this process owns it until it exits), load the semantic cache's
//! index when it is on (`semantic.rs`), give the remote tier (when
//! `cache.distributed.enabled`) up to 2 s to connect — without Redis it serves from the local tiers and
//! keeps trying in the background —, preload the `server.preload` models, bind `server.bind:server.port`
//! (loopback by default) and the admin socket in the cache directory, and print the address on stdout.
//! SIGTERM and SIGINT stop accepting connections on both, let in-flight requests (streams included) finish,
//! remove the admin socket, then flush the cache to disk before exiting. A timer unloads idle models under
//! `cache.model.unload_policy = "time_based"`; with `cache.alerts.enabled` a task evaluates the alert rules
//! (`crate::alerts`, docs/alerts.md). Routes and their behaviour: `routes.rs`, `completions.rs`,
//! `embeddings.rs`, `admin.rs`; docs/serve.md, docs/embeddings.md, docs/distributed.md.

pub mod admin;
mod audited;
pub mod auth;
mod completions;
mod embeddings;
pub mod error;
pub mod metrics;
mod names;
mod reads;
pub mod registry;
mod routes;
mod semantic;
mod socket;
pub mod state;
mod timing;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::watch;

use crate::cache::semantic::{SemanticCache, TextEmbedder};
use crate::cache::{Access, Manager};
use crate::config::{Config, ServerKeys, UnloadPolicy};
use socket::AdminSocket;
use state::AppState;

/// Runs the server until SIGTERM or SIGINT, answering to `keys`, with the semantic cache when given its
/// `embedder` (loaded and checked by the caller); returns after the cache is flushed.
pub fn run(config: Config, keys: ServerKeys, embedder: Option<Box<dyn TextEmbedder>>) -> anyhow::Result<()> {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start tokio")?;
    runtime.block_on(serve(config, keys, embedder))
}

async fn serve(
    config: Config,
    keys: ServerKeys,
    embedder: Option<Box<dyn TextEmbedder>>,
) -> anyhow::Result<()> {
    if !config.cache.enabled {
        tracing::warn!("the cache is disabled (cache.enabled = false): every request runs inference");
    }
    let manager = Manager::open(&config.cache, Access::ReadWrite)
        .with_context(|| format!("cannot open the cache in {}", config.cache.base_dir.display()))?;
    if manager.has_remote() && !manager.wait_remote(Duration::from_secs(2)) {
        tracing::warn!(
            "the remote tier (cache.distributed) is not reachable yet: serving from the local tiers; \
             `inferno cache status` shows why"
        );
    }
    let semantic = embedder.map(|embedder| SemanticCache::open(&manager, embedder));
    let mut state = AppState::new(config, Arc::new(manager)).with_keys(keys);
    if let Some(semantic) = semantic {
        state = state.with_semantic(semantic);
    }
    let state = Arc::new(state);
    for model in state.config.server.preload.clone() {
        let loader = Arc::clone(&state);
        let name = tokio::task::spawn_blocking(move || loader.registry.preload(&model)).await??;
        tracing::info!(model = %name, "model loaded");
    }
    let ip: std::net::IpAddr = state.config.server.bind.parse().context("server.bind")?;
    let addr = SocketAddr::new(ip, state.config.server.port);
    let listener =
        tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let socket = match AdminSocket::bind(&state.config.cache.base_dir) {
        Ok(socket) => socket,
        Err(e) => {
            tracing::warn!(
                "{e:#}; `inferno cache` commands cannot reach this server, the HTTP admin routes can"
            );
            None
        }
    };
    let (stop, stopping) = watch::channel(false);
    let signalled = shutdown_signal()?;
    tokio::spawn(async move {
        signalled.await;
        let _ = stop.send(true);
    });
    let admin = socket.map(|socket| {
        tracing::info!(socket = %socket.path().display(), "admin socket ready");
        tokio::spawn(socket.serve(routes::admin_socket_router(Arc::clone(&state)), stopped(stopping.clone())))
    });
    announce(&state, local)?;
    let unloader = tokio::spawn(unload_idle_models(Arc::clone(&state)));
    for warning in state.alerts.start_warnings() {
        tracing::warn!("{warning}");
    }
    let alerts = tokio::spawn(Arc::clone(&state.alerts).run(Arc::clone(&state.manager)));
    let clears = tokio::spawn(apply_remote_clears(Arc::clone(&state)));
    let router = routes::router(Arc::clone(&state)).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, router).with_graceful_shutdown(stopped(stopping)).await?;
    if let Some(admin) = admin {
        match admin.await {
            Ok(Err(e)) => tracing::error!("the admin socket failed: {e}"),
            Err(e) => tracing::error!("the admin socket task failed: {e}"),
            Ok(Ok(())) => {}
        }
    }
    unloader.abort();
    alerts.abort();
    clears.abort();
    tracing::info!("requests drained; flushing the cache");
    if let Some(kv_store) = &state.kv_store {
        // The prompt-prefix states still queued for the disk tier are written first.
        kv_store.flush();
    }
    state.manager.flush().context("flushing the cache at shutdown")?;
    eprintln!("inferno serve: stopped; cache flushed");
    Ok(())
}

/// The line tests and people read to find the server: `inferno serve: listening on http://ADDR`.
fn announce(state: &AppState, addr: SocketAddr) -> anyhow::Result<()> {
    let cache = &state.config.cache;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "inferno serve: listening on http://{addr} (cache: {:?} in {}; models from {})",
        cache.kind,
        cache.base_dir.display(),
        state.config.models.dir.display()
    )?;
    out.flush()?;
    Ok(())
}

/// Under `time_based`, unloads models idle longer than `keep_alive_minutes`, checking every few seconds.
async fn unload_idle_models(state: Arc<AppState>) {
    if state.config.cache.model.unload_policy != UnloadPolicy::TimeBased {
        return;
    }
    let keep_alive = state.config.cache.model.keep_alive_minutes.duration();
    let period = (keep_alive / 10).clamp(Duration::from_millis(200), Duration::from_secs(30));
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        for path in state.registry.pool().unload_idle(Instant::now()) {
            tracing::info!(model = %path.display(), "unloaded after keep_alive");
        }
    }
}

/// With the shared tier: removes from the local tiers what another replica's `cache clear` removed from
/// Redis, as soon as its notice arrives (docs/distributed.md, "Clearing a fleet").
async fn apply_remote_clears(state: Arc<AppState>) {
    let Some(mut notices) = state.manager.clear_notices() else { return };
    while let Some(notice) = notices.recv().await {
        let manager = Arc::clone(&state.manager);
        let applied = tokio::task::spawn_blocking(move || manager.apply_clear_notice(&notice)).await;
        match applied {
            Ok(Ok(Some(removal))) => {
                let removed: u64 = removal.removed.iter().map(|(_, n)| *n).sum();
                tracing::info!(removed, "applied another replica's clear to the local tiers");
            }
            Ok(Ok(None)) => tracing::warn!("ignored a clear notice this version cannot read"),
            Ok(Err(e)) => tracing::error!("applying another replica's clear failed: {e}"),
            Err(e) => tracing::error!("applying another replica's clear failed: {e}"),
        }
    }
}

/// Resolves once `stopping` turns true (or its sender is gone).
async fn stopped(mut stopping: watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

/// A future that resolves on SIGTERM (containers) or SIGINT (Ctrl-C); the handlers are installed before
/// this returns, so a signal that arrives before the future is first polled is not lost.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: draining"),
            _ = int.recv() => tracing::info!("SIGINT: draining"),
        }
    })
}
