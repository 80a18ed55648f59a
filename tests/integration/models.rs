//! `inferno models list`, `models info` and `cache refresh --type metadata` on real model files: the tiny
//! llama GGUF written by the library's writer and the committed tiny ONNX model.

use std::path::PathBuf;

use inferno::models::gguf::tiny::write_tiny_llama;
use serde_json::Value;

use crate::util::{Sandbox, stderr, stdout};

const TINY_ONNX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/models/tiny-mlp.onnx");

/// A sandbox whose models directory (`<root>/models`, via INFERNO_MODELS_DIR) holds `tiny.gguf` and
/// `vision/tiny-mlp.onnx`.
fn with_models() -> (Sandbox, PathBuf) {
    let sb = Sandbox::new();
    let dir = sb.path("models");
    std::fs::create_dir_all(dir.join("vision")).unwrap();
    write_tiny_llama(&dir.join("tiny.gguf")).unwrap();
    std::fs::copy(TINY_ONNX, dir.join("vision/tiny-mlp.onnx")).unwrap();
    (sb, dir)
}

fn json(sb: &Sandbox, dir: &std::path::Path, args: &[&str]) -> Value {
    let out = sb.std_command().env("INFERNO_MODELS_DIR", dir).args(args).arg("--json").output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

fn metadata_entries(stats: &Value) -> u64 {
    let kinds = stats["kinds"].as_array().unwrap();
    kinds.iter().find(|k| k["kind"] == "metadata").unwrap()["entries"].as_u64().unwrap()
}

#[test]
fn list_reads_once_then_serves_from_the_metadata_cache() {
    let (sb, dir) = with_models();
    let first = json(&sb, &dir, &["models", "list"]);
    let models = first["models"].as_array().unwrap();
    let names: Vec<&str> = models.iter().map(|m| m["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["tiny", "tiny-mlp"]);
    assert!(models.iter().all(|m| m["source"] == "read"));
    assert_eq!(models[0]["metadata"]["architecture"], "llama");
    assert_eq!(models[0]["metadata"]["quantization"], "F32");
    assert_eq!(models[1]["metadata"]["inputs"][0]["shape"], serde_json::json!(["N", "4"]));

    let second = json(&sb, &dir, &["models", "list"]);
    assert!(second["models"].as_array().unwrap().iter().all(|m| m["source"] == "cache"), "{second}");
    let stats = json(&sb, &dir, &["cache", "stats"]);
    assert_eq!(metadata_entries(&stats), 2, "{stats}");

    let text = sb.std_command().env("INFERNO_MODELS_DIR", &dir).args(["models", "list"]).output().unwrap();
    let text = stdout(&text);
    assert!(text.contains("tiny ") && text.contains("llama") && text.contains("2 models in"), "{text}");
}

#[test]
fn info_by_name_and_by_path_and_a_changed_file_is_read_again() {
    let (sb, dir) = with_models();
    let by_name = json(&sb, &dir, &["models", "info", "tiny"]);
    assert_eq!(by_name["source"], "read");
    let path = dir.join("tiny.gguf");
    let by_path = json(&sb, &dir, &["models", "info", path.to_str().unwrap()]);
    assert_eq!(by_path["source"], "cache");
    assert_eq!(by_path["metadata"]["fingerprint"], by_name["metadata"]["fingerprint"]);

    let mut bytes = std::fs::read(&path).unwrap();
    *bytes.last_mut().unwrap() ^= 0x7f;
    std::fs::write(&path, &bytes).unwrap();
    let after = json(&sb, &dir, &["models", "info", "tiny"]);
    assert_eq!(after["source"], "refreshed");
    assert_ne!(after["metadata"]["fingerprint"], by_name["metadata"]["fingerprint"]);
    let expected = format!("blake3:{}", blake3::hash(&bytes).to_hex());
    assert_eq!(after["metadata"]["fingerprint"], expected.as_str());

    let card = sb
        .std_command()
        .env("INFERNO_MODELS_DIR", &dir)
        .args(["models", "info", "tiny-mlp"])
        .output()
        .unwrap();
    let card = stdout(&card);
    assert!(card.contains("input           x float32 [N, 4]"), "{card}");
    assert!(card.contains("output          y float32 [N, 3]"), "{card}");
}

#[test]
fn damaged_and_unknown_files_are_named_errors() {
    let (sb, dir) = with_models();
    let path = dir.join("tiny.gguf");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(dir.join("junk.onnx"), b"\xff\xfe\xfd").unwrap();
    let out = sb.std_command().env("INFERNO_MODELS_DIR", &dir).args(["models", "list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let (text, err) = (stdout(&out), stderr(&out));
    assert!(text.contains("tiny-mlp"), "the readable model is still listed: {text}");
    assert!(text.contains("tiny.gguf") && text.contains("tensor"), "{text}");
    assert!(text.contains("junk.onnx") && text.contains("not a valid ONNX model"), "{text}");
    assert!(err.contains("2 of 3 model files could not be read"), "{err}");

    let out =
        sb.std_command().env("INFERNO_MODELS_DIR", &dir).args(["models", "info", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no model `nope`"), "{}", stderr(&out));
    let notes = sb.write("work/notes.txt", "hello");
    let out = sb.cmd().args(["models", "info", notes.to_str().unwrap()]).output().unwrap();
    assert!(stderr(&out).contains("notes.txt: not a model file"), "{}", stderr(&out));
}

#[test]
fn refresh_rereads_cached_records_and_drops_vanished_files() {
    let (sb, dir) = with_models();
    json(&sb, &dir, &["models", "list"]);
    std::fs::remove_file(dir.join("vision/tiny-mlp.onnx")).unwrap();
    let report = json(&sb, &dir, &["cache", "refresh", "--type", "metadata"]);
    assert_eq!(report["unchanged"], 1, "{report}");
    assert_eq!(report["removed"].as_array().unwrap().len(), 1, "{report}");
    let stats = json(&sb, &dir, &["cache", "stats"]);
    assert_eq!(metadata_entries(&stats), 1, "{stats}");

    let out = sb.cmd().args(["cache", "refresh", "--type", "response"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "only metadata can be refreshed");
}
