//! The semantic cache through `inferno serve` with the real all-MiniLM-L6-v2 int8 model and the tiny llama
//! model: a paraphrase is a `HIT-SEMANTIC` with the first answer; near misses, other scopes (namespace,
//! model, temperature, earlier turns) and opted-out requests are misses; the index survives a restart and
//! `cache clear --type semantic` empties it; bad `[cache.semantic]` settings stop `serve` with exit 2.

use std::path::Path;

use serde_json::{Value, json};

use crate::server::{Server, with_tiny_model};
use crate::tools;
use crate::util::{Sandbox, stderr};

const FRANCE: &str = "What is the capital of France?";
/// A paraphrase MiniLM puts above 0.95 that passes every guard.
const FRANCE_AGAIN: &str = "What is the capital city of France?";

fn chat(content: &str) -> Value {
    json!({"model": "tiny", "messages": [{"role": "user", "content": content}], "temperature": 0, "max_tokens": 6})
}

fn with_cache(mut body: Value, cache: Value) -> Value {
    body["cache"] = cache;
    body
}

/// A sandbox whose `.inferno.toml` turns the semantic cache on with MiniLM; `None` when the model is missing
/// (and allowed to be).
fn semantic_sandbox(what: &str) -> Option<(Sandbox, std::path::PathBuf)> {
    let model = tools::minilm(what)?;
    let (sb, dir) = with_tiny_model();
    sb.write_project(&format!(
        "[cache]\ntype = \"persistent\"\n\n[cache.semantic]\nenabled = true\nmodel = {:?}\n",
        model.to_str().unwrap()
    ));
    Some((sb, dir))
}

fn post(server: &Server, body: &Value) -> crate::server::Reply {
    let reply = server.post("/v1/chat/completions", body, &[]);
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply
}

fn inferno_json(sb: &Sandbox, args: &[&str]) -> Value {
    let out = sb.cmd().args(args).arg("--json").output().unwrap();
    assert!(out.status.success(), "inferno {args:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_paraphrase_hits_and_near_misses_and_other_scopes_do_not() {
    let Some((sb, dir)) = semantic_sandbox("semantic hits through serve") else { return };
    std::fs::copy(dir.join("tiny.gguf"), dir.join("tiny2.gguf")).unwrap();
    let server = Server::start(&sb, &dir, &[], &[]);
    let first = post(&server, &chat(FRANCE));
    assert_eq!(first.cache.as_deref(), Some("MISS"));
    let hit = post(&server, &chat(FRANCE_AGAIN));
    assert_eq!(hit.cache.as_deref(), Some("HIT-SEMANTIC"), "{}", hit.text);
    assert_eq!(hit.key, first.key, "the matched request's key");
    let similarity: f64 = hit.similarity.as_deref().unwrap().parse().unwrap();
    assert!((0.95..1.0).contains(&similarity), "{similarity}");
    let (body, original) = (hit.json(), first.json());
    assert_eq!(body["choices"], original["choices"]);
    assert_eq!(body["cache"]["status"], "HIT-SEMANTIC");
    assert_eq!(body["cache"]["key"].as_str(), first.key.as_deref());
    assert_ne!(body["id"], original["id"]);

    // Near misses the embeddings put close together: the guards refuse them.
    for (stored, asked) in [
        ("Convert 100 F to C", "Convert 100 C to F"),
        ("Is it safe to eat raw eggs?", "Is it unsafe to eat raw eggs?"),
        ("What is 15% of 200?", "What is 20% of 150?"),
    ] {
        assert_eq!(post(&server, &chat(stored)).cache.as_deref(), Some("MISS"), "{stored}");
        assert_eq!(post(&server, &chat(asked)).cache.as_deref(), Some("MISS"), "{asked}");
    }

    // Other scopes: namespace, model, temperature, an earlier turn; and a request that opts out.
    let mut other_model = chat(FRANCE_AGAIN);
    other_model["model"] = json!("tiny2");
    let mut other_temperature = chat(FRANCE_AGAIN);
    other_temperature["temperature"] = json!(0.5);
    other_temperature["seed"] = json!(7);
    // The tiny model's context (128 characters) holds one earlier message; scope.rs's unit tests change
    // every turn of a longer conversation.
    let mut earlier_turn = chat(FRANCE_AGAIN);
    earlier_turn["messages"] =
        json!([{"role": "system", "content": "Hi"}, {"role": "user", "content": FRANCE_AGAIN}]);
    for (what, body) in [
        ("namespace", with_cache(chat(FRANCE_AGAIN), json!({"namespace": "team-b"}))),
        ("model", other_model),
        ("temperature", other_temperature),
        ("earlier turn", earlier_turn),
        ("opt-out", with_cache(chat("What's the capital city of France?"), json!({"semantic": false}))),
    ] {
        assert_eq!(post(&server, &body).cache.as_deref(), Some("MISS"), "{what}");
    }
    let too_low = server.post(
        "/v1/chat/completions",
        &with_cache(chat(FRANCE_AGAIN), json!({"semantic_threshold": 0.5})),
        &[],
    );
    assert_eq!(too_low.status, 400, "{}", too_low.text);
    assert_eq!(too_low.json()["error"]["param"], "cache.semantic_threshold");
    // Raised above the pair's similarity, the paraphrase is not close enough.
    let strict = with_cache(chat(FRANCE_AGAIN), json!({"semantic_threshold": 1.0, "no-store": true}));
    assert_eq!(post(&server, &strict).cache.as_deref(), Some("MISS"));

    let stats = inferno_json(&sb, &["cache", "stats"]);
    let semantic = &stats["semantic"];
    assert_eq!(semantic["hits"], 1, "{stats:#}");
    assert!(semantic["guard_refusals"].as_u64().unwrap() >= 2, "{semantic}");
    assert!(semantic["lookups"].as_u64().unwrap() >= 10, "{semantic}");
    assert!(semantic["mean_embedding_ms"].as_f64().unwrap() > 0.0, "{semantic}");
}

#[test]
fn the_index_survives_a_restart_and_clear_type_semantic_empties_it() {
    let Some((sb, dir)) = semantic_sandbox("the semantic index across restarts") else { return };
    let server = Server::start(&sb, &dir, &[], &[]);
    assert_eq!(post(&server, &chat(FRANCE)).cache.as_deref(), Some("MISS"));
    assert_eq!(server.stop(libc::SIGTERM), Some(0));
    let server = Server::start(&sb, &dir, &[], &[]);
    assert_eq!(post(&server, &chat(FRANCE_AGAIN)).cache.as_deref(), Some("HIT-SEMANTIC"));
    let cleared = inferno_json(&sb, &["cache", "clear", "--type", "semantic", "--yes"]);
    assert_eq!(cleared["removed"], json!([{"type": "semantic", "entries": 1}]), "{cleared:#}");
    assert_eq!(post(&server, &chat(FRANCE)).cache.as_deref(), Some("HIT"), "the exact answer stays");
    let asked = chat("What is the capital city of France ?");
    assert_eq!(post(&server, &asked).cache.as_deref(), Some("MISS"), "no vector left to match");
    assert_eq!(server.stop(libc::SIGTERM), Some(0));

    let metrics = sb.cmd().args(["cache", "export", "--format", "prometheus"]).output().unwrap();
    let text = String::from_utf8_lossy(&metrics.stdout).into_owned();
    assert!(text.contains("inferno_cache_semantic_hits_total 1"), "{text}");
    assert!(
        text.contains("inferno_cache_entries{type=\"semantic\"} 1"),
        "the MISS above stored a vector: {text}"
    );
    if let Some(promtool) = tools::promtool("semantic metrics") {
        let file = sb.write(sb.work().join("metrics.txt"), &text);
        let check = std::process::Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::fs::File::open(file).unwrap())
            .output()
            .unwrap();
        assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    }
}

fn serve_fails(sb: &Sandbox, dir: &Path) -> String {
    let out =
        sb.cmd().args(["serve", "--port", "0", "--models-dir", dir.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    stderr(&out)
}

#[test]
fn bad_semantic_settings_stop_serve_with_exit_2_naming_the_key() {
    let Some(minilm) = tools::minilm("semantic configuration errors") else { return };
    let (sb, dir) = with_tiny_model();
    let file = sb.project_file();
    let shown = file.display().to_string();
    let cases: Vec<(String, &str, &str)> = vec![
        ("enabled = true\n".into(), "key `cache.semantic.enabled`", "set cache.semantic.model"),
        ("enabled = true\nmodel = \"no-such-model\"\n".into(), "key `cache.semantic.model`", "no-such-model"),
        (
            format!(
                "enabled = true\nmodel = {:?}\n",
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/models/tiny-mlp.onnx")
            ),
            "key `cache.semantic.model`",
            "embeds vectors",
        ),
        (
            format!("enabled = true\nmodel = {:?}\nthreshold = 1.5\n", minilm.to_str().unwrap()),
            "key `cache.semantic.threshold`",
            "(0, 1]",
        ),
    ];
    for (section, key, says) in cases {
        sb.write_project(&format!("[cache.semantic]\n{section}"));
        let message = serve_fails(&sb, &dir);
        assert!(message.contains(key) && message.contains(says), "{section}: {message}");
        assert!(message.contains(&format!("{shown}:")), "names the file and line: {message}");
    }
    // A model without its tokenizer.
    let lonely = sb.path("lonely");
    std::fs::create_dir_all(&lonely).unwrap();
    std::fs::copy(&minilm, lonely.join("minilm.onnx")).unwrap();
    sb.write_project(&format!(
        "[cache.semantic]\nenabled = true\nmodel = {:?}\n",
        lonely.join("minilm.onnx").to_str().unwrap()
    ));
    let message = serve_fails(&sb, &dir);
    assert!(
        message.contains("key `cache.semantic.model`") && message.contains("tokenizer.json"),
        "{message}"
    );
    assert!(message.contains(&format!("{shown}:3")), "{message}");
}
