//! ONNX models through ONNX Runtime (the `ort` crate, loading the runtime's shared library at run time): the
//! process-wide environment, loading a model file, its input and output signature, and running it on f32
//! and i64 input tensors (f32 outputs).
//!
//! The runtime library is [`runtime_path`]: `ORT_DYLIB_PATH` when set, else [`DEFAULT_RUNTIME_PATH`] (where
//! `scripts/setup.sh` installs it). It is loaded once per process; a missing or broken library is a clear
//! [`OnnxError::Runtime`] naming the path and the OS's reason, and after a failed load no other `ort` function
//! is ever called (ort would then fall back to `libonnxruntime.so` on its own and panic if that is missing).
//! Only the mechanics live here; which models stay loaded is the job of the model cache
//! ([`crate::models::pool`]). Running is blocking: callers on an async runtime run it on a blocking thread.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::Session;
use ort::value::{Outlet, Tensor, ValueType};
use parking_lot::Mutex;

/// Where `scripts/setup.sh` installs ONNX Runtime's shared library.
pub const DEFAULT_RUNTIME_PATH: &str = "/usr/local/lib/inferno/libonnxruntime.so.1.31.1";

/// The environment variable that overrides [`DEFAULT_RUNTIME_PATH`].
pub const RUNTIME_PATH_VAR: &str = "ORT_DYLIB_PATH";

/// Errors of the ONNX Runtime backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OnnxError {
    /// ONNX Runtime's shared library could not be loaded or initialised.
    #[error("cannot load ONNX Runtime from {}: {reason}", .path.display())]
    Runtime {
        /// The library file.
        path: PathBuf,
        /// Why, with the OS's reason where there is one.
        reason: String,
    },
    /// The model file does not exist or cannot be read.
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        /// The model file.
        path: PathBuf,
        /// The OS's reason.
        source: std::io::Error,
    },
    /// ONNX Runtime refused the model file.
    #[error("ONNX Runtime cannot load {}: {reason}", .path.display())]
    Load {
        /// The model file.
        path: PathBuf,
        /// ONNX Runtime's reason.
        reason: String,
    },
    /// The inputs do not fit the model, or running it failed.
    #[error("inference failed on {}: {reason}", .path.display())]
    Inference {
        /// The model file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

/// The runtime library this process uses: `ORT_DYLIB_PATH` when set and not empty, else
/// [`DEFAULT_RUNTIME_PATH`].
pub fn runtime_path() -> PathBuf {
    match std::env::var_os(RUNTIME_PATH_VAR) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(DEFAULT_RUNTIME_PATH),
    }
}

/// Checks, without touching ONNX Runtime, that `path` names a readable regular file, so that a missing library
/// is reported before ort is asked to load it.
pub fn check_runtime_file(path: &Path) -> Result<(), OnnxError> {
    let runtime = |reason: String| OnnxError::Runtime { path: path.to_path_buf(), reason };
    let meta = std::fs::metadata(path).map_err(|e| {
        runtime(format!("{e} (install it with scripts/setup.sh or point {RUNTIME_PATH_VAR} at it)"))
    })?;
    if !meta.is_file() {
        return Err(runtime("not a regular file".into()));
    }
    std::fs::File::open(path).map_err(|e| runtime(e.to_string()))?;
    Ok(())
}

/// An error and its sources, joined with ": " (ort's load errors keep the OS's reason in the source).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let next = e.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = e.source();
    }
    text
}

/// ort's load error with the OS's reason: for a failed `dlopen` that lies in the source of the inner
/// `libloading` error, which ort's own `Display` and `source` leave out.
fn load_error(error: &ort::LoadDynamicError) -> String {
    match error {
        ort::LoadDynamicError::Dlopen { error: inner, .. } => match std::error::Error::source(inner) {
            Some(reason) => format!("{error}: {}", error_chain(reason)),
            None => error.to_string(),
        },
        other => error_chain(other),
    }
}

/// The one ONNX Runtime environment of this process, loaded from [`runtime_path`] on first use. A failure is
/// remembered: ort is never called again after it.
fn environment() -> Result<&'static Environment, OnnxError> {
    static ENVIRONMENT: OnceLock<Result<Environment, (PathBuf, String)>> = OnceLock::new();
    ENVIRONMENT
        .get_or_init(|| {
            let path = runtime_path();
            let fail = |reason: String| (path.clone(), reason);
            check_runtime_file(&path).map_err(|e| match e {
                OnnxError::Runtime { reason, .. } => fail(reason),
                other => fail(other.to_string()),
            })?;
            let builder = ort::init_from(&path).map_err(|e| fail(load_error(&e)))?;
            builder.with_name("inferno").build().map_err(|e| fail(error_chain(&e)))
        })
        .as_ref()
        .map_err(|(path, reason)| OnnxError::Runtime { path: path.clone(), reason: reason.clone() })
}

/// One input or output of a model, as the model file declares it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// The name `run` takes and returns.
    pub name: String,
    /// The element type as ort spells it (`f32`, `i64`, `String`, ...), or `sequence`/`map`/`optional`.
    pub element_type: String,
    /// Dimensions; `None` where the model leaves one dynamic (empty for sequences and maps).
    pub shape: Vec<Option<usize>>,
    /// The symbolic names of the dimensions (`"N"`), empty strings where there is none.
    pub dimension_names: Vec<String>,
}

impl TensorInfo {
    fn from_outlet(outlet: &Outlet) -> Self {
        let name = outlet.name().to_string();
        match outlet.dtype() {
            ValueType::Tensor { ty, shape, dimension_symbols } => Self {
                name,
                element_type: ty.to_string(),
                shape: shape.iter().map(|&d| usize::try_from(d).ok()).collect(),
                dimension_names: dimension_symbols.iter().map(|s| s.to_string()).collect(),
            },
            ValueType::Sequence(_) => Self::non_tensor(name, "sequence"),
            ValueType::Map { .. } => Self::non_tensor(name, "map"),
            ValueType::Optional(_) => Self::non_tensor(name, "optional"),
        }
    }

    fn non_tensor(name: String, kind: &str) -> Self {
        Self { name, element_type: kind.into(), shape: Vec::new(), dimension_names: Vec::new() }
    }
}

/// A named f32 tensor: name, shape, data in row-major order.
pub type NamedTensor = (String, Vec<usize>, Vec<f32>);

/// The elements of an input tensor, in row-major order: the element types inferno feeds models (float
/// features, and integer token ids and masks).
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    /// 32-bit floats (`f32` inputs).
    F32(Vec<f32>),
    /// 64-bit integers (`i64` inputs, such as `input_ids` and `attention_mask`).
    I64(Vec<i64>),
}

impl TensorData {
    /// How many elements there are.
    pub fn len(&self) -> usize {
        match self {
            Self::F32(data) => data.len(),
            Self::I64(data) => data.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type as [`TensorInfo::element_type`] spells it (`f32`, `i64`).
    pub fn element_type(&self) -> &'static str {
        match self {
            Self::F32(_) => "f32",
            Self::I64(_) => "i64",
        }
    }
}

impl From<Vec<f32>> for TensorData {
    fn from(data: Vec<f32>) -> Self {
        Self::F32(data)
    }
}

impl From<Vec<i64>> for TensorData {
    fn from(data: Vec<i64>) -> Self {
        Self::I64(data)
    }
}

/// An ONNX model loaded in ONNX Runtime.
pub struct OnnxModel {
    path: PathBuf,
    inputs: Vec<TensorInfo>,
    outputs: Vec<TensorInfo>,
    /// ort's `Session::run` takes `&mut self`, so runs are serialised.
    session: Mutex<Session>,
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxModel")
            .field("path", &self.path)
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .finish_non_exhaustive()
    }
}

impl OnnxModel {
    /// Loads the model file in ONNX Runtime (loading the runtime first if this process has not yet).
    pub fn load(path: &Path) -> Result<Self, OnnxError> {
        let meta =
            std::fs::metadata(path).map_err(|source| OnnxError::Io { path: path.to_path_buf(), source })?;
        if !meta.is_file() {
            return Err(OnnxError::Load { path: path.to_path_buf(), reason: "not a regular file".into() });
        }
        let environment = environment()?;
        let fail = |reason: String| OnnxError::Load { path: path.to_path_buf(), reason };
        let session = Session::builder(environment)
            .map_err(|e| fail(error_chain(&e)))?
            // ONNX Runtime's worker threads spin between the operators of a run (faster runs), and by
            // default go on spinning after it: on a 2-core machine that held a core from the semantic
            // cache's scan right after an embedding (docs/performance.md). Stop them when a run ends.
            .with_config_entry("session.force_spinning_stop", "1")
            .map_err(|e| fail(error_chain(&e)))?
            .commit_from_file(path)
            .map_err(|e| fail(error_chain(&e)))?;
        let inputs = session.inputs().iter().map(TensorInfo::from_outlet).collect();
        let outputs = session.outputs().iter().map(TensorInfo::from_outlet).collect();
        Ok(Self { path: path.to_path_buf(), inputs, outputs, session: Mutex::new(session) })
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The model's inputs, in the file's order.
    pub fn inputs(&self) -> &[TensorInfo] {
        &self.inputs
    }

    /// The model's outputs, in the file's order.
    pub fn outputs(&self) -> &[TensorInfo] {
        &self.outputs
    }

    /// Runs the model on named f32 tensors `(name, shape, data)`; see [`run_tensors`](Self::run_tensors).
    pub fn run(&self, inputs: &[(&str, Vec<usize>, Vec<f32>)]) -> Result<Vec<NamedTensor>, OnnxError> {
        let typed: Vec<(&str, Vec<usize>, TensorData)> = inputs
            .iter()
            .map(|(name, shape, data)| (*name, shape.clone(), TensorData::F32(data.clone())))
            .collect();
        self.run_tensors(&typed)
    }

    /// Runs the model on named tensors `(name, shape, data)` and returns every output, in the file's order,
    /// as f32 tensors. Unknown, missing or repeated input names, data that does not fill the shape, data of
    /// another element type than the model declares for the input, and outputs that are not f32 tensors are
    /// errors.
    pub fn run_tensors(
        &self,
        inputs: &[(&str, Vec<usize>, TensorData)],
    ) -> Result<Vec<NamedTensor>, OnnxError> {
        let fail = |reason: String| OnnxError::Inference { path: self.path.clone(), reason };
        for (i, (name, shape, data)) in inputs.iter().enumerate() {
            let Some(declared) = self.inputs.iter().find(|input| input.name == *name) else {
                let known: Vec<&str> = self.inputs.iter().map(|input| input.name.as_str()).collect();
                return Err(fail(format!("the model has no input {name:?} (its inputs: {known:?})")));
            };
            if inputs[..i].iter().any(|(other, _, _)| other == name) {
                return Err(fail(format!("input {name:?} is given twice")));
            }
            if declared.element_type != data.element_type() {
                return Err(fail(format!(
                    "input {name:?} is {} but the model takes {}",
                    data.element_type(),
                    declared.element_type
                )));
            }
            let elements = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
            if elements != Some(data.len()) {
                return Err(fail(format!("input {name:?} has shape {shape:?} but {} values", data.len())));
            }
        }
        if let Some(missing) =
            self.inputs.iter().find(|input| !inputs.iter().any(|(n, _, _)| *n == input.name))
        {
            return Err(fail(format!("input {:?} is missing", missing.name)));
        }
        let mut values = Vec::with_capacity(inputs.len());
        for (name, shape, data) in inputs {
            let tensor = match data {
                TensorData::F32(data) => {
                    Tensor::from_array((shape.clone(), data.clone())).map(Tensor::into_dyn)
                }
                TensorData::I64(data) => {
                    Tensor::from_array((shape.clone(), data.clone())).map(Tensor::into_dyn)
                }
            };
            let tensor = tensor.map_err(|e| fail(format!("input {name:?}: {}", error_chain(&e))))?;
            values.push((*name, tensor));
        }
        let mut session = self.session.lock();
        let outputs = session.run(values).map_err(|e| fail(error_chain(&e)))?;
        let mut result = Vec::with_capacity(outputs.len());
        for (name, value) in outputs.iter() {
            let (shape, data) = value
                .try_extract_tensor::<f32>()
                .map_err(|e| fail(format!("output {name:?}: {}", error_chain(&e))))?;
            let shape = shape.iter().map(|&d| usize::try_from(d).unwrap_or(0)).collect();
            result.push((name.to_string(), shape, data.to_vec()));
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests;
