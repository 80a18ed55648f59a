//! Encryption at rest: seals a stored value with an AEAD (AES-256-GCM from `ring`, or XChaCha20-Poly1305 from
//! RustCrypto's `chacha20poly1305`) bound to its record's header, and opens it again.
//!
//! A sealed value is `algorithm (1) | key id (8) | nonce (12 or 24) | ciphertext | tag (16)`; a record whose
//! value is sealed has bit 7 of its codec byte set (docs/format.md, "Sealed values"). The associated data is
//! the record type, kind, codec, key, name, chunk references and decoded length, so a sealed value moved to
//! another key, kind or record fails authentication. Nonces are random, from the OS generator.
//!
//! - [`key`]: key files, `keygen`, and the subkeys and id derived from a key.
//! - [`journal`]: the record of an unfinished `cache rekey`, whose keys every open loads for reading.

pub mod journal;
pub mod key;

use std::path::Path;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

pub use key::{CacheKey, KeyFileError, KeyId};

use crate::cache::record::{BlobRef, RecordType};
use crate::config::{Encryption, SecurityConfig};

/// Bit 7 of a record's codec byte: its value is sealed.
pub const SEALED_CODEC_BIT: u8 = 0x80;
const TAG_LEN: usize = 16;
const PREFIX_LEN: usize = 1 + 8;

/// Whether a record's codec byte says its value is sealed.
pub fn is_sealed(codec: u8) -> bool {
    codec & SEALED_CODEC_BIT != 0
}

/// The codec of the value inside, without the sealed bit.
pub fn inner_codec(codec: u8) -> u8 {
    codec & !SEALED_CODEC_BIT
}

/// The AEAD of a sealed value. The numbers are part of the file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Algorithm {
    /// AES-256-GCM, 96-bit random nonces.
    Aes256Gcm = 1,
    /// XChaCha20-Poly1305, 192-bit random nonces.
    XChaCha20Poly1305 = 2,
}

impl Algorithm {
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Aes256Gcm),
            2 => Some(Self::XChaCha20Poly1305),
            _ => None,
        }
    }

    /// Nonce length in bytes.
    pub const fn nonce_len(self) -> usize {
        match self {
            Self::Aes256Gcm => 12,
            Self::XChaCha20Poly1305 => 24,
        }
    }

    /// Bytes a sealed value adds to the plaintext.
    pub const fn overhead(self) -> usize {
        PREFIX_LEN + self.nonce_len() + TAG_LEN
    }

    /// The name `cache.security.encryption` uses.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Aes256Gcm => "aes-256-gcm",
            Self::XChaCha20Poly1305 => "chacha20-poly1305",
        }
    }
}

/// What a sealed value belongs to: the parts of its record that a sealed value is bound to.
#[derive(Clone, Copy, Debug)]
pub struct Binding<'a> {
    /// Entry or blob.
    pub record_type: RecordType,
    /// Kind code (0 for blobs).
    pub kind: u8,
    /// The codec byte of the record, sealed bit included.
    pub codec: u8,
    /// The record's key (a chunk reference for blobs).
    pub key: &'a [u8],
    /// The record's name.
    pub name: &'a [u8],
    /// The entry's chunk references.
    pub refs: &'a [BlobRef],
    /// Decoded length of the value.
    pub raw_len: u32,
}

impl Binding<'_> {
    fn aad(&self, algorithm: Algorithm, id: KeyId) -> Vec<u8> {
        let mut aad = Vec::with_capacity(48 + self.key.len() + self.name.len() + 33 * self.refs.len());
        aad.extend_from_slice(b"inferno sealed value v1\0");
        aad.extend_from_slice(&[self.record_type as u8, self.kind, self.codec, algorithm as u8]);
        aad.extend_from_slice(&id.0);
        aad.extend_from_slice(&self.raw_len.to_le_bytes());
        for part in [self.key, self.name] {
            aad.extend_from_slice(&(part.len() as u32).to_le_bytes());
            aad.extend_from_slice(part);
        }
        aad.extend_from_slice(&(self.refs.len() as u32).to_le_bytes());
        for r in self.refs {
            aad.extend_from_slice(r);
        }
        aad
    }
}

/// Why a sealed value was not opened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Sealed under another key than the configured one(s).
    #[error("written with key {written}, the configured key is {}", configured.map_or_else(|| "none (cache.security.encryption = \"none\")".to_string(), |c| c.to_string()))]
    WrongKey {
        /// The key id stored with the value.
        written: KeyId,
        /// The configured key's id; `None` when encryption is off.
        configured: Option<KeyId>,
    },
    /// The key is right but the bytes or the record they sit in were changed.
    #[error("the sealed value failed authentication: it was changed, or moved from another record")]
    Forged,
    /// Too short or of an unknown algorithm.
    #[error("the sealed value is malformed: {0}")]
    Malformed(&'static str),
}

/// One key with its ciphers.
struct Keyed {
    key: CacheKey,
    aes: LessSafeKey,
    xchacha: XChaCha20Poly1305,
}

impl Keyed {
    fn new(key: CacheKey) -> Self {
        let aes = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key.aead).expect("32-byte AES-256 key"));
        let xchacha = XChaCha20Poly1305::new((&key.aead).into());
        Self { key, aes, xchacha }
    }
}

/// Seals values under the configured key and algorithm, and opens values sealed under it (or under the
/// extra keys a `rekey` in progress needs).
pub struct Sealer {
    algorithm: Algorithm,
    seals: bool,
    write: Keyed,
    read: Vec<Keyed>,
    rng: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").field("algorithm", &self.algorithm).field("key", &self.write.key).finish()
    }
}

impl Sealer {
    /// Seals with `key` and `algorithm`; opens what `key` sealed.
    pub fn new(algorithm: Algorithm, key: CacheKey) -> Self {
        Self { algorithm, seals: true, write: Keyed::new(key), read: Vec::new(), rng: SystemRandom::new() }
    }

    /// Opens only: new values are stored plain (`encryption = "none"` with a key file).
    pub fn read_only(mut self) -> Self {
        self.seals = false;
        self
    }

    /// Whether new values are sealed.
    pub fn seals(&self) -> bool {
        self.seals
    }

    /// Also opens values sealed with `key` (never seals with it).
    pub fn with_read_key(mut self, key: CacheKey) -> Self {
        if key.id() != self.write.key.id() && self.read.iter().all(|k| k.key.id() != key.id()) {
            self.read.push(Keyed::new(key));
        }
        self
    }

    /// Also opens what `other` opens.
    pub fn with_keys_of(self, other: &Sealer) -> Self {
        std::iter::once(&other.write).chain(&other.read).fold(self, |s, k| s.with_read_key(k.key.clone()))
    }

    /// The algorithm new values are sealed with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The id of the key new values are sealed with.
    pub fn id(&self) -> KeyId {
        self.write.key.id()
    }

    /// The key of the keyed hash that addresses dedup chunks.
    pub fn dedup_key(&self) -> &[u8; key::KEY_LEN] {
        self.write.key.dedup_key()
    }

    /// Appends `plaintext` sealed for `binding` to `out`. `binding.codec` must have the sealed bit.
    pub fn seal(&self, binding: &Binding<'_>, plaintext: &[u8], out: &mut Vec<u8>) {
        debug_assert!(is_sealed(binding.codec));
        let algorithm = self.algorithm;
        let id = self.write.key.id();
        let aad = binding.aad(algorithm, id);
        out.reserve(plaintext.len() + algorithm.overhead());
        out.push(algorithm as u8);
        out.extend_from_slice(&id.0);
        let mut nonce = [0u8; 24];
        let nonce = &mut nonce[..algorithm.nonce_len()];
        self.rng.fill(nonce).expect("the OS random generator failed");
        out.extend_from_slice(nonce);
        let start = out.len();
        out.extend_from_slice(plaintext);
        let tag: [u8; TAG_LEN] = match algorithm {
            Algorithm::Aes256Gcm => {
                let nonce = Nonce::try_assume_unique_for_key(nonce).expect("12-byte nonce");
                let tag = self
                    .write
                    .aes
                    .seal_in_place_separate_tag(nonce, Aad::from(&aad), &mut out[start..])
                    .expect("AES-GCM seals any length the format allows");
                tag.as_ref().try_into().expect("16-byte tag")
            }
            Algorithm::XChaCha20Poly1305 => {
                let tag = self
                    .write
                    .xchacha
                    .encrypt_in_place_detached(XNonce::from_slice(nonce), &aad, &mut out[start..])
                    .expect("XChaCha20-Poly1305 seals any length the format allows");
                tag.into()
            }
        };
        out.extend_from_slice(&tag);
    }

    /// Opens a value sealed for `binding`.
    pub fn open(&self, binding: &Binding<'_>, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        let (algorithm, written) = header(sealed)?;
        let keyed = std::iter::once(&self.write)
            .chain(&self.read)
            .find(|k| k.key.id() == written)
            .ok_or(OpenError::WrongKey { written, configured: Some(self.id()) })?;
        let aad = binding.aad(algorithm, written);
        let nonce = &sealed[PREFIX_LEN..PREFIX_LEN + algorithm.nonce_len()];
        let body = &sealed[PREFIX_LEN + algorithm.nonce_len()..];
        let (ciphertext, tag) = body.split_at(body.len() - TAG_LEN);
        let mut buf = ciphertext.to_vec();
        match algorithm {
            Algorithm::Aes256Gcm => {
                let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError::Forged)?;
                let tag = ring::aead::Tag::try_from(tag).map_err(|_| OpenError::Forged)?;
                keyed
                    .aes
                    .open_in_place_separate_tag(nonce, Aad::from(&aad), tag, &mut buf, 0..)
                    .map_err(|_| OpenError::Forged)?;
            }
            Algorithm::XChaCha20Poly1305 => keyed
                .xchacha
                .decrypt_in_place_detached(XNonce::from_slice(nonce), &aad, &mut buf, tag.into())
                .map_err(|_| OpenError::Forged)?,
        }
        Ok(buf)
    }
}

/// Why the configured key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The key file (configured, or named by an unfinished rekey) is unusable.
    #[error(transparent)]
    Key(#[from] KeyFileError),
    /// `rekey.json` exists but cannot be read, or cannot be written or removed.
    #[error("the rekey journal {dir}/rekey.json: {source}; fix that and run `inferno cache rekey` again")]
    Journal {
        /// The cache directory.
        dir: String,
        /// Why.
        source: std::io::Error,
    },
    /// A rekey to another key is unfinished.
    #[error(
        "a rekey to key {key_id} is unfinished: finish it first with `inferno cache rekey --new-key-file {file}`"
    )]
    Unfinished {
        /// The unfinished rekey's new key id.
        key_id: String,
        /// Its key file.
        file: String,
    },
}

/// The sealer `[cache.security]` asks for in the cache at `base_dir`, with the keys of an unfinished rekey
/// added for reading; `None` when no key is configured or needed.
pub fn from_config(security: &SecurityConfig, base_dir: &Path) -> Result<Option<Sealer>, SetupError> {
    let journal = journal::Journal::load(base_dir)
        .map_err(|source| SetupError::Journal { dir: base_dir.display().to_string(), source })?;
    let extra = match &journal {
        Some(journal) => journal.keys()?,
        None => Vec::new(),
    };
    let configured = if security.key_file.as_os_str().is_empty() {
        None
    } else {
        Some(CacheKey::load(&security.key_file)?)
    };
    let algorithm = match security.encryption {
        Encryption::ChaCha20Poly1305 => Algorithm::XChaCha20Poly1305,
        Encryption::Aes256Gcm | Encryption::None => Algorithm::Aes256Gcm,
    };
    let mut keys = configured.into_iter().chain(extra);
    let Some(first) = keys.next() else { return Ok(None) };
    let mut sealer = Sealer::new(algorithm, first);
    if security.encryption == Encryption::None || security.key_file.as_os_str().is_empty() {
        sealer = sealer.read_only();
    }
    Ok(Some(keys.fold(sealer, Sealer::with_read_key)))
}

/// The algorithm and key id of a sealed value, checking that it is long enough for them and a tag.
pub fn header(sealed: &[u8]) -> Result<(Algorithm, KeyId), OpenError> {
    let algorithm = Algorithm::from_u8(*sealed.first().ok_or(OpenError::Malformed("empty"))?)
        .ok_or(OpenError::Malformed("unknown algorithm"))?;
    if sealed.len() < algorithm.overhead() {
        return Err(OpenError::Malformed("shorter than its nonce and tag"));
    }
    let id = KeyId(sealed[1..PREFIX_LEN].try_into().expect("8 bytes"));
    Ok((algorithm, id))
}

/// Opens `sealed` with `sealer`, or says which key it needs when there is none.
pub fn open(sealer: Option<&Sealer>, binding: &Binding<'_>, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
    match sealer {
        Some(sealer) => sealer.open(binding, sealed),
        None => Err(OpenError::WrongKey { written: header(sealed)?.1, configured: None }),
    }
}

#[cfg(test)]
mod tests;
