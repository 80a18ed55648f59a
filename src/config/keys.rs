//! The catalogue of configuration keys: name, kind, env var alias, one-line doc, and whether the behaviour
//! behind it exists yet.
//!
//! `layers.rs` uses it to reject unknown keys (with a "did you mean"), to turn env and flag text into typed
//! TOML values, and `cache status` uses it to say which settings are stored but not active yet.
//! A test keeps it in step with the structs in `schema.rs`.

use super::units::{BYTE, DAY, GB, HOUR, KB, MINUTE, SECOND};

/// How a key's text (from an env var or a flag) becomes a TOML value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
    Bool,
    /// A whole number.
    Integer,
    /// A number that may have a fraction.
    Float,
    /// A word from a fixed set, or free text.
    Text,
    /// A filesystem path; relative paths are resolved against the file that sets them, or the cwd.
    Path,
    /// A size; a bare number is in the given number of bytes.
    Size(u64),
    /// A duration; a bare number is in the given number of seconds.
    Duration(u64),
    /// A list of words, comma-separated in env vars and flags.
    List,
}

/// One configuration key.
#[derive(Clone, Copy, Debug)]
pub struct Key {
    /// Dotted path, e.g. `cache.compression.level`.
    pub path: &'static str,
    /// How text becomes a value.
    pub kind: Kind,
    /// A short env var that sets it, besides the general `INFERNO_CACHE__...` form.
    pub env_alias: Option<&'static str>,
    /// One line for `status`, docs and the example file.
    pub doc: &'static str,
    /// False while the behaviour behind the key is not built yet: the value is stored and validated only.
    pub active: bool,
    /// Set for a key inferno accepts (the guide writes it) but decided not to act on: why it has no effect.
    pub no_effect: Option<&'static str>,
}

const fn key(path: &'static str, kind: Kind, doc: &'static str) -> Key {
    Key { path, kind, env_alias: None, doc, active: false, no_effect: None }
}

/// Marks a key whose behaviour exists.
const fn on(mut key: Key) -> Key {
    key.active = true;
    key
}

/// Marks a key that is accepted and validated but has no effect, with the reason `status` and the docs give.
const fn inert(mut key: Key, why: &'static str) -> Key {
    key.no_effect = Some(why);
    key
}

const fn alias(mut key: Key, env: &'static str) -> Key {
    key.env_alias = Some(env);
    key
}

/// Every key, in the order `status` and the docs list them.
pub const KEYS: &[Key] = &[
    alias(
        on(key("cache.enabled", Kind::Bool, "master switch for every cache kind")),
        "INFERNO_CACHE_ENABLED",
    ),
    on(key("cache.type", Kind::Text, "memory | disk | persistent (RAM in front of disk)")),
    alias(
        on(key("cache.base_dir", Kind::Path, "directory of the disk tier, backups and lock file")),
        "INFERNO_CACHE_DIR",
    ),
    on(key("cache.max_size_gb", Kind::Size(GB), "upper bound for cached bytes on disk")),
    on(key(
        "cache.default_ttl_hours",
        Kind::Duration(HOUR),
        "time to live for entries whose kind sets none; 0 = no expiry",
    )),
    on(key("cache.compression.enabled", Kind::Bool, "compress values; false stores them raw")),
    alias(on(key("cache.compression.algorithm", Kind::Text, "none | gzip | zstd")), "INFERNO_CACHE_COMPRESS"),
    on(key("cache.compression.level", Kind::Integer, "1-9 for gzip, 1-21 for zstd")),
    on(key(
        "cache.compression.dictionary",
        Kind::Bool,
        "zstd only: train a dictionary on cached responses and compress them with it",
    )),
    on(key(
        "cache.compression.dictionary_samples",
        Kind::Integer,
        "response entries before the first dictionary; a retrain is tried every 10x as many puts",
    )),
    on(key("cache.deduplication.enabled", Kind::Bool, "store identical values once")),
    on(key("cache.deduplication.algorithm", Kind::Text, "content hash: blake3 | xxhash")),
    on(key(
        "cache.deduplication.chunk_size",
        Kind::Size(BYTE),
        "average chunk size for large values (256 B - 4 MiB)",
    )),
    on(key("cache.deduplication.enable_parallel", Kind::Bool, "hash large values on several threads")),
    on(key("cache.deduplication.seed", Kind::Integer, "seed for xxhash")),
    on(key("cache.deduplication.variant", Kind::Text, "xxhash function: xxh32 | xxh64 | xxh3")),
    on(key(
        "cache.model.enabled",
        Kind::Bool,
        "keep loaded models between requests (inferno serve) and record warmed models",
    )),
    on(key("cache.model.max_models", Kind::Integer, "most model instances loaded at once")),
    on(key("cache.model.memory_limit_gb", Kind::Size(GB), "most memory loaded models may take")),
    on(key(
        "cache.model.preload_strategy",
        Kind::Text,
        "which model is evicted first: lru | mru | frequency",
    )),
    on(key("cache.model.unload_policy", Kind::Text, "time_based | size_based | manual")),
    on(key(
        "cache.model.keep_alive_minutes",
        Kind::Duration(MINUTE),
        "how long an idle model stays loaded when unload_policy is time_based",
    )),
    on(key("cache.response.enabled", Kind::Bool, "cache inference responses")),
    on(key("cache.response.max_entries", Kind::Integer, "most responses in the memory tier")),
    on(key("cache.response.max_size_gb", Kind::Size(GB), "most bytes of responses in the memory tier")),
    on(key(
        "cache.response.ttl_hours",
        Kind::Duration(HOUR),
        "time to live of a cached response; 0 = no expiry",
    )),
    on(key(
        "cache.response.enable_streaming_cache",
        Kind::Bool,
        "cache streamed responses and replay them as a stream",
    )),
    on(key("cache.response.hash_algorithm", Kind::Text, "hash for response keys: blake3 | xxhash")),
    on(key(
        "cache.response.deterministic_only",
        Kind::Bool,
        "cache only requests with temperature 0 or a seed; false caches every request",
    )),
    on(key(
        "cache.semantic.enabled",
        Kind::Bool,
        "answer an exact miss from a near-duplicate request of the same scope (docs/semantic-cache.md)",
    )),
    on(key(
        "cache.semantic.model",
        Kind::Text,
        "ONNX text embedding model (name in models.dir or path) with its tokenizer.json",
    )),
    on(key(
        "cache.semantic.threshold",
        Kind::Float,
        "cosine similarity a near-duplicate must reach, in (0, 1]",
    )),
    on(key(
        "cache.semantic.min_threshold",
        Kind::Float,
        "lowest threshold a request's cache.semantic_threshold may ask for",
    )),
    on(key(
        "cache.semantic.max_entries",
        Kind::Integer,
        "most vectors in the semantic index; oldest go first",
    )),
    on(key(
        "cache.semantic.max_prompt_tokens",
        Kind::Integer,
        "longer last user messages are matched exactly only (1-512)",
    )),
    on(key("cache.metadata.enabled", Kind::Bool, "cache model metadata")),
    on(key(
        "cache.metadata.ttl_hours",
        Kind::Duration(HOUR),
        "time to live of model metadata; 0 = no expiry",
    )),
    on(key("cache.metadata.auto_refresh", Kind::Bool, "re-read metadata when the model file changes")),
    on(key("cache.metadata.include_performance_stats", Kind::Bool, "add measured load time and tokens/s")),
    on(key("cache.kv.enabled", Kind::Bool, "save and restore prompt-prefix KV states of GGUF models")),
    on(key("cache.kv.block_tokens", Kind::Integer, "prompt tokens per block of the prefix index (16-8192)")),
    on(key(
        "cache.kv.min_prefix_tokens",
        Kind::Integer,
        "prompts shorter than this are neither looked up nor saved",
    )),
    on(key(
        "cache.kv.max_size_gb",
        Kind::Size(GB),
        "most bytes of states on disk, counted within cache.max_size_gb; least recently used go first",
    )),
    on(key("cache.kv.memory_limit_gb", Kind::Size(GB), "most bytes of hot states held in RAM; 0 = none")),
    on(key("cache.kv.compression", Kind::Text, "none | zstd (byte-shuffled, level 1)")),
    on(key(
        "cache.persistence.sync_interval_seconds",
        Kind::Duration(SECOND),
        "longest a write waits before it is durable",
    )),
    on(key(
        "cache.persistence.compression_threshold_kb",
        Kind::Size(KB),
        "values smaller than this are stored raw",
    )),
    on(key("cache.persistence.enable_checksums", Kind::Bool, "store and verify a checksum with every value")),
    on(key("cache.persistence.backup_copies", Kind::Integer, "backups kept by `cache backup`")),
    on(key(
        "cache.persistence.write_buffer_size",
        Kind::Size(BYTE),
        "bytes buffered before a write reaches the file",
    )),
    inert(
        key("cache.persistence.read_ahead_size", Kind::Size(BYTE), "bytes read ahead of a sequential reader"),
        "sealed segments are memory-mapped and the kernel reads ahead of sequential scans itself \
         (/sys/block/*/queue/read_ahead_kb); inferno passes no read-ahead size of its own",
    ),
    on(key("cache.cleanup.auto_cleanup", Kind::Bool, "run cleanup periodically")),
    on(key("cache.cleanup.cleanup_interval_hours", Kind::Duration(HOUR), "time between periodic cleanups")),
    on(key(
        "cache.cleanup.size_threshold_percent",
        Kind::Integer,
        "disk use (% of max_size_gb) that triggers cleanup",
    )),
    on(key(
        "cache.cleanup.age_threshold_days",
        Kind::Duration(DAY),
        "entries older than this are removed by cleanup",
    )),
    on(key("cache.alerts.enabled", Kind::Bool, "evaluate the alert rules in inferno serve and send alerts")),
    on(key("cache.alerts.channels", Kind::List, "where alerts go: email, slack, webhook")),
    on(key(
        "cache.alerts.evaluation_interval_seconds",
        Kind::Duration(SECOND),
        "time between two evaluations of the alert rules",
    )),
    on(key("cache.alerts.window_minutes", Kind::Duration(MINUTE), "sliding window the alert rules look at")),
    on(key(
        "cache.alerts.min_samples",
        Kind::Integer,
        "fewest requests in the window before request-based rules judge",
    )),
    on(key(
        "cache.alerts.for_minutes",
        Kind::Duration(MINUTE),
        "how long a condition holds (pending) before its alert fires",
    )),
    on(key(
        "cache.alerts.repeat_interval_minutes",
        Kind::Duration(MINUTE),
        "shortest time between two notifications of a firing alert",
    )),
    on(key("cache.alerts.thresholds.hit_ratio_min", Kind::Float, "alert below this hit ratio (0-1)")),
    on(key(
        "cache.alerts.thresholds.size_usage_max",
        Kind::Float,
        "alert above this fraction of max_size_gb (0-1)",
    )),
    on(key(
        "cache.alerts.thresholds.compression_ratio_min",
        Kind::Float,
        "alert below this compression ratio",
    )),
    on(key(
        "cache.alerts.thresholds.response_time_max_ms",
        Kind::Integer,
        "alert above this p95 time to serve a cached response, in ms",
    )),
    on(key("cache.alerts.webhook.url", Kind::Text, "http(s) URL the alert JSON is POSTed to")),
    on(key("cache.alerts.webhook.secret", Kind::Text, "key of the X-Inferno-Signature HMAC-SHA256")),
    on(key("cache.alerts.slack.webhook_url", Kind::Text, "Slack incoming-webhook URL")),
    on(key("cache.alerts.email.smtp_host", Kind::Text, "SMTP server that sends alert mail")),
    on(key("cache.alerts.email.smtp_port", Kind::Integer, "SMTP port")),
    on(key("cache.alerts.email.tls", Kind::Text, "none | starttls | tls")),
    on(key("cache.alerts.email.username", Kind::Text, "SMTP user; empty logs in as nobody")),
    on(key("cache.alerts.email.password_file", Kind::Path, "file holding the SMTP password")),
    on(key("cache.alerts.email.from", Kind::Text, "sender address of alert mail")),
    on(key("cache.alerts.email.to", Kind::List, "recipients of alert mail")),
    on(key("cache.distributed.enabled", Kind::Bool, "use the shared tier on Redis")),
    on(key("cache.distributed.cluster_nodes", Kind::List, "seed addresses: host:port or redis:// URLs")),
    on(key(
        "cache.distributed.replication_factor",
        Kind::Integer,
        "copies of each entry the shared tier keeps",
    )),
    on(key("cache.distributed.username", Kind::Text, "Redis ACL user; empty means default")),
    on(key("cache.distributed.password", Kind::Text, "Redis password (prefer password_file)")),
    on(key("cache.distributed.password_file", Kind::Path, "file holding the Redis password")),
    on(key("cache.distributed.tls_ca_file", Kind::Path, "PEM CA that signed the rediss:// servers")),
    on(key("cache.distributed.tls_cert_file", Kind::Path, "PEM client certificate for Redis TLS")),
    on(key("cache.distributed.tls_key_file", Kind::Path, "PEM private key of tls_cert_file")),
    on(key(
        "cache.metrics.prometheus_enabled",
        Kind::Bool,
        "serve Prometheus metrics on inferno serve's /metrics",
    )),
    on(key("cache.audit.enabled", Kind::Bool, "record every administrative action in the audit file")),
    on(key("cache.audit.path", Kind::Path, "the audit file; empty means <base_dir>/audit.jsonl")),
    on(key(
        "cache.audit.log_reads",
        Kind::Bool,
        "also record each lookup of inferno serve (key, kind, tier, client; never text)",
    )),
    on(key(
        "cache.audit.rotate_size",
        Kind::Size(BYTE),
        "size at which the audit file is rotated to <path>.1",
    )),
    on(key(
        "cache.security.encryption",
        Kind::Text,
        "none | aes-256-gcm | chacha20-poly1305 (XChaCha20): the AEAD sealing every stored value",
    )),
    on(key("cache.security.key_file", Kind::Path, "the cache key: 32 raw bytes or 64 hex characters")),
    alias(
        on(key(
            "models.dir",
            Kind::Path,
            "directory of *.gguf / *.onnx model files; a model's name is its file stem",
        )),
        "INFERNO_MODELS_DIR",
    ),
    alias(
        on(key(
            "models.default",
            Kind::Text,
            "model used when none is given: a name in models.dir, or a path",
        )),
        "INFERNO_DEFAULT_MODEL",
    ),
    on(key("server.bind", Kind::Text, "address inferno serve listens on; 0.0.0.0 accepts other machines")),
    alias(
        on(key("server.port", Kind::Integer, "TCP port of inferno serve; 0 picks a free one")),
        "INFERNO_PORT",
    ),
    alias(
        on(key("server.api_key", Kind::Text, "when set, requests need Authorization: Bearer <key>")),
        "INFERNO_API_KEY",
    ),
    on(key("server.api_key_file", Kind::Path, "a file holding server.api_key (keeps it out of ps and env)")),
    on(key(
        "server.admin_key",
        Kind::Text,
        "when set, the admin routes answer over TCP to Authorization: Bearer <admin_key>",
    )),
    on(key("server.admin_key_file", Kind::Path, "a file holding server.admin_key")),
    on(key("server.max_request_size", Kind::Size(BYTE), "largest request body inferno serve accepts")),
    on(key("server.preload", Kind::List, "models loaded when inferno serve starts (names or paths)")),
    alias(
        on(key("server.parallel", Kind::Integer, "requests each loaded GGUF model decodes together (slots)")),
        "INFERNO_PARALLEL",
    ),
    alias(
        on(key("server.queue_size", Kind::Integer, "requests per model waiting for a slot before 503")),
        "INFERNO_QUEUE_SIZE",
    ),
];

/// True for keys whose value must never be printed (`cache status` shows whether they are set).
pub fn is_secret(path: &str) -> bool {
    matches!(
        path,
        "server.api_key"
            | "server.admin_key"
            | "cache.alerts.webhook.secret"
            | "cache.alerts.slack.webhook_url"
            | "cache.distributed.password"
    )
}

/// The key at `path`, if there is one.
pub fn find(path: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.path == path)
}

/// True when `path` names a table (`cache`, `cache.alerts`, ...) rather than a value.
pub fn is_section(path: &str) -> bool {
    KEYS.iter().any(|k| {
        k.path.len() > path.len() && k.path.starts_with(path) && k.path[path.len()..].starts_with('.')
    })
}

/// The closest known key or section to an unknown `path`, for a "did you mean" hint.
pub fn suggest(path: &str) -> Option<String> {
    let mut names: Vec<String> = KEYS.iter().map(|k| k.path.to_string()).collect();
    for k in KEYS {
        let mut prefix = k.path;
        while let Some((head, _)) = prefix.rsplit_once('.') {
            names.push(head.to_string());
            prefix = head;
        }
    }
    let leaf = |p: &str| p.rsplit('.').next().unwrap_or(p).to_string();
    names
        .into_iter()
        .map(|name| {
            let whole = strsim::jaro_winkler(path, &name);
            let last = strsim::jaro_winkler(&leaf(path), &leaf(&name));
            (whole.max(last * 0.98), name)
        })
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, name)| name)
}

/// The general env var for a key: `cache.compression.level` is `INFERNO_CACHE__COMPRESSION__LEVEL`.
pub fn general_env_name(path: &str) -> String {
    format!("INFERNO_{}", path.replace('.', "__").to_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_marked() {
        assert!(is_secret("server.api_key") && is_secret("server.admin_key") && !is_secret("server.port"));
        assert!(!is_secret("server.admin_key_file"), "a key file's path is shown, never its contents");
        assert!(is_secret("cache.alerts.webhook.secret") && is_secret("cache.alerts.slack.webhook_url"));
        assert!(is_secret("cache.distributed.password") && !is_secret("cache.distributed.password_file"));
    }

    #[test]
    fn sections_and_suggestions() {
        assert!(is_section("cache"));
        assert!(is_section("cache.alerts"));
        assert!(is_section("cache.alerts.thresholds"));
        assert!(!is_section("cache.enabled"));
        assert!(!is_section("cache.compress"));
        assert_eq!(suggest("cache.compresion").as_deref(), Some("cache.compression"));
        assert_eq!(suggest("cache.compression.levle").as_deref(), Some("cache.compression.level"));
        assert_eq!(suggest("cache.max_size").as_deref(), Some("cache.max_size_gb"));
        assert_eq!(suggest("zzzz"), None);
    }

    #[test]
    fn env_names() {
        assert_eq!(general_env_name("cache.compression.level"), "INFERNO_CACHE__COMPRESSION__LEVEL");
        assert_eq!(general_env_name("cache.max_size_gb"), "INFERNO_CACHE__MAX_SIZE_GB");
    }

    #[test]
    fn every_key_is_documented_and_in_the_example() {
        let docs = include_str!("../../docs/configuration.md");
        let example = include_str!("../../.inferno.toml.example");
        for key in KEYS {
            assert!(
                docs.contains(&format!("| `{}` |", key.path)),
                "{} missing from docs/configuration.md",
                key.path
            );
            assert!(docs.contains(&general_env_name(key.path)), "{} env form missing from docs", key.path);
            let row = docs.lines().find(|l| l.starts_with(&format!("| `{}` |", key.path))).unwrap();
            let status = match (key.active, key.no_effect) {
                (true, _) => "| active |",
                (false, Some(_)) => "| no effect |",
                (false, None) => "| stored |",
            };
            assert!(row.ends_with(status), "docs/configuration.md says the wrong status for {}", key.path);
            if let Some(alias) = key.env_alias {
                assert!(docs.contains(alias), "{alias} missing from docs/configuration.md");
            }
            let leaf = key.path.rsplit('.').next().unwrap();
            let section = &key.path[..key.path.len() - leaf.len() - 1];
            let in_section = example.split(&format!("[{section}]\n")).nth(1).expect(section);
            let in_section = in_section.split("\n[").next().unwrap();
            assert!(
                in_section.lines().any(|l| l.trim_start_matches("# ").starts_with(&format!("{leaf} = "))),
                "{} missing from .inferno.toml.example",
                key.path
            );
        }
    }
}
