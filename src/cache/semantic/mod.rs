//! The semantic response cache (issue 17, docs/semantic-cache.md): an exact miss answered by a
//! near-duplicate request of the same scope.
//!
//! - [`guards`]: textual differences that make two similar-looking questions different questions;
//! - [`calibrate`]: a similarity threshold measured on labelled pairs (`inferno cache semantic calibrate`);
//! - [`scope`]: which stored requests a request may be answered from, and the text compared;
//! - [`index`]: the vectors in memory, searched by brute force within one scope group;
//! - [`quantized`]: the sign-bit and 4-bit first passes of a search, which skip only rows that cannot match;
//! - [`record`]: a vector as stored in the cache (kind `semantic`);
//! - [`lookup`]: a server's semantic cache: load, lookup, store, forget;
//! - [`counters`]: what it counts;
//! - `embedder` (cargo feature `onnx`): the ONNX text embedding model that turns texts into vectors.

pub mod calibrate;
pub mod counters;
#[cfg(feature = "onnx")]
pub mod embedder;
pub mod guards;
pub mod index;
pub mod lookup;
pub mod quantized;
pub mod record;
pub mod scope;

pub use lookup::{Embedded, SemanticCache, SemanticHit, TextEmbedder, forget_stored};
pub use scope::{Query, query_of};
