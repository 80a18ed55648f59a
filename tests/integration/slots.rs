//! Inference slots through the real `inferno serve`: concurrent greedy requests decoded together return their
//! solo text, a full queue is a 503 with `Retry-After`, a prompt beyond the context a 400 naming the limits,
//! a streaming client killed mid-response frees its slot, and the slots show in `/metrics`, `cache status`
//! and `inferno models list`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use inferno::models::gguf::tiny::tiny_llama_with_context;
use serde_json::{Value, json};

use crate::server::{Server, with_tiny_model};
use crate::util::{Sandbox, stderr, stdout};

/// Neither looked up nor stored: every request generates.
const NO_CACHE: [(&str, &str); 1] = [("cache-control", "no-cache, no-store")];
/// `/metrics` on.
const METRICS: [(&str, &str); 1] = [("INFERNO_CACHE__METRICS__PROMETHEUS_ENABLED", "true")];

fn completion(model: &str, prompt: &str, max_tokens: u32) -> Value {
    json!({"model": model, "prompt": prompt, "temperature": 0, "max_tokens": max_tokens})
}

/// A sandbox whose models directory holds `slow.gguf`: the tiny llama with a 4096-token context, which
/// continues the alphabet for as long as asked, long enough to hold a slot through a test's steps.
fn with_slow_model() -> (Sandbox, std::path::PathBuf) {
    let sb = Sandbox::new();
    let dir = sb.path("models");
    std::fs::create_dir_all(&dir).unwrap();
    tiny_llama_with_context(4096).unwrap().write_path(&dir.join("slow.gguf")).unwrap();
    (sb, dir)
}

/// The value of the `/metrics` sample `name{model="..."}`.
fn sample(server: &Server, name: &str, model: &str) -> f64 {
    let text = server.get("/metrics", &[]).text;
    let prefix = format!("{name}{{model=\"{model}\"}} ");
    let line = text.lines().find_map(|l| l.strip_prefix(&prefix));
    line.unwrap_or_else(|| panic!("no {prefix} in /metrics:\n{text}")).trim().parse().unwrap()
}

/// Waits until `name{model}` is `want` (at most 20 s); returns how long it took.
fn wait_for(server: &Server, name: &str, model: &str, want: f64) -> Duration {
    let started = Instant::now();
    while sample(server, name, model) != want {
        assert!(started.elapsed() < Duration::from_secs(20), "{name} never became {want}");
        std::thread::sleep(Duration::from_millis(5));
    }
    started.elapsed()
}

/// Sends a streaming completion over a raw connection and reads until the first SSE event; the caller
/// holds (or drops) the connection.
fn open_stream(server: &Server, model: &str, max_tokens: u32) -> TcpStream {
    let address = server.base.trim_start_matches("http://");
    let mut body = completion(model, "abc", max_tokens);
    body["stream"] = json!(true);
    let body = body.to_string();
    let mut stream = TcpStream::connect(address).unwrap();
    write!(
        stream,
        "POST /v1/completions HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Cache-Control: no-cache, no-store\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    while !line.starts_with("data: ") {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "the stream ended before its first event");
    }
    stream
}

#[test]
fn concurrent_greedy_requests_return_their_solo_text() {
    let (sb, dir) = with_tiny_model();
    let server = Server::start(&sb, &dir, &["--parallel", "16"], &METRICS);
    // 4 prompt tokens and 4 new ones each: 16 requests fill the tiny model's 128-token context exactly.
    let prompts: Vec<String> =
        (0..16u8).map(|i| format!("{}{}", (b'a' + i) as char, (b'z' - i) as char)).collect();
    let text = |reply: &crate::server::Reply| {
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.json()["choices"][0]["text"].as_str().unwrap().to_string()
    };
    let solo: Vec<String> = prompts
        .iter()
        .map(|p| text(&server.post("/v1/completions", &completion("tiny", p, 4), &NO_CACHE)))
        .collect();
    assert_eq!(solo[0], "abcd", "after \"az\"");
    let together: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = prompts
            .iter()
            .map(|p| {
                let server = &server;
                s.spawn(move || text(&server.post("/v1/completions", &completion("tiny", p, 4), &NO_CACHE)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(together, solo);
    assert_eq!(sample(&server, "inferno_slots", "tiny"), 16.0);
    assert_eq!(sample(&server, "inferno_slots_busy", "tiny"), 0.0);
    assert_eq!(sample(&server, "inferno_slot_admitted_total", "tiny"), 32.0);
    assert_eq!(sample(&server, "inferno_generated_tokens_total", "tiny"), 128.0);
    assert!(sample(&server, "inferno_tokens_per_second", "tiny") > 0.0);

    // A prompt longer than the context is refused with the limits named.
    let long = "a".repeat(200);
    let reply = server.post("/v1/completions", &completion("tiny", &long, 4), &NO_CACHE);
    assert_eq!(reply.status, 400, "{}", reply.text);
    let message = reply.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("128 tokens") && message.contains("202"), "{message}");
}

#[test]
fn a_full_queue_is_a_503_and_a_killed_stream_frees_its_slot() {
    let (sb, dir) = with_slow_model();
    let server = Server::start(&sb, &dir, &["--parallel", "1", "--queue-size", "0"], &METRICS);
    let held = open_stream(&server, "slow", 4000);
    assert_eq!(sample(&server, "inferno_slots_busy", "slow"), 1.0);
    // The one slot is busy and nothing may wait: plain and streaming requests are both a 503.
    for stream in [false, true] {
        let mut body = completion("slow", "xyz", 1);
        body["stream"] = json!(stream);
        let response = Server::agent()
            .post(format!("{}/v1/completions", server.base))
            .header("cache-control", "no-cache, no-store")
            .send_json(&body)
            .unwrap();
        assert_eq!(response.status().as_u16(), 503);
        assert_eq!(response.headers().get("retry-after").unwrap(), "1");
        let mut response = response;
        let error: Value = serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
        assert!(error["error"]["message"].as_str().unwrap().contains("busy"), "{error}");
    }
    assert_eq!(sample(&server, "inferno_slot_rejected_total", "slow"), 1.0, "the stream is refused early");

    // Killing the streaming client frees the slot within a decode step or so, long before its 4000 tokens.
    drop(held);
    let freed = wait_for(&server, "inferno_slots_busy", "slow", 0.0);
    assert!(freed < Duration::from_secs(5), "the slot stayed busy for {freed:?}");
    let generated = sample(&server, "inferno_generated_tokens_total", "slow");
    assert!(generated < 4000.0, "the abandoned stream ran to its end: {generated} tokens");
    // The next request is admitted at once (nothing may queue, so it would be a 503 otherwise).
    let reply = server.post("/v1/completions", &completion("slow", "xyz", 1), &NO_CACHE);
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[test]
fn cache_status_and_models_list_show_the_running_servers_slots() {
    let (sb, dir) = with_tiny_model();
    let server = Server::start(&sb, &dir, &["--parallel", "4"], &[]);
    assert_eq!(server.post("/v1/completions", &completion("tiny", "abc", 4), &NO_CACHE).status, 200);
    let run = |args: &[&str]| {
        let out = sb.cmd().args(args).output().unwrap();
        assert!(out.status.success(), "inferno {args:?} failed:\n{}", stderr(&out));
        stdout(&out)
    };
    let status = run(&["cache", "status"]);
    assert!(status.contains("Slots: tiny 0/4 busy, 0 queued"), "{status}");
    let list = run(&["models", "list", "--models-dir", dir.to_str().unwrap()]);
    let loaded = format!("Loaded in inferno serve (pid {}):", server.pid());
    assert!(list.contains(&loaded), "{list}");
    let row = list
        .lines()
        .find(|l| l.starts_with("tiny ") && l.contains("0/4"))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(row.contains("0/4"), "{row}");
    let json: Value =
        serde_json::from_str(&run(&["models", "list", "--models-dir", dir.to_str().unwrap(), "--json"]))
            .unwrap();
    let slots = &json["running"]["models"][0]["slots"];
    assert_eq!(
        (slots["parallel"].as_u64(), slots["generated_tokens"].as_u64()),
        (Some(4), Some(4)),
        "{json:#}"
    );
}
