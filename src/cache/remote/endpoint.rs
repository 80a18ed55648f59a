//! How the tier reaches Redis: the seeds of `[cache.distributed]` with its login (`username`, `password` or
//! `password_file`) and TLS material (`tls_ca_file`, `tls_cert_file` + `tls_key_file`), turned into redis
//! clients; and a Redis error turned into one line that says what to fix, never showing a password.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use redis::cluster::ClusterClientBuilder;
use redis::{Client, ClientTlsConfig, IntoConnectionInfo, RedisError, RedisResult, TlsCertificates};

use super::conn::seed_url;
use crate::config::{DistributedConfig, redact_node};

/// The seeds and how to log in to them.
#[derive(Clone)]
pub struct Endpoints {
    /// `cache.distributed.cluster_nodes` as configured (a URL may hold a password: show them through
    /// [`redact_node`]).
    pub seeds: Vec<String>,
    username: Option<String>,
    password: Option<String>,
    tls: Option<TlsCertificates>,
}

impl std::fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seeds: Vec<String> = self.seeds.iter().map(|s| redact_node(s)).collect();
        f.debug_struct("Endpoints")
            .field("seeds", &seeds)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("tls_files", &self.tls.is_some())
            .finish()
    }
}

impl Endpoints {
    /// Reads the password file and the TLS files `config` names. A file that cannot be read, an empty
    /// password file or a client certificate without its key is an error naming the key; a password file
    /// other users can read is used, with a warning.
    pub fn load(config: &DistributedConfig) -> Result<Self, String> {
        let read = |path: &Path, key: &str| -> Result<Option<Vec<u8>>, String> {
            if path.as_os_str().is_empty() {
                return Ok(None);
            }
            std::fs::read(path)
                .map(Some)
                .map_err(|e| format!("cache.distributed.{key}: cannot read {}: {e}", path.display()))
        };
        let password = if !config.password.is_empty() {
            Some(config.password.clone())
        } else if let Some(bytes) = read(&config.password_file, "password_file")? {
            let file = config.password_file.display();
            let text = String::from_utf8(bytes)
                .map_err(|_| format!("cache.distributed.password_file: {file} is not UTF-8 text"))?;
            let password = text.trim();
            if password.is_empty() {
                return Err(format!("cache.distributed.password_file: {file} is empty"));
            }
            if std::fs::metadata(&config.password_file).is_ok_and(|m| m.permissions().mode() & 0o077 != 0) {
                tracing::warn!(
                    "cache.distributed.password_file: {file} can be read by other users; `chmod 600` it"
                );
            }
            Some(password.to_string())
        } else {
            None
        };
        let root_cert = read(&config.tls_ca_file, "tls_ca_file")?;
        let client_tls = match (
            read(&config.tls_cert_file, "tls_cert_file")?,
            read(&config.tls_key_file, "tls_key_file")?,
        ) {
            (Some(client_cert), Some(client_key)) => Some(ClientTlsConfig { client_cert, client_key }),
            (None, None) => None,
            _ => {
                return Err(
                    "cache.distributed.tls_cert_file and tls_key_file go together: set both or neither"
                        .into(),
                );
            }
        };
        let tls = (root_cert.is_some() || client_tls.is_some())
            .then_some(TlsCertificates { client_tls, root_cert });
        Ok(Self {
            seeds: config.cluster_nodes.clone(),
            username: (!config.username.is_empty()).then(|| config.username.clone()),
            password,
            tls,
        })
    }

    /// A client for `url` (a seed or a node's URL) with the configured login and TLS files. Without
    /// `username`/`password` set, credentials in the URL are used.
    pub fn client(&self, url: &str) -> RedisResult<Client> {
        let mut info = seed_url(url).into_connection_info()?;
        let mut settings = info.redis_settings().clone();
        if let Some(username) = &self.username {
            settings = settings.set_username(username);
        }
        if let Some(password) = &self.password {
            settings = settings.set_password(password);
        }
        info = info.set_redis_settings(settings);
        match &self.tls {
            Some(certificates) => Client::build_with_tls(info, certificates.clone()),
            None => Client::open(info),
        }
    }

    /// A cluster client builder on every seed, with the login and TLS files.
    pub fn cluster(&self) -> ClusterClientBuilder {
        let mut builder = ClusterClientBuilder::new(self.seeds.iter().map(|s| seed_url(s)));
        if let Some(username) = &self.username {
            builder = builder.username(username);
        }
        if let Some(password) = &self.password {
            builder = builder.password(password);
        }
        if let Some(certificates) = &self.tls {
            builder = builder.certs(certificates.clone());
        }
        builder
    }

    /// `err` in one line, with what to do about it when the cause is known (login, permissions, TLS).
    pub fn explain(&self, err: &RedisError) -> String {
        let text = err.to_string().replace(['\r', '\n'], " ");
        let text = self.password.as_deref().map_or(text.clone(), |p| text.replace(p, "***"));
        let user = self.username.as_deref().unwrap_or("default");
        let hint = if text.contains("WRONGPASS") || err.kind() == redis::ErrorKind::AuthenticationFailed {
            format!(
                "Redis refused the login as user {user:?}: check cache.distributed.username and the password \
                 (password_file or INFERNO_CACHE__DISTRIBUTED__PASSWORD)"
            )
        } else if text.contains("NOAUTH") {
            "Redis wants a password: set cache.distributed.password_file (and username for an ACL user)"
                .into()
        } else if text.contains("NOPERM") || text.contains("NoPerm") {
            format!(
                "the Redis user {user:?} lacks a permission the tier needs (docs/distributed.md lists the ACL)"
            )
        } else if text.contains("UnknownIssuer") || text.contains("invalid peer certificate") {
            "the server's TLS certificate is not trusted: cache.distributed.tls_ca_file must hold the CA that \
             signed it"
                .into()
        } else if text.contains("CorruptMessage") || text.contains("InvalidContentType") {
            "the server did not answer TLS: is it a plaintext port? (use redis:// for those)".into()
        } else if self.seeds.iter().all(|s| !s.starts_with("rediss://"))
            && (text.contains("reset by peer") || text.contains("closed") || text.contains("EOF"))
        {
            "the server closed the connection: if it wants TLS, write the seeds as rediss://".into()
        } else {
            return text;
        };
        format!("{hint} ({text})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> DistributedConfig {
        DistributedConfig {
            cluster_nodes: vec!["rediss://u:urlpw@127.0.0.1:1".into()],
            username: "tier".into(),
            password_file: dir.join("pw"),
            ..DistributedConfig::default()
        }
    }

    #[test]
    fn the_password_file_is_read_trimmed_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        std::fs::write(&config.password_file, "  s3cret-pw\n").unwrap();
        let endpoints = Endpoints::load(&config).unwrap();
        assert_eq!(endpoints.password.as_deref(), Some("s3cret-pw"));
        let shown = format!("{endpoints:?}");
        assert!(!shown.contains("s3cret-pw") && !shown.contains("urlpw") && shown.contains("***"), "{shown}");
        let err = RedisError::from((redis::ErrorKind::Io, "peer said", "s3cret-pw is wrong".to_string()));
        let line = endpoints.explain(&err);
        assert!(!line.contains("s3cret-pw") && line.contains("*** is wrong"), "{line}");
        let auth =
            RedisError::from((redis::ErrorKind::AuthenticationFailed, "Password authentication failed"));
        assert!(endpoints.explain(&auth).starts_with("Redis refused the login as user \"tier\""));
    }

    #[test]
    fn unreadable_or_incomplete_files_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        let err = Endpoints::load(&config).unwrap_err();
        assert!(err.starts_with("cache.distributed.password_file: cannot read"), "{err}");
        std::fs::write(&config.password_file, "\n").unwrap();
        assert!(Endpoints::load(&config).unwrap_err().ends_with("is empty"));
        std::fs::write(&config.password_file, "pw").unwrap();
        config.tls_cert_file = config.password_file.clone();
        assert!(Endpoints::load(&config).unwrap_err().contains("go together"));
        config.tls_key_file = config.password_file.clone();
        let endpoints = Endpoints::load(&config).unwrap();
        assert!(endpoints.tls.is_some_and(|t| t.client_tls.is_some() && t.root_cert.is_none()));
    }
}
