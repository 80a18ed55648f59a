//! What a model file is — architecture, size in parameters, quantisation, context, vocabulary, tensors,
//! inputs and outputs — read from the GGUF header or the ONNX graph without loading any weights.
//!
//! [`ModelMetadata`] is the record the metadata cache stores (as JSON, kind `metadata`) and that
//! `inferno models list/info` print. The fingerprint is the one exception to "without reading the weights":
//! it hashes the whole file once, and the cache keeps it until the file's stamp changes.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::file::{FileStamp, ModelFile, ModelFileError, ModelFormat};
use super::gguf::{GgufError, GgufHeader};
use super::onnx_graph::{OnnxGraph, OnnxGraphError, Signature};

/// Why a model's metadata could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// The file could not be identified (missing, not a regular file, unknown format).
    #[error(transparent)]
    File(#[from] ModelFileError),
    /// The GGUF header is damaged or truncated.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// The ONNX graph could not be decoded.
    #[error(transparent)]
    Onnx(#[from] OnnxGraphError),
    /// The metadata cache could not be read or written.
    #[error("metadata cache: {0}")]
    Cache(#[from] crate::cache::CacheError),
}

/// Measured on this machine, when `cache.metadata.include_performance_stats` is on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PerformanceStats {
    /// Time to load the model into its runtime, in milliseconds.
    pub load_ms: f64,
    /// Generation speed (GGUF models), tokens per second, over a short fixed prompt.
    pub tokens_per_second: Option<f64>,
    /// When it was measured, milliseconds since the Unix epoch.
    pub measured_at_ms: u64,
}

/// Everything inferno knows about one model file without loading it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelMetadata {
    /// Canonical path.
    pub path: PathBuf,
    /// The model's name: the file stem.
    pub name: String,
    /// `gguf` or `onnx`.
    pub format: ModelFormat,
    /// File size in bytes.
    pub file_size: u64,
    /// The stamp the metadata was read for (auto_refresh compares it with the file's current one).
    pub stamp: FileStamp,
    /// `blake3:<hex>` of the whole file.
    pub fingerprint: String,
    /// `general.architecture` (GGUF); `None` for ONNX.
    pub architecture: Option<String>,
    /// Elements across all weight tensors (GGUF tensors, ONNX initializers).
    pub parameter_count: u64,
    /// The GGUF file type (`F32`, `Q4_K_M`, ...); `None` for ONNX or when the header does not say.
    pub quantization: Option<String>,
    /// Context the model was trained for, in tokens (GGUF).
    pub context_length: Option<u64>,
    /// Tokens in the vocabulary (GGUF).
    pub vocab_size: Option<u64>,
    /// Weight tensors (GGUF tensors, ONNX initializers).
    pub tensor_count: u64,
    /// Embedding width (GGUF).
    pub embedding_length: Option<u64>,
    /// Layers (GGUF).
    pub block_count: Option<u64>,
    /// Whether the GGUF file carries its own chat template (`tokenizer.chat_template`).
    pub has_chat_template: bool,
    /// Graph inputs (ONNX).
    pub inputs: Vec<Signature>,
    /// Graph outputs (ONNX).
    pub outputs: Vec<Signature>,
    /// Default-domain opset (ONNX).
    pub opset: Option<i64>,
    /// When this record was read, milliseconds since the Unix epoch.
    pub read_at_ms: u64,
    /// Load time and speed, when measured.
    pub performance: Option<PerformanceStats>,
}

impl ModelMetadata {
    /// Identifies `path`, reads its header or graph and hashes the file.
    pub fn read_path(path: &Path) -> Result<Self, MetadataError> {
        let file = ModelFile::open(path)?;
        let fingerprint = file.fingerprint()?;
        Self::read(&file, fingerprint)
    }

    /// Reads the header or graph of `file`, whose fingerprint the caller already computed.
    pub fn read(file: &ModelFile, fingerprint: String) -> Result<Self, MetadataError> {
        let mut meta = Self {
            path: file.path.clone(),
            name: file.stem(),
            format: file.format,
            file_size: file.stamp.size,
            stamp: file.stamp,
            fingerprint,
            architecture: None,
            parameter_count: 0,
            quantization: None,
            context_length: None,
            vocab_size: None,
            tensor_count: 0,
            embedding_length: None,
            block_count: None,
            has_chat_template: false,
            inputs: Vec::new(),
            outputs: Vec::new(),
            opset: None,
            read_at_ms: crate::cache::clock::now_ms(),
            performance: None,
        };
        match file.format {
            ModelFormat::Gguf => {
                let header = GgufHeader::read_path(&file.path)?;
                meta.architecture = header.architecture().map(str::to_string);
                meta.parameter_count = header.parameter_count();
                meta.quantization = header
                    .file_type_name()
                    .map(str::to_string)
                    .or_else(|| header.file_type().map(|n| format!("file type {n}")));
                meta.context_length = header.context_length();
                meta.vocab_size = header.vocab_size().map(|n| n as u64);
                meta.tensor_count = header.tensor_count() as u64;
                meta.embedding_length = header.embedding_length();
                meta.block_count = header.block_count();
                meta.has_chat_template = header.get("tokenizer.chat_template").is_some();
            }
            ModelFormat::Onnx => {
                let graph = OnnxGraph::read_path(&file.path)?;
                meta.parameter_count = graph.parameter_count;
                meta.tensor_count = graph.initializer_count;
                meta.inputs = graph.inputs;
                meta.outputs = graph.outputs;
                meta.opset = graph.opset;
            }
        }
        Ok(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::gguf::tiny::write_tiny_llama;

    #[test]
    fn gguf_metadata_matches_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        let size = write_tiny_llama(&path).unwrap();
        let meta = ModelMetadata::read_path(&path).unwrap();
        let header = GgufHeader::read_path(&path).unwrap();
        assert_eq!((meta.name.as_str(), meta.format, meta.file_size), ("tiny", ModelFormat::Gguf, size));
        assert_eq!(meta.architecture.as_deref(), Some("llama"));
        assert_eq!(meta.quantization.as_deref(), Some("F32"));
        assert_eq!(meta.vocab_size, Some(3 + 256 + 1 + 26 + 10), "<unk> <s> </s>, bytes, ▁, a-z, 0-9");
        assert_eq!(meta.tensor_count, header.tensor_count() as u64);
        assert_eq!(meta.parameter_count, header.parameter_count());
        assert!(meta.parameter_count > 0 && meta.context_length.is_some() && !meta.has_chat_template);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(meta.fingerprint, format!("blake3:{}", blake3::hash(&bytes).to_hex()));
        assert!(meta.inputs.is_empty() && meta.performance.is_none());
    }

    #[test]
    fn onnx_metadata_lists_inputs_and_outputs() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/models/tiny-mlp.onnx"));
        let meta = ModelMetadata::read_path(path).unwrap();
        assert_eq!((meta.format, meta.name.as_str(), meta.opset), (ModelFormat::Onnx, "tiny-mlp", Some(13)));
        assert_eq!((meta.parameter_count, meta.tensor_count), (67, 4));
        assert_eq!(meta.inputs[0].name, "x");
        assert_eq!(meta.outputs[0].shape, ["N", "3"]);
    }

    #[test]
    fn damaged_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.gguf");
        write_tiny_llama(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
        let err = ModelMetadata::read_path(&path).unwrap_err().to_string();
        assert!(err.contains("cut.gguf") && err.contains("tensor"), "{err}");
        std::fs::write(&path, &bytes[..40]).unwrap();
        let err = ModelMetadata::read_path(&path).unwrap_err().to_string();
        assert!(err.contains("cut.gguf") && err.contains("truncated"), "{err}");
        let onnx = dir.path().join("junk.onnx");
        std::fs::write(&onnx, b"\xff\xff\xff\xff").unwrap();
        let err = ModelMetadata::read_path(&onnx).unwrap_err().to_string();
        assert!(err.contains("junk.onnx") && err.contains("not a valid ONNX model"), "{err}");
    }
}
