//! The semantic response cache's building blocks (issue 17): the guards that refuse a match between texts
//! that differ in ways embeddings miss ([`guards`]), and the calibration of a similarity threshold on
//! labelled pairs ([`calibrate`]), which `inferno cache semantic calibrate` runs with an ONNX text embedding
//! model (`embedder`, cargo feature `onnx`).
//!
//! The lookup itself (an exact miss answered by a near-duplicate within its scope) is not built yet, so no
//! configuration key turns it on.

pub mod calibrate;
#[cfg(feature = "onnx")]
pub mod embedder;
pub mod guards;
