//! The prompt-prefix KV cache end to end: `inferno serve` with the tiny llama model restores a long shared
//! prefix on the next request (`usage.prompt_tokens_details.cached_tokens` > 0), after a restart too, and
//! from states `inferno cache warm --prefixes` computed; greedy answers are the same as with the cache off.

use std::time::{Duration, Instant};

use inferno::models::gguf::tiny::tiny_llama_with_context;
use serde_json::{Value, json};

use crate::server::Server;
use crate::util::Sandbox;

/// States saved at every 16 tokens, for prompts of 16 tokens or more.
const KV_ENV: [(&str, &str); 2] =
    [("INFERNO_CACHE__KV__BLOCK_TOKENS", "16"), ("INFERNO_CACHE__KV__MIN_PREFIX_TOKENS", "16")];

/// A shared prefix of 80 one-character tokens: 82 prompt tokens with BOS and the leading `▁`.
const PREFIX_TOKENS: u64 = 82;

/// A shared prefix of 80 one-character tokens.
fn prefix() -> String {
    (0..80).map(|i| (b'a' + (i * 7 % 26) as u8) as char).collect()
}

fn with_model() -> (Sandbox, std::path::PathBuf) {
    let sb = Sandbox::new();
    let dir = sb.path("models");
    std::fs::create_dir_all(&dir).unwrap();
    tiny_llama_with_context(512).unwrap().write_path(&dir.join("tiny.gguf")).unwrap();
    (sb, dir)
}

/// A greedy completion of `prefix() + suffix`: (text, cached tokens).
fn complete(server: &Server, suffix: &str) -> (String, u64) {
    let body = json!({"model": "tiny", "prompt": format!("{}{suffix}", prefix()), "max_tokens": 6, "temperature": 0});
    let reply = server.post("/v1/completions", &body, &[]);
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.cache.as_deref(), Some("MISS"), "each suffix is a new request");
    let json: Value = reply.json();
    let cached = json["usage"]["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap_or_else(|| panic!("usage.prompt_tokens_details.cached_tokens: {json}"));
    (json["choices"][0]["text"].as_str().unwrap().to_string(), cached)
}

/// At least the prefix's whole blocks (4 × 16 tokens) and nothing of a suffix: a state is truncated to the
/// tokens a prompt shares with it, block boundary or not.
fn restores_the_prefix(cached: u64) -> bool {
    (64..=PREFIX_TOKENS).contains(&cached)
}

/// Asks with new suffixes until one restores a prefix (states are saved after the answer, off the request
/// path); returns that suffix's (text, cached tokens).
fn until_restored(server: &Server, tag: &str) -> (String, String, u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    for i in 0.. {
        let suffix = format!("{tag}{i}");
        let (text, cached) = complete(server, &suffix);
        if cached > 0 {
            return (suffix, text, cached);
        }
        assert!(Instant::now() < deadline, "no request restored a saved prefix");
        std::thread::sleep(Duration::from_millis(100));
    }
    unreachable!()
}

/// The answer with the prefix cache off, from a server of its own on another cache.
fn uncached(suffixes: &[&str]) -> Vec<String> {
    let (sb, dir) = with_model();
    let off = Server::start(&sb, &dir, &[], &[("INFERNO_CACHE__KV__ENABLED", "false")]);
    suffixes
        .iter()
        .map(|s| {
            let (text, cached) = complete(&off, s);
            assert_eq!(cached, 0, "cache.kv.enabled = false restores nothing");
            text
        })
        .collect()
}

#[test]
fn a_long_shared_prefix_is_restored_in_process_and_after_a_restart_with_the_same_answers() {
    let (sb, dir) = with_model();
    let server = Server::start(&sb, &dir, &[], &KV_ENV);
    let (_, first_cached) = complete(&server, "x");
    assert_eq!(first_cached, 0, "a cold cache restores nothing");
    let (warm_suffix, warm_text, warm_cached) = until_restored(&server, "y");
    assert!(restores_the_prefix(warm_cached), "the shared prefix is restored: {warm_cached}");
    let stats: Value =
        serde_json::from_slice(&sb.cmd().args(["cache", "stats", "--json"]).output().unwrap().stdout)
            .unwrap();
    assert_eq!(server.stop(libc::SIGTERM), Some(0));
    assert!(stats.to_string().contains("kv"), "cache stats speaks of kv states: {stats}");

    let restarted = Server::start(&sb, &dir, &[], &KV_ENV);
    let (after_text, after_cached) = complete(&restarted, "z");
    assert!(
        restores_the_prefix(after_cached),
        "the saved prefix is restored after a restart: {after_cached}"
    );
    assert_eq!(restarted.stop(libc::SIGTERM), Some(0));

    assert_eq!(uncached(&[&warm_suffix, "z"]), vec![warm_text, after_text], "the same greedy answers");
}

#[test]
fn warm_prefixes_precomputes_states_a_server_restores() {
    let (sb, dir) = with_model();
    let file = sb.write("work/prefixes.jsonl", &format!("{}\n", serde_json::to_string(&prefix()).unwrap()));
    let out = sb
        .std_command()
        .env("INFERNO_MODELS_DIR", &dir)
        .envs(KV_ENV)
        .args(["cache", "warm", "--model", "tiny", "--prefixes", file.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");

    let server = Server::start(&sb, &dir, &[], &KV_ENV);
    let (answer, cached) = complete(&server, "q");
    assert!(
        restores_the_prefix(cached),
        "the warmed prefix is restored on the first request: {cached}; {text}"
    );
    assert_eq!(server.stop(libc::SIGTERM), Some(0));
    assert_eq!(uncached(&["q"]), vec![answer]);
}
