//! [`GgufHeader`]: what a GGUF file says about itself (metadata, tensor infos, where the data starts), the
//! accessors for the metadata inferno needs, and the check that every tensor's data lies inside the file.
//! Parsing lives in `reader`; this file only interprets what was read.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::GgufError;
use super::reader;
use super::types::{GgmlType, file_type_name};
use super::value::{MetaArray, MetaValue};

/// One tensor's entry in the header: its data is not read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Dimensions in ggml order: `ne0` (the contiguous one) first, so a `[n_embd, n_vocab]` matrix has rows
    /// of `n_embd` values.
    pub dims: Vec<u64>,
    /// How the values are stored.
    pub ggml_type: GgmlType,
    /// Where the data starts, relative to the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// The number of values (the product of the dimensions; 1 for no dimensions).
    pub fn element_count(&self) -> u64 {
        self.dims.iter().fold(1u64, |n, d| n.saturating_mul(*d))
    }

    /// The bytes the data takes, if the type is known and the rows hold whole blocks.
    pub fn byte_size(&self) -> Option<u64> {
        let (block, block_bytes) = self.ggml_type.block()?;
        let elements = self.element_count();
        elements.is_multiple_of(block).then(|| (elements / block).saturating_mul(block_bytes))
    }
}

/// The header of a GGUF file: everything before the tensor data.
#[derive(Clone, Debug, PartialEq)]
pub struct GgufHeader {
    pub(super) path: PathBuf,
    pub(super) version: u32,
    pub(super) metadata: Vec<(String, MetaValue)>,
    pub(super) tensors: Vec<TensorInfo>,
    pub(super) alignment: u64,
    pub(super) data_offset: u64,
}

impl GgufHeader {
    /// Reads the header of the GGUF file at `path` and checks that every tensor's data lies inside the file.
    /// Reads at most the header's bytes (capped by [`MAX_HEADER_BYTES`](super::MAX_HEADER_BYTES)), never the tensor data.
    pub fn read_path(path: &Path) -> Result<GgufHeader, GgufError> {
        let io_err = |source| GgufError::Io { path: path.into(), source };
        let file = File::open(path).map_err(io_err)?;
        let file_len = file.metadata().map_err(io_err)?.len();
        Self::read_from(BufReader::with_capacity(1 << 16, file), file_len, path)
    }

    /// Reads a header from `reader`, positioned at the start of a file of `file_len` bytes named `path` in
    /// errors, and checks the tensor ranges against `file_len`. A byte slice reads as `(bytes, bytes.len())`.
    pub fn read_from<R: Read>(reader: R, file_len: u64, path: &Path) -> Result<GgufHeader, GgufError> {
        let header = reader::parse(reader, file_len, path)?;
        header.check_tensor_ranges(file_len)?;
        Ok(header)
    }

    /// Checks that the data section starts within a file of `file_len` bytes (when there are tensors) and
    /// that every tensor's data lies inside it.
    pub fn check_tensor_ranges(&self, file_len: u64) -> Result<(), GgufError> {
        if !self.tensors.is_empty() && self.data_offset > file_len {
            let what = "padding before the data section".into();
            return Err(GgufError::Truncated { path: self.path.clone(), offset: file_len, what });
        }
        for t in &self.tensors {
            let start = self.data_offset.saturating_add(t.offset);
            let end = t.byte_size().map_or(u64::MAX, |size| start.saturating_add(size));
            if end > file_len {
                let (path, name) = (self.path.clone(), t.name.clone());
                return Err(GgufError::TensorOutOfRange { path, name, start, end, file_len });
            }
        }
        Ok(())
    }

    /// The file the header was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Every metadata entry in file order.
    pub fn metadata(&self) -> &[(String, MetaValue)] {
        &self.metadata
    }

    /// The value of metadata `key`, if present.
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Every tensor info in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The tensor named `name`, if present.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The number of tensors.
    pub fn tensor_count(&self) -> usize {
        self.tensors.len()
    }

    /// The data-section alignment in bytes (`general.alignment`, default 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Where the data section starts, in bytes from the start of the file.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// `general.architecture`, e.g. `llama`.
    pub fn architecture(&self) -> Option<&str> {
        self.get("general.architecture")?.as_str()
    }

    /// `general.name`.
    pub fn name(&self) -> Option<&str> {
        self.get("general.name")?.as_str()
    }

    /// The integer at `{architecture}.{suffix}`.
    fn arch_u64(&self, suffix: &str) -> Option<u64> {
        self.get(&format!("{}.{suffix}", self.architecture()?))?.as_u64()
    }

    /// `{arch}.context_length`: the context the model was trained for.
    pub fn context_length(&self) -> Option<u64> {
        self.arch_u64("context_length")
    }

    /// `{arch}.embedding_length`.
    pub fn embedding_length(&self) -> Option<u64> {
        self.arch_u64("embedding_length")
    }

    /// `{arch}.block_count`: the number of layers.
    pub fn block_count(&self) -> Option<u64> {
        self.arch_u64("block_count")
    }

    /// `{arch}.attention.head_count`.
    pub fn head_count(&self) -> Option<u64> {
        self.arch_u64("attention.head_count")
    }

    /// `{arch}.attention.head_count_kv`, which defaults to the head count when absent.
    pub fn head_count_kv(&self) -> Option<u64> {
        self.arch_u64("attention.head_count_kv").or_else(|| self.head_count())
    }

    /// The number of tokens in `tokenizer.ggml.tokens`.
    pub fn vocab_size(&self) -> Option<usize> {
        self.get("tokenizer.ggml.tokens")?.as_array().map(MetaArray::len)
    }

    /// `general.file_type`, the dominant quantisation as a `llama_ftype` number.
    pub fn file_type(&self) -> Option<u64> {
        self.get("general.file_type")?.as_u64()
    }

    /// The name of `general.file_type` (`F32`, `F16`, `Q4_0`, `Q4_K_M`, ...), if present and known.
    pub fn file_type_name(&self) -> Option<&'static str> {
        file_type_name(self.file_type()?)
    }

    /// The number of parameters: the sum of every tensor's element count.
    pub fn parameter_count(&self) -> u64 {
        self.tensors.iter().fold(0u64, |n, t| n.saturating_add(t.element_count()))
    }
}
