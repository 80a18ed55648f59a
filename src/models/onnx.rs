//! ONNX models through ONNX Runtime (the `ort` crate, loading the runtime's shared library at run time): the
//! process-wide environment, loading a model file, its input and output signature, and running it on f32
//! tensors.
//!
//! The runtime library is [`runtime_path`]: `ORT_DYLIB_PATH` when set, else [`DEFAULT_RUNTIME_PATH`] (where
//! `scripts/setup.sh` installs it). It is loaded once per process; a missing or broken library is a clear
//! [`OnnxError::Runtime`] naming the path and the OS's reason, and after a failed load no other `ort` function
//! is ever called (ort would then fall back to `libonnxruntime.so` on its own and panic if that is missing).
//! Only the mechanics live here; which models stay loaded is the job of the model cache
//! ([`crate::models::cache`]). Running is blocking: callers on an async runtime run it on a blocking thread.

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

    /// Runs the model on named f32 tensors `(name, shape, data)` and returns every output, in the file's order,
    /// as f32 tensors. Unknown, missing or repeated input names, data that does not fill the shape, and
    /// outputs that are not f32 tensors are errors.
    pub fn run(&self, inputs: &[(&str, Vec<usize>, Vec<f32>)]) -> Result<Vec<NamedTensor>, OnnxError> {
        let fail = |reason: String| OnnxError::Inference { path: self.path.clone(), reason };
        for (i, (name, shape, data)) in inputs.iter().enumerate() {
            if !self.inputs.iter().any(|input| input.name == *name) {
                let known: Vec<&str> = self.inputs.iter().map(|input| input.name.as_str()).collect();
                return Err(fail(format!("the model has no input {name:?} (its inputs: {known:?})")));
            }
            if inputs[..i].iter().any(|(other, _, _)| other == name) {
                return Err(fail(format!("input {name:?} is given twice")));
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
            let tensor = Tensor::from_array((shape.clone(), data.clone()))
                .map_err(|e| fail(format!("input {name:?}: {}", error_chain(&e))))?;
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
mod tests {
    use super::*;

    const X: [[f32; 4]; 2] = [[1.0, 2.0, 3.0, 4.0], [-1.0, 0.5, 2.0, -3.0]];
    /// What scripts/make-tiny-onnx.py printed for [`X`].
    const Y: [[f32; 3]; 2] = [[0.296875, -0.5625, 0.0625], [-0.140625, 0.2265625, 0.59375]];

    fn tiny_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/models/tiny-mlp.onnx")
    }

    /// The tiny MLP's forward pass, with the weights defined as in scripts/make-tiny-onnx.py.
    fn reference(x: &[f32; 4]) -> [f32; 3] {
        let w1 = |i: usize, j: usize| ((i * 8 + j) % 7) as f32 / 8.0 - 3.0 / 8.0;
        let b1 = |j: usize| (j % 3) as f32 / 8.0 - 1.0 / 8.0;
        let w2 = |j: usize, k: usize| ((j * 3 + k) % 5) as f32 / 8.0 - 2.0 / 8.0;
        let b2 = |k: usize| k as f32 / 8.0 - 1.0 / 8.0;
        let h: Vec<f32> =
            (0..8).map(|j| ((0..4).map(|i| x[i] * w1(i, j)).sum::<f32>() + b1(j)).max(0.0)).collect();
        std::array::from_fn(|k| (0..8).map(|j| h[j] * w2(j, k)).sum::<f32>() + b2(k))
    }

    #[test]
    fn models_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<OnnxModel>();
    }

    #[test]
    fn the_reference_matches_the_script() {
        for (x, y) in X.iter().zip(Y) {
            assert_eq!(reference(x), y);
        }
    }

    #[test]
    fn tiny_mlp_signature_and_outputs() {
        let model = OnnxModel::load(&tiny_path()).unwrap();
        let input = TensorInfo {
            name: "x".into(),
            element_type: "f32".into(),
            shape: vec![None, Some(4)],
            dimension_names: vec!["N".into(), String::new()],
        };
        assert_eq!(model.inputs(), [input]);
        assert_eq!(model.outputs().len(), 1);
        let output = &model.outputs()[0];
        assert_eq!((output.name.as_str(), output.element_type.as_str()), ("y", "f32"));
        assert_eq!(output.shape, [None, Some(3)]);
        assert_eq!(output.dimension_names[0], "N");

        let data: Vec<f32> = X.iter().flatten().copied().collect();
        let out = model.run(&[("x", vec![2, 4], data)]).unwrap();
        assert_eq!(out.len(), 1);
        let (name, shape, y) = &out[0];
        assert_eq!((name.as_str(), shape.as_slice()), ("y", [2, 3].as_slice()));
        let expected: Vec<f32> = X.iter().flat_map(reference).collect();
        for (got, want) in y.iter().zip(&expected) {
            assert!((got - want).abs() < 1e-5, "{y:?} != {expected:?}");
        }
        // A batch of one, and the model may be run again.
        let out = model.run(&[("x", vec![1, 4], X[1].to_vec())]).unwrap();
        assert_eq!(out[0].1, [1, 3]);
        assert!(out[0].2.iter().zip(Y[1]).all(|(got, want)| (got - want).abs() < 1e-5));
    }

    #[test]
    fn bad_inputs_are_errors() {
        let model = OnnxModel::load(&tiny_path()).unwrap();
        let bad = |inputs: &[(&str, Vec<usize>, Vec<f32>)]| match model.run(inputs) {
            Err(OnnxError::Inference { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        assert!(bad(&[("z", vec![1, 4], vec![0.0; 4])]).contains("no input \"z\""));
        assert!(bad(&[]).contains("missing"));
        assert!(bad(&[("x", vec![1, 4], vec![0.0; 3])]).contains("3 values"));
        assert!(bad(&[("x", vec![usize::MAX, 2], vec![0.0; 3])]).contains("3 values"));
        assert!(bad(&[("x", vec![1, 4], vec![0.0; 4]), ("x", vec![1, 4], vec![0.0; 4])]).contains("twice"));
        // The right count in the wrong shape: ONNX Runtime refuses it.
        assert!(!bad(&[("x", vec![2, 2], vec![0.0; 4])]).is_empty());
    }

    #[test]
    fn missing_and_foreign_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.onnx");
        let err = OnnxModel::load(&missing).unwrap_err();
        assert!(matches!(err, OnnxError::Io { .. }), "{err}");
        assert!(err.to_string().contains("missing.onnx"), "{err}");

        let foreign = dir.path().join("foreign.onnx");
        std::fs::write(&foreign, b"not a model at all").unwrap();
        let err = OnnxModel::load(&foreign).unwrap_err();
        assert!(matches!(err, OnnxError::Load { .. }), "{err}");
        assert!(err.to_string().contains("foreign.onnx"), "{err}");

        let truncated = dir.path().join("truncated.onnx");
        let bytes = std::fs::read(tiny_path()).unwrap();
        std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
        assert!(matches!(OnnxModel::load(&truncated), Err(OnnxError::Load { .. })));

        assert!(matches!(OnnxModel::load(dir.path()), Err(OnnxError::Load { .. })));
    }

    /// The runtime is loaded once per process, so a wrong library path is tested through the check that runs
    /// before ort is asked to load it (calling ort after a failed load would panic).
    #[test]
    fn a_missing_runtime_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("libonnxruntime.so.0");
        let err = check_runtime_file(&missing).unwrap_err().to_string();
        assert!(err.contains("libonnxruntime.so.0") && err.contains(RUNTIME_PATH_VAR), "{err}");
        assert!(err.contains("No such file"), "{err}");
        let err = check_runtime_file(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
        assert!(check_runtime_file(&runtime_path()).is_ok(), "the runtime this process uses is installed");
    }
}
