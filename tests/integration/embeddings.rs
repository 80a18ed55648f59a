//! `POST /v1/embeddings` end to end: the real binary with the tiny ONNX models of scripts/make-tiny-onnx.py
//! (the MLP as a vector model, the text encoder with its tokenizer.json) beside the tiny llama model.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::server::{Reply, Server, with_tiny_model};
use crate::util::Sandbox;

/// What scripts/make-tiny-onnx.py printed for the MLP.
const X: [[f32; 4]; 2] = [[1.0, 2.0, 3.0, 4.0], [-1.0, 0.5, 2.0, -3.0]];
const Y: [[f32; 3]; 2] = [[0.296875, -0.5625, 0.0625], [-0.140625, 0.2265625, 0.59375]];

/// What scripts/make-tiny-onnx.py printed for the text encoder.
const HELLO_WORLD: [f32; 4] = [0.1875, 0.21875, 0.0, 0.3125];
const INFERNO: [f32; 4] = [0.11607143, 0.26785713, 0.33035713, 0.48214287];

/// The sandbox of `with_tiny_model` (tiny.gguf) plus the tiny ONNX models, and `bare-text.onnx`: the text
/// encoder without a tokenizer.
fn with_onnx_models() -> (Sandbox, PathBuf) {
    let (sb, dir) = with_tiny_model();
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/models");
    for file in ["tiny-mlp.onnx", "tiny-text.onnx", "tiny-text.tokenizer.json"] {
        std::fs::copy(models.join(file), dir.join(file)).unwrap();
    }
    std::fs::copy(models.join("tiny-text.onnx"), dir.join("bare-text.onnx")).unwrap();
    (sb, dir)
}

fn embeddings(server: &Server, body: Value) -> Reply {
    server.post("/v1/embeddings", &body, &[])
}

/// The embeddings of a 200 reply, as floats.
fn vectors(reply: &Reply) -> Vec<Vec<f32>> {
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["object"], "list");
    let data = body["data"].as_array().unwrap();
    for (i, item) in data.iter().enumerate() {
        assert_eq!((&item["object"], item["index"].as_u64()), (&json!("embedding"), Some(i as u64)));
    }
    data.iter()
        .map(|item| match &item["embedding"] {
            Value::String(encoded) => {
                let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
                bytes.chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
            }
            numbers => numbers.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect(),
        })
        .collect()
}

fn assert_close(got: &[Vec<f32>], want: &[&[f32]]) {
    assert_eq!(got.len(), want.len(), "{got:?}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.len(), w.len(), "{got:?}");
        assert!(g.iter().zip(*w).all(|(a, b)| (a - b).abs() < 1e-5), "{got:?} != {want:?}");
    }
}

/// Status, error message and param of an error reply.
fn error_of(reply: &Reply) -> (u16, String, Value) {
    let error = &reply.json()["error"];
    (reply.status, error["message"].as_str().unwrap_or_default().to_string(), error["param"].clone())
}

#[test]
fn vectors_give_the_tiny_mlp_outputs_and_repeat_from_the_cache() {
    let (sb, dir) = with_onnx_models();
    let server = Server::start(&sb, &dir, &[], &[]);
    let request = json!({"model": "tiny-mlp", "input": X, "user": "alice"});
    let first = embeddings(&server, request.clone());
    assert_close(&vectors(&first), &[&Y[0], &Y[1]]);
    let body = first.json();
    assert_eq!(body["model"], "tiny-mlp");
    assert_eq!(body["usage"], json!({"prompt_tokens": 0, "total_tokens": 0}), "vectors have no tokens");
    assert_eq!(first.cache.as_deref(), Some("MISS"));
    assert!(first.key.as_deref().is_some_and(|k| k.len() == 64), "{:?}", first.key);

    let again = embeddings(&server, request);
    assert_eq!((again.cache.as_deref(), &again.key), (Some("HIT"), &first.key));
    assert_eq!(again.json(), body, "a hit gives back the same body");
    let no_cache = server.post(
        "/v1/embeddings",
        &json!({"model": "tiny-mlp", "input": X}),
        &[("cache-control", "no-cache")],
    );
    assert_eq!(no_cache.cache.as_deref(), Some("BYPASS"));

    // One vector on its own, and a batch with it in second place, give the same numbers.
    let single = embeddings(&server, json!({"model": "tiny-mlp", "input": X[1]}));
    assert_close(&vectors(&single), &[&Y[1]]);
    let batch = embeddings(&server, json!({"model": "tiny-mlp", "input": [X[1], X[0], X[1]]}));
    assert_close(&vectors(&batch), &[&Y[1], &Y[0], &Y[1]]);
}

#[test]
fn base64_and_dimensions_round_trip() {
    let (sb, dir) = with_onnx_models();
    let server = Server::start(&sb, &dir, &[], &[]);
    let float = vectors(&embeddings(&server, json!({"model": "tiny-mlp", "input": X})));
    let reply = embeddings(&server, json!({"model": "tiny-mlp", "input": X, "encoding_format": "base64"}));
    assert!(reply.json()["data"][0]["embedding"].is_string(), "{}", reply.text);
    assert_eq!(reply.cache.as_deref(), Some("MISS"), "another encoding is another key");
    assert_eq!(vectors(&reply), float, "base64 carries the same f32 bits");

    let cut = json!({"model": "tiny-mlp", "input": X, "encoding_format": "base64", "dimensions": 2});
    assert_close(&vectors(&embeddings(&server, cut)), &[&Y[0][..2], &Y[1][..2]]);
    let (status, message, param) =
        error_of(&embeddings(&server, json!({"model": "tiny-mlp", "input": X, "dimensions": 4})));
    assert_eq!((status, param), (400, json!("dimensions")));
    assert!(message.contains("embeddings of 3"), "{message}");
}

#[test]
fn texts_are_tokenized_and_mean_pooled() {
    let (sb, dir) = with_onnx_models();
    let server = Server::start(&sb, &dir, &[], &[]);
    let reply =
        embeddings(&server, json!({"model": "tiny-text", "input": ["hello world", "Inferno, cache fast!"]}));
    assert_close(&vectors(&reply), &[&HELLO_WORLD, &INFERNO]);
    assert_eq!(reply.json()["usage"], json!({"prompt_tokens": 11, "total_tokens": 11}));
    let single = embeddings(&server, json!({"model": "tiny-text", "input": "hello world"}));
    assert_close(&vectors(&single), &[&HELLO_WORLD]);
    // Token ids are read as they are: [CLS] hello world [SEP].
    let tokens = embeddings(&server, json!({"model": "tiny-text", "input": [[2, 4, 5, 3]]}));
    assert_close(&vectors(&tokens), &[&HELLO_WORLD]);

    // The same model without a tokenizer takes token ids, and says what it needs for text.
    let bare = embeddings(&server, json!({"model": "bare-text", "input": [2, 4, 5, 3]}));
    assert_close(&vectors(&bare), &[&HELLO_WORLD]);
    let (status, message, param) =
        error_of(&embeddings(&server, json!({"model": "bare-text", "input": "hello"})));
    assert_eq!((status, param), (400, json!("input")));
    assert!(message.contains("tokenizer.json") && message.contains("bare-text.tokenizer.json"), "{message}");
}

#[test]
fn wrong_models_and_malformed_inputs_are_openai_errors() {
    let (sb, dir) = with_onnx_models();
    let server = Server::start(&sb, &dir, &[], &[]);
    let (status, message, param) = error_of(&embeddings(&server, json!({"model": "tiny", "input": "hello"})));
    assert_eq!((status, param), (400, json!("model")));
    assert!(message.contains("GGUF"), "{message}");
    let chat = json!({"model": "tiny-mlp", "messages": [{"role": "user", "content": "hi"}]});
    let (status, message, _) = error_of(&server.post("/v1/chat/completions", &chat, &[]));
    assert_eq!(status, 400);
    assert!(message.contains("does not generate text"), "{message}");
    let missing = embeddings(&server, json!({"model": "nope", "input": "hello"}));
    assert_eq!((missing.status, &missing.json()["error"]["code"]), (404, &json!("model_not_found")));

    let (status, message, param) =
        error_of(&embeddings(&server, json!({"model": "tiny-mlp", "input": [[1, 2, 3, 4], [1, 2, 3]]})));
    assert_eq!((status, param), (400, json!("input")));
    assert!(message.contains("input[1] has 3 numbers") && message.contains("[N, 4]"), "{message}");
    let (status, message, _) = error_of(&embeddings(&server, json!({"model": "tiny-mlp", "input": "hello"})));
    assert_eq!(status, 400);
    assert!(message.contains("[N, 4]") && message.contains("not text"), "{message}");
    for input in [json!({"a": 1}), json!([]), json!(["a", 1]), Value::Null] {
        let (status, _, param) = error_of(&embeddings(&server, json!({"model": "tiny-mlp", "input": input})));
        assert_eq!((status, param), (400, json!("input")), "{input}");
    }
    let (status, _, param) = error_of(&embeddings(&server, json!({"input": [1, 2, 3, 4]})));
    assert_eq!((status, param), (400, json!("model")));
    let raw = Server::agent()
        .post(format!("{}/v1/embeddings", server.base))
        .header("content-type", "application/json")
        .send("{\"model\": ")
        .unwrap();
    let (status, message, _) = error_of(&Reply::from(raw));
    assert_eq!(status, 400);
    assert!(message.contains("not valid JSON"), "{message}");
}

#[test]
fn stored_embeddings_export_and_import_under_the_servers_keys() {
    let (sb, dir) = with_onnx_models();
    let server = Server::start(&sb, &dir, &["--cache-persist"], &[]);
    let vector = embeddings(&server, json!({"model": "tiny-mlp", "input": X}));
    let text = embeddings(&server, json!({"model": "tiny-text", "input": "hello world"}));
    assert_eq!((vector.status, text.status), (200, 200));
    assert_eq!(server.stop(libc::SIGTERM), Some(0));

    let out = sb.std_command().args(["cache", "export", "--format", "jsonl"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = String::from_utf8(out.stdout).unwrap();
    let records: Vec<Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 2, "{lines}");
    let text_record = records.iter().find(|r| r["model"] == "tiny-text").unwrap();
    assert_eq!(text_record["request"]["input"], "hello world");
    let fingerprint = text_record["model_fingerprint"].as_str().unwrap();
    assert_eq!(fingerprint.matches("blake3:").count(), 2, "model and tokenizer: {fingerprint}");

    // Import computes the keys the server used: every line is already there.
    sb.write("work/again.jsonl", &lines);
    let out = sb.std_command().args(["cache", "import", "again.jsonl", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&report["report"]["duplicate"], &report["report"]["new"]),
        (&json!(2), &json!(0)),
        "{report}"
    );
}
