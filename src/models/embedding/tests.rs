//! Signatures and embeddings of the two tiny test models (scripts/make-tiny-onnx.py): the MLP as a vector
//! model, the text encoder with its tokenizer, mean pooling over padded rows, chunked batches, and errors.

use std::path::{Path, PathBuf};

use super::*;

fn model_path(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/models").join(file)
}

fn mlp() -> OnnxModel {
    OnnxModel::load(&model_path("tiny-mlp.onnx")).unwrap()
}

fn text() -> (OnnxModel, LoadedTokenizer) {
    let model = OnnxModel::load(&model_path("tiny-text.onnx")).unwrap();
    (model, LoadedTokenizer::load(&model_path("tiny-text.tokenizer.json")).unwrap())
}

fn close(got: &[f32], want: &[f32]) -> bool {
    got.len() == want.len() && got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-5)
}

/// The tiny MLP's forward pass (weights as in scripts/make-tiny-onnx.py).
fn mlp_reference(x: &[f32]) -> Vec<f32> {
    let w1 = |i: usize, j: usize| ((i * 8 + j) % 7) as f32 / 8.0 - 3.0 / 8.0;
    let b1 = |j: usize| (j % 3) as f32 / 8.0 - 1.0 / 8.0;
    let w2 = |j: usize, k: usize| ((j * 3 + k) % 5) as f32 / 8.0 - 2.0 / 8.0;
    let h: Vec<f32> =
        (0..8).map(|j| ((0..4).map(|i| x[i] * w1(i, j)).sum::<f32>() + b1(j)).max(0.0)).collect();
    (0..3).map(|k| (0..8).map(|j| h[j] * w2(j, k)).sum::<f32>() + k as f32 / 8.0 - 1.0 / 8.0).collect()
}

#[test]
fn the_tiny_models_are_embedding_models() {
    assert_eq!(
        Signature::of(&mlp()),
        Ok(Signature::Vectors { input: "x".into(), width: 4, batch: None, output: 0 })
    );
    let (model, _) = text();
    let inputs = TextInputs { mask: true, type_ids: true, batch: None, seq: None, output: 0, pooled: true };
    assert_eq!(Signature::of(&model), Ok(Signature::Text(inputs)));
    assert!(Signature::of(&model).unwrap().takes_text());
    assert_eq!(Signature::of(&mlp()).unwrap().describe(), "vectors of 4 numbers (input shape [N, 4])");
}

fn info(name: &str, element_type: &str, shape: &[Option<usize>]) -> TensorInfo {
    let dimension_names =
        shape.iter().map(|d| if d.is_some() { String::new() } else { "N".into() }).collect();
    TensorInfo {
        name: name.into(),
        element_type: element_type.into(),
        shape: shape.to_vec(),
        dimension_names,
    }
}

fn one(info: &TensorInfo) -> &[TensorInfo] {
    std::slice::from_ref(info)
}

#[test]
fn signatures_follow_the_documented_rules() {
    let (n, s) = (None, None);
    let vector = [info("x", "f32", &[n, Some(4)])];
    let hidden = info("last_hidden_state", "f32", &[n, s, Some(8)]);
    let pooled = info("pooled", "f32", &[Some(1), Some(8)]);
    let ids = info("input_ids", "i64", &[Some(1), Some(16)]);
    let mask = info("attention_mask", "i64", &[Some(1), Some(16)]);

    // The sentence_embedding output wins over the first one; a fixed batch and sequence are kept.
    let sentence = info(SENTENCE_EMBEDDING, "f32", &[n, Some(8)]);
    let text = Signature::from_declared(&[ids.clone(), mask.clone()], &[hidden.clone(), sentence]).unwrap();
    let inputs =
        TextInputs { mask: true, type_ids: false, batch: Some(1), seq: Some(16), output: 1, pooled: false };
    assert_eq!(text, Signature::Text(inputs));
    let text = Signature::from_declared(one(&ids), one(&pooled)).unwrap();
    assert!(matches!(text, Signature::Text(TextInputs { mask: false, pooled: false, output: 0, .. })));
    let zero = [info("input_ids", "i64", &[Some(0), Some(0)])];
    let Signature::Text(inputs) = Signature::from_declared(&zero, one(&pooled)).unwrap() else { panic!() };
    assert_eq!((inputs.batch, inputs.seq), (None, None), "a fixed 0 is read as dynamic");

    let why = |inputs: &[TensorInfo], outputs: &[TensorInfo]| {
        Signature::from_declared(inputs, outputs).unwrap_err()
    };
    assert!(why(&vector, one(&hidden)).contains("not f32 [N, dim]"), "a vector model is not pooled");
    assert!(why(&[info("x", "f32", &[n, n])], one(&pooled)).contains("fixed d > 0"));
    assert!(why(&[info("x", "f32", &[n, Some(0)])], one(&pooled)).contains("fixed d > 0"));
    assert!(why(&[info("x", "f32", &[n, Some(4), Some(4)])], one(&pooled)).contains("[N, 4, 4]"));
    let two = [info("a", "f32", &[n, Some(4)]), info("b", "f32", &[n, Some(4)])];
    assert!(why(&two, one(&pooled)).contains("neither one f32 [N, d] input nor input_ids"));
    let extra = [ids.clone(), info("position_ids", "i64", &[n, s])];
    assert!(why(&extra, one(&hidden)).contains("takes input \"position_ids\""));
    let int32 = [info("input_ids", "i32", &[n, s])];
    assert!(why(&int32, one(&hidden)).contains("is i32 [N, N], not i64 [N, S]"));
    assert!(why(one(&ids), &[info("logits", "i64", &[n, Some(2)])]).contains("its output \"logits\" is i64"));
    assert!(why(one(&ids), &[info("y", "f32", &[n])]).contains("not f32 [N, dim] or [N, S, dim]"));
    assert_eq!(why(&vector, &[]), "it has no outputs");
}

#[test]
fn vectors_give_the_mlp_outputs_exactly() {
    let model = mlp();
    let signature = Signature::of(&model).unwrap();
    let x = vec![vec![1.0, 2.0, 3.0, 4.0], vec![-1.0, 0.5, 2.0, -3.0]];
    let out = embed(&model, &signature, None, Batch::Vectors(&x)).unwrap();
    assert_eq!(out.tokens, 0);
    assert_eq!(out.vectors, [vec![0.296875, -0.5625, 0.0625], vec![-0.140625, 0.2265625, 0.59375]]);
}

#[test]
fn large_batches_are_run_in_chunks_in_order() {
    let model = mlp();
    let signature = Signature::of(&model).unwrap();
    let x: Vec<Vec<f32>> = (0..2 * MAX_BATCH + 5)
        .map(|i| (0..4).map(|j| ((i * 5 + j * 3) % 11) as f32 / 4.0 - 1.0).collect())
        .collect();
    let out = embed(&model, &signature, None, Batch::Vectors(&x)).unwrap();
    assert_eq!(out.vectors.len(), x.len());
    for (got, x) in out.vectors.iter().zip(&x) {
        assert!(close(got, &mlp_reference(x)), "{got:?} for {x:?}");
    }
}

#[test]
fn texts_are_tokenized_and_mean_pooled_over_their_own_tokens() {
    let (model, tokenizer) = text();
    let signature = Signature::of(&model).unwrap();
    // Different lengths: the first row is padded with three [PAD] tokens that must not count.
    let texts = vec!["hello world".to_string(), "Inferno, cache fast!".to_string()];
    let out = embed(&model, &signature, Some(&tokenizer), Batch::Texts(&texts)).unwrap();
    assert_eq!(out.tokens, 4 + 7);
    // What scripts/make-tiny-onnx.py printed.
    assert!(close(&out.vectors[0], &[0.1875, 0.21875, 0.0, 0.3125]), "{:?}", out.vectors);
    let second = [0.11607143, 0.26785713, 0.33035713, 0.48214287];
    assert!(close(&out.vectors[1], &second), "{:?}", out.vectors);
    // Alone, each text gives the same embedding.
    let alone = embed(&model, &signature, Some(&tokenizer), Batch::Texts(&texts[..1])).unwrap();
    assert!(close(&alone.vectors[0], &out.vectors[0]));
}

#[test]
fn token_ids_are_fed_as_they_are() {
    let (model, tokenizer) = text();
    let signature = Signature::of(&model).unwrap();
    let tokens = vec![vec![2, 4, 5, 3], vec![2, 4, 3]];
    let out = embed(&model, &signature, Some(&tokenizer), Batch::Tokens(&tokens)).unwrap();
    assert_eq!(out.tokens, 7);
    assert!(close(&out.vectors[0], &[0.1875, 0.21875, 0.0, 0.3125]));
    assert!(close(&out.vectors[1], &[0.3125, 0.25, -0.0625, 0.25]));
    // Without a tokenizer too (padding with id 0).
    let out = embed(&model, &signature, None, Batch::Tokens(&tokens)).unwrap();
    assert!(close(&out.vectors[1], &[0.3125, 0.25, -0.0625, 0.25]));
}

#[test]
fn inputs_that_do_not_fit_are_input_errors() {
    let model = mlp();
    let signature = Signature::of(&model).unwrap();
    let input_error = |result: Result<Embeddings, EmbeddingError>| match result {
        Err(EmbeddingError::Input(message)) => message,
        other => panic!("{other:?}"),
    };
    let short = vec![vec![1.0, 2.0, 3.0, 4.0], vec![1.0, 2.0, 3.0]];
    let message = input_error(embed(&model, &signature, None, Batch::Vectors(&short)));
    assert_eq!(message, "input[1] has 3 numbers; the model takes vectors of 4 (input \"x\" is [N, 4])");
    let texts = vec!["hello".to_string()];
    let message = input_error(embed(&model, &signature, None, Batch::Texts(&texts)));
    assert_eq!(message, "the model takes vectors of 4 numbers (input shape [N, 4])");

    let (model, tokenizer) = text();
    let signature = Signature::of(&model).unwrap();
    let message = input_error(embed(&model, &signature, None, Batch::Texts(&texts)));
    assert!(message.contains("no tokenizer.json"), "{message}");
    let bad = vec![vec![2, 9, 3]];
    let message = input_error(embed(&model, &signature, Some(&tokenizer), Batch::Tokens(&bad)));
    assert_eq!(message, "input[0] has token id 9, not in the vocabulary");
    let message = input_error(embed(&model, &signature, Some(&tokenizer), Batch::Tokens(&[vec![]])));
    assert_eq!(message, "input[0] has no token ids");
    let message = input_error(embed(&model, &signature, None, Batch::Vectors(&short)));
    assert_eq!(message, "the model takes text (input_ids [N, S])");
}

#[test]
fn pooling_keeps_only_masked_tokens_and_checks_shapes() {
    let model = mlp();
    // Two rows of two tokens of dim 2; the second row keeps only its first token.
    let states = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 100.0, 100.0];
    let masks: [&[i64]; 2] = [&[1, 1], &[1, 0]];
    let rows = rows_of(&model, "h", &[2, 2, 2], &states, 2, Some((2, &masks))).unwrap();
    assert_eq!(rows, [vec![2.0, 3.0], vec![5.0, 6.0]]);
    let none: [&[i64]; 1] = [&[0, 0]];
    assert_eq!(rows_of(&model, "h", &[1, 2, 2], &states[..4], 1, Some((2, &none))).unwrap(), [vec![0.0; 2]]);
    let err = rows_of(&model, "h", &[3, 2], &states[..6], 2, None).unwrap_err().to_string();
    assert!(err.contains("output \"h\" has shape [3, 2]; expected [2, dim]"), "{err}");
}

/// Fixed batch and sequence dimensions, declared over the dynamic tiny models (which accept any size):
/// chunks of the fixed batch, the last padded with rows whose outputs are dropped, rows padded to the
/// fixed length, and longer rows refused.
#[test]
fn fixed_dimensions_pad_chunks_and_rows() {
    let model = mlp();
    let signature = Signature::Vectors { input: "x".into(), width: 4, batch: Some(2), output: 0 };
    let x: Vec<Vec<f32>> = vec![vec![1.0, 2.0, 3.0, 4.0], vec![-1.0, 0.5, 2.0, -3.0], vec![0.5; 4]];
    let out = embed(&model, &signature, None, Batch::Vectors(&x)).unwrap();
    assert_eq!(out.vectors.len(), 3);
    for (got, x) in out.vectors.iter().zip(&x) {
        assert!(close(got, &mlp_reference(x)), "{got:?}");
    }

    let (model, tokenizer) = text();
    let fixed =
        TextInputs { mask: true, type_ids: true, batch: Some(2), seq: Some(8), output: 0, pooled: true };
    let signature = Signature::Text(fixed);
    let texts: Vec<String> = ["hello world", "Inferno, cache fast!", "hello"].map(String::from).to_vec();
    let out = embed(&model, &signature, Some(&tokenizer), Batch::Texts(&texts)).unwrap();
    assert_eq!(out.tokens, 4 + 7 + 3);
    let second = [0.11607143, 0.26785713, 0.33035713, 0.48214287];
    assert!(close(&out.vectors[0], &[0.1875, 0.21875, 0.0, 0.3125]), "{:?}", out.vectors);
    assert!(close(&out.vectors[1], &second), "{:?}", out.vectors);
    assert!(close(&out.vectors[2], &[0.3125, 0.25, -0.0625, 0.25]), "{:?}", out.vectors);

    let short = Signature::Text(TextInputs { seq: Some(5), ..fixed });
    match embed(&model, &short, Some(&tokenizer), Batch::Texts(&texts)) {
        Err(EmbeddingError::Input(message)) => {
            assert_eq!(message, "input[1] has 7 tokens; the model takes at most 5")
        }
        other => panic!("{other:?}"),
    }
}
