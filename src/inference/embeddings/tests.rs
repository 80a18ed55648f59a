//! Parsing `/v1/embeddings` bodies (every `input` shape, the options, the 400s) and building responses
//! (float and base64, `dimensions`, usage).

use base64::Engine as _;
use serde_json::json;

use super::*;

fn parse(body: Value) -> Result<EmbeddingRequest, InferenceError> {
    EmbeddingRequest::parse(&body)
}

fn param_of(body: Value) -> String {
    let error = parse(body).unwrap_err();
    assert_eq!(error.status(), 400);
    error.to_body()["error"]["param"].as_str().unwrap_or_default().to_string()
}

#[test]
fn every_input_shape_parses() {
    let texts = |input: Value| parse(json!({"model": "m", "input": input})).unwrap().input;
    assert_eq!(texts(json!("hi")), EmbeddingInput::Texts(vec!["hi".into()]));
    assert_eq!(texts(json!(["a", "b"])), EmbeddingInput::Texts(vec!["a".into(), "b".into()]));
    assert_eq!(texts(json!([1, 2.5])), EmbeddingInput::Numbers(vec![vec![1.0, 2.5]]));
    assert_eq!(texts(json!([[1], [2, 3]])), EmbeddingInput::Numbers(vec![vec![1.0], vec![2.0, 3.0]]));
    let request = parse(json!({"model": "m", "input": "x", "user": "u", "other": 1})).unwrap();
    assert_eq!(
        (request.model.as_str(), request.encoding_format, request.dimensions),
        ("m", EncodingFormat::Float, None)
    );
    let request =
        parse(json!({"model": "m", "input": "x", "encoding_format": "base64", "dimensions": 2.0})).unwrap();
    assert_eq!((request.encoding_format, request.dimensions), (EncodingFormat::Base64, Some(2)));
}

#[test]
fn malformed_requests_are_400s_naming_the_parameter() {
    assert_eq!(param_of(json!({"input": "x"})), "model");
    assert_eq!(param_of(json!({"model": "", "input": "x"})), "model");
    assert_eq!(param_of(json!({"model": "m"})), "input");
    for input in [
        json!([]),
        json!(3),
        json!({"a": 1}),
        json!(["a", 1]),
        json!([1, "a"]),
        json!([[1], "a"]),
        json!([[1, [2]]]),
        json!([true]),
    ] {
        assert_eq!(param_of(json!({"model": "m", "input": input.clone()})), "input", "{input}");
    }
    let many: Vec<&str> = vec!["a"; MAX_INPUTS + 1];
    assert_eq!(param_of(json!({"model": "m", "input": many})), "input");
    assert_eq!(param_of(json!({"model": "m", "input": "x", "encoding_format": "int8"})), "encoding_format");
    for dimensions in [json!(0), json!(-1), json!(1.5), json!("8")] {
        assert_eq!(param_of(json!({"model": "m", "input": "x", "dimensions": dimensions})), "dimensions");
    }
}

#[test]
fn numbers_become_vectors_or_token_ids() {
    let numbers = EmbeddingInput::Numbers(vec![vec![1.0, -0.5], vec![3.0]]);
    assert_eq!(numbers.vectors().unwrap(), [vec![1.0f32, -0.5], vec![3.0]]);
    assert_eq!(EmbeddingInput::Numbers(vec![vec![2.0, 7.0]]).tokens().unwrap(), [vec![2i64, 7]]);
    let error = numbers.tokens().unwrap_err();
    assert_eq!(error.to_body()["error"]["param"], "input[0][1]");
    assert!(error.to_string().contains("not a token id"), "{error}");
    let error = EmbeddingInput::Numbers(vec![vec![1e39]]).vectors().unwrap_err();
    assert!(error.to_string().contains("out of f32's range"), "{error}");
    let texts = EmbeddingInput::Texts(vec!["a".into()]);
    assert_eq!(texts.vectors().unwrap_err().status(), 400);
    assert_eq!(texts.tokens().unwrap_err().status(), 400);
}

#[test]
fn bodies_follow_openai_in_float_and_base64() {
    let vectors = vec![vec![0.296875f32, -0.5625, 0.0625], vec![0.1, 2.0, -3.0]];
    let body = embeddings_body("m", &vectors, EncodingFormat::Float, None, 0).unwrap();
    assert_eq!(
        body,
        json!({"object": "list", "model": "m", "usage": {"prompt_tokens": 0, "total_tokens": 0}, "data": [
            {"object": "embedding", "index": 0, "embedding": [0.296875, -0.5625, 0.0625]},
            {"object": "embedding", "index": 1, "embedding": [0.1, 2.0, -3.0]},
        ]})
    );
    // f32 numbers are written in their shortest form, not as the f64 that holds them.
    assert!(body.to_string().contains("[0.1,2.0,-3.0]"), "{body}");

    let body = embeddings_body("m", &vectors, EncodingFormat::Base64, Some(2), 7).unwrap();
    assert_eq!(body["usage"], json!({"prompt_tokens": 7, "total_tokens": 7}));
    let encoded = body["data"][0]["embedding"].as_str().unwrap();
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
    let decoded: Vec<f32> = bytes.chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    assert_eq!(decoded, [0.296875, -0.5625]);
    assert_eq!(base64_of(&[1.0]), "AACAPw==");

    let error = embeddings_body("m", &vectors, EncodingFormat::Float, Some(4), 0).unwrap_err();
    assert_eq!(
        (error.status(), error.to_string()),
        (400, "'dimensions' is 4, but model 'm' gives embeddings of 3".into())
    );
    let error = embeddings_body("m", &[vec![f32::NAN]], EncodingFormat::Float, None, 0).unwrap_err();
    assert_eq!(error.status(), 500);
}
