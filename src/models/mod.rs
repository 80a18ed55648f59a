//! Model files: reading and writing the formats inferno runs, without running them.
//!
//! This module only understands files on disk; it never links an inference runtime and never loads weights
//! into memory. The runtimes (llama.cpp for GGUF, ONNX Runtime for ONNX) plug in elsewhere.
//!
//! - [`gguf`]: the GGUF header reader (metadata and tensor infos, hardened against hostile files), a GGUF v3
//!   writer, and the tiny llama test model.

pub mod gguf;
