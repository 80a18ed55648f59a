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

fn text_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/models/tiny-text.onnx")
}

#[test]
fn integer_inputs_feed_the_text_model() {
    let model = OnnxModel::load(&text_path()).unwrap();
    let names: Vec<(&str, &str)> =
        model.inputs().iter().map(|i| (i.name.as_str(), i.element_type.as_str())).collect();
    assert_eq!(names, [("input_ids", "i64"), ("attention_mask", "i64"), ("token_type_ids", "i64")]);
    // "[CLS] hello [SEP]" and one padding token: E[id] + T[0], plus M where the mask is 1.
    let ids = TensorData::I64(vec![2, 4, 3, 0]);
    let mask = TensorData::I64(vec![1, 1, 1, 0]);
    let types = TensorData::I64(vec![0; 4]);
    let out = model
        .run_tensors(&[
            ("input_ids", vec![1, 4], ids),
            ("attention_mask", vec![1, 4], mask),
            ("token_type_ids", vec![1, 4], types),
        ])
        .unwrap();
    let (name, shape, hidden) = &out[0];
    assert_eq!((name.as_str(), shape.as_slice()), ("last_hidden_state", [1, 4, 4].as_slice()));
    let e = |v: usize, d: usize| ((v * 4 + d) % 9) as f32 / 8.0 - 0.5;
    let ty = |d: usize| (d % 2) as f32 / 8.0;
    let m = |d: usize| (d + 1) as f32 / 16.0;
    for (t, (v, masked)) in [(2, 1.0), (4, 1.0), (3, 1.0), (0, 0.0)].into_iter().enumerate() {
        for d in 0..4 {
            assert_eq!(hidden[t * 4 + d], e(v, d) + ty(d) + masked * m(d), "token {t}, dimension {d}");
        }
    }
}

#[test]
fn inputs_of_the_wrong_element_type_are_errors() {
    let model = OnnxModel::load(&text_path()).unwrap();
    let ids = TensorData::F32(vec![2.0, 3.0]);
    let ones = || TensorData::I64(vec![1, 1]);
    let err = model
        .run_tensors(&[
            ("input_ids", vec![1, 2], ids),
            ("attention_mask", vec![1, 2], ones()),
            ("token_type_ids", vec![1, 2], ones()),
        ])
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"input_ids\" is f32 but the model takes i64"), "{err}");
    let mlp = OnnxModel::load(&tiny_path()).unwrap();
    let err = mlp.run_tensors(&[("x", vec![1, 4], TensorData::I64(vec![1; 4]))]).unwrap_err().to_string();
    assert!(err.contains("is i64 but the model takes f32"), "{err}");
}
