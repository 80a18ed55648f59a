//! Reads what an ONNX file declares — inputs, outputs, initializer shapes, opsets — without ONNX Runtime.
//!
//! An ONNX file is a protobuf `ModelProto` (onnx/onnx.proto). Only the fields named below are declared, so
//! prost skips everything else, tensor data included, while decoding from a memory map: describing a model
//! never copies its weights. Field numbers are onnx.proto's.

use std::fs::File;
use std::path::{Path, PathBuf};

use prost::Message;
use serde::{Deserialize, Serialize};

/// Why an ONNX file could not be described.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OnnxGraphError {
    /// The file could not be opened or mapped.
    #[error("{path}: cannot read ONNX file: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The bytes are not a protobuf ONNX model.
    #[error("{path}: not a valid ONNX model ({reason}); the file may be truncated or not ONNX at all")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What the decoder or the checks found.
        reason: String,
    },
}

/// One input or output of the graph.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// The tensor's name.
    pub name: String,
    /// Element type, e.g. `float32` (onnx.proto's `TensorProto.DataType`).
    pub element_type: String,
    /// Dimensions: a number, or the symbolic name of a dynamic dimension (e.g. `batch`), or `?`.
    pub shape: Vec<String>,
}

/// What an ONNX file declares.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnnxGraph {
    /// `ModelProto.ir_version`.
    pub ir_version: i64,
    /// The default-domain operator set version.
    pub opset: Option<i64>,
    /// The tool that wrote the file.
    pub producer: String,
    /// Graph inputs that are not initializers (what a caller feeds).
    pub inputs: Vec<Signature>,
    /// Graph outputs.
    pub outputs: Vec<Signature>,
    /// Number of initializers (weight tensors).
    pub initializer_count: u64,
    /// Elements across all initializers.
    pub parameter_count: u64,
    /// Nodes in the main graph.
    pub node_count: u64,
}

impl OnnxGraph {
    /// Maps `path` and decodes its graph description.
    pub fn read_path(path: &Path) -> Result<Self, OnnxGraphError> {
        let io = |source| OnnxGraphError::Io { path: path.to_path_buf(), source };
        let file = File::open(path).map_err(io)?;
        if file.metadata().map_err(io)?.len() == 0 {
            return Err(invalid(path, "the file is empty"));
        }
        // SAFETY: the map is read-only and dropped before returning; a concurrent truncation could fault,
        // the same assumption every mmap-based model loader (llama.cpp included) makes.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        Self::from_bytes(&map, path)
    }

    /// Decodes `bytes` (a whole ONNX file); `path` names it in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, OnnxGraphError> {
        let model = ModelProto::decode(bytes).map_err(|e| invalid(path, &e.to_string()))?;
        if model.ir_version <= 0 {
            return Err(invalid(path, "no ir_version"));
        }
        let graph = model.graph.ok_or_else(|| invalid(path, "no graph"))?;
        let initializers: std::collections::HashSet<&str> =
            graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let parameter_count = graph
            .initializer
            .iter()
            .map(|t| t.dims.iter().map(|&d| d.max(0) as u64).fold(1u64, u64::saturating_mul))
            .fold(0u64, u64::saturating_add);
        Ok(Self {
            ir_version: model.ir_version,
            opset: model.opset_import.iter().find(|o| o.domain.is_empty()).map(|o| o.version),
            producer: [model.producer_name, model.producer_version]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
            inputs: graph
                .input
                .iter()
                .filter(|v| !initializers.contains(v.name.as_str()))
                .map(signature)
                .collect(),
            outputs: graph.output.iter().map(signature).collect(),
            initializer_count: graph.initializer.len() as u64,
            parameter_count,
            node_count: graph.node_count(),
        })
    }
}

fn invalid(path: &Path, reason: &str) -> OnnxGraphError {
    OnnxGraphError::Invalid { path: path.to_path_buf(), reason: reason.to_string() }
}

fn signature(value: &ValueInfoProto) -> Signature {
    let tensor = value.r#type.as_ref().and_then(|t| t.tensor_type.as_ref());
    let element_type = tensor.map_or("unknown", |t| element_type_name(t.elem_type)).to_string();
    let shape = tensor
        .and_then(|t| t.shape.as_ref())
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match (&d.dim_value, &d.dim_param) {
                    (Some(v), _) => v.to_string(),
                    (None, Some(p)) if !p.is_empty() => p.clone(),
                    _ => "?".to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    Signature { name: value.name.clone(), element_type, shape }
}

/// onnx.proto's `TensorProto.DataType` names.
fn element_type_name(code: i32) -> &'static str {
    match code {
        1 => "float32",
        2 => "uint8",
        3 => "int8",
        4 => "uint16",
        5 => "int16",
        6 => "int32",
        7 => "int64",
        8 => "string",
        9 => "bool",
        10 => "float16",
        11 => "float64",
        12 => "uint32",
        13 => "uint64",
        16 => "bfloat16",
        _ => "other",
    }
}

/// `ModelProto`, the fields read here.
#[derive(Clone, PartialEq, Message)]
struct ModelProto {
    #[prost(int64, tag = "1")]
    ir_version: i64,
    #[prost(string, tag = "2")]
    producer_name: String,
    #[prost(string, tag = "3")]
    producer_version: String,
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphProto>,
    #[prost(message, repeated, tag = "8")]
    opset_import: Vec<OperatorSetIdProto>,
}

#[derive(Clone, PartialEq, Message)]
struct OperatorSetIdProto {
    #[prost(string, tag = "1")]
    domain: String,
    #[prost(int64, tag = "2")]
    version: i64,
}

/// `GraphProto`: nodes are counted through [`NodeStub`], which declares no field.
#[derive(Clone, PartialEq, Message)]
struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeStub>,
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<TensorProto>,
    #[prost(message, repeated, tag = "11")]
    input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    output: Vec<ValueInfoProto>,
}

impl GraphProto {
    fn node_count(&self) -> u64 {
        self.node.len() as u64
    }
}

#[derive(Clone, PartialEq, Message)]
struct NodeStub {}

/// `TensorProto` without its data fields.
#[derive(Clone, PartialEq, Message)]
struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    dims: Vec<i64>,
    #[prost(string, tag = "8")]
    name: String,
}

#[derive(Clone, PartialEq, Message)]
struct ValueInfoProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    r#type: Option<TypeProto>,
}

#[derive(Clone, PartialEq, Message)]
struct TypeProto {
    #[prost(message, optional, tag = "1")]
    tensor_type: Option<TensorTypeProto>,
}

#[derive(Clone, PartialEq, Message)]
struct TensorTypeProto {
    #[prost(int32, tag = "1")]
    elem_type: i32,
    #[prost(message, optional, tag = "2")]
    shape: Option<TensorShapeProto>,
}

#[derive(Clone, PartialEq, Message)]
struct TensorShapeProto {
    #[prost(message, repeated, tag = "1")]
    dim: Vec<Dimension>,
}

#[derive(Clone, PartialEq, Message)]
struct Dimension {
    #[prost(int64, optional, tag = "1")]
    dim_value: Option<i64>,
    #[prost(string, optional, tag = "2")]
    dim_param: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/models/tiny-mlp.onnx");

    #[test]
    fn describes_the_tiny_mlp() {
        let graph = OnnxGraph::read_path(Path::new(TINY)).unwrap();
        // scripts/make-tiny-onnx.py: x[N,4] -> MatMul W1[4,8] + b1[8] -> Relu -> MatMul W2[8,3] + b2[3].
        assert_eq!(graph.opset, Some(13));
        assert_eq!(
            graph.inputs,
            vec![Signature {
                name: "x".into(),
                element_type: "float32".into(),
                shape: vec!["N".into(), "4".into()]
            }]
        );
        assert_eq!(graph.outputs.len(), 1);
        assert_eq!(graph.outputs[0].shape, vec!["N".to_string(), "3".to_string()]);
        assert_eq!((graph.initializer_count, graph.parameter_count), (4, 4 * 8 + 8 + 8 * 3 + 3));
        assert_eq!(graph.node_count, 5);
    }

    #[test]
    fn truncated_and_foreign_bytes_are_errors_not_panics() {
        let bytes = std::fs::read(TINY).unwrap();
        let path = Path::new("cut.onnx");
        for cut in [1, bytes.len() / 3, bytes.len() / 2, bytes.len() - 1] {
            let err = OnnxGraph::from_bytes(&bytes[..cut], path).unwrap_err().to_string();
            assert!(err.starts_with("cut.onnx: not a valid ONNX model"), "{cut}: {err}");
        }
        assert!(OnnxGraph::from_bytes(b"GGUF\x03\0\0\0 definitely not protobuf", path).is_err());
        assert!(OnnxGraph::from_bytes(b"", path).is_err());
    }

    proptest::proptest! {
        /// Arbitrary bytes, and the tiny model with bytes flipped, describe a graph or fail; never panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = OnnxGraph::from_bytes(&bytes, Path::new("any.onnx"));
        }

        #[test]
        fn damaged_models_never_panic(flips in proptest::collection::vec((0usize..518, 1u8..=255), 1..8)) {
            let mut bytes = std::fs::read(TINY).unwrap();
            for (at, mask) in flips {
                let at = at % bytes.len();
                bytes[at] ^= mask;
            }
            let _ = OnnxGraph::from_bytes(&bytes, Path::new("flipped.onnx"));
        }
    }
}
