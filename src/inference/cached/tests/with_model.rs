//! Requests answered by the tiny llama through a real cache.
//!
//! Chat requests use the tiny model with a Harmony (gpt-oss) chat template, whose prompt ends in
//! `<|start|>assistant`: the last token is `t`, so greedy decoding continues `uvwxyzab`. Completion requests
//! use the plain tiny model, where `"abc"` continues `defghijk`.

use std::ops::ControlFlow;

use serde_json::{Value, json};

use super::super::*;
use crate::cache::Access;
use crate::cache::ops::transfer::{export, import};
use crate::cache::response_store;
use crate::config::{CacheType, Config};
use crate::inference::run::{self, context_size, prepare};
use crate::inference::{Answer, Input, Prepared, Request, Sink, respond};
use crate::models::gguf::MetaValue;
use crate::models::gguf::tiny::tiny_llama;
use crate::models::llama::{FinishReason, GgufModel};

const HARMONY: &str = "{#- <|channel|> is how llama.cpp knows this template -#}{% for message in messages %}\
                       <|start|>{{ message.role }}<|message|>{{ message.content }}<|end|>{% endfor %}\
                       <|start|>assistant";

struct Fixture {
    dir: tempfile::TempDir,
    manager: Manager,
    plain: GgufModel,
    harmony: GgufModel,
    identity: ModelIdentity,
}

fn fixture() -> Fixture {
    fixture_with(|_| {})
}

fn fixture_with(edit: impl FnOnce(&mut crate::config::CacheConfig)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default().cache;
    config.base_dir = dir.path().join("cache");
    config.kind = CacheType::Persistent;
    edit(&mut config);
    let manager = Manager::open(&config, Access::ReadWrite).unwrap();
    let plain_path = dir.path().join("tiny.gguf");
    tiny_llama().unwrap().write_path(&plain_path).unwrap();
    let harmony_path = dir.path().join("tiny-harmony.gguf");
    let mut writer = tiny_llama().unwrap();
    writer.add_metadata("tokenizer.chat_template", MetaValue::String(HARMONY.into())).unwrap();
    writer.write_path(&harmony_path).unwrap();
    let fingerprint = crate::models::file::fingerprint(&plain_path).unwrap();
    let identity = ModelIdentity { name: "tiny".into(), fingerprint };
    let plain = GgufModel::load(&plain_path).unwrap();
    let harmony = GgufModel::load(&harmony_path).unwrap();
    Fixture { dir, manager, plain, harmony, identity }
}

impl Fixture {
    fn answer(
        &self,
        model: &GgufModel,
        endpoint: Endpoint,
        body: &Value,
        control: &CacheControl,
        sink: Option<Sink<'_>>,
    ) -> Result<Answer, InferenceError> {
        let prepared = Prepared::new(&self.manager, self.identity.clone(), endpoint, body.clone(), control)?;
        respond(&self.manager, model, &prepared, sink)
    }

    fn chat(&self, body: &Value, control: &CacheControl) -> Answer {
        self.answer(&self.harmony, Endpoint::Chat, body, control, None).unwrap()
    }

    fn complete(&self, body: &Value, control: &CacheControl) -> Answer {
        self.answer(&self.plain, Endpoint::Completion, body, control, None).unwrap()
    }
}

fn chat_body() -> Value {
    json!({"model": "tiny", "messages": [{"role": "user", "content": "abc"}], "temperature": 0, "max_tokens": 8})
}

fn completion_body() -> Value {
    json!({"model": "tiny", "prompt": "abc", "temperature": 0, "max_tokens": 8})
}

fn no_control() -> CacheControl {
    CacheControl::default()
}

#[test]
fn chat_answers_follow_the_openai_schema() {
    let f = fixture();
    let answer = f.chat(&chat_body(), &no_control());
    assert_eq!(answer.status, CacheStatus::Miss);
    let body = &answer.json().unwrap();
    let id = body["id"].as_str().unwrap();
    assert!(id.starts_with("chatcmpl-") && id.len() == "chatcmpl-".len() + 24, "{id}");
    assert_eq!(body["object"], "chat.completion");
    assert!(body["created"].is_u64());
    assert_eq!(body["model"], "tiny");
    let digest = f.identity.fingerprint.strip_prefix("blake3:").unwrap();
    assert_eq!(body["system_fingerprint"], format!("fp_{}", &digest[..10]));
    assert_eq!(
        body["choices"],
        json!([{"index": 0, "message": {"role": "assistant", "content": "uvwxyzab"},
                "logprobs": null, "finish_reason": "length"}])
    );
    // BOS, the space prefix and the 52 characters of
    // `<|start|>user<|message|>abc<|end|><|start|>assistant`, one token each.
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 54, "completion_tokens": 8, "total_tokens": 62,
                                      "prompt_tokens_details": {"cached_tokens": 0}})
    );
    let canonical = CanonicalRequest::new(Endpoint::Chat, &chat_body(), &f.identity).unwrap();
    assert_eq!(answer.key, response_key(&canonical, f.manager.config().response.hash_algorithm));
}

#[test]
fn completion_answers_follow_the_openai_schema() {
    let f = fixture();
    let answer = f.complete(&completion_body(), &no_control());
    let body = &answer.json().unwrap();
    assert!(body["id"].as_str().unwrap().starts_with("cmpl-"));
    assert_eq!(body["object"], "text_completion");
    assert_eq!(
        body["choices"],
        json!([{"index": 0, "text": "defghijk", "logprobs": null, "finish_reason": "length"}])
    );
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 5, "completion_tokens": 8, "total_tokens": 13,
                                      "prompt_tokens_details": {"cached_tokens": 0}})
    );
    let mut stopped = completion_body();
    stopped["stop"] = json!("gh");
    let body = f.complete(&stopped, &no_control()).json().unwrap();
    assert_eq!(body["choices"][0]["text"], "def");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["completion_tokens"], 5, "the tokens up to and including the stop string");
}

#[test]
fn a_repeated_request_is_a_hit_with_a_fresh_id() {
    let f = fixture();
    let first = f.chat(&chat_body(), &no_control());
    let mut alias = chat_body();
    alias["model"] = json!("tiny-alias");
    alias["user"] = json!("bob");
    let second = f.chat(&alias, &no_control());
    assert_eq!((first.status, second.status), (CacheStatus::Miss, CacheStatus::Hit));
    assert_eq!(second.key, first.key);
    assert_eq!(second.json().unwrap()["choices"], first.json().unwrap()["choices"]);
    assert_eq!(second.json().unwrap()["usage"], first.json().unwrap()["usage"]);
    assert_eq!(second.json().unwrap()["system_fingerprint"], first.json().unwrap()["system_fingerprint"]);
    assert_ne!(second.json().unwrap()["id"], first.json().unwrap()["id"]);
    assert!(second.json().unwrap()["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(second.json().unwrap()["model"], "tiny-alias", "a hit names the model the client asked for");

    let completion = f.complete(&completion_body(), &no_control());
    let again = f.complete(&completion_body(), &no_control());
    assert_eq!(again.status, CacheStatus::Hit);
    assert_eq!(again.json().unwrap()["choices"], completion.json().unwrap()["choices"]);
    assert!(again.json().unwrap()["id"].as_str().unwrap().starts_with("cmpl-"));
}

#[test]
fn stored_records_export_and_import_as_the_same_keys() {
    let f = fixture();
    let first = f.chat(&chat_body(), &no_control());
    let mut namespaced = completion_body();
    namespaced["cache"] = json!({"namespace": "team-a"});
    let second = f.complete(&namespaced, &no_control());
    let mut lines = Vec::new();
    assert_eq!(export(&f.manager, &mut lines, |_, _| {}).unwrap(), 2);

    let mut config = f.manager.config().clone();
    config.base_dir = f.dir.path().join("other-cache");
    let other = Manager::open(&config, Access::ReadWrite).unwrap();
    let report = import(&other, lines.as_slice(), |_| {}, &mut |_| Err("no models".into()), false).unwrap();
    assert_eq!((report.new, report.rejected.len()), (2, 0), "{report:?}");
    for answer in [first, second] {
        let hit = response_store::get_fresh(&other, &answer.key, None).unwrap().unwrap();
        let hit: Value = serde_json::from_slice(&hit).unwrap();
        assert_eq!(hit["choices"], answer.json().unwrap()["choices"]);
        assert_ne!(hit["id"], answer.json().unwrap()["id"]);
    }
}

#[test]
fn non_deterministic_requests_bypass_unless_cache_all() {
    let f = fixture();
    let mut sampled = completion_body();
    sampled.as_object_mut().unwrap().remove("temperature");
    let answer = f.complete(&sampled, &no_control());
    assert_eq!(answer.status, CacheStatus::Bypass);
    assert_eq!(
        answer.json().unwrap()["choices"][0]["text"],
        "defghijk",
        "the tiny model is sure even when sampling"
    );
    assert!(!f.manager.contains(Kind::Response, &answer.key));
    assert_eq!(f.complete(&sampled, &no_control()).status, CacheStatus::Bypass);

    let all = CacheControl { cache_all: true, ..no_control() };
    assert_eq!(f.complete(&sampled, &all).status, CacheStatus::Miss);
    assert_eq!(f.complete(&sampled, &all).status, CacheStatus::Hit);
    let mut seeded = sampled.clone();
    seeded["seed"] = json!(7);
    assert_eq!(f.complete(&seeded, &no_control()).status, CacheStatus::Miss);
    assert_eq!(f.complete(&seeded, &no_control()).status, CacheStatus::Hit);
}

#[test]
fn no_cache_and_no_store_are_honoured() {
    let f = fixture();
    let mut no_cache = completion_body();
    no_cache["cache"] = json!({"no-cache": true});
    let answer = f.complete(&no_cache, &no_control());
    assert_eq!(answer.status, CacheStatus::Bypass);
    assert!(f.manager.contains(Kind::Response, &answer.key), "no-cache still stores");
    assert_eq!(f.complete(&completion_body(), &no_control()).status, CacheStatus::Hit);
    assert_eq!(
        f.complete(&completion_body(), &CacheControl { no_cache: true, ..no_control() }).status,
        CacheStatus::Bypass
    );

    let mut no_store = chat_body();
    no_store["cache"] = json!({"no-store": true});
    let answer = f.chat(&no_store, &no_control());
    assert_eq!(answer.status, CacheStatus::Miss);
    assert!(!f.manager.contains(Kind::Response, &answer.key));
    let control = CacheControl { no_store: true, ..no_control() };
    assert_eq!(f.chat(&chat_body(), &control).status, CacheStatus::Miss);
    assert!(!f.manager.contains(Kind::Response, &answer.key));
    assert_eq!(f.chat(&chat_body(), &no_control()).status, CacheStatus::Miss);
    assert_eq!(f.chat(&no_store, &no_control()).status, CacheStatus::Hit, "no-store still looks up");
}

#[test]
fn ttls_and_namespaces() {
    let f = fixture();
    let mut short = completion_body();
    short["cache"] = json!({"ttl": 30});
    let answer = f.complete(&short, &no_control());
    let entry = f.manager.entries(Some(Kind::Response)).into_iter().find(|e| e.key == answer.key).unwrap();
    assert!((29_000..=30_000).contains(&(entry.expires.as_ms() - entry.created_ms)), "{entry:?}");

    let plain = f.complete(&completion_body(), &no_control());
    let mut in_a = completion_body();
    in_a["cache"] = json!({"namespace": "a"});
    let a = f.complete(&in_a, &no_control());
    assert_eq!(a.status, CacheStatus::Miss);
    assert_ne!(a.key, plain.key);
    assert_eq!(f.complete(&in_a, &no_control()).status, CacheStatus::Hit);
    let control = CacheControl { namespace: Some("a".into()), ..no_control() };
    let via_control = f.complete(&completion_body(), &control);
    assert_eq!((via_control.status, &via_control.key), (CacheStatus::Hit, &a.key));
    let record: Value =
        serde_json::from_slice(&f.manager.get(Kind::Response, &a.key).unwrap().unwrap()).unwrap();
    assert_eq!(record["request"]["cache"]["namespace"], "a");
    assert_eq!(record["model"], "tiny");
    assert_eq!(record["model_fingerprint"], json!(f.identity.fingerprint));
}

#[test]
fn disabled_response_caching_bypasses() {
    let f = fixture_with(|config| config.response.enabled = false);
    assert_eq!(f.complete(&completion_body(), &no_control()).status, CacheStatus::Bypass);
    assert_eq!(f.complete(&completion_body(), &no_control()).status, CacheStatus::Bypass);
}

#[test]
fn bad_requests_are_errors_and_store_nothing() {
    let f = fixture();
    let mut two = chat_body();
    two["n"] = json!(2);
    let err = f.answer(&f.harmony, Endpoint::Chat, &two, &no_control(), None).unwrap_err();
    assert_eq!(err.status(), 400);
    assert_eq!(err.to_body()["error"]["param"], "n");
    assert_eq!(err.to_body()["error"]["type"], "invalid_request_error");
    assert!(f.manager.entries(Some(Kind::Response)).is_empty());

    let long = json!({"prompt": "a".repeat(200), "temperature": 0});
    let err = f.answer(&f.plain, Endpoint::Completion, &long, &no_control(), None);
    let body = err.unwrap_err().to_body();
    assert_eq!(body["error"]["code"], "context_length_exceeded");
    assert_eq!(body["error"]["param"], "prompt");
}

#[test]
fn defaults_fill_the_context_and_follow_llama_cpp() {
    let f = fixture();
    let request = Request::parse(Endpoint::Chat, &json!({"messages": [{"role": "user", "content": "abc"}]}));
    let prepared = prepare(&f.plain, &request.unwrap()).unwrap();
    assert_eq!(prepared.prompt, "<|im_start|>user\nabc<|im_end|>\n<|im_start|>assistant\n");
    assert_eq!(context_size(&f.plain), 128, "the tiny model's training context, below 4096");
    let params = &prepared.params;
    assert_eq!((params.temperature, params.top_p, params.top_k), (0.8, 0.95, 40));
    assert_eq!(params.n_ctx, 128);
    assert_eq!(params.max_tokens as usize, 128 - prepared.prompt_tokens);
    assert!(params.parse_special);

    // A max_tokens beyond the context is cut to it, and the answer ends with `length`.
    let big = json!({"prompt": "abc", "temperature": 0, "max_tokens": 4096});
    let body = f.complete(&big, &no_control()).json().unwrap();
    assert_eq!(body["usage"]["completion_tokens"], 128 - 5);
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert!(body["choices"][0]["text"].as_str().unwrap().starts_with("defghijklmnopqrstuvwxyzabc"));
}

#[test]
fn streamed_pieces_make_up_the_answer() {
    let f = fixture();
    let request = Request::parse(Endpoint::Completion, &completion_body()).unwrap();
    assert_eq!(request.input, Input::Prompt("abc".into()));
    let mut pieces = Vec::new();
    let generation = run::generate(&f.plain, &request, |piece| {
        pieces.push(piece.to_string());
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(pieces.concat(), "defghijk");
    assert_eq!(pieces.len(), 8);
    assert_eq!(generation.finish_reason, FinishReason::Length);
    let answer = f.complete(&completion_body(), &no_control());
    assert_eq!(answer.json().unwrap()["choices"][0]["text"], pieces.concat());
}

#[test]
fn a_sink_gets_the_stream_and_a_hit_replays_it() {
    let f = fixture();
    let mut body = completion_body();
    body["stream"] = json!(true);
    let mut chunks = Vec::new();
    let mut sink = |chunk: Value| {
        chunks.push(chunk);
        ControlFlow::Continue(())
    };
    let answer = f.answer(&f.plain, Endpoint::Completion, &body, &no_control(), Some(&mut sink)).unwrap();
    assert_eq!(answer.status, CacheStatus::Miss);
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["text"].as_str()).collect();
    assert_eq!(text, "defghijk");
    assert!(chunks.iter().all(|c| c["object"] == "text_completion"));

    // Stored whole: the same request again is a hit, replayed into the sink as chunks.
    let mut replayed = Vec::new();
    let mut sink = |chunk: Value| {
        replayed.push(chunk);
        ControlFlow::Continue(())
    };
    let hit = f.answer(&f.plain, Endpoint::Completion, &body, &no_control(), Some(&mut sink)).unwrap();
    assert_eq!(hit.status, CacheStatus::Hit);
    let text: String = replayed.iter().filter_map(|c| c["choices"][0]["text"].as_str()).collect();
    assert_eq!(text, "defghijk");
}

#[test]
fn a_stream_the_sink_stops_is_not_stored() {
    let f = fixture();
    let mut body = chat_body();
    body["stream"] = json!(true);
    let mut sent = 0;
    let mut sink = |_: Value| {
        sent += 1;
        if sent < 3 { ControlFlow::Continue(()) } else { ControlFlow::Break(()) }
    };
    let answer = f.answer(&f.harmony, Endpoint::Chat, &body, &no_control(), Some(&mut sink)).unwrap();
    assert_eq!(sent, 3, "nothing is sent after the sink said stop");
    assert!(!f.manager.contains(Kind::Response, &answer.key), "a cut-off answer is not stored");
    assert_eq!(f.chat(&body, &no_control()).status, CacheStatus::Miss);
}

#[test]
fn a_hit_is_the_stored_answer_byte_for_byte_but_id_created_and_model() {
    let f = fixture();
    let first = f.complete(&completion_body(), &no_control());
    let mut alias = completion_body();
    alias["model"] = json!("other-name");
    let hit = f.complete(&alias, &no_control());
    assert_eq!(hit.status, CacheStatus::Hit);
    let (a, b) = (first.json().unwrap(), hit.json().unwrap());
    let restored = String::from_utf8(hit.body.clone())
        .unwrap()
        .replacen(b["id"].as_str().unwrap(), a["id"].as_str().unwrap(), 1)
        .replacen(&format!("\"created\":{}", b["created"]), &format!("\"created\":{}", a["created"]), 1)
        .replacen("\"model\":\"other-name\"", "\"model\":\"tiny\"", 1);
    assert_eq!(restored.as_bytes(), &first.body[..]);
}
