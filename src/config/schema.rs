//! The typed configuration: every key of `.inferno.toml`, its default, and the range checks.
//!
//! This file owns types and defaults only. Where a value came from (file, env, flag) is `layers.rs`'s job;
//! the catalogue of key names, kinds and docs is `keys.rs`, kept in step with these structs by a test.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::alerting::AlertsConfig;
use super::semantic::SemanticCacheConfig;
use super::units::{BYTE, DAY, GB, HOUR, KB, MINUTE, SECOND, Size, Span};

/// The whole configuration file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[cache]` and its sub-tables.
    pub cache: CacheConfig,
    /// `[models]`: where model files are found.
    pub models: ModelsConfig,
    /// `[server]`: `inferno serve`.
    pub server: ServerConfig,
}

/// `[server]`: where `inferno serve` listens and whom it answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on; loopback by default, `0.0.0.0` to accept other machines.
    pub bind: String,
    /// TCP port; 0 picks a free one (printed at start).
    pub port: u16,
    /// When set, every request needs `Authorization: Bearer <api_key>`.
    pub api_key: String,
    /// A file holding the API key (instead of `api_key`), so it stays out of `ps` and env dumps.
    pub api_key_file: PathBuf,
    /// When set, the admin routes answer over TCP to `Authorization: Bearer <admin_key>` only.
    pub admin_key: String,
    /// A file holding the admin key (instead of `admin_key`).
    pub admin_key_file: PathBuf,
    /// Largest request body accepted.
    pub max_request_size: Size<BYTE>,
    /// Models loaded at start (names in models.dir, or paths).
    pub preload: Vec<String>,
    /// Sequences (slots) each loaded GGUF model decodes together in one batch.
    pub parallel: u32,
    /// Requests per model that wait for a slot before the server answers 503.
    pub queue_size: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1".into(),
            port: 8080,
            api_key: String::new(),
            api_key_file: PathBuf::new(),
            admin_key: String::new(),
            admin_key_file: PathBuf::new(),
            max_request_size: Size::units(8_000_000),
            preload: Vec::new(),
            parallel: 16,
            queue_size: 512,
        }
    }
}

/// `[models]`: where model files live and which one answers when none is named.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    /// Directory searched for `*.gguf` / `*.onnx` files; a model's name is its file stem.
    pub dir: PathBuf,
    /// The model used when a command needs one and none is given (a name in `dir`, or a path).
    pub default: String,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        Self { dir: default_models_dir(), default: String::new() }
    }
}

/// The XDG data directory for models (`$XDG_DATA_HOME/inferno/models`, else `~/.local/share/inferno/models`).
pub fn default_models_dir() -> PathBuf {
    match dirs::data_dir() {
        Some(dir) => dir.join("inferno").join("models"),
        None => PathBuf::from("/var/lib/inferno/models"),
    }
}

/// `[cache]`: the layered cache as a whole.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Master switch for every cache kind.
    pub enabled: bool,
    /// Which tiers hold entries.
    #[serde(rename = "type")]
    pub kind: CacheType,
    /// Directory for the disk tier, backups and the lock file.
    pub base_dir: PathBuf,
    /// Upper bound for all cached bytes on disk.
    pub max_size_gb: Size<GB>,
    /// Time to live for entries whose kind sets none.
    pub default_ttl_hours: Span<HOUR>,
    /// `[cache.compression]`.
    pub compression: CompressionConfig,
    /// `[cache.deduplication]`.
    pub deduplication: DeduplicationConfig,
    /// `[cache.model]`.
    pub model: ModelCacheConfig,
    /// `[cache.response]`.
    pub response: ResponseCacheConfig,
    /// `[cache.semantic]`.
    pub semantic: SemanticCacheConfig,
    /// `[cache.metadata]`.
    pub metadata: MetadataCacheConfig,
    /// `[cache.kv]`.
    pub kv: KvCacheConfig,
    /// `[cache.persistence]`.
    pub persistence: PersistenceConfig,
    /// `[cache.cleanup]`.
    pub cleanup: CleanupConfig,
    /// `[cache.alerts]`.
    pub alerts: AlertsConfig,
    /// `[cache.distributed]`.
    pub distributed: DistributedConfig,
    /// `[cache.metrics]`.
    pub metrics: MetricsConfig,
    /// `[cache.audit]`.
    pub audit: AuditConfig,
    /// `[cache.security]`.
    pub security: SecurityConfig,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            kind: CacheType::Persistent,
            base_dir: default_base_dir(),
            max_size_gb: Size::units(10),
            default_ttl_hours: Span::units(24),
            compression: CompressionConfig::default(),
            deduplication: DeduplicationConfig::default(),
            model: ModelCacheConfig::default(),
            response: ResponseCacheConfig::default(),
            semantic: SemanticCacheConfig::default(),
            metadata: MetadataCacheConfig::default(),
            kv: KvCacheConfig::default(),
            persistence: PersistenceConfig::default(),
            cleanup: CleanupConfig::default(),
            alerts: AlertsConfig::default(),
            distributed: DistributedConfig::default(),
            metrics: MetricsConfig::default(),
            audit: AuditConfig::default(),
            security: SecurityConfig::default(),
        }
    }
}

impl CacheConfig {
    /// Whether entries of `kind` are cached: `cache.enabled` and the kind's own `enabled` key.
    pub fn kind_enabled(&self, kind: crate::cache::Kind) -> bool {
        use crate::cache::Kind;
        self.enabled
            && match kind {
                Kind::Response => self.response.enabled,
                Kind::Model => self.model.enabled,
                Kind::Metadata => self.metadata.enabled,
                Kind::Kv => self.kv.enabled,
                Kind::Semantic => self.semantic.enabled,
            }
    }
}

/// The XDG cache directory (`$XDG_CACHE_HOME/inferno`, else `~/.cache/inferno`).
pub fn default_base_dir() -> PathBuf {
    match dirs::cache_dir() {
        Some(dir) => dir.join("inferno"),
        None => PathBuf::from("/var/cache/inferno"),
    }
}

/// `cache.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheType {
    /// RAM only; nothing survives the process.
    Memory,
    /// Disk only; every read goes to the disk tier.
    Disk,
    /// RAM in front of disk, written behind.
    Persistent,
}

/// `[cache.compression]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompressionConfig {
    /// When false, values are stored raw whatever `algorithm` says.
    pub enabled: bool,
    /// The codec for new values.
    pub algorithm: CompressionAlgorithm,
    /// 1-9 for gzip, 1-21 for zstd.
    pub level: u32,
    /// With zstd: train a dictionary on the cached responses and compress responses with it
    /// (docs/format.md, "Dictionaries").
    pub dictionary: bool,
    /// Response entries stored before the first dictionary is trained; every ten times as many response
    /// puts, a retrain is tried.
    pub dictionary_samples: u32,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            algorithm: CompressionAlgorithm::Zstd,
            level: 3,
            dictionary: true,
            dictionary_samples: 1000,
        }
    }
}

impl CompressionConfig {
    /// The range `dictionary_samples` must be in.
    pub const DICTIONARY_SAMPLES: std::ops::RangeInclusive<u32> = 16..=1_000_000;

    /// Whether responses are compressed with a trained dictionary: compression on, zstd, `dictionary`.
    pub fn uses_dictionary(&self) -> bool {
        self.enabled && self.algorithm == CompressionAlgorithm::Zstd && self.dictionary
    }
}

/// `cache.compression.algorithm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompressionAlgorithm {
    /// Store raw bytes.
    None,
    /// DEFLATE in gzip framing (flate2).
    Gzip,
    /// Zstandard.
    Zstd,
}

impl CompressionAlgorithm {
    /// The levels this codec accepts, or `None` when it takes no level.
    pub fn level_range(self) -> Option<std::ops::RangeInclusive<u32>> {
        match self {
            Self::None => None,
            Self::Gzip => Some(1..=9),
            Self::Zstd => Some(1..=21),
        }
    }
}

/// `[cache.deduplication]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeduplicationConfig {
    /// Content-address values so identical ones are stored once.
    pub enabled: bool,
    /// The content hash.
    pub algorithm: HashAlgorithm,
    /// Average chunk size for large values.
    pub chunk_size: Size<BYTE>,
    /// Hash large values on several threads.
    pub enable_parallel: bool,
    /// Seed for xxhash.
    pub seed: u64,
    /// Which xxhash function.
    pub variant: XxhashVariant,
}

impl Default for DeduplicationConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            algorithm: HashAlgorithm::Blake3,
            chunk_size: Size(4096),
            enable_parallel: true,
            seed: 0,
            variant: XxhashVariant::Xxh3,
        }
    }
}

/// `cache.deduplication.algorithm` and `cache.response.hash_algorithm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashAlgorithm {
    /// BLAKE3, 256-bit.
    Blake3,
    /// xxHash (`variant` picks xxh32, xxh64 or xxh3).
    Xxhash,
}

/// `cache.deduplication.variant`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XxhashVariant {
    /// 32-bit xxHash.
    Xxh32,
    /// 64-bit xxHash.
    Xxh64,
    /// XXH3, 64-bit.
    Xxh3,
}

/// `[cache.model]`: which loaded model instances stay resident.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelCacheConfig {
    /// Cache model entries (`inferno cache enable|disable --type model`).
    pub enabled: bool,
    /// Most model instances loaded at once.
    pub max_models: u32,
    /// Most memory the loaded models may take.
    pub memory_limit_gb: Size<GB>,
    /// Which model goes first when room is needed.
    pub preload_strategy: PreloadStrategy,
    /// When models are unloaded.
    pub unload_policy: UnloadPolicy,
    /// How long an idle model stays loaded under `unload_policy = "time_based"` (Ollama's keep_alive).
    pub keep_alive_minutes: Span<MINUTE>,
}

impl Default for ModelCacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_models: 5,
            memory_limit_gb: Size::units(8),
            preload_strategy: PreloadStrategy::Lru,
            unload_policy: UnloadPolicy::SizeBased,
            keep_alive_minutes: Span::units(5),
        }
    }
}

/// `cache.model.preload_strategy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PreloadStrategy {
    /// Evict the least recently used model.
    Lru,
    /// Evict the most recently used model.
    Mru,
    /// Evict the least frequently used model.
    Frequency,
}

/// `cache.model.unload_policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnloadPolicy {
    /// Unload models idle for longer than their keep-alive.
    TimeBased,
    /// Unload only when a limit would be exceeded.
    SizeBased,
    /// Unload only on request.
    Manual,
}

/// `[cache.response]`: cached inference responses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResponseCacheConfig {
    /// Cache responses (`inferno cache enable|disable --type response`).
    pub enabled: bool,
    /// Most responses held in the memory tier.
    pub max_entries: u64,
    /// Most bytes of responses held in the memory tier.
    pub max_size_gb: Size<GB>,
    /// Time to live of a cached response; inherits `default_ttl_hours` when no source sets it.
    pub ttl_hours: Span<HOUR>,
    /// Cache streamed responses and replay them as a stream.
    pub enable_streaming_cache: bool,
    /// Hash for response keys.
    pub hash_algorithm: HashAlgorithm,
    /// Cache only deterministic requests (`temperature: 0` or a `seed`); false caches every request.
    pub deterministic_only: bool,
}

impl Default for ResponseCacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_entries: 10_000,
            max_size_gb: Size::units(2),
            ttl_hours: Span::units(24),
            enable_streaming_cache: true,
            hash_algorithm: HashAlgorithm::Blake3,
            deterministic_only: true,
        }
    }
}

/// `[cache.metadata]`: what each model file is, read without loading it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetadataCacheConfig {
    /// Cache model metadata (`inferno cache enable|disable --type metadata`).
    pub enabled: bool,
    /// Time to live of a metadata entry.
    pub ttl_hours: Span<HOUR>,
    /// Re-read when the model file's size or mtime changes.
    pub auto_refresh: bool,
    /// Add measured load time and tokens/s.
    pub include_performance_stats: bool,
}

impl Default for MetadataCacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            ttl_hours: Span::units(24),
            auto_refresh: true,
            include_performance_stats: true,
        }
    }
}

/// `[cache.kv]`: the prompt-prefix KV cache, saved sequence states of GGUF models (docs/kv-cache.md).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KvCacheConfig {
    /// Save and restore prompt-prefix states (`inferno cache enable|disable --type kv`).
    pub enabled: bool,
    /// Prompt tokens per block of the prefix index; states are saved at block boundaries.
    pub block_tokens: u32,
    /// Prompts shorter than this are neither looked up nor saved.
    pub min_prefix_tokens: u32,
    /// Most bytes of states on disk; the states never get more than `cache.max_size_gb` either.
    pub max_size_gb: Size<GB>,
    /// Most bytes of hot states held in RAM; 0 keeps none there.
    pub memory_limit_gb: Size<GB>,
    /// How states are compressed on disk.
    pub compression: KvCompression,
}

impl KvCacheConfig {
    /// The states' disk budget in bytes: `max_size_gb`, at most `cache_max_bytes` (`cache.max_size_gb`,
    /// which the states are counted within).
    pub fn budget_bytes(&self, cache_max_bytes: u64) -> u64 {
        self.max_size_gb.bytes().min(cache_max_bytes)
    }
}

impl Default for KvCacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            block_tokens: 256,
            min_prefix_tokens: 256,
            max_size_gb: Size::units(5),
            memory_limit_gb: Size::units(2),
            compression: KvCompression::None,
        }
    }
}

/// `cache.kv.compression`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KvCompression {
    /// States are stored as they are (KV data barely compresses).
    #[default]
    None,
    /// Byte-shuffled (f16 halves apart), then zstd level 1.
    Zstd,
}

/// `[cache.persistence]`: how the disk tier writes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PersistenceConfig {
    /// Longest time a write stays in memory before it is made durable.
    pub sync_interval_seconds: Span<SECOND>,
    /// Values smaller than this are stored uncompressed.
    pub compression_threshold_kb: Size<KB>,
    /// Store and verify a checksum with every value.
    pub enable_checksums: bool,
    /// How many backups `cache backup` keeps.
    pub backup_copies: u32,
    /// Bytes buffered before a write reaches the file.
    pub write_buffer_size: Size<BYTE>,
    /// Bytes read ahead of a sequential reader.
    pub read_ahead_size: Size<BYTE>,
}

impl Default for PersistenceConfig {
    fn default() -> Self {
        Self {
            sync_interval_seconds: Span::units(300),
            compression_threshold_kb: Size::units(1),
            enable_checksums: true,
            backup_copies: 2,
            write_buffer_size: Size(1_000_000),
            read_ahead_size: Size(512_000),
        }
    }
}

/// `[cache.cleanup]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CleanupConfig {
    /// Run cleanup periodically.
    pub auto_cleanup: bool,
    /// Time between periodic cleanups.
    pub cleanup_interval_hours: Span<HOUR>,
    /// Disk use, in percent of `max_size_gb`, that triggers cleanup and compaction.
    pub size_threshold_percent: u32,
    /// Entries older than this are removed by cleanup.
    pub age_threshold_days: Span<DAY>,
}

impl Default for CleanupConfig {
    fn default() -> Self {
        Self {
            auto_cleanup: true,
            cleanup_interval_hours: Span::units(24),
            size_threshold_percent: 90,
            age_threshold_days: Span::units(7),
        }
    }
}

/// `[cache.distributed]`: the shared tier for fleets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistributedConfig {
    /// Use the shared tier.
    pub enabled: bool,
    /// Seed addresses, `host:port` or `redis://` URLs.
    pub cluster_nodes: Vec<String>,
    /// Copies of each entry the shared tier should hold.
    pub replication_factor: u32,
    /// Redis ACL user; empty means the `default` user (or the one in the URLs).
    pub username: String,
    /// Redis password (a secret: prefer `password_file` or the env).
    pub password: String,
    /// File holding the Redis password (one line).
    pub password_file: PathBuf,
    /// PEM file of the CA that signed the servers' certificates (`rediss://` seeds); empty means the
    /// public web roots.
    pub tls_ca_file: PathBuf,
    /// PEM client certificate, for servers that ask for one (`tls-auth-clients`).
    pub tls_cert_file: PathBuf,
    /// PEM private key of `tls_cert_file`.
    pub tls_key_file: PathBuf,
}

impl Default for DistributedConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            cluster_nodes: Vec::new(),
            replication_factor: 1,
            username: String::new(),
            password: String::new(),
            password_file: PathBuf::new(),
            tls_ca_file: PathBuf::new(),
            tls_cert_file: PathBuf::new(),
            tls_key_file: PathBuf::new(),
        }
    }
}

impl DistributedConfig {
    /// Problems of the login and TLS keys: `(key, message)`. Files are checked only when the tier is on.
    fn access_problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !self.password.is_empty() && !self.password_file.as_os_str().is_empty() {
            out.push(("cache.distributed.password", "set password or password_file, not both".into()));
        }
        let files = [
            ("cache.distributed.password_file", &self.password_file),
            ("cache.distributed.tls_ca_file", &self.tls_ca_file),
            ("cache.distributed.tls_cert_file", &self.tls_cert_file),
            ("cache.distributed.tls_key_file", &self.tls_key_file),
        ];
        for (key, file) in files.into_iter().filter(|(_, f)| self.enabled && !f.as_os_str().is_empty()) {
            if let Err(e) = std::fs::File::open(file) {
                out.push((key, format!("cannot read {}: {e}", file.display())));
            }
        }
        if self.tls_cert_file.as_os_str().is_empty() != self.tls_key_file.as_os_str().is_empty() {
            out.push(("cache.distributed.tls_key_file", "tls_cert_file and tls_key_file go together".into()));
        }
        let tls = self.cluster_nodes.iter().filter(|n| n.starts_with("rediss://")).count();
        if tls > 0 && tls < self.cluster_nodes.len() {
            out.push((
                "cache.distributed.cluster_nodes",
                "mixes rediss:// and plaintext seeds: write every seed as rediss://host:port".into(),
            ));
        }
        let tls_file = [&self.tls_ca_file, &self.tls_cert_file, &self.tls_key_file]
            .iter()
            .any(|f| !f.as_os_str().is_empty());
        if tls_file && tls == 0 && !self.cluster_nodes.is_empty() {
            out.push((
                "cache.distributed.cluster_nodes",
                "the tls_* files are set but no seed is rediss://: write the seeds as rediss://host:port"
                    .into(),
            ));
        }
        out
    }
}

/// `[cache.metrics]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Export Prometheus metrics.
    pub prometheus_enabled: bool,
}

/// `[cache.audit]`: the record of administrative actions (and, optionally, lookups).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Record every administrative action.
    pub enabled: bool,
    /// The audit file; empty means `<base_dir>/audit.jsonl`.
    pub path: PathBuf,
    /// Also record every lookup of the server (key, kind, hit tier, client; never text).
    pub log_reads: bool,
    /// Size at which the file is rotated to `<path>.1`.
    pub rotate_size: Size<BYTE>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self { enabled: true, path: PathBuf::new(), log_reads: false, rotate_size: Size(10_000_000) }
    }
}

impl AuditConfig {
    /// The audit file of the cache in `base_dir`.
    pub fn file(&self, base_dir: &std::path::Path) -> PathBuf {
        if self.path.as_os_str().is_empty() { base_dir.join("audit.jsonl") } else { self.path.clone() }
    }
}

/// `cache.security.encryption`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encryption {
    /// Values are stored as they are.
    #[default]
    #[serde(rename = "none")]
    None,
    /// AES-256-GCM, 96-bit random nonces.
    #[serde(rename = "aes-256-gcm")]
    Aes256Gcm,
    /// XChaCha20-Poly1305, 192-bit random nonces.
    #[serde(rename = "chacha20-poly1305")]
    ChaCha20Poly1305,
}

/// `[cache.security]`: encryption at rest.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// The AEAD that seals every stored value.
    pub encryption: Encryption,
    /// The key: a file of 32 raw bytes or 64 hex characters.
    pub key_file: PathBuf,
}

/// One failed range or consistency check, naming the key it is about.
#[derive(Clone, Debug, PartialEq)]
pub struct Violation {
    /// Dotted key, e.g. `cache.compression.level`.
    pub key: &'static str,
    /// What is wrong, with the allowed range.
    pub message: String,
    /// Another key the check read, whose origin helps explain the problem.
    pub related: Option<&'static str>,
}

/// What is wrong with `[cache.security]`: encryption without a key file, or a key file that cannot be used
/// (read here, so that a missing or malformed key is a configuration error). A key file with encryption
/// `none` is allowed: new values are stored plain and values sealed earlier stay readable.
fn security_problem(security: &SecurityConfig) -> Option<String> {
    let file = &security.key_file;
    if file.as_os_str().is_empty() {
        return (security.encryption != Encryption::None).then(|| {
            "encryption needs a key file: make one with `inferno cache keygen PATH` and set cache.security.key_file"
                .into()
        });
    }
    crate::cache::seal::CacheKey::read(file).err().map(|e| e.to_string())
}

impl Config {
    /// Checks every range and cross-key rule; returns all violations found.
    pub fn validate(&self) -> Vec<Violation> {
        let mut out = Vec::new();
        let c = &self.cache;
        let mut check = |ok: bool, key: &'static str, message: String| {
            if !ok {
                out.push(Violation { key, message, related: None });
            }
        };
        check(c.max_size_gb.bytes() > 0, "cache.max_size_gb", "must be more than 0".into());
        check(
            self.server.bind.parse::<std::net::IpAddr>().is_ok(),
            "server.bind",
            format!("{:?} is not an IP address (e.g. 127.0.0.1, 0.0.0.0, ::1)", self.server.bind),
        );
        check(
            self.server.max_request_size.bytes() >= 1024,
            "server.max_request_size",
            "must be at least 1KB".into(),
        );
        for (key, text, file) in [
            ("server.api_key", &self.server.api_key, &self.server.api_key_file),
            ("server.admin_key", &self.server.admin_key, &self.server.admin_key_file),
        ] {
            check(
                text.is_empty() || file.as_os_str().is_empty(),
                key,
                format!("give the key or {key}_file, not both"),
            );
        }
        check(
            self.server.admin_key.is_empty() || self.server.admin_key != self.server.api_key,
            "server.admin_key",
            "must differ from server.api_key (the API key never grants the admin routes)".into(),
        );
        check(
            (1..=256).contains(&self.server.parallel),
            "server.parallel",
            format!("{} is out of range (1 to 256 slots)", self.server.parallel),
        );
        if let Some(problem) = security_problem(&c.security) {
            check(false, "cache.security.key_file", problem);
        }
        check(c.audit.rotate_size.bytes() >= 4096, "cache.audit.rotate_size", "must be at least 4KiB".into());
        let chunk = c.deduplication.chunk_size.bytes();
        check(
            (256..=4 * 1024 * 1024).contains(&chunk),
            "cache.deduplication.chunk_size",
            format!("{chunk} bytes is out of range (256 B to 4 MiB)"),
        );
        let samples = CompressionConfig::DICTIONARY_SAMPLES;
        check(
            samples.contains(&c.compression.dictionary_samples),
            "cache.compression.dictionary_samples",
            format!("must be {}-{}", samples.start(), samples.end()),
        );
        check(c.model.max_models >= 1, "cache.model.max_models", "must be at least 1".into());
        check(
            c.model.memory_limit_gb.bytes() > 0,
            "cache.model.memory_limit_gb",
            "must be more than 0".into(),
        );
        let kv = &c.kv;
        check(
            (16..=8192).contains(&kv.block_tokens),
            "cache.kv.block_tokens",
            format!("{} is out of range (16 to 8192 tokens)", kv.block_tokens),
        );
        check(
            (1..=1_048_576).contains(&kv.min_prefix_tokens),
            "cache.kv.min_prefix_tokens",
            format!("{} is out of range (1 to 1048576 tokens)", kv.min_prefix_tokens),
        );
        check(kv.max_size_gb.bytes() > 0, "cache.kv.max_size_gb", "must be more than 0".into());
        check(c.response.max_entries >= 1, "cache.response.max_entries", "must be at least 1".into());
        check(c.response.max_size_gb.bytes() > 0, "cache.response.max_size_gb", "must be more than 0".into());
        let sync = c.persistence.sync_interval_seconds.duration().as_secs();
        check(
            (1..=86_400).contains(&sync),
            "cache.persistence.sync_interval_seconds",
            format!("{sync} seconds is out of range (1 second to 1 day)"),
        );
        check(
            c.persistence.backup_copies >= 1,
            "cache.persistence.backup_copies",
            "must be at least 1".into(),
        );
        check(
            c.persistence.write_buffer_size.bytes() >= 4096,
            "cache.persistence.write_buffer_size",
            "must be at least 4KiB".into(),
        );
        check(
            !c.cleanup.cleanup_interval_hours.duration().is_zero(),
            "cache.cleanup.cleanup_interval_hours",
            "must be more than 0".into(),
        );
        let pct = c.cleanup.size_threshold_percent;
        check(
            (1..=100).contains(&pct),
            "cache.cleanup.size_threshold_percent",
            format!("{pct} is out of range (1-100)"),
        );
        check(
            !c.cleanup.age_threshold_days.duration().is_zero(),
            "cache.cleanup.age_threshold_days",
            "must be more than 0".into(),
        );
        check(
            c.distributed.replication_factor >= 1,
            "cache.distributed.replication_factor",
            "must be at least 1".into(),
        );
        for node in &c.distributed.cluster_nodes {
            check(
                is_node_address(node),
                "cache.distributed.cluster_nodes",
                format!("{node:?} is not host:port or a redis:// URL"),
            );
        }
        check(
            !c.distributed.enabled || !c.distributed.cluster_nodes.is_empty(),
            "cache.distributed.enabled",
            "needs at least one address in cache.distributed.cluster_nodes".into(),
        );
        for (key, message) in c.distributed.access_problems() {
            check(false, key, message);
        }
        out.extend(c.alerts.validate());
        out.extend(c.semantic.validate());
        if let Some(range) = c.compression.algorithm.level_range() {
            let level = c.compression.level;
            if !range.contains(&level) {
                out.push(Violation {
                    key: "cache.compression.level",
                    message: format!(
                        "level {level} is out of range for {:?} ({}-{})",
                        c.compression.algorithm,
                        range.start(),
                        range.end()
                    )
                    .to_lowercase(),
                    related: Some("cache.compression.algorithm"),
                });
            }
        }
        out
    }
}

fn is_node_address(node: &str) -> bool {
    if node.starts_with("redis://") || node.starts_with("rediss://") {
        return node.len() > "redis://".len();
    }
    match node.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Config::default().validate(), vec![]);
    }

    #[test]
    fn level_is_checked_against_the_algorithm() {
        let mut config = Config::default();
        config.cache.compression.algorithm = CompressionAlgorithm::Gzip;
        config.cache.compression.level = 10;
        let v = config.validate();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].key, "cache.compression.level");
        assert!(v[0].message.contains("gzip (1-9)"), "{}", v[0].message);
        config.cache.compression.algorithm = CompressionAlgorithm::Zstd;
        assert!(config.validate().is_empty());
        config.cache.compression.level = 22;
        assert_eq!(config.validate()[0].key, "cache.compression.level");
        config.cache.compression.algorithm = CompressionAlgorithm::None;
        assert!(config.validate().is_empty());
    }

    #[test]
    fn kv_ranges_are_checked() {
        let mut config = Config::default();
        config.cache.kv.block_tokens = 8;
        config.cache.kv.min_prefix_tokens = 0;
        let keys: Vec<&str> = config.validate().iter().map(|v| v.key).collect();
        assert_eq!(keys, ["cache.kv.block_tokens", "cache.kv.min_prefix_tokens"]);
        let mut config = Config::default();
        config.cache.kv.max_size_gb = Size::units(11);
        assert!(config.validate().is_empty(), "more than cache.max_size_gb: the states get that at most");
        config.cache.kv.max_size_gb = Size(0);
        assert_eq!(config.validate()[0].message, "must be more than 0");
        config.cache.kv.max_size_gb = Size::units(1);
        config.cache.kv.memory_limit_gb = Size(0);
        assert!(config.validate().is_empty(), "no RAM tier for states is allowed");
    }

    #[test]
    fn node_addresses() {
        assert!(is_node_address("node1:9090"));
        assert!(is_node_address("redis://10.0.0.1:6379"));
        assert!(is_node_address("[::1]:7000"));
        assert!(!is_node_address("node1"));
        assert!(!is_node_address("node1:0"));
        assert!(!is_node_address(":80"));
        assert!(!is_node_address("redis://"));
    }
}
