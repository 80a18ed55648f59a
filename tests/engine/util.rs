//! Helpers shared by the engine tests: cache configurations for every type, codec and dedup setting, a seeded
//! random number generator (so a failing seed can be replayed), value generators that make both noise and
//! compressible text, response records shaped like `inferno cache import` lines, and a reader of the record
//! framing documented in docs/format.md that the tests use to locate records independently of the code.

use std::path::{Path, PathBuf};

use inferno::cache::Kind;
use inferno::config::units::Size;
use inferno::config::{CacheConfig, CacheType, CompressionAlgorithm, Config};
use serde_json::{Value, json};

/// A cache configuration in `dir` with the given type, codec and dedup switch.
///
/// Dedup chunks average 256 bytes (the smallest allowed) so that values of a few KiB are cut into many
/// chunks; the write buffer is 4 KiB so that unflushed records regularly leave it for the segment file.
pub fn config(dir: &Path, kind: CacheType, algorithm: CompressionAlgorithm, dedup: bool) -> CacheConfig {
    let mut config = Config::default().cache;
    config.base_dir = dir.to_path_buf();
    config.kind = kind;
    config.compression.enabled = true;
    config.compression.algorithm = algorithm;
    config.compression.level = match algorithm {
        CompressionAlgorithm::Gzip => 6,
        _ => 3,
    };
    config.deduplication.enabled = dedup;
    config.deduplication.chunk_size = Size(256);
    config.persistence.write_buffer_size = Size(4096);
    config
}

/// SplitMix64: small, fast, and good enough to pick test inputs from a printed seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A number in `range`.
    pub fn range(&mut self, range: std::ops::Range<u64>) -> u64 {
        range.start + self.below(range.end - range.start)
    }

    /// True with probability `percent` / 100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// How a generated value looks.
#[derive(Clone, Copy, Debug)]
pub enum Style {
    /// Random bytes: incompressible, so every codec falls back to storing them raw.
    Noise,
    /// Words from a small vocabulary: compresses well and chunks unevenly.
    Text,
    /// One byte repeated: compresses to almost nothing.
    Constant,
}

const WORDS: [&str; 16] = [
    "the",
    "cache",
    "model",
    "token",
    "layer",
    "weight",
    "tensor",
    "prompt",
    "answer",
    "stream",
    "chunk",
    "segment",
    "record",
    "hint",
    "quantised",
    "inference",
];

/// A value of exactly `len` bytes in `style`, fully determined by `seed`.
pub fn make_value(len: usize, style: Style, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(len + 16);
    match style {
        Style::Noise => {
            while out.len() < len {
                out.extend_from_slice(&rng.next_u64().to_le_bytes());
            }
        }
        Style::Text => {
            while out.len() < len {
                out.extend_from_slice(WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes());
                out.push(if rng.percent(10) { b'\n' } else { b' ' });
            }
        }
        Style::Constant => out.resize(len, seed as u8),
    }
    out.truncate(len);
    out
}

/// A response record as the cache stores it (`{"model", "request", "response"}`), with a chat completion
/// whose per-key envelope is `id`/`created` and whose shared payload is `choices` and `usage`.
pub fn response_record(model: &str, prompt: &str, id: &str, created: u64, content: &str) -> Value {
    json!({
        "model": model,
        "request": {"messages": [{"role": "user", "content": prompt}], "temperature": 0},
        "response": {
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop", "logprobs": null}],
            "usage": {"prompt_tokens": prompt.len() / 4, "completion_tokens": content.len() / 4}
        }
    })
}

/// The kinds for strategies and sweeps. The `semantic` kind is left out: its entries are stored only when
/// `cache.semantic.enabled`, and never in the memory tier (docs/semantic-cache.md).
pub const KINDS: [Kind; 4] = [Kind::Response, Kind::Model, Kind::Metadata, Kind::Kv];

/// The `data/` folder of a cache directory.
pub fn data_dir(base: &Path) -> PathBuf {
    base.join("data")
}

/// Files in `dir` whose names end with `suffix`, sorted by name.
pub fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().ends_with(suffix)))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// One record found by [`read_records`], decoded by this test's own reading of docs/format.md.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawRecord {
    /// Segment id (from the file name).
    pub segment: u32,
    /// Offset of the record in the segment file.
    pub offset: u64,
    /// Length of the whole record (64-byte header and body).
    pub len: u64,
    /// 1 entry, 2 blob, 3 tombstone.
    pub record_type: u8,
    /// Kind code.
    pub kind: u8,
    /// Codec id of the value bytes.
    pub codec: u8,
    /// Sequence number.
    pub seq: u64,
    /// Key bytes (a 33-byte chunk reference for blobs).
    pub key: Vec<u8>,
    /// Chunk references.
    pub refs: Vec<Vec<u8>>,
    /// Stored value length.
    pub value_len: u64,
    /// Decoded value length.
    pub raw_len: u64,
    /// Decoded payload length.
    pub payload_len: u64,
}

fn le(bytes: &[u8], at: usize, len: usize) -> u64 {
    bytes[at..at + len].iter().rev().fold(0, |acc, b| (acc << 8) | *b as u64)
}

/// Every record of every segment in `data`, read back to back from offset 16 as docs/format.md lays them
/// out. It stops at the first thing that is not a whole record, which with `strict` fails the test.
pub fn read_records(data: &Path, strict: bool) -> Vec<RawRecord> {
    let mut out = Vec::new();
    for path in files_ending(data, ".log") {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let segment: u32 = name["seg-".len()..name.len() - ".log".len()].parse().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"INFSEG\r\n", "{name}: segment magic");
        assert_eq!(le(&bytes, 10, 4), segment as u64, "{name}: segment id in the header");
        let mut pos = 16;
        while pos + 64 <= bytes.len() && &bytes[pos..pos + 4] == b"IREC" {
            let h = &bytes[pos..pos + 64];
            let (key_len, name_len, refs) =
                (le(h, 32, 2) as usize, le(h, 34, 2) as usize, le(h, 36, 2) as usize);
            let value_len = le(h, 40, 4);
            let len = 64 + key_len + name_len + 33 * refs + value_len as usize;
            if pos + len > bytes.len() {
                break;
            }
            let body = &bytes[pos + 64..pos + len];
            let refs_at = key_len + name_len;
            out.push(RawRecord {
                segment,
                offset: pos as u64,
                len: len as u64,
                record_type: h[4],
                kind: h[5],
                codec: h[6],
                seq: le(h, 8, 8),
                key: body[..key_len].to_vec(),
                refs: (0..refs).map(|i| body[refs_at + 33 * i..refs_at + 33 * (i + 1)].to_vec()).collect(),
                value_len,
                raw_len: le(h, 44, 4),
                payload_len: le(h, 48, 8),
            });
            pos += len;
        }
        if strict {
            assert_eq!(pos, bytes.len(), "{name}: bytes after the last record");
        }
    }
    out
}
