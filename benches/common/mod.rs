//! Data shared by the benches: realistic chat-completion JSON of a given size, generated deterministically.
//!
//! Each bench includes this file with `mod common;` and uses part of it; [`server`] runs the real `inferno serve`
//! binary for the HTTP benches.
#![allow(dead_code)]

pub mod server;

/// Size of the values the benches store.
pub const VALUE_LEN: usize = 2048;

pub const WORDS: &[&str] = &[
    "the",
    "cache",
    "returns",
    "a",
    "response",
    "when",
    "model",
    "is",
    "loaded",
    "from",
    "disk",
    "and",
    "each",
    "request",
    "key",
    "hash",
    "memory",
    "tier",
    "value",
    "entry",
    "eviction",
    "policy",
    "least",
    "recently",
    "used",
    "size",
    "bytes",
    "limit",
    "token",
    "prompt",
    "completion",
    "stream",
    "json",
    "field",
    "error",
    "you",
    "can",
    "use",
    "this",
    "to",
    "with",
    "for",
    "of",
    "in",
    "on",
    "by",
    "that",
    "it",
    "an",
    "or",
    "quantized",
    "weights",
    "inference",
    "latency",
    "throughput",
    "batch",
    "context",
    "window",
    "layer",
    "**important**",
    "`config.toml`",
    "`max_entries`",
    "*note*",
    "example",
    "function",
    "returns",
    "result",
];

/// A small deterministic generator (splitmix64), so every run builds the same data.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn hex(&mut self, digits: usize) -> String {
        let mut text = String::with_capacity(digits + 16);
        while text.len() < digits {
            text.push_str(&format!("{:016x}", self.next()));
        }
        text.truncate(digits);
        text
    }

    pub fn words(&mut self, count: usize) -> String {
        (0..count).map(|_| WORDS[self.below(WORDS.len())]).collect::<Vec<_>>().join(" ")
    }
}

/// Markdown content of at least `2 * len` bytes, already JSON-escaped (newlines as `\n`; the words hold no
/// quotes).
fn markdown(rng: &mut Rng, len: usize) -> String {
    let mut text = format!("## {}\\n\\n", rng.words(4));
    while text.len() < 2 * len {
        match rng.below(4) {
            0 => text.push_str(&format!("- **{}**: {}\\n", rng.words(2), rng.words(9))),
            1 => text.push_str(&format!(
                "```rust\\nlet {} = cache.get(&key)?;\\n```\\n",
                WORDS[rng.below(WORDS.len())].trim_matches(|c: char| !c.is_alphabetic())
            )),
            _ => text.push_str(&format!("{}.\\n\\n", rng.words(25))),
        }
    }
    text
}

/// One chat-completion response of exactly [`VALUE_LEN`] bytes.
pub fn response(rng: &mut Rng, index: usize) -> Vec<u8> {
    response_of_len(rng, index, VALUE_LEN)
}

/// One chat-completion response of exactly `len` bytes (at least about 400).
pub fn response_of_len(rng: &mut Rng, index: usize, len: usize) -> Vec<u8> {
    let prompt_tokens = 20 + rng.below(400);
    let prefix = format!(
        r#"{{"id":"chatcmpl-{}","object":"chat.completion","created":{},"model":"llama-3.1-8b-instruct-q4_k_m","choices":[{{"index":0,"message":{{"role":"assistant","content":""#,
        rng.hex(24),
        1_732_500_000 + index
    );
    let suffix = format!(
        r#""}},"logprobs":null,"finish_reason":"stop"}}],"usage":{{"prompt_tokens":{prompt_tokens},"completion_tokens":{},"total_tokens":{}}},"system_fingerprint":"fp_{}"}}"#,
        400 + index % 97,
        prompt_tokens + 400 + index % 97,
        rng.hex(10)
    );
    let mut content = markdown(rng, len);
    content.truncate(len - prefix.len() - suffix.len());
    if content.ends_with('\\') {
        content.pop();
        content.push('.');
    }
    let json = format!("{prefix}{content}{suffix}").into_bytes();
    assert_eq!(json.len(), len);
    json
}

/// A stored response record of exactly [`VALUE_LEN`] bytes, as the response cache stores one and as
/// `inferno cache import` reads one: `{"model", "request", "response"}`, with a chat request of 6-30 words and
/// the response filling the rest.
pub fn record(rng: &mut Rng, index: usize) -> Vec<u8> {
    let model = "llama-3.1-8b-instruct-q4_k_m";
    let words = 6 + rng.below(25);
    let head = format!(
        r#"{{"model":"{model}","request":{{"max_tokens":512,"messages":[{{"content":"{}","role":"user"}}],"model":"{model}","temperature":0.7}},"response":"#,
        rng.words(words)
    );
    let response = response_of_len(rng, index, VALUE_LEN - head.len() - 1);
    let mut out = head.into_bytes();
    out.extend_from_slice(&response);
    out.push(b'}');
    assert_eq!(out.len(), VALUE_LEN);
    out
}

/// `record` answered again: the same request and response body under a new envelope (`id`, `created`,
/// `system_fingerprint`), as a repeated identical answer looks. Same length; deduplicates to the same payload.
pub fn with_new_envelope(record: &[u8], rng: &mut Rng, index: usize) -> Vec<u8> {
    let mut out = record.to_vec();
    let mut replace = |marker: &str, new: &str| {
        let at = find(&out, marker.as_bytes()).expect("marker present") + marker.len();
        out[at..at + new.len()].copy_from_slice(new.as_bytes());
    };
    replace(r#"{"id":"chatcmpl-"#, &rng.hex(24));
    replace(r#""created":"#, &(1_732_500_000 + index).to_string());
    replace(r#""system_fingerprint":"fp_"#, &rng.hex(10));
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Whether the bench named `name` was selected by the filter arguments (criterion's filters are regexes;
/// a substring match is close enough to decide whether to build a bench's data at all).
pub fn selected(name: &str) -> bool {
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()) || f.contains(name))
}

/// The cache the disk benches measure: `kind` in `dir`, zstd-3, dedup as given.
pub fn zstd_cache_config(
    dir: &std::path::Path,
    kind: inferno::config::CacheType,
    dedup: bool,
) -> inferno::config::CacheConfig {
    let mut config = inferno::config::Config::default().cache;
    config.base_dir = dir.to_path_buf();
    config.kind = kind;
    config.compression.enabled = true;
    config.compression.algorithm = inferno::config::CompressionAlgorithm::Zstd;
    config.compression.level = 3;
    config.deduplication.enabled = dedup;
    config
}

/// `n` stored records under 64-hex-digit keys, and the same keys again in shuffled order (the lookups).
pub fn keyed_records(rng: &mut Rng, n: usize) -> (Vec<String>, Vec<Vec<u8>>, Vec<String>) {
    let keys: Vec<String> = (0..n).map(|_| rng.hex(64)).collect();
    let values: Vec<Vec<u8>> = (0..n).map(|i| record(rng, i)).collect();
    let mut lookups = keys.clone();
    for i in (1..lookups.len()).rev() {
        lookups.swap(i, rng.below(i + 1));
    }
    (keys, values, lookups)
}
