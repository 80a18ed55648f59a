//! Value codecs: how a value's bytes are stored (raw, gzip, zstd, zstd with a trained dictionary, or
//! byte-shuffled zstd for KV states) and
//! read back.
//!
//! [`Codec`] turns `[cache.compression]` and `persistence.compression_threshold_kb` into one encode policy:
//! values shorter than the threshold, and values that compression does not make strictly smaller, are
//! stored raw. Given a zstd [`Dictionary`] ([`Codec::encode_with`]), every value is compressed with it
//! whatever its size (a dictionary pays off on small values), and still stored raw when that is not
//! smaller. [`Codec::decode`] reads every codec whatever the current config says, because a record keeps
//! the codec it was written with. Decoding treats its input as untrusted: it never panics and never produces
//! more than the raw length recorded with the value. Compression contexts live per thread and are reused,
//! since setting one up costs more than compressing a small response.
//!
//! Framing records and checksumming them is the disk tier's job, not this module's.

use std::cell::RefCell;
use std::fmt;

use thiserror::Error;

use crate::config::{CacheConfig, CompressionAlgorithm, CompressionConfig, KvCompression};

pub mod dictionary;
mod gzip;
#[cfg(test)]
mod tests;

pub use dictionary::{Dictionaries, Dictionary, DictionaryError};

/// The codec a stored value was written with.
///
/// The numbers are part of the on-disk format: they never change and are never reused for another codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CodecId {
    /// `0`: the value's bytes as they are.
    None = 0,
    /// `1`: one gzip member (RFC 1952) of DEFLATE data.
    Gzip = 1,
    /// `2`: one Zstandard frame (RFC 8878).
    Zstd = 2,
    /// `3`: the bytes shuffled by 2 (every even-offset byte, then every odd-offset byte), then one Zstandard
    /// frame. For KV states (`cache.kv.compression = "zstd"`): the high bytes of f16 values (sign, exponent)
    /// repeat far more than the low ones, and apart they compress better.
    ZstdShuffle2 = 3,
    /// `4`: one Zstandard frame compressed with a dictionary the cache trained; the frame header names the
    /// dictionary's id.
    ZstdDict = 4,
}

impl CodecId {
    /// The codec's name as `.inferno.toml` spells it.
    pub fn name(self) -> &'static str {
        match self {
            CodecId::None => "none",
            CodecId::Gzip => "gzip",
            CodecId::Zstd => "zstd",
            CodecId::ZstdShuffle2 => "zstd-shuffle2",
            CodecId::ZstdDict => "zstd-dict",
        }
    }
}

impl fmt::Display for CodecId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl TryFrom<u8> for CodecId {
    type Error = CodecError;

    fn try_from(byte: u8) -> Result<Self, CodecError> {
        match byte {
            0 => Ok(CodecId::None),
            1 => Ok(CodecId::Gzip),
            2 => Ok(CodecId::Zstd),
            3 => Ok(CodecId::ZstdShuffle2),
            4 => Ok(CodecId::ZstdDict),
            other => Err(CodecError::UnknownCodec(other)),
        }
    }
}

impl From<CompressionAlgorithm> for CodecId {
    fn from(algorithm: CompressionAlgorithm) -> Self {
        match algorithm {
            CompressionAlgorithm::None => CodecId::None,
            CompressionAlgorithm::Gzip => CodecId::Gzip,
            CompressionAlgorithm::Zstd => CodecId::Zstd,
        }
    }
}

/// Why stored bytes could not be decoded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The codec byte names no codec this build knows.
    #[error("unknown codec id {0}: the value was written by a newer inferno, or its record is corrupt")]
    UnknownCodec(u8),
    /// The value decodes to another length than the one recorded with it.
    #[error("{codec} value decodes to {found} bytes but its record says {expected}; the record is corrupt")]
    LengthMismatch {
        /// The codec the value was stored with.
        codec: CodecId,
        /// The raw length recorded with the value.
        expected: u64,
        /// The length the stored bytes decode (or claim to decode) to.
        found: u64,
    },
    /// The value decodes to more bytes than the recorded raw length; decoding stopped there.
    #[error("{codec} value decodes to more than the {expected} bytes its record says; the record is corrupt")]
    TooLong {
        /// The codec the value was stored with.
        codec: CodecId,
        /// The raw length recorded with the value.
        expected: u64,
    },
    /// The value was compressed with a dictionary this cache does not hold (deleted, damaged, or never
    /// loaded by this process).
    #[error("the value needs zstd dictionary {0}, which this cache does not hold")]
    MissingDictionary(u32),
    /// The stored bytes are not valid data for their codec.
    #[error("stored {codec} data is corrupt: {reason}")]
    Corrupt {
        /// The codec the value was stored with.
        codec: CodecId,
        /// What the decoder found wrong.
        reason: String,
    },
}

/// The encode policy: which codec and level new values get, and below which size they stay raw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Codec {
    id: CodecId,
    level: u32,
    threshold_bytes: u64,
}

impl Codec {
    /// The policy for `config`; values shorter than `threshold_bytes` are stored raw.
    ///
    /// Compression is on when `config.enabled` is true and the algorithm is not `none`. The level is
    /// clamped into the algorithm's range (1-9 for gzip, 1-21 for zstd).
    pub fn new(config: &CompressionConfig, threshold_bytes: u64) -> Codec {
        let id = if config.enabled { CodecId::from(config.algorithm) } else { CodecId::None };
        let level = match config.algorithm.level_range() {
            Some(range) => config.level.clamp(*range.start(), *range.end()),
            None => 0,
        };
        Codec { id, level, threshold_bytes }
    }

    /// The policy for KV states (`cache.kv.compression`): raw, or byte-shuffled zstd at level 1 (the fastest
    /// level; KV data gains little from higher ones). No size threshold: states are large.
    pub fn for_kv_states(compression: KvCompression) -> Codec {
        match compression {
            KvCompression::None => Codec { id: CodecId::None, level: 0, threshold_bytes: 0 },
            KvCompression::Zstd => Codec { id: CodecId::ZstdShuffle2, level: 1, threshold_bytes: 0 },
        }
    }

    /// The policy `[cache]` asks for: `compression` with `persistence.compression_threshold_kb`.
    pub fn from_cache_config(config: &CacheConfig) -> Codec {
        Codec::new(&config.compression, config.persistence.compression_threshold_kb.bytes())
    }

    /// The codec new values are compressed with (`None` when compression is off).
    pub fn id(&self) -> CodecId {
        self.id
    }

    /// Encodes `raw`, returning the codec used and the bytes to store.
    ///
    /// The stored bytes are `raw` itself when the value stays raw (below the threshold, compression off, or
    /// not strictly smaller once compressed), and otherwise live in `scratch`, which is overwritten. Reusing
    /// one `scratch` across calls saves an allocation per value.
    pub fn encode<'a>(&self, raw: &'a [u8], scratch: &'a mut Vec<u8>) -> (CodecId, &'a [u8]) {
        if (raw.len() as u64) < self.threshold_bytes {
            return (CodecId::None, raw);
        }
        let compressed = match self.id {
            // The policy never names the dictionary codec: that takes a dictionary (`encode_with`).
            CodecId::None | CodecId::ZstdDict => false,
            CodecId::Gzip => gzip::compress(raw, self.level, scratch),
            CodecId::Zstd => zstd_compress(raw, self.level, scratch),
            CodecId::ZstdShuffle2 => zstd_compress(&shuffle2(raw), self.level, scratch),
        };
        if compressed && scratch.len() < raw.len() {
            (self.id, scratch.as_slice())
        } else {
            (CodecId::None, raw)
        }
    }

    /// Encodes `raw` as [`encode`](Self::encode) does, or, given a dictionary while the policy is zstd, with
    /// that dictionary and whatever the threshold ([`CodecId::ZstdDict`]); raw when that is not smaller.
    pub fn encode_with<'a>(
        &self,
        raw: &'a [u8],
        scratch: &'a mut Vec<u8>,
        dictionary: Option<&Dictionary>,
    ) -> (CodecId, &'a [u8]) {
        match dictionary {
            Some(dictionary) if self.id == CodecId::Zstd => {
                if zstd_dict_compress(raw, dictionary, scratch) && scratch.len() < raw.len() {
                    (CodecId::ZstdDict, scratch.as_slice())
                } else {
                    (CodecId::None, raw)
                }
            }
            _ => self.encode(raw, scratch),
        }
    }

    /// Whether [`encode_with`](Self::encode_with) uses a dictionary it is given (the policy is zstd).
    pub fn takes_dictionary(&self) -> bool {
        self.id == CodecId::Zstd
    }

    /// The compression level of the policy (0 when compression is off).
    pub fn level(&self) -> u32 {
        self.level
    }

    /// Decodes a value stored with codec `id` whose raw form is `raw_len` bytes long.
    ///
    /// Returns `stored` itself for [`CodecId::None`], otherwise the decoded bytes in `out` (overwritten).
    /// Any input, however malformed, gives an error rather than a panic. At most `raw_len` bytes are ever
    /// produced, so `raw_len` bounds the memory a decompression bomb can claim; it should come from a
    /// checksummed record header.
    pub fn decode<'a>(
        id: CodecId,
        stored: &'a [u8],
        raw_len: usize,
        out: &'a mut Vec<u8>,
    ) -> Result<&'a [u8], CodecError> {
        Self::decode_with(id, stored, raw_len, out, &Dictionaries::default())
    }

    /// [`decode`](Self::decode), reading [`CodecId::ZstdDict`] values with the dictionary of `dictionaries`
    /// their frame names ([`CodecError::MissingDictionary`] when it is not there).
    pub fn decode_with<'a>(
        id: CodecId,
        stored: &'a [u8],
        raw_len: usize,
        out: &'a mut Vec<u8>,
        dictionaries: &Dictionaries,
    ) -> Result<&'a [u8], CodecError> {
        match id {
            CodecId::None if stored.len() == raw_len => Ok(stored),
            CodecId::None => Err(CodecError::LengthMismatch {
                codec: id,
                expected: raw_len as u64,
                found: stored.len() as u64,
            }),
            CodecId::Gzip => {
                gzip::decompress(stored, raw_len, out)?;
                Ok(out.as_slice())
            }
            CodecId::Zstd => {
                zstd_decompress(stored, raw_len, out, None)?;
                Ok(out.as_slice())
            }
            CodecId::ZstdDict => {
                let wanted = dictionary::frame_dictionary_id(stored).ok_or_else(|| CodecError::Corrupt {
                    codec: id,
                    reason: "the frame names no dictionary".into(),
                })?;
                let dictionary = dictionaries.get(wanted).ok_or(CodecError::MissingDictionary(wanted))?;
                zstd_decompress(stored, raw_len, out, Some(dictionary))?;
                Ok(out.as_slice())
            }
            CodecId::ZstdShuffle2 => {
                let mut shuffled = Vec::new();
                zstd_decompress(stored, raw_len, &mut shuffled, None)?;
                *out = unshuffle2(&shuffled);
                Ok(out.as_slice())
            }
        }
    }
}

thread_local! {
    static ZSTD_COMPRESSOR: RefCell<Option<(u32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
    static ZSTD_DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
    static ZSTD_DICT_COMPRESSOR: RefCell<Option<zstd::zstd_safe::CCtx<'static>>> =
        const { RefCell::new(None) };
    static ZSTD_DICT_DECOMPRESSOR: RefCell<Option<zstd::zstd_safe::DCtx<'static>>> =
        const { RefCell::new(None) };
}

/// Compresses `raw` into `out` as one zstd frame with `dictionary` (its id and the content size in the frame
/// header, no checksum), at the level the dictionary was prepared for; false on failure.
fn zstd_dict_compress(raw: &[u8], dictionary: &Dictionary, out: &mut Vec<u8>) -> bool {
    ZSTD_DICT_COMPRESSOR.with_borrow_mut(|slot| {
        if slot.is_none() {
            *slot = zstd::zstd_safe::CCtx::try_create();
        }
        let Some(context) = slot.as_mut() else { return false };
        out.clear();
        out.reserve(zstd::zstd_safe::compress_bound(raw.len()));
        context.compress_using_cdict(out, raw, dictionary.for_compression()).is_ok()
    })
}

/// Compresses `raw` into `out` as one zstd frame (content size in the header, no checksum); false on failure.
fn zstd_compress(raw: &[u8], level: u32, out: &mut Vec<u8>) -> bool {
    ZSTD_COMPRESSOR.with_borrow_mut(|slot| {
        match slot {
            Some((current, compressor)) if *current != level => {
                if compressor.set_compression_level(level as i32).is_err() {
                    return false;
                }
                *current = level;
            }
            Some(_) => {}
            None => match zstd::bulk::Compressor::new(level as i32) {
                Ok(compressor) => *slot = Some((level, compressor)),
                Err(_) => return false,
            },
        }
        let Some((_, compressor)) = slot.as_mut() else { return false };
        out.clear();
        out.reserve(zstd::zstd_safe::compress_bound(raw.len()));
        compressor.compress_to_buffer(raw, out).is_ok()
    })
}

/// `bytes` with every even-offset byte first, then every odd-offset byte (for an odd length, the even half
/// is one longer).
pub fn shuffle2(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    out.extend(bytes.iter().step_by(2));
    out.extend(bytes.iter().skip(1).step_by(2));
    out
}

/// The inverse of [`shuffle2`].
pub fn unshuffle2(shuffled: &[u8]) -> Vec<u8> {
    let (even, odd) = shuffled.split_at(shuffled.len().div_ceil(2));
    let mut out = Vec::with_capacity(shuffled.len());
    for (i, e) in even.iter().enumerate() {
        out.push(*e);
        if let Some(o) = odd.get(i) {
            out.push(*o);
        }
    }
    out
}

/// Decompresses one zstd frame (with `dictionary` when given) into exactly `raw_len` bytes of `out`.
fn zstd_decompress(
    stored: &[u8],
    raw_len: usize,
    out: &mut Vec<u8>,
    dictionary: Option<&Dictionary>,
) -> Result<(), CodecError> {
    let codec = if dictionary.is_some() { CodecId::ZstdDict } else { CodecId::Zstd };
    let corrupt = |reason: String| CodecError::Corrupt { codec, reason };
    match zstd::zstd_safe::get_frame_content_size(stored) {
        Ok(Some(size)) if size != raw_len as u64 => {
            return Err(CodecError::LengthMismatch { codec, expected: raw_len as u64, found: size });
        }
        Ok(_) => {}
        Err(_) => return Err(corrupt("no valid zstd frame header".to_string())),
    }
    out.clear();
    out.resize(raw_len, 0);
    let written = match dictionary {
        Some(dictionary) => ZSTD_DICT_DECOMPRESSOR.with_borrow_mut(|slot| {
            if slot.is_none() {
                *slot = zstd::zstd_safe::DCtx::try_create();
            }
            let Some(context) = slot.as_mut() else {
                return Err(corrupt("no zstd decompression context".to_string()));
            };
            // As below: the destination is exactly `raw_len` long.
            context
                .decompress_using_ddict(out.as_mut_slice(), stored, dictionary.for_decompression())
                .map_err(|code| corrupt(zstd::zstd_safe::get_error_name(code).to_string()))
        })?,
        None => zstd_plain_decompress(stored, out, &corrupt)?,
    };
    if written != raw_len {
        out.clear();
        return Err(CodecError::LengthMismatch { codec, expected: raw_len as u64, found: written as u64 });
    }
    Ok(())
}

/// Decompresses one zstd frame without a dictionary into `out` (already `raw_len` long); the bytes written.
fn zstd_plain_decompress(
    stored: &[u8],
    out: &mut [u8],
    corrupt: &dyn Fn(String) -> CodecError,
) -> Result<usize, CodecError> {
    ZSTD_DECOMPRESSOR.with_borrow_mut(|slot| {
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new().map_err(|e| corrupt(e.to_string()))?);
        }
        let Some(decompressor) = slot.as_mut() else {
            return Err(corrupt("no zstd decompression context".to_string()));
        };
        // The destination is exactly `raw_len` long, so a longer value fails here instead of growing.
        // zstd reports a value longer than that as "Destination buffer is too small".
        decompressor.decompress_to_buffer(stored, out).map_err(|e| corrupt(e.to_string()))
    })
}
