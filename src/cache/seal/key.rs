//! The cache key: reading a key file (32 raw bytes or 64 hex characters), writing a new one (`cache keygen`),
//! and what is derived from it — the AEAD key, the public key id and the dedup hash key. The key's bytes
//! never leave this file except into those derivations.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use ring::rand::SecureRandom;

/// Length of the key in bytes.
pub const KEY_LEN: usize = 32;

/// Why a key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file cannot be read (missing, no permission).
    #[error("cannot read the key file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds neither 32 bytes nor 64 hex characters.
    #[error(
        "the key file {path} holds {len} bytes: a key is 32 raw bytes or 64 hex characters (make one with `inferno cache keygen PATH`)"
    )]
    Length {
        /// The file.
        path: String,
        /// What it holds.
        len: usize,
    },
    /// `keygen` found a file at the path.
    #[error("{path} exists; keygen never overwrites a key (a lost key loses the cache): choose another path")]
    Exists {
        /// The file.
        path: String,
    },
    /// `keygen` could not write.
    #[error("cannot write the key file {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The public name of a key: the first 8 bytes of a BLAKE3 key derivation from it. It tells keys apart and
/// reveals nothing about the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; 8]);

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A loaded key: the derived subkeys, never the key itself.
#[derive(Clone)]
pub struct CacheKey {
    pub(super) aead: [u8; KEY_LEN],
    pub(super) dedup: [u8; KEY_LEN],
    pub(super) id: KeyId,
}

impl std::fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CacheKey(id {})", self.id)
    }
}

impl CacheKey {
    /// The key from its 32 bytes.
    pub fn from_bytes(key: &[u8; KEY_LEN]) -> Self {
        let derive = |context: &str| blake3::derive_key(context, key);
        let id_bytes = derive("inferno cache 2026 key id");
        let mut id = [0u8; 8];
        id.copy_from_slice(&id_bytes[..8]);
        Self {
            aead: derive("inferno cache 2026 record sealing (AEAD)"),
            dedup: derive("inferno cache 2026 dedup content addressing"),
            id: KeyId(id),
        }
    }

    /// Reads a key file: 32 raw bytes, or 64 hex characters (surrounding whitespace ignored). A file that
    /// other users can read is used, with a warning.
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let key = Self::read(path)?;
        if std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0) {
            tracing::warn!(file = %path.display(), "the cache key file can be read by other users; `chmod 600` it");
        }
        Ok(key)
    }

    /// [`load`](Self::load) without the warning (configuration checks).
    pub fn read(path: &Path) -> Result<Self, KeyFileError> {
        let shown = path.display().to_string();
        let bytes =
            std::fs::read(path).map_err(|source| KeyFileError::Read { path: shown.clone(), source })?;
        let key = parse(&bytes).ok_or(KeyFileError::Length { path: shown, len: bytes.len() })?;
        Ok(Self::from_bytes(&key))
    }

    /// The key's public id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The key of the keyed BLAKE3 hash that addresses dedup chunks.
    pub fn dedup_key(&self) -> &[u8; KEY_LEN] {
        &self.dedup
    }
}

fn parse(bytes: &[u8]) -> Option<[u8; KEY_LEN]> {
    if bytes.len() == KEY_LEN {
        return bytes.try_into().ok();
    }
    let text = std::str::from_utf8(bytes).ok()?.trim();
    if text.len() != 2 * KEY_LEN {
        return None;
    }
    let mut key = [0u8; KEY_LEN];
    for (i, pair) in text.as_bytes().chunks(2).enumerate() {
        key[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(key)
}

/// Writes a new random key (64 hex characters and a newline) to `path`, mode 0600, refusing to overwrite
/// anything; returns its id.
pub fn generate(path: &Path) -> Result<KeyId, KeyFileError> {
    let shown = path.display().to_string();
    let mut key = [0u8; KEY_LEN];
    ring::rand::SystemRandom::new().fill(&mut key).map_err(|_| KeyFileError::Write {
        path: shown.clone(),
        source: std::io::Error::other("the system random generator failed"),
    })?;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(
        |source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => KeyFileError::Exists { path: shown.clone() },
            _ => KeyFileError::Write { path: shown.clone(), source },
        },
    )?;
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let written = file
        .set_permissions(std::fs::Permissions::from_mode(0o600))
        .and_then(|()| file.write_all(format!("{hex}\n").as_bytes()))
        .and_then(|()| file.sync_all());
    if let Err(source) = written {
        let _ = std::fs::remove_file(path);
        return Err(KeyFileError::Write { path: shown, source });
    }
    Ok(CacheKey::from_bytes(&key).id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_and_hex_files_give_the_same_key_and_bad_lengths_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let raw = [7u8; KEY_LEN];
        std::fs::write(dir.path().join("raw"), raw).unwrap();
        std::fs::write(dir.path().join("hex"), format!("  {}\n", "07".repeat(32))).unwrap();
        let a = CacheKey::load(&dir.path().join("raw")).unwrap();
        let b = CacheKey::load(&dir.path().join("hex")).unwrap();
        assert_eq!(a.id(), b.id());
        for bad in [&b"short"[..], &[0u8; 33][..], "0g".repeat(32).as_bytes()] {
            std::fs::write(dir.path().join("bad"), bad).unwrap();
            let err = CacheKey::load(&dir.path().join("bad")).unwrap_err();
            assert!(matches!(err, KeyFileError::Length { .. }), "{err}");
        }
        assert!(matches!(CacheKey::load(&dir.path().join("none")), Err(KeyFileError::Read { .. })));
        assert!(!format!("{a:?}").contains("07070707"), "Debug shows only the id");
    }

    #[test]
    fn keygen_writes_0600_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let id = generate(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(CacheKey::load(&path).unwrap().id(), id);
        let before = std::fs::read(&path).unwrap();
        assert!(matches!(generate(&path), Err(KeyFileError::Exists { .. })));
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_ne!(generate(&dir.path().join("k2")).unwrap(), id, "every key is new");
    }
}
