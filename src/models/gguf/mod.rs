//! GGUF, llama.cpp's model format: reading headers without loading weights, writing small files, and the
//! tiny llama test model.
//!
//! - [`GgufHeader`]: metadata, tensor infos and the data offset, read by `reader` under documented limits
//!   ([`MAX_HEADER_BYTES`], [`MAX_STRING_LEN`], ...) so hostile files fail cleanly.
//! - [`GgufWriter`]: builds GGUF v3 files from metadata and F32 tensors (tests, benchmarks, test models).
//! - [`tiny`]: the tiny llama test model and large all-zero models for load-time benchmarks.
//! - [`MetaValue`], [`MetaArray`], [`ValueType`]: metadata values; [`GgmlType`]: tensor types.

mod error;
mod header;
mod reader;
#[cfg(test)]
mod tests;
pub mod tiny;
mod types;
mod value;
mod writer;

pub use error::{GgufError, GgufWriteError};
pub use header::{GgufHeader, TensorInfo};
pub use reader::{
    DEFAULT_ALIGNMENT, MAGIC, MAX_ARRAY_DEPTH, MAX_DIMS, MAX_HEADER_BYTES, MAX_KEY_LEN, MAX_STRING_LEN,
    MAX_TENSOR_NAME_LEN, MAX_TENSORS,
};
pub use types::{GgmlType, file_type_name};
pub use value::{MetaArray, MetaValue, ValueType};
pub use writer::GgufWriter;
