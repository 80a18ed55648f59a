//! End-to-end tests that run the real `inferno` binary (with `assert_cmd`) in a fresh sandbox per test: the
//! user guide's config blocks and `.inferno.toml.example` load, config layering and the origins `cache status`
//! reports, bad configuration failing with exit 2 and a precise message, `cache configure` editing files
//! safely, and the command line's help, completions, logging and exit codes.
//!
//! Every command runs with a cleared environment (see `util.rs`), so the machine's own config files and
//! `INFERNO_*` variables never leak in.

/// Sandbox and command helpers shared by every module.
mod util;

/// A small tmpfs mounted by a test.
#[path = "../common/tmpfs.rs"]
mod tmpfs;

/// The guide's TOML blocks and `.inferno.toml.example` load with the right values and origins.
mod guide_configs;

/// Defaults < system < user < project / `--config` < env < flags, as `cache status` reports them.
mod layering;

/// Bad files, env vars and `--config` paths: exit 2 and messages naming file:line:column and key.
mod bad_config;

/// `cache configure`: guide invocations, round trips that keep comments, atomic refusal of bad values.
mod configure;

/// `inferno cache ...` against a running server (admin socket), and the HTTP admin routes.
mod admin;
/// Alert rules in `serve`, delivery to webhook, Slack and email receivers, `cache alerts test|status`.
mod alerts;
/// The access audit: one record per administrative action.
mod audit;
/// `cache backup`, `restore` and `rebuild`.
mod backup;
/// `--version`, `--help`, completions, usage errors, logging and broken pipes.
mod cli;
/// The Dockerfile, examples/kubernetes, examples/prometheus and examples/grafana against the real binary.
mod deploy;
/// `POST /v1/embeddings` end to end with the tiny ONNX models.
mod embeddings;
/// `inferno serve` on a tmpfs that fills up: degraded, never failing, and recovering.
mod full_disk;
/// `cache report`, `analyze` and `monitor`.
mod history;
/// The prompt-prefix KV cache through `inferno serve` and `cache warm --prefixes`.
mod kv_prefix;
/// `/metrics`: off until configured, the promised names, `promtool check metrics`, counters that move.
mod metrics;
/// `models list`, `models info` and `cache refresh` on real model files.
mod models;
/// The official OpenAI Python SDK against `inferno serve` (tests/python/openai_client.py).
mod openai_sdk;
/// `cache restore` killed at every step, and hostile or damaged backups.
mod restore_faults;
/// `inferno serve` end to end.
mod security;
mod serve;
/// A running `inferno serve` for the serve tests.
mod server;
/// Inference slots through `inferno serve`: batching, the queue, disconnects, their figures.
mod slots;
/// `cache stats` and `cache metrics`.
mod stats;
/// promtool and Python with its packages, or a failure that says what to install.
mod tools;
/// `cache trace`.
mod trace;
/// `cache import` and `cache export`.
mod transfer;
/// `cache warm`: models, directories, background jobs, responses.
mod warm;

/// `cache train-dictionary`, `stats` with and without the dictionary, compaction re-encoding, bad settings.
mod dictionary;
/// The remote tier on real redis-server processes: sharing between servers, failures, status and clear.
mod distributed;
/// Encryption at rest: nothing in the clear on disk, in backups or Redis; keys, rekey, damage.
mod encryption;
/// `cache export --format prometheus|json` and `cache metrics`, parsed and checked against the import.
mod export_metrics;
/// A cache populated by `cache import`, and readers for its export and its files.
mod fixture;
/// Every `inferno cache` command line of the user's guide, in order, on one populated cache.
mod guide;
/// `INFERNO_CONFIG` (the guide's Kubernetes manifest) and `cache report --export`.
mod guide_gaps;
/// `cache clear`, `cleanup`, `compact`, `verify`, `repair` and `disk-usage`: effects on entries and disk.
mod manage;
/// An HTTP receiver and an SMTP server (aiosmtpd) for the alert tests.
mod receivers;
/// redis-server processes and a Redis Cluster formed by the tests.
mod redis_nodes;
/// The remote tier over TLS with Redis ACLs: sharing, and every bad login a clear error.
mod redis_tls;
/// A timing run (ignored): HTTP hits answered from Redis against hits from the memory tier.
mod remote_http;
/// `cache semantic calibrate` with the real MiniLM embedding model.
mod semantic;
/// The semantic cache through `inferno serve` with MiniLM: hits, misses, scopes, restarts, bad settings.
mod semantic_serve;
/// `cache enable`, `disable` and `persist`: the config file, `cache status`, and disabled kinds.
mod toggle;
