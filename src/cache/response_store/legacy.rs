//! Reading response entries written in the first dedup layout (before the byte splitter): a head that is a
//! canonical JSON object `{"envelope": {...}, "model": ..., "request": ...}` and a payload that is the
//! canonical JSON of the response less its envelope fields. Such entries are rebuilt into a record here, so
//! caches written by earlier versions keep being served. Nothing writes this layout any more.

use serde_json::{Map, Value};

use super::ENVELOPE_FIELDS;
use super::ResponseError;

/// The record `{"model", ..., "request", "response"}` (JSON bytes) rebuilt from a format-1 head and payload.
pub fn join_record(head: &[u8], payload: &[u8]) -> Result<Vec<u8>, ResponseError> {
    let head: Value = serde_json::from_slice(head).map_err(ResponseError::Envelope)?;
    if payload.is_empty() {
        return serde_json::to_vec(&head).map_err(ResponseError::Envelope);
    }
    let Value::Object(mut head) = head else {
        return Err(ResponseError::UnknownEnvelopeField { field: "(not an object)".into() });
    };
    let envelope = match head.remove("envelope") {
        None => Map::new(),
        Some(Value::Object(envelope)) => envelope,
        Some(_) => return Err(ResponseError::UnknownEnvelopeField { field: "envelope".into() }),
    };
    if let Some(field) = envelope.keys().find(|k| !ENVELOPE_FIELDS.contains(&k.as_str())) {
        return Err(ResponseError::UnknownEnvelopeField { field: field.clone() });
    }
    let mut body: Value = serde_json::from_slice(payload).map_err(ResponseError::Payload)?;
    let apply = |object: &mut Map<String, Value>| {
        for (field, value) in &envelope {
            object.insert(field.clone(), value.clone());
        }
    };
    match &mut body {
        Value::Object(object) => apply(object),
        Value::Array(items) if !envelope.is_empty() => {
            items.iter_mut().filter_map(Value::as_object_mut).for_each(apply);
        }
        _ => {}
    }
    head.insert("response".into(), body);
    serde_json::to_vec(&Value::Object(head)).map_err(ResponseError::Envelope)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The bytes the first layout wrote for a chat record (from `split_record` as it was).
    const HEAD: &[u8] = br#"{"envelope":{"created":1,"id":"a","model":"tiny"},"model":"tiny","request":{"messages":[{"content":"hi","role":"user"}],"temperature":0}}"#;
    const PAYLOAD: &[u8] =
        br#"{"choices":[{"index":0,"message":{"content":"hello","role":"assistant"}}],"object":"chat.completion"}"#;

    #[test]
    fn format_one_records_are_rebuilt() {
        let record: Value = serde_json::from_slice(&join_record(HEAD, PAYLOAD).unwrap()).unwrap();
        assert_eq!(
            record,
            json!({
                "model": "tiny",
                "request": {"messages": [{"role": "user", "content": "hi"}], "temperature": 0},
                "response": {"id": "a", "created": 1, "model": "tiny", "object": "chat.completion",
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}}]}
            })
        );
        // A record that was all head (no response) had an empty payload.
        assert_eq!(join_record(b"[1,2,3]", b"").unwrap(), b"[1,2,3]");
    }

    #[test]
    fn damaged_format_one_records_are_errors() {
        assert!(join_record(b"{not json", PAYLOAD).is_err());
        assert!(join_record(HEAD, b"{not json").is_err());
        assert!(join_record(br#"{"envelope":{"choices":[]}}"#, PAYLOAD).is_err());
        assert!(join_record(br#"{"envelope":[1]}"#, PAYLOAD).is_err());
        assert!(join_record(b"[1]", PAYLOAD).is_err());
    }
}
