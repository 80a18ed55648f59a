//! `inferno cache semantic calibrate` with the real all-MiniLM-L6-v2 int8 model: similarity alone serves
//! the swapped-units question, the guards do not; bad pairs files and models are clear errors.

use serde_json::Value;

use crate::tools;
use crate::util::{Sandbox, stderr, stdout};

const PAIRS: &str = r#"{"a": "What's the capital of France?", "b": "capital city of france?", "same": true}
{"a": "How do I exit vim?", "b": "How can I quit vim?", "same": true}
{"a": "Who wrote Pride and Prejudice?", "b": "Who is the author of Pride and Prejudice?", "same": true}
{"a": "Convert 100 F to C", "b": "Convert 100 C to F", "same": false}
{"a": "Is it safe to eat raw eggs?", "b": "Is it unsafe to eat raw eggs?", "same": false}
{"a": "What is 15% of 200?", "b": "What is 20% of 150?", "same": false}
"#;

fn calibrate(sb: &Sandbox, pairs: &str, model: &str) -> std::process::Output {
    let file = sb.write(sb.work().join("pairs.jsonl"), pairs);
    let file = file.to_str().unwrap();
    sb.cmd()
        .args(["--json", "cache", "semantic", "calibrate", "--pairs", file, "--model", model])
        .output()
        .unwrap()
}

#[test]
fn the_guards_refuse_what_similarity_alone_would_serve() {
    let Some(model) = tools::minilm("semantic calibration with MiniLM") else { return };
    let sb = Sandbox::new();
    let out = calibrate(&sb, PAIRS, model.to_str().unwrap());
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!((report["pairs"].as_u64(), report["same"].as_u64()), (Some(6), Some(3)));
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 30);
    let at_95 = rows.iter().find(|row| (row["threshold"].as_f64().unwrap() - 0.95).abs() < 1e-6).unwrap();
    // "100 F to C" / "100 C to F" (cosine about 0.99) and "safe" / "unsafe" pass on similarity alone.
    assert!(at_95["similarity_only"]["counts"]["false_hits"].as_u64().unwrap() >= 1, "{at_95}");
    assert_eq!(at_95["guarded"]["counts"]["false_hits"], 0, "{at_95}");
    assert_eq!(
        rows[0]["guarded"]["counts"]["false_hits"], 0,
        "the guards catch all three at 0.70: {}",
        rows[0]
    );
}

#[test]
fn bad_pairs_and_models_are_clear_errors() {
    let Some(model) = tools::minilm("semantic calibration errors") else { return };
    let sb = Sandbox::new();
    let out = calibrate(
        &sb,
        "{\"a\": \"x\", \"b\": \"y\", \"same\": true}\n{\"a\": \"x\"}\n",
        model.to_str().unwrap(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("pairs.jsonl:2: missing field `b`"), "{}", stderr(&out));

    let vector_model = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/models/tiny-mlp.onnx");
    let out = calibrate(&sb, PAIRS, vector_model);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("embeds vectors"), "{}", stderr(&out));

    let out = calibrate(&sb, PAIRS, "no-such-model");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no-such-model"), "{}", stderr(&out));
}
