//! Response bodies and stream chunks, field by field.

use serde_json::json;

use super::*;

fn meta() -> ResponseMeta {
    ResponseMeta {
        id: "chatcmpl-1".into(),
        created: 1_700_000_000,
        model: "tiny".into(),
        system_fingerprint: Some("fp_0123456789".into()),
    }
}

fn generation() -> Generation {
    Generation {
        text: "defghijk".into(),
        prompt_tokens: 5,
        completion_tokens: 8,
        cached_tokens: 4,
        finish_reason: FinishReason::Length,
    }
}

#[test]
fn whole_answers_follow_the_openai_schema() {
    assert_eq!(
        completion_body(Endpoint::Chat, &meta(), &generation()),
        json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000u64, "model": "tiny",
            "system_fingerprint": "fp_0123456789",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "defghijk"},
                         "logprobs": null, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 8, "total_tokens": 13,
                      "prompt_tokens_details": {"cached_tokens": 4}}
        })
    );
    let stopped = Generation { finish_reason: FinishReason::Stop, ..generation() };
    let text = completion_body(Endpoint::Completion, &meta(), &stopped);
    assert_eq!(text["object"], "text_completion");
    assert_eq!(
        text["choices"],
        json!([{"index": 0, "text": "defghijk", "logprobs": null, "finish_reason": "stop"}])
    );
}

#[test]
fn ids_and_fingerprints() {
    let chat = ResponseMeta::new(Endpoint::Chat, "tiny", "blake3:3f2a9c41d0e8ffff");
    assert!(chat.id.starts_with("chatcmpl-") && chat.id.len() == "chatcmpl-".len() + 24, "{}", chat.id);
    assert_eq!(chat.system_fingerprint.as_deref(), Some("fp_3f2a9c41d0"));
    assert_ne!(ResponseMeta::new(Endpoint::Chat, "tiny", "").id, chat.id);
    assert!(response_id(Endpoint::Completion).starts_with("cmpl-"));
    assert_eq!(system_fingerprint(""), None);
    assert_eq!(system_fingerprint("abc").as_deref(), Some("fp_abc"));
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert!(chat.created.abs_diff(now) <= 1);
}

#[test]
fn chat_chunks_follow_the_openai_stream() {
    let chunker = Chunker::new(Endpoint::Chat, meta(), false);
    let envelope = |choices: Value| {
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_700_000_000u64,
               "model": "tiny", "system_fingerprint": "fp_0123456789", "choices": choices})
    };
    assert_eq!(
        chunker.start(),
        Some(envelope(json!([{"index": 0, "delta": {"role": "assistant", "content": ""},
                              "logprobs": null, "finish_reason": null}])))
    );
    assert_eq!(
        chunker.text("de"),
        envelope(json!([{"index": 0, "delta": {"content": "de"}, "logprobs": null, "finish_reason": null}]))
    );
    assert_eq!(
        chunker.finish(FinishReason::Stop),
        envelope(json!([{"index": 0, "delta": {}, "logprobs": null, "finish_reason": "stop"}]))
    );
    let usage = Usage { prompt: 5, completion: 8, cached: Some(4) };
    assert_eq!(chunker.usage(&usage), None);

    let with_usage = Chunker::new(Endpoint::Chat, meta(), true);
    assert_eq!(with_usage.text("x")["usage"], Value::Null);
    let last = with_usage.usage(&usage).unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(
        last["usage"],
        json!({"prompt_tokens": 5, "completion_tokens": 8, "total_tokens": 13,
               "prompt_tokens_details": {"cached_tokens": 4}})
    );
}

#[test]
fn completion_chunks_carry_text() {
    let chunker = Chunker::new(Endpoint::Completion, ResponseMeta { id: "cmpl-1".into(), ..meta() }, false);
    assert_eq!(chunker.start(), None);
    let chunk = chunker.text("de");
    assert_eq!(chunk["object"], "text_completion");
    assert_eq!(
        chunk["choices"],
        json!([{"index": 0, "text": "de", "logprobs": null, "finish_reason": null}])
    );
    let end = chunker.finish(FinishReason::Length);
    assert_eq!(
        end["choices"],
        json!([{"index": 0, "text": "", "logprobs": null, "finish_reason": "length"}])
    );
    assert!(end.get("usage").is_none());
}

#[test]
fn a_whole_answer_replays_as_chunks() {
    let body = completion_body(Endpoint::Chat, &meta(), &generation());
    let chunks = chunks_from_body(&body, true);
    let chunker = Chunker::new(Endpoint::Chat, meta(), true);
    let expected = vec![
        chunker.start().unwrap(),
        chunker.text("defghijk"),
        chunker.finish(FinishReason::Length),
        chunker.usage(&Usage { prompt: 5, completion: 8, cached: Some(4) }).unwrap(),
    ];
    assert_eq!(chunks, expected);
    // An answer stored before cached tokens were reported replays without them, as it was stored.
    let mut old = body.clone();
    old["usage"] = json!({"prompt_tokens": 5, "completion_tokens": 8, "total_tokens": 13});
    let replayed = chunks_from_body(&old, true);
    assert_eq!(replayed.last().unwrap()["usage"], old["usage"]);

    let meta = ResponseMeta { id: "cmpl-1".into(), ..meta() };
    let empty = Generation { text: String::new(), finish_reason: FinishReason::Stop, ..generation() };
    let body = completion_body(Endpoint::Completion, &meta, &empty);
    let chunker = Chunker::new(Endpoint::Completion, meta, false);
    assert_eq!(chunks_from_body(&body, false), vec![chunker.finish(FinishReason::Stop)]);
}
