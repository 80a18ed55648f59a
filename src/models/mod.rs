//! Models: the formats inferno runs and the runtimes that run them.
//!
//! - [`gguf`]: the GGUF header reader (metadata and tensor infos, hardened against hostile files), a GGUF v3
//!   writer, and the tiny llama test model. Never loads weights.
//! - [`llama`] (cargo feature `llama`, on by default): GGUF models loaded and run by llama.cpp.
//! - [`onnx`] (cargo feature `onnx`, on by default): ONNX models loaded and run by ONNX Runtime, whose shared
//!   library is loaded at run time (`ORT_DYLIB_PATH`, else where `scripts/setup.sh` installs it).
//! - [`pages`]: model files and the OS page cache: how much of a file is cached, dropping it, and warming it
//!   (one sequential read that also yields the file's fingerprint).

pub mod file;
pub mod gguf;
#[cfg(feature = "llama")]
pub mod llama;
#[cfg(feature = "onnx")]
pub mod onnx;
pub mod pages;
