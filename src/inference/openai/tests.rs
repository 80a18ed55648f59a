//! Request parsing and validation: accepted shapes, and the 400s (with their `param`) for the rest.

use serde_json::{Value, json};

use super::*;

fn chat(body: Value) -> Result<Request, InferenceError> {
    Request::parse(Endpoint::Chat, &body)
}

fn completion(body: Value) -> Result<Request, InferenceError> {
    Request::parse(Endpoint::Completion, &body)
}

/// The `param` of the 400 that `result` must be.
fn param_of(result: Result<Request, InferenceError>) -> Option<String> {
    match result {
        Err(e @ InferenceError::InvalidRequest { .. }) => {
            e.to_body()["error"]["param"].as_str().map(str::to_string)
        }
        other => panic!("expected a 400, got {other:?}"),
    }
}

#[test]
fn chat_requests_read_every_content_shape() {
    let req = chat(json!({
        "model": "tiny",
        "messages": [
            {"role": "developer", "content": "Be terse."},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "bc"}]},
            {"role": "assistant", "content": null, "tool_calls": []},
            {"role": "user", "content": "abc", "name": "alice"}
        ],
        "some_future_field": {"x": 1}
    }))
    .unwrap();
    assert_eq!(req.model.as_deref(), Some("tiny"));
    let turns = [("system", "Be terse."), ("user", "a\nbc"), ("assistant", ""), ("user", "abc")];
    let expected: Vec<(String, String)> = turns.iter().map(|(r, c)| (r.to_string(), c.to_string())).collect();
    assert_eq!(req.input, Input::Chat(expected));
    assert_eq!(req.sampling, Sampling::default());
    assert!(!req.stream && !req.include_usage);
}

#[test]
fn options_are_read_with_whole_floats_and_both_stop_shapes() {
    let req = chat(json!({
        "messages": [{"role": "user", "content": "abc"}],
        "max_tokens": 99, "max_completion_tokens": 16.0, "temperature": 0, "top_p": 0.5, "top_k": 5,
        "seed": -1, "stop": "\n", "n": 1.0, "stream": true, "stream_options": {"include_usage": true},
        "user": "alice", "logprobs": false
    }))
    .unwrap();
    let expected = Sampling {
        max_tokens: Some(16),
        temperature: Some(0.0),
        top_p: Some(0.5),
        top_k: Some(5),
        seed: Some(u32::MAX),
        stop: vec!["\n".into()],
    };
    assert_eq!(req.sampling, expected);
    assert!(req.stream && req.include_usage);
    let req =
        completion(json!({"prompt": ["abc"], "max_tokens": 8, "stop": ["x", "y"], "seed": 4294967298u64}));
    let req = req.unwrap();
    assert_eq!(req.input, Input::Prompt("abc".into()));
    assert_eq!((req.sampling.max_tokens, req.sampling.seed), (Some(8), Some(2)));
    assert_eq!(req.sampling.stop, ["x", "y"]);
    let nulls = completion(json!({"prompt": "abc", "temperature": null, "stop": null, "model": null}));
    assert_eq!(nulls.unwrap().sampling, Sampling::default());
}

#[test]
fn only_one_choice_is_supported() {
    let err = chat(json!({"messages": [{"role": "user", "content": "abc"}], "n": 2})).unwrap_err();
    assert_eq!(err.status(), 400);
    assert_eq!(
        err.to_body(),
        json!({"error": {
            "message": "'n' is 2; only n = 1 (one choice per request) is supported",
            "type": "invalid_request_error", "param": "n", "code": null
        }})
    );
}

#[test]
fn bad_requests_name_the_parameter() {
    let user = json!([{"role": "user", "content": "abc"}]);
    let with = |field: &str, value: Value| {
        let mut body = json!({"messages": user});
        body[field] = value;
        chat(body)
    };
    assert_eq!(param_of(with("temperature", json!(2.5))).as_deref(), Some("temperature"));
    assert_eq!(param_of(with("temperature", json!("hot"))).as_deref(), Some("temperature"));
    assert_eq!(param_of(with("top_p", json!(1.5))).as_deref(), Some("top_p"));
    assert_eq!(param_of(with("max_tokens", json!(0))).as_deref(), Some("max_tokens"));
    assert_eq!(param_of(with("max_completion_tokens", json!(1.5))).as_deref(), Some("max_completion_tokens"));
    assert_eq!(param_of(with("max_tokens", json!(-3))).as_deref(), Some("max_tokens"));
    assert_eq!(param_of(with("top_k", json!(1e12))).as_deref(), Some("top_k"));
    assert_eq!(param_of(with("stop", json!([1]))).as_deref(), Some("stop"));
    assert_eq!(param_of(with("stream", json!("yes"))).as_deref(), Some("stream"));
    assert_eq!(param_of(with("messages", json!([]))).as_deref(), Some("messages"));
    assert_eq!(param_of(with("messages", json!("abc"))).as_deref(), Some("messages"));

    let message = |m: Value| chat(json!({"messages": [{"role": "user", "content": "x"}, m]}));
    assert_eq!(
        param_of(message(json!({"role": "robot", "content": "x"}))).as_deref(),
        Some("messages[1].role")
    );
    assert_eq!(param_of(message(json!({"content": "x"}))).as_deref(), Some("messages[1]"));
    assert_eq!(
        param_of(message(json!({"role": "user", "content": 7}))).as_deref(),
        Some("messages[1].content")
    );
    let image = json!({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]});
    assert_eq!(param_of(message(image)).as_deref(), Some("messages[1].content[0].type"));
    let no_text = json!({"role": "user", "content": [{"type": "text"}]});
    assert_eq!(param_of(message(no_text)).as_deref(), Some("messages[1].content[0]"));
    let nul = json!({"role": "user", "content": "a\u{0}b"});
    assert_eq!(param_of(message(nul)).as_deref(), Some("messages[1].content"));

    let missing = chat(json!({"model": "tiny"})).unwrap_err();
    assert_eq!(missing.to_string(), "missing field `messages`");
    assert!(matches!(chat(json!([1])), Err(InferenceError::InvalidRequest { param: None, .. })));
}

#[test]
fn completions_take_one_text_prompt() {
    assert_eq!(param_of(completion(json!({"prompt": ["a", "b"]}))).as_deref(), Some("prompt"));
    assert_eq!(param_of(completion(json!({"prompt": [1, 2, 3]}))).as_deref(), Some("prompt"));
    let err = completion(json!({"prompt": 5})).unwrap_err();
    assert_eq!(err.to_string(), "invalid 'prompt': expected a string or an array of one string");
    assert!(completion(json!({"messages": []})).is_err(), "a chat body is not a completion");
}

#[test]
fn embedding_requests_are_not_completions() {
    let error = Request::parse(Endpoint::Embedding, &json!({"model": "m", "input": "hi"})).unwrap_err();
    assert_eq!(error.status(), 400);
    assert!(error.to_string().contains("/v1/embeddings"), "{error}");
}
