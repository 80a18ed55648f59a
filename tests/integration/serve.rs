//! `inferno serve` end to end: the real binary with the tiny llama model on an ephemeral port.

use serde_json::{Value, json};

use crate::server::{Server, with_tiny_model};

fn chat(content: &str) -> Value {
    json!({"model": "tiny", "messages": [{"role": "user", "content": content}], "temperature": 0, "max_tokens": 8})
}

fn completion(prompt: &str) -> Value {
    json!({"model": "tiny", "prompt": prompt, "temperature": 0, "max_tokens": 8})
}

#[test]
fn a_repeated_request_is_a_hit_with_the_same_answer() {
    let (sb, dir) = with_tiny_model();
    let server = Server::start(&sb, &dir, &[], &[]);
    let first = server.post("/v1/completions", &completion("abc"), &[]);
    assert_eq!((first.status, first.cache.as_deref()), (200, Some("MISS")), "{}", first.text);
    let body = first.json();
    assert_eq!(body["object"], "text_completion");
    assert_eq!(body["choices"][0]["text"], "defghijk", "real generated text");
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 5, "completion_tokens": 8, "total_tokens": 13,
                                      "prompt_tokens_details": {"cached_tokens": 0}})
    );
    let second = server.post("/v1/completions", &completion("abc"), &[]);
    assert_eq!(second.cache.as_deref(), Some("HIT"));
    assert_eq!(second.key, first.key);
    let again = second.json();
    assert_eq!(again["choices"], body["choices"]);
    assert_eq!(again["usage"], body["usage"]);
    assert_ne!(again["id"], body["id"], "a hit gets a fresh id");

    let chat_first = server.post("/v1/chat/completions", &chat("abc"), &[]);
    assert_eq!((chat_first.status, chat_first.cache.as_deref()), (200, Some("MISS")));
    let chat_body = chat_first.json();
    assert_eq!(chat_body["object"], "chat.completion");
    assert_eq!(chat_body["choices"][0]["message"]["role"], "assistant");
    let chat_again = server.post("/v1/chat/completions", &chat("abc"), &[]);
    assert_eq!(chat_again.cache.as_deref(), Some("HIT"));
    assert_eq!(chat_again.json()["choices"], chat_body["choices"]);

    // Sampling without a seed is not cached by default.
    let sampled = json!({"model": "tiny", "prompt": "abc", "temperature": 0.7, "max_tokens": 4});
    assert_eq!(server.post("/v1/completions", &sampled, &[]).cache.as_deref(), Some("BYPASS"));
    assert_eq!(server.post("/v1/completions", &sampled, &[]).cache.as_deref(), Some("BYPASS"));
}

#[test]
fn streams_are_generated_as_sse_and_replayed_from_the_cache() {
    let (sb, dir) = with_tiny_model();
    let server = Server::start(&sb, &dir, &[], &[]);
    let mut request = completion("abc");
    request["stream"] = json!(true);
    let first = server.post("/v1/completions", &request, &[]);
    assert_eq!(first.cache.as_deref(), Some("MISS"));
    assert!(first.content_type.as_deref().unwrap_or_default().starts_with("text/event-stream"));
    let events = first.events();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let text: String = events[..events.len() - 1]
        .iter()
        .map(|e| {
            serde_json::from_str::<Value>(e).unwrap()["choices"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(text, "defghijk");
    assert!(events.len() > 3, "generated piece by piece: {events:?}");

    let replay = server.post("/v1/completions", &request, &[]);
    assert_eq!(replay.cache.as_deref(), Some("HIT"));
    let events = replay.events();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> =
        events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    let replayed: String =
        chunks.iter().map(|c| c["choices"][0]["text"].as_str().unwrap_or_default()).collect();
    assert_eq!(replayed, "defghijk");
    assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "length");

    // A stream stored the answer the non-streaming request finds too.
    assert_eq!(server.post("/v1/completions", &completion("abc"), &[]).cache.as_deref(), Some("HIT"));
}

#[test]
fn cache_control_headers_and_the_body_field_are_honoured() {
    let (sb, dir) = with_tiny_model();
    let server = Server::start(&sb, &dir, &[], &[]);
    let no_store = server.post("/v1/completions", &completion("xy78"), &[("cache-control", "no-store")]);
    assert_eq!(no_store.cache.as_deref(), Some("MISS"));
    assert_eq!(
        server.post("/v1/completions", &completion("xy78"), &[]).cache.as_deref(),
        Some("MISS"),
        "not stored"
    );
    assert_eq!(server.post("/v1/completions", &completion("xy78"), &[]).cache.as_deref(), Some("HIT"));
    let no_cache = server.post("/v1/completions", &completion("xy78"), &[("cache-control", "no-cache")]);
    assert_eq!(no_cache.cache.as_deref(), Some("BYPASS"), "no-cache skips the lookup");
    assert_eq!(no_cache.json()["choices"][0]["text"], "90123456");

    let mut body_field = completion("abc");
    body_field["cache"] = json!({"no-store": true});
    assert_eq!(server.post("/v1/completions", &body_field, &[]).cache.as_deref(), Some("MISS"));
    assert_eq!(server.post("/v1/completions", &completion("abc"), &[]).cache.as_deref(), Some("MISS"));
    let mut namespaced = completion("abc");
    namespaced["cache"] = json!({"namespace": "team-a"});
    assert_eq!(
        server.post("/v1/completions", &namespaced, &[]).cache.as_deref(),
        Some("MISS"),
        "own namespace"
    );
    assert_eq!(server.post("/v1/completions", &namespaced, &[]).cache.as_deref(), Some("HIT"));
}

#[test]
fn bad_requests_get_openai_error_bodies() {
    let (sb, dir) = with_tiny_model();
    let server = Server::start(&sb, &dir, &[], &[]);
    let agent = Server::agent();
    let raw = agent
        .post(format!("{}/v1/chat/completions", server.base))
        .header("content-type", "application/json")
        .send("{\"model\": \"tiny\", \"messages\": [")
        .unwrap();
    let reply = crate::server::Reply::from(raw);
    assert_eq!(reply.status, 400);
    let error = &reply.json()["error"];
    assert_eq!(error["type"], "invalid_request_error");
    assert!(error["message"].as_str().unwrap().contains("not valid JSON"), "{error}");

    let missing = server.post(
        "/v1/chat/completions",
        &json!({"model": "nope", "messages": [{"role": "user", "content": "hi"}]}),
        &[],
    );
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"]["code"], "model_not_found");
    let n2 = server.post("/v1/completions", &json!({"model": "tiny", "prompt": "a", "n": 2}), &[]);
    assert_eq!((n2.status, n2.json()["error"]["param"].as_str()), (400, Some("n")));
    let models = server.get("/v1/models", &[]).json();
    assert_eq!(models["data"][0]["id"], "tiny");
    assert_eq!(server.get("/health", &[]).status, 200);
}

#[test]
fn an_api_key_is_required_when_set() {
    let (sb, dir) = with_tiny_model();
    let server = Server::start(&sb, &dir, &[], &[("INFERNO_API_KEY", "s3cret")]);
    let none = server.post("/v1/completions", &completion("abc"), &[]);
    assert_eq!(none.status, 401);
    assert_eq!(none.json()["error"]["type"], "authentication_error");
    let wrong = server.post("/v1/completions", &completion("abc"), &[("authorization", "Bearer nope")]);
    assert_eq!(wrong.status, 401);
    assert_eq!(server.get("/v1/models", &[]).status, 401);
    assert_eq!(server.get("/metrics", &[]).status, 401);
    let right = server.post("/v1/completions", &completion("abc"), &[("authorization", "Bearer s3cret")]);
    assert_eq!(right.status, 200, "{}", right.text);
    assert_eq!(server.get("/health", &[]).status, 200, "probes need no secret");
}

#[test]
fn sigterm_flushes_everything_and_a_restart_still_hits() {
    let (sb, dir) = with_tiny_model();
    // A long sync interval: only the shutdown flush can have made the entries durable.
    let env = [("INFERNO_CACHE__PERSISTENCE__SYNC_INTERVAL_SECONDS", "3600")];
    let server = Server::start(&sb, &dir, &["--cache-persist"], &env);
    assert_eq!(server.post("/v1/completions", &completion("abc"), &[]).cache.as_deref(), Some("MISS"));
    assert_eq!(server.stop(libc::SIGTERM), Some(0));
    let server = Server::start(&sb, &dir, &["--cache-persist"], &env);
    assert_eq!(server.post("/v1/completions", &completion("abc"), &[]).cache.as_deref(), Some("HIT"));
}

#[test]
fn kill_9_keeps_entries_older_than_the_sync_interval() {
    let (sb, dir) = with_tiny_model();
    let env = [("INFERNO_CACHE__PERSISTENCE__SYNC_INTERVAL_SECONDS", "1")];
    let server = Server::start(&sb, &dir, &["--cache-persist"], &env);
    assert_eq!(server.post("/v1/completions", &completion("abc"), &[]).cache.as_deref(), Some("MISS"));
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(server.stop(libc::SIGKILL), None);
    let server = Server::start(&sb, &dir, &["--cache-persist"], &env);
    assert_eq!(server.post("/v1/completions", &completion("abc"), &[]).cache.as_deref(), Some("HIT"));
}

#[test]
fn identical_concurrent_requests_generate_once() {
    let (sb, dir) = with_tiny_model();
    let server = std::sync::Arc::new(Server::start(&sb, &dir, &[], &[]));
    // A long answer, so the requests overlap the generation.
    let body = json!({"model": "tiny", "prompt": "a", "temperature": 0, "max_tokens": 100});
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let (server, barrier, body) = (server.clone(), barrier.clone(), body.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let reply = server.post("/v1/completions", &body, &[]);
                (reply.cache.clone().unwrap_or_default(), reply.json()["choices"][0]["text"].clone())
            })
        })
        .collect();
    let results: Vec<(String, Value)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let misses = results.iter().filter(|(c, _)| c == "MISS").count();
    assert_eq!(misses, 1, "{results:?}");
    assert!(results.iter().all(|(_, text)| *text == results[0].1), "every request got the same answer");
}

#[test]
fn a_body_over_the_size_limit_is_a_413_error_body() {
    let (sb, dir) = with_tiny_model();
    let server = Server::start(&sb, &dir, &[], &[("INFERNO_SERVER__MAX_REQUEST_SIZE", "2KB")]);
    let big = json!({"model": "tiny", "prompt": "a".repeat(5000), "temperature": 0});
    let reply = server.post("/v1/completions", &big, &[]);
    assert_eq!(reply.status, 413, "{}", reply.text);
    assert_eq!(reply.json()["error"]["code"], "request_too_large");
    assert_eq!(
        server.post("/v1/completions", &completion("abc"), &[]).status,
        200,
        "small bodies still pass"
    );
}
