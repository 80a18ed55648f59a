//! The byte splitter and the fresh splice: payloads shared across envelopes, stored bytes given back exactly
//! (key order, spacing, unknown fields), and arbitrary JSON objects round-tripping through split and join.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::cache::dedup::splice;

fn record(response: &str) -> String {
    format!(
        r#"{{"model":"tiny","model_fingerprint":"blake3:ab","request":{{"prompt":"hi"}},"response":{response}}}"#
    )
}

fn payload_of(record: &str) -> Vec<u8> {
    let ranges = per_key_ranges(record.as_bytes()).unwrap();
    splice::split(record.as_bytes(), &ranges).1
}

#[test]
fn the_payload_is_the_response_less_its_envelope() {
    let a = record(
        r#"{"id":"chatcmpl-a","object":"chat.completion","created":1,"model":"m","choices":[{"text":"x"}],"system_fingerprint":"fp_1","usage":{"n":1}}"#,
    );
    let b = record(
        r#"{"id":"chatcmpl-b","object":"chat.completion","created":2,"model":"other","choices":[{"text":"x"}],"system_fingerprint":"fp_2","usage":{"n":1}}"#,
    );
    assert_eq!(payload_of(&a), br#"{"object":"chat.completion","choices":[{"text":"x"}],"usage":{"n":1}}"#);
    assert_eq!(payload_of(&a), payload_of(&b));
    let c = a.replace("\"x\"", "\"y\"");
    assert_ne!(payload_of(&a), payload_of(&c));
    // Envelope fields first, last, alone, or absent.
    for (response, payload) in [
        (r#"{"id":"a","created":1,"k":1}"#, r#"{"k":1}"#),
        (r#"{"k":1,"id":"a","created":1}"#, r#"{"k":1}"#),
        (r#"{"id":"a"}"#, r#"{}"#),
        (r#"{"k":1}"#, r#"{"k":1}"#),
        (r#"{}"#, r#"{}"#),
        (r#" { "k" : 1 , "model" : "m" } "#, r#"{ "k" : 1 }"#),
        (r#"[{"id":"a"}]"#, r#"[{"id":"a"}]"#),
    ] {
        assert_eq!(String::from_utf8(payload_of(&record(response))).unwrap(), payload, "{response}");
    }
    assert!(per_key_ranges(b"[1,2]").is_none());
    assert!(per_key_ranges(br#"{"model":"m"}"#).is_none());
    assert!(per_key_ranges(br#"{"response":{}} trailing"#).is_none());
}

fn fresh() -> Fresh<'static> {
    Fresh { id_hex: "0123456789abcdef01234567".into(), created: 1_800_000_000, model: Some("alias") }
}

#[test]
fn a_hit_keeps_every_byte_but_id_created_and_model() {
    let stored = r#"{"zeta":1, "id":"chatcmpl-old","object":"chat.completion","created":5,"model":"tiny","choices":[{"message":{"content":"a \"quoted\" }"}}],"unknown_field":{"b":2,"a":1},"system_fingerprint":"fp_x"}"#;
    let hit = fresh_response_of(stored);
    assert_eq!(
        hit,
        r#"{"zeta":1, "id":"chatcmpl-0123456789abcdef01234567","object":"chat.completion","created":1800000000,"model":"alias","choices":[{"message":{"content":"a \"quoted\" }"}}],"unknown_field":{"b":2,"a":1},"system_fingerprint":"fp_x"}"#
    );
    let text = r#"{"object":"text_completion","id":"cmpl-1","choices":[]}"#;
    assert_eq!(
        fresh_response_of(text),
        r#"{"object":"text_completion","id":"cmpl-0123456789abcdef01234567","choices":[],"model":"alias"}"#
    );
    assert_eq!(fresh_response_of("{}"), r#"{"model":"alias"}"#);
    let keep = Fresh { model: None, ..fresh() };
    assert_eq!(
        splice_fresh(br#"{"model":"m","created":1}"#, &keep).unwrap(),
        br#"{"model":"m","created":1800000000}"#
    );
    // A chunk list shares one new id; anything else comes back as stored.
    let chunks = r#"[{"id":"x","object":"chat.completion.chunk"},{"id":"x","model":"m"}, 3]"#;
    assert_eq!(
        fresh_response_of(chunks),
        r#"[{"id":"chatcmpl-0123456789abcdef01234567","object":"chat.completion.chunk","model":"alias"},{"id":"chatcmpl-0123456789abcdef01234567","model":"alias"}, 3]"#
    );
    assert_eq!(fresh_response_of("\"text\""), "\"text\"");
    assert!(splice_fresh(b"{\"id\":", &fresh()).is_none());
}

fn fresh_response_of(response: &str) -> String {
    String::from_utf8(splice_fresh(response.as_bytes(), &fresh()).unwrap()).unwrap()
}

#[test]
fn fresh_ids_are_new_and_the_time_is_now() {
    let a = Fresh::now(None);
    let b = Fresh::now(None);
    assert_ne!(a.id_hex, b.id_hex);
    assert_eq!(a.id_hex.len(), 24);
    assert!(a.id_hex.bytes().all(|c| c.is_ascii_hexdigit()));
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    assert!(a.created.abs_diff(now) <= 1);
}

/// Arbitrary JSON values, a few levels deep, with envelope names among the keys.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("id".to_string()),
        Just("created".to_string()),
        Just("model".to_string()),
        Just("system_fingerprint".to_string()),
        Just("object".to_string()),
        "[a-z\"\\\\\u{e9} ]{0,6}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        "[ -~\u{e9}\n\"\\\\]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 5, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// The members of a response object in an arbitrary order, envelope fields among them at random places.
fn entries() -> impl Strategy<Value = Vec<(String, Value)>> {
    let envelope = (
        proptest::option::of(Just(json!("chatcmpl-old"))),
        proptest::option::of(any::<u32>().prop_map(Value::from)),
        proptest::option::of(Just(json!("stored-model"))),
        proptest::option::of(Just(json!("fp_1"))),
    );
    (proptest::collection::vec(("[a-z_]{1,8}", json_value()), 0..6), envelope, any::<u64>()).prop_map(
        |(mut entries, (id, created, model, fp), seed)| {
            entries.retain(|(k, _)| !ENVELOPE_FIELDS.contains(&k.as_str()));
            let mut seen = std::collections::HashSet::new();
            entries.retain(|(k, _)| seen.insert(k.clone()));
            for (name, value) in
                [("id", id), ("created", created), ("model", model), ("system_fingerprint", fp)]
            {
                if let Some(value) = value {
                    let at = (seed as usize).wrapping_mul(name.len() + 7) % (entries.len() + 1);
                    entries.insert(at, (name.to_string(), value));
                }
            }
            entries
        },
    )
}

/// The object's JSON text, members in the given order (spaced out when `spaced`).
fn text_of(entries: &[(String, Value)], spaced: bool) -> String {
    let sep = if spaced { " , " } else { "," };
    let colon = if spaced { " :\n " } else { ":" };
    let members: Vec<String> = entries
        .iter()
        .map(|(k, v)| {
            format!("{}{colon}{}", serde_json::to_string(k).unwrap(), serde_json::to_string(v).unwrap())
        })
        .collect();
    if spaced { format!("{{ {} }}", members.join(sep)) } else { format!("{{{}}}", members.join(sep)) }
}

proptest! {
    /// Split then join gives back the stored bytes, and the payload is the object less its envelope members.
    #[test]
    fn split_then_join_returns_the_stored_bytes(entries in entries(), spaced in any::<bool>()) {
        let stored = record(&text_of(&entries, spaced));
        let ranges = per_key_ranges(stored.as_bytes()).unwrap();
        let (head, payload) = splice::split(stored.as_bytes(), &ranges);
        prop_assert_eq!(splice::join(&head, &payload).unwrap(), stored.as_bytes());
        let rest: Vec<(String, Value)> =
            entries.iter().filter(|(k, _)| !ENVELOPE_FIELDS.contains(&k.as_str())).cloned().collect();
        // Parsed on both sides, so that both go through the same float parsing.
        let parsed: Value = serde_json::from_slice(&payload).unwrap();
        let expected: Value = serde_json::from_str(&text_of(&rest, spaced)).unwrap();
        prop_assert_eq!(parsed, expected);
        if !spaced {
            prop_assert_eq!(payload, text_of(&rest, false).into_bytes());
        }
    }

    /// A hit is the stored response byte for byte, with only the values of `id`, `created` and `model`
    /// changed (and `model` added at the end when it was missing).
    #[test]
    fn a_hit_changes_only_the_fresh_fields(entries in entries(), spaced in any::<bool>()) {
        let hit = splice_fresh(text_of(&entries, spaced).as_bytes(), &fresh()).unwrap();
        let mut expected = entries.clone();
        for (k, v) in &mut expected {
            match k.as_str() {
                "id" => *v = json!("chatcmpl-0123456789abcdef01234567"),
                "created" => *v = json!(1_800_000_000u64),
                "model" => *v = json!("alias"),
                _ => {}
            }
        }
        let mut expected = text_of(&expected, spaced);
        if !entries.iter().any(|(k, _)| k == "model") {
            let close = expected.rfind('}').unwrap();
            let trimmed = expected[..close].to_string();
            let comma = if entries.is_empty() { "" } else { "," };
            expected = format!("{trimmed}{comma}\"model\":\"alias\"}}");
        }
        prop_assert_eq!(String::from_utf8(hit).unwrap(), expected);
    }
}
