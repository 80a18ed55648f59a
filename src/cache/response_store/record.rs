//! The stored form of a response entry: `{"model", "request", "response"}` — the same object as a line of
//! `inferno cache import`/`export` JSONL — split so that the response payload can be deduplicated while the
//! model, the request and the response's envelope stay with the key.

use serde_json::{Map, Value};

use super::{Envelope, ResponseError, canonical, join_response, split_response};

/// Splits a stored response record into per-key bytes (model, request, envelope) and payload bytes.
/// A value that is not an object with a `response` field is all per-key bytes, with an empty payload.
pub fn split_record(record: &Value) -> (Vec<u8>, Vec<u8>) {
    let Some(object) = record.as_object().filter(|o| o.contains_key("response")) else {
        return (canonical::to_vec(record), Vec::new());
    };
    // Everything but the response is copied; the response is only read.
    let mut head: Map<String, Value> =
        object.iter().filter(|(k, _)| *k != "response").map(|(k, v)| (k.clone(), v.clone())).collect();
    let (envelope, payload) = split_response(&object["response"]);
    let envelope: Value = serde_json::from_slice(&envelope.to_bytes()).unwrap_or(Value::Object(Map::new()));
    head.insert("envelope".into(), envelope);
    (canonical::to_vec(&Value::Object(head)), payload.into_bytes())
}

/// Rebuilds the record from [`split_record`]'s two parts.
pub fn join_record(head: &[u8], payload: &[u8]) -> Result<Value, ResponseError> {
    let head: Value = serde_json::from_slice(head).map_err(ResponseError::Envelope)?;
    if payload.is_empty() {
        return Ok(head);
    }
    let Value::Object(mut head) = head else {
        return Err(ResponseError::UnknownEnvelopeField { field: "(not an object)".into() });
    };
    let envelope = head.remove("envelope").unwrap_or(Value::Object(Map::new()));
    let envelope = Envelope::from_bytes(&serde_json::to_vec(&envelope).map_err(ResponseError::Envelope)?)?;
    head.insert("response".into(), join_response(&envelope, payload, false)?);
    Ok(Value::Object(head))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn records_round_trip_and_share_payloads() {
        let record = |id: &str| {
            json!({
                "model": "tiny",
                "request": {"messages": [{"role": "user", "content": "hi"}], "temperature": 0},
                "response": {"id": id, "created": 1, "model": "tiny", "object": "chat.completion",
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}}]}
            })
        };
        let (head_a, payload_a) = split_record(&record("a"));
        let (head_b, payload_b) = split_record(&record("b"));
        assert_eq!(payload_a, payload_b);
        assert_ne!(head_a, head_b);
        assert_eq!(join_record(&head_a, &payload_a).unwrap(), record("a"));
        let plain = json!([1, 2, 3]);
        let (head, payload) = split_record(&plain);
        assert!(payload.is_empty());
        assert_eq!(join_record(&head, &payload).unwrap(), plain);
    }
}
