//! Canonical JSON bytes: compact, object keys sorted, one spelling per string and number.
//!
//! The request key is written through here, so the rules live in one place (and in `docs/keys.md`). This
//! file does not decide which fields are written; callers do.

use serde_json::{Number, Value};

/// Writes `value` compactly with object keys in byte order, whatever order the map holds them in.
///
/// Strings escape `"`, `\` and the control characters below U+0020 (`\b \t \n \f \r`, else `\u00XX`) and
/// nothing else. Numbers are written as serde_json writes them (`1` and `1.0` stay apart); normalise
/// first with [`normalize_number`] where they must not.
pub(super) fn write(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => write_str(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(map, out),
    }
}

/// Writes the object made of `entries` as [`write`] writes an object: keys in byte order. Lets a caller
/// write part of a map without copying it.
pub(super) fn write_object<'a>(
    entries: impl IntoIterator<Item = (&'a String, &'a Value)>,
    out: &mut Vec<u8>,
) {
    let mut entries: Vec<_> = entries.into_iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out.push(b'{');
    for (i, (key, item)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(key, out);
        out.push(b':');
        write(item, out);
    }
    out.push(b'}');
}

/// [`write`] into a fresh buffer.
#[cfg(test)]
pub(super) fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write(value, &mut out);
    out
}

fn write_str(s: &str, out: &mut Vec<u8>) {
    // Every character that needs escaping is ASCII, so scanning bytes finds the same ones as scanning chars,
    // and the runs between them are copied whole (every byte of a multi-byte UTF-8 character is 0x80 or above).
    const HEX: &[u8; 16] = b"0123456789abcdef";
    const BLOCK: usize = 16;
    let needs_escape = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let (mut run, mut i) = (0, 0);
    while i < bytes.len() {
        // Skip clean blocks 16 bytes at a time; the fold has no early exit, so it compiles to vector compares.
        if let Some(block) = bytes.get(i..i + BLOCK)
            && !block.iter().fold(false, |dirty, &b| dirty | needs_escape(b))
        {
            i += BLOCK;
            continue;
        }
        let b = bytes[i];
        i += 1;
        if !needs_escape(b) {
            continue;
        }
        out.extend_from_slice(&bytes[run..i - 1]);
        run = i;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
        }
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

/// One spelling per numeric value: a whole number within ±2^63 becomes an integer (`1.0` → `1`, `-0.0` → `0`,
/// `1e3` → `1000`), anything else stays a float in serde_json's shortest round-trip form.
pub(super) fn normalize_number(n: &Number) -> Number {
    if n.is_i64() || n.is_u64() {
        return n.clone();
    }
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && (-TWO_POW_63..TWO_POW_63).contains(&f) => Number::from(f as i64),
        Some(f) => Number::from_f64(f).unwrap_or_else(|| n.clone()),
        None => n.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn keys_are_sorted_and_output_is_compact() {
        let v = json!({"b": [1, {"z": null, "a": true}], "a": "x"});
        assert_eq!(to_vec(&v), br#"{"a":"x","b":[1,{"a":true,"z":null}]}"#);
    }

    #[test]
    fn strings_escape_only_what_json_requires() {
        let v = json!("q\"b\\s/\u{1}\n\té");
        assert_eq!(String::from_utf8(to_vec(&v)).ok().as_deref(), Some(r#""q\"b\\s/\u0001\n\té""#));
        // Agrees with serde_json, so payload bytes parse back to the same value.
        assert_eq!(to_vec(&v), serde_json::to_vec(&v).unwrap_or_default());
    }

    #[test]
    fn every_ascii_and_some_wider_characters_escape_as_serde_json_does() {
        let mut text: String = (0u8..0x80).map(char::from).collect();
        text.push_str("é€😀\u{7f}\u{80}\u{2028}");
        text.push('\u{1f}');
        let v = Value::String(text);
        assert_eq!(to_vec(&v), serde_json::to_vec(&v).unwrap_or_default());
        assert_eq!(to_vec(&json!("")), b"\"\"");
        // Escapes before, inside and after the 16-byte blocks that are skipped whole.
        for n in 0..40 {
            let v = Value::String(format!(
                "{}\"{}\n{}\\{}",
                "a".repeat(n),
                "é".repeat(n),
                "b".repeat(2 * n),
                "\t"
            ));
            assert_eq!(to_vec(&v), serde_json::to_vec(&v).unwrap_or_default(), "n = {n}");
        }
    }

    #[test]
    fn numbers_normalise_to_one_spelling() {
        let norm = |v: Value| match v {
            Value::Number(n) => normalize_number(&n).to_string(),
            _ => String::new(),
        };
        assert_eq!(norm(json!(1.0)), "1");
        assert_eq!(norm(json!(1)), "1");
        assert_eq!(norm(json!(-0.0)), "0");
        assert_eq!(norm(json!(0.7)), "0.7");
        assert_eq!(norm(json!(1e300)), "1e+300");
        assert_eq!(norm(json!(u64::MAX)), u64::MAX.to_string());
        assert_eq!(norm(json!(-9_223_372_036_854_775_808.0)), i64::MIN.to_string());
        assert_eq!(norm(json!(1e19)), "1e+19", "whole but beyond i64: stays a float");
        assert_eq!(to_vec(&json!(1.0)), b"1.0", "write alone keeps serde_json's spelling");
    }
}
