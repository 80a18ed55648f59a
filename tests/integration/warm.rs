//! `inferno cache warm`: models by file, name and directory (page cache, metadata, a test load, a model
//! entry), damaged files, `--background` with progress in `cache status`, and `--responses`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use inferno::models::gguf::tiny::write_tiny_llama;
use serde_json::Value;

use crate::util::{Sandbox, stderr, stdout};

const TINY_ONNX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/models/tiny-mlp.onnx");

/// A sandbox with `<root>/models/{tiny.gguf, tiny-mlp.onnx}` as its models directory.
fn with_models() -> (Sandbox, PathBuf) {
    let sb = Sandbox::new();
    let dir = sb.path("models");
    std::fs::create_dir_all(&dir).unwrap();
    write_tiny_llama(&dir.join("tiny.gguf")).unwrap();
    std::fs::copy(TINY_ONNX, dir.join("tiny-mlp.onnx")).unwrap();
    (sb, dir)
}

fn inferno(sb: &Sandbox, dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    sb.std_command().env("INFERNO_MODELS_DIR", dir).args(args).output().unwrap()
}

fn kind_entries(sb: &Sandbox, dir: &std::path::Path, kind: &str) -> u64 {
    let out = inferno(sb, dir, &["cache", "stats", "--json"]);
    let stats: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let kinds = stats["kinds"].as_array().unwrap();
    kinds.iter().find(|k| k["kind"] == kind).unwrap()["entries"].as_u64().unwrap()
}

#[test]
fn warming_models_reads_them_records_metadata_and_model_entries() {
    let (sb, dir) = with_models();
    let out = inferno(&sb, &dir, &["cache", "warm", "--model", "tiny", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let model = &report["models"][0];
    assert_eq!(model["name"], "tiny");
    let bytes = std::fs::read(dir.join("tiny.gguf")).unwrap();
    assert_eq!(model["read"]["bytes"], bytes.len() as u64);
    assert_eq!(model["read"]["fingerprint"], format!("blake3:{}", blake3::hash(&bytes).to_hex()).as_str());
    assert_eq!(model["read"]["resident_after"]["resident_bytes"], bytes.len() as u64);
    assert!(model["load_ms"].as_f64().unwrap() > 0.0);
    assert!(model["tokens_per_second"].as_f64().unwrap() > 0.0, "include_performance_stats is on by default");
    assert_eq!(kind_entries(&sb, &dir, "model"), 1);
    assert_eq!(kind_entries(&sb, &dir, "metadata"), 1);

    // The metadata cache now answers, with the measured figures.
    let info = inferno(&sb, &dir, &["models", "info", "tiny", "--json"]);
    let info: Value = serde_json::from_str(&stdout(&info)).unwrap();
    assert_eq!(info["source"], "cache");
    assert!(info["metadata"]["performance"]["load_ms"].as_f64().unwrap() > 0.0);

    // The guide's two-model line, by path; the text output says what happened.
    let onnx = dir.join("tiny-mlp.onnx");
    let out = inferno(&sb, &dir, &["cache", "warm", "--model", "tiny", "--model", onnx.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("Warmed tiny (gguf") && text.contains("Warmed tiny-mlp (onnx"), "{text}");
    assert!(text.contains("in page cache") && text.contains("-> 100%"), "{text}");
    assert_eq!(kind_entries(&sb, &dir, "model"), 2);

    // `cache clear --pattern "*.onnx"` (the guide's Quick Start) removes the ONNX model's entries.
    let out = inferno(&sb, &dir, &["cache", "clear", "--pattern", "*.onnx"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(kind_entries(&sb, &dir, "model"), 1);
}

#[test]
fn a_directory_is_warmed_whole_and_damaged_models_fail_the_run() {
    let (sb, dir) = with_models();
    let bytes = std::fs::read(dir.join("tiny.gguf")).unwrap();
    std::fs::write(dir.join("cut.gguf"), &bytes[..bytes.len() - 64]).unwrap();
    let out = inferno(&sb, &dir, &["cache", "warm", "--directory", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "one model is damaged");
    let text = stdout(&out);
    assert!(text.contains("Warmed tiny (gguf") && text.contains("Warmed tiny-mlp (onnx"), "{text}");
    assert!(text.contains("failed cut.gguf") && text.contains("tensor"), "{text}");
    assert!(stderr(&out).contains("1 warm step failed"), "{}", stderr(&out));
    assert_eq!(kind_entries(&sb, &dir, "model"), 2);

    let out = inferno(&sb, &dir, &["cache", "warm"]);
    assert_eq!(out.status.code(), Some(2), "nothing to warm is a usage error");
    let out = inferno(&sb, &dir, &["cache", "warm", "--model", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no model `nope`"), "{}", stderr(&out));
}

#[test]
fn background_warming_detaches_and_reports_through_status() {
    let (sb, dir) = with_models();
    let out = inferno(&sb, &dir, &["cache", "warm", "--model", "tiny", "--background"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("Warming in the background (pid"), "{text}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let job = loop {
        let out = inferno(&sb, &dir, &["cache", "status", "--json"]);
        let status: Value = serde_json::from_str(&stdout(&out)).unwrap();
        let job = status["cache"]["warm"].clone();
        if job["state"] == "done" || job["state"] == "failed" || job["state"] == "interrupted" {
            break job;
        }
        assert!(Instant::now() < deadline, "the background job did not finish: {job}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!((job["models_warmed"].as_u64(), job["background"].as_bool()), (Some(1), Some(true)));
    let log = PathBuf::from(job["log"].as_str().unwrap());
    assert!(std::fs::read_to_string(log).unwrap().contains("Warmed tiny (gguf"));
    let out = inferno(&sb, &dir, &["cache", "status"]);
    assert!(stdout(&out).contains("Last warm job: done at"), "{}", stdout(&out));
    assert_eq!(kind_entries(&sb, &dir, "model"), 1);
}

#[test]
fn responses_are_generated_once_and_stored_under_the_request_key() {
    let (sb, dir) = with_models();
    let prompts = sb.write(
        "work/prompts.txt",
        "abc\nxy78\n\n{\"prompt\": \"abc\", \"temperature\": 0, \"max_tokens\": 8}\n",
    );
    let out =
        inferno(&sb, &dir, &["cache", "warm", "--responses", prompts.to_str().unwrap(), "--model", "tiny"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("Responses through tiny: 3 prompts, 3 stored, 0 already cached"), "{text}");
    assert_eq!(kind_entries(&sb, &dir, "response"), 3);

    // models.default answers when no --model is given; everything is a hit now.
    let out = sb
        .std_command()
        .env("INFERNO_MODELS_DIR", &dir)
        .env("INFERNO_DEFAULT_MODEL", "tiny")
        .args(["cache", "warm", "--responses", "prompts.txt", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let outcomes: Vec<&str> = report["responses"][0]["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1]["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["already_cached"; 3]);

    // The stored completion is the model's real answer, exported in the import format.
    let out = inferno(&sb, &dir, &["cache", "export", "--format", "jsonl"]);
    let lines: Vec<Value> = stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let completion = lines.iter().find(|l| l["request"]["prompt"] == "abc").expect("the completion entry");
    assert_eq!(completion["response"]["choices"][0]["text"], "defghijk");
    assert_eq!(completion["model"], "tiny");

    let out = inferno(&sb, &dir, &["cache", "warm", "--responses", "prompts.txt"]);
    assert_eq!(out.status.code(), Some(2), "no model and no models.default: {}", stderr(&out));
}

#[test]
fn a_missing_onnx_runtime_is_a_clear_error_not_a_crash() {
    let (sb, dir) = with_models();
    let out = sb
        .std_command()
        .env("INFERNO_MODELS_DIR", &dir)
        .env("ORT_DYLIB_PATH", sb.path("nowhere/libonnxruntime.so"))
        .args(["cache", "warm", "--model", "tiny-mlp", "--model", "tiny"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("failed tiny-mlp.onnx: cannot load ONNX Runtime from"), "{text}");
    assert!(text.contains("ORT_DYLIB_PATH") && text.contains("scripts/setup.sh"), "says what to do: {text}");
    assert!(text.contains("Warmed tiny (gguf"), "the GGUF model is still warmed: {text}");
}

#[test]
fn a_bad_prefixes_line_is_an_error_naming_file_and_line_before_any_work() {
    let (sb, dir) = with_models();
    let file = sb.write("work/prefixes.jsonl", "\"You are terse.\"\n\n{\"prompt\": \"x\"}\n");
    let out = inferno(&sb, &dir, &["cache", "warm", "--model", "tiny", "--prefixes", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let expected = format!("{}:3: a line is a JSON string (a prompt) or a JSON array", file.display());
    assert!(stderr(&out).contains(&expected), "{}", stderr(&out));
    let status = stdout(&inferno(&sb, &dir, &["cache", "status"]));
    assert!(!status.contains("Last warm job"), "nothing ran, not even the model step: {status}");

    let bad_role = sb.write("work/roles.jsonl", "[{\"role\": \"wizard\", \"content\": \"x\"}]\n");
    let out =
        inferno(&sb, &dir, &["cache", "warm", "--model", "tiny", "--prefixes", bad_role.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("roles.jsonl:1: ") && stderr(&out).contains("messages[0].role"));

    let good = sb.write("work/ok.jsonl", "\"hi\"\n");
    let out = inferno(&sb, &dir, &["cache", "warm", "--prefixes", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "no model and no models.default: {}", stderr(&out));
    assert!(stderr(&out).contains("--prefixes needs a model"), "{}", stderr(&out));

    let out = sb
        .std_command()
        .env("INFERNO_MODELS_DIR", &dir)
        .env("INFERNO_CACHE__KV__ENABLED", "false")
        .args(["cache", "warm", "--model", "tiny", "--prefixes", good.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).contains("inferno cache enable --type kv"), "{}", stdout(&out));
}
