//! Models: the formats inferno runs and the runtimes that run them.
//!
//! - [`catalog`]: finding model files in the models directory, and a model by name or path.
//! - [`cache`]: the model cache, which keeps loaded model instances in memory within `[cache.model]`'s
//!   limits (max models, memory limit, eviction strategy, unload policy, keep-alive).
//! - [`file`](mod@file): a model file's identity (canonical path, stamp, format, content fingerprint).
//! - [`gguf`]: the GGUF header reader (metadata and tensor infos, hardened against hostile files), a GGUF v3
//!   writer, and the tiny llama test model. Never loads weights.
//! - [`metadata`], [`metadata_cache`], [`onnx_graph`]: what a model file is (read from its GGUF header or
//!   ONNX graph, never its weights), and the metadata cache that keeps it in the cache engine.
//! - [`llama`] (cargo feature `llama`, on by default): GGUF models loaded and run by llama.cpp.
//! - [`onnx`] (cargo feature `onnx`, on by default): ONNX models loaded and run by ONNX Runtime, whose shared
//!   library is loaded at run time (`ORT_DYLIB_PATH`, else where `scripts/setup.sh` installs it).
//! - [`pages`]: model files and the OS page cache: how much of a file is cached, dropping it, and warming it
//!   (one sequential read that also yields the file's fingerprint).

pub mod cache;
pub mod catalog;
pub mod file;
pub mod gguf;
#[cfg(feature = "llama")]
pub mod llama;
pub mod metadata;
pub mod metadata_cache;
#[cfg(feature = "onnx")]
pub mod onnx;
pub mod onnx_graph;
pub mod pages;
