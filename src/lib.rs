//! inferno runs AI models offline (GGUF through llama.cpp, ONNX through ONNX Runtime) behind a layered cache.
//!
//! The library holds all behaviour; the `inferno` binary is a thin front door onto it.
//!
//! - [`alerts`]: alert rules evaluated by `inferno serve`, and their delivery to webhook, Slack and email.
//! - [`config`]: `.inferno.toml`, env vars and flags resolved into one validated [`config::Config`], with the
//!   origin of every value.
//! - [`cache`]: the cache engine: memory and disk tiers, codecs, dedup, response keys, and the manager.
//! - [`models`]: model files and runtimes: GGUF/ONNX readers, llama.cpp and ONNX Runtime, the model cache,
//!   the metadata cache.
//! - [`warm`]: cache warming (`inferno cache warm`): models into the page cache and caches, prompts into
//!   the response cache.
//! - [`inference`]: OpenAI chat and completion requests answered by a model through the response cache.
//! - [`serve`] (cargo feature `llama`): `inferno serve`, the OpenAI-compatible HTTP server.
//! - [`admin`]: the admin API of a running server: its socket and the bodies of its `/v1/cache` routes,
//!   shared by the server and the CLI commands that go through it.
//! - [`cli`]: clap definitions and printing for the `inferno` binary.
//! - [`logging`]: tracing setup.
#![deny(missing_docs)]

pub mod admin;
pub mod alerts;
pub mod audit;
pub mod cache;
pub mod cli;
pub mod config;
pub mod inference;
pub mod logging;
pub mod models;
#[cfg(feature = "llama")]
pub mod serve;
pub mod warm;
