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
