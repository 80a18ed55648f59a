//! The admin socket, `<cache dir>/admin.sock`: where `inferno cache ...` commands reach this server while it
//! holds the cache (docs/serve.md, "Admin API").
//!
//! At start the socket is bound under a temporary name, restricted to the owner (0600) and renamed into
//! place, so it never exists with wider permissions and a stale socket left by a killed server is replaced
//! atomically; a socket that still accepts connections belongs to a live server and is left alone. It is
//! removed at shutdown, unless another server has replaced it since.
//!
//! Who is calling comes from the kernel (`SO_PEERCRED`: the connecting process's uid and pid), not from
//! anything the client says, so the audit records the real caller.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;

use crate::admin;

/// The process at the other end of an admin-socket connection, as the kernel reports it (`SO_PEERCRED`);
/// `None` fields when the kernel would not say.
#[derive(Clone, Copy, Debug, Default)]
pub struct Peer {
    /// The caller's user id.
    pub uid: Option<u32>,
    /// The caller's process id.
    pub pid: Option<u32>,
}

impl Connected<IncomingStream<'_, tokio::net::UnixListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, tokio::net::UnixListener>) -> Self {
        match stream.io().peer_cred() {
            Ok(cred) => {
                Peer { uid: Some(cred.uid()), pid: cred.pid().and_then(|pid| u32::try_from(pid).ok()) }
            }
            Err(_) => Peer::default(),
        }
    }
}

/// A bound admin socket.
pub struct AdminSocket {
    listener: tokio::net::UnixListener,
    remover: Remover,
}

/// Removes the socket file when dropped, if it is still this server's (same inode).
struct Remover {
    path: PathBuf,
    inode: u64,
}

impl Drop for Remover {
    fn drop(&mut self) {
        if std::fs::metadata(&self.path).is_ok_and(|m| m.ino() == self.inode) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl AdminSocket {
    /// Binds the admin socket of the cache in `base_dir`. `Ok(None)`, with a warning, when another live
    /// server answers there already.
    pub fn bind(base_dir: &Path) -> anyhow::Result<Option<Self>> {
        let path = admin::socket_path(base_dir);
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            tracing::warn!(
                socket = %path.display(),
                "another server answers on this cache's admin socket; this one serves the admin routes over HTTP only"
            );
            return Ok(None);
        }
        crate::cache::private::create_dir_all(base_dir)
            .with_context(|| format!("cannot create {}", base_dir.display()))?;
        let temporary = base_dir.join(format!("{}.{}", admin::SOCKET_FILE, std::process::id()));
        let _ = std::fs::remove_file(&temporary);
        let bind = || -> std::io::Result<(std::os::unix::net::UnixListener, u64)> {
            let listener = std::os::unix::net::UnixListener::bind(&temporary)?;
            std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))?;
            std::fs::rename(&temporary, &path)?;
            listener.set_nonblocking(true)?;
            Ok((listener, std::fs::metadata(&path)?.ino()))
        };
        let (listener, inode) = bind()
            .inspect_err(|_| {
                let _ = std::fs::remove_file(&temporary);
            })
            .with_context(|| format!("cannot create the admin socket {}", path.display()))?;
        let listener = tokio::net::UnixListener::from_std(listener)?;
        Ok(Some(Self { listener, remover: Remover { path, inode } }))
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.remover.path
    }

    /// Serves `router` until `shutdown` resolves and the requests in flight are answered; then removes the
    /// socket file.
    pub async fn serve(
        self,
        router: axum::Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Self { listener, remover } = self;
        let served = axum::serve(listener, router.into_make_service_with_connect_info::<Peer>())
            .with_graceful_shutdown(shutdown)
            .await;
        drop(remover);
        served
    }
}
