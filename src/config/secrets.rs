//! The server's keys, read once: `server.api_key` / `server.admin_key`, or the files named by
//! `server.api_key_file` / `server.admin_key_file`. A key is kept as its BLAKE3 hash, compared in constant
//! time, and named in logs and the audit by a short id derived from it — never by its text.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::error::{ConfigError, Problem};
use super::{Origin, Resolved};

/// A key the server accepts.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    hash: blake3::Hash,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret(id {})", self.id())
    }
}

impl Secret {
    /// The secret for this key text.
    pub fn new(text: &str) -> Self {
        Self { hash: blake3::hash(text.as_bytes()) }
    }

    /// True when `given` is this key. Both sides are hashed first, so the comparison (blake3's constant-time
    /// equality on 32 bytes) reveals neither how much matched nor the key's length.
    pub fn matches(&self, given: &str) -> bool {
        blake3::hash(given.as_bytes()) == self.hash
    }

    /// A short public name for the key (8 hex digits of a keyed hash of its hash): what logs, the audit and
    /// `cache report` show to say which key was used.
    pub fn id(&self) -> String {
        let id = blake3::keyed_hash(b"inferno key id, not the key 0001", self.hash.as_bytes());
        id.to_hex()[..8].to_string()
    }
}

/// The keys `inferno serve` checks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerKeys {
    /// `server.api_key` (or its file): needed by every route but `/health` and the admin routes.
    pub api: Option<Secret>,
    /// `server.admin_key` (or its file): needed by the admin routes over TCP; unset, they are not served.
    pub admin: Option<Secret>,
}

impl ServerKeys {
    /// Keys given directly (tests and embedders).
    pub fn from_text(api: &str, admin: &str) -> Self {
        let secret = |text: &str| (!text.is_empty()).then(|| Secret::new(text));
        Self { api: secret(api), admin: secret(admin) }
    }

    /// Reads the keys of `resolved`: the text keys, or their files. A file that is missing, unreadable or
    /// empty is a configuration error naming the `*_file` key and where it was set; a world-readable file
    /// is used, with a warning.
    pub fn load(resolved: &Resolved) -> Result<Self, ConfigError> {
        let server = &resolved.config.server;
        let origin = |key: &str| resolved.settings.get(key).map_or(Origin::Default, |s| s.origin.clone());
        let read = |text: &str, file: &Path, file_key: &str| -> Result<Option<Secret>, ConfigError> {
            if !text.is_empty() {
                return Ok(Some(Secret::new(text)));
            }
            if file.as_os_str().is_empty() {
                return Ok(None);
            }
            let problem = |message: String| {
                ConfigError::one(Problem {
                    origin: origin(file_key),
                    key: Some(file_key.into()),
                    message,
                    hint: None,
                })
            };
            let contents = std::fs::read_to_string(file)
                .map_err(|e| problem(format!("cannot read the key file {}: {e}", file.display())))?;
            let key = contents.trim();
            if key.is_empty() {
                return Err(problem(format!("the key file {} is empty", file.display())));
            }
            if std::fs::metadata(file).is_ok_and(|m| m.permissions().mode() & 0o007 != 0) {
                tracing::warn!(
                    file = %file.display(),
                    "{file_key}: the key file can be read by every user; `chmod 600` it"
                );
            }
            Ok(Some(Secret::new(key)))
        };
        let api = read(&server.api_key, &server.api_key_file, "server.api_key_file")?;
        let admin = read(&server.admin_key, &server.admin_key_file, "server.admin_key_file")?;
        if let (Some(api), Some(admin)) = (&api, &admin)
            && api == admin
        {
            return Err(ConfigError::one(Problem {
                origin: origin(if server.admin_key.is_empty() {
                    "server.admin_key_file"
                } else {
                    "server.admin_key"
                }),
                key: Some("server.admin_key".into()),
                message: "must differ from server.api_key (the API key never grants the admin routes)".into(),
                hint: None,
            }));
        }
        Ok(Self { api, admin })
    }
}

/// A Redis address with any password masked: `redis://user:s3cret@host:6379` becomes
/// `redis://user:***@host:6379`; addresses without credentials are returned as they are.
pub fn redact_node(node: &str) -> String {
    let Some((scheme, rest)) = node.split_once("://") else { return node.to_string() };
    let Some((userinfo, host)) = rest.rsplit_once('@') else { return node.to_string() };
    let user = userinfo.split_once(':').map_or("", |(user, _)| user);
    if userinfo.contains(':') {
        format!("{scheme}://{user}:***@{host}")
    } else {
        // `redis://s3cret@host`: a lone userinfo is the password.
        format!("{scheme}://***@{host}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_match_only_their_key_and_show_only_an_id() {
        let s = Secret::new("sesame-1234");
        assert!(s.matches("sesame-1234"));
        assert!(!s.matches("sesame-123") && !s.matches("") && !s.matches("sesame-12345"));
        assert_eq!(s.id().len(), 8);
        assert_ne!(s.id(), Secret::new("other").id());
        let shown = format!("{s:?}");
        assert!(!shown.contains("sesame") && shown.contains(&s.id()), "{shown}");
    }

    #[test]
    fn redis_passwords_are_masked() {
        assert_eq!(redact_node("redis://u:pw@h:1"), "redis://u:***@h:1");
        assert_eq!(redact_node("rediss://:pw@h:1/0"), "rediss://:***@h:1/0");
        assert_eq!(redact_node("redis://pw@h"), "redis://***@h");
        assert_eq!(redact_node("h:6379"), "h:6379");
        assert_eq!(redact_node("redis://h:6379"), "redis://h:6379");
    }

    #[test]
    fn key_files_are_read_trimmed_and_their_problems_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let options = crate::config::LoadOptions {
            cwd: dir.path().to_path_buf(),
            env: vec![("INFERNO_SYSTEM_CONFIG".into(), dir.path().join("none.toml").display().to_string())],
            ..Default::default()
        };
        let file = dir.path().join("admin.key");
        std::fs::write(&file, "  adm1n-key\n").unwrap();
        let with = |key: &str, value: &Path| {
            let mut options = options.clone();
            options.env.push((crate::config::keys::general_env_name(key), value.display().to_string()));
            ServerKeys::load(&crate::config::load(&options).unwrap())
        };
        let keys = with("server.admin_key_file", &file).unwrap();
        assert!(keys.admin.unwrap().matches("adm1n-key") && keys.api.is_none());
        let missing = with("server.api_key_file", &dir.path().join("nope")).unwrap_err().to_string();
        assert!(missing.contains("INFERNO_SERVER__API_KEY_FILE") && missing.contains("server.api_key_file"));
        std::fs::write(&file, "\n").unwrap();
        assert!(with("server.admin_key_file", &file).unwrap_err().to_string().contains("is empty"));
    }
}
