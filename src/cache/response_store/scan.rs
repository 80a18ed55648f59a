//! A minimal JSON scanner over bytes: where an object's members and their values begin and end, without
//! building a `serde_json::Value`.
//!
//! It checks structure only as far as it walks (brackets, quotes, separators); it does not validate numbers,
//! literals or escapes inside strings. Callers scan bytes that serde_json wrote or already checked. Malformed
//! input gives `None`, never a panic or a read out of bounds.

use std::ops::Range;

/// One member of an object: its key (the raw bytes between the quotes, escapes as written) and where the
/// member and its value lie in the scanned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Member {
    /// The key's raw bytes, without the quotes.
    pub key: Range<usize>,
    /// From the key's opening quote to the end of the value.
    pub span: Range<usize>,
    /// The value.
    pub value: Range<usize>,
}

/// The index of the first byte at or after `i` that is not JSON whitespace.
pub(super) fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(i) {
        i += 1;
    }
    i
}

/// The end of the string whose opening quote is at `i` (one past the closing quote).
fn skip_string(bytes: &[u8], i: usize) -> Option<usize> {
    let mut at = i + 1;
    loop {
        at += memchr::memchr2(b'"', b'\\', bytes.get(at..)?)?;
        if bytes[at] == b'"' {
            return Some(at + 1);
        }
        at += 2;
    }
}

/// The end of the value that starts at `i` (after any whitespace), one past its last byte.
pub(super) fn skip_value(bytes: &[u8], i: usize) -> Option<usize> {
    let i = skip_ws(bytes, i);
    match *bytes.get(i)? {
        b'"' => skip_string(bytes, i),
        b'{' | b'[' => skip_nested(bytes, i),
        b',' | b':' | b'}' | b']' => None,
        _ => {
            let len = bytes[i..]
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r' | b':'))
                .unwrap_or(bytes.len() - i);
            Some(i + len)
        }
    }
}

/// The end of the object or array that opens at `i`, tracking depth and skipping strings.
fn skip_nested(bytes: &[u8], i: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut at = i;
    while at < bytes.len() {
        match bytes[at] {
            b'"' => {
                at = skip_string(bytes, at)?;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(at + 1);
                }
            }
            _ => {}
        }
        at += 1;
    }
    None
}

/// The members of the object that opens at `open` (a `{`), in order, and the index one past its `}`.
pub(super) fn members(bytes: &[u8], open: usize) -> Option<(Vec<Member>, usize)> {
    if bytes.get(open) != Some(&b'{') {
        return None;
    }
    let mut out = Vec::with_capacity(8);
    let mut at = skip_ws(bytes, open + 1);
    if bytes.get(at) == Some(&b'}') {
        return Some((out, at + 1));
    }
    loop {
        if bytes.get(at) != Some(&b'"') {
            return None;
        }
        let key_end = skip_string(bytes, at)?;
        let colon = skip_ws(bytes, key_end);
        if bytes.get(colon) != Some(&b':') {
            return None;
        }
        let value_start = skip_ws(bytes, colon + 1);
        let value_end = skip_value(bytes, value_start)?;
        out.push(Member { key: at + 1..key_end - 1, span: at..value_end, value: value_start..value_end });
        at = skip_ws(bytes, value_end);
        match bytes.get(at) {
            Some(b',') => at = skip_ws(bytes, at + 1),
            Some(b'}') => return Some((out, at + 1)),
            _ => return None,
        }
    }
}

/// The elements of the array that opens at `open` (a `[`), as value ranges, and the index one past its `]`.
pub(super) fn elements(bytes: &[u8], open: usize) -> Option<(Vec<Range<usize>>, usize)> {
    if bytes.get(open) != Some(&b'[') {
        return None;
    }
    let mut out = Vec::new();
    let mut at = skip_ws(bytes, open + 1);
    if bytes.get(at) == Some(&b']') {
        return Some((out, at + 1));
    }
    loop {
        let end = skip_value(bytes, at)?;
        out.push(at..end);
        at = skip_ws(bytes, end);
        match bytes.get(at) {
            Some(b',') => at = skip_ws(bytes, at + 1),
            Some(b']') => return Some((out, at + 1)),
            _ => return None,
        }
    }
}

/// The value of the member called `key` (matched on its raw bytes) among `members`.
pub(super) fn find<'m>(bytes: &[u8], members: &'m [Member], key: &str) -> Option<&'m Member> {
    members.iter().find(|m| &bytes[m.key.clone()] == key.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_and_values(text: &str) -> Option<Vec<(String, String)>> {
        let bytes = text.as_bytes();
        let open = skip_ws(bytes, 0);
        let (members, end) = members(bytes, open)?;
        assert_eq!(skip_ws(bytes, end), bytes.len());
        Some(
            members
                .iter()
                .map(|m| (text[m.key.clone()].to_string(), text[m.value.clone()].to_string()))
                .collect(),
        )
    }

    #[test]
    fn members_of_nested_objects_with_awkward_strings() {
        let text = r#" { "a" : 1 , "b\"}" : {"x":[1,"]",{"y":"\\"}]}, "c":"q\\\"}", "d":null,"e":-1.5e3 } "#;
        let found = keys_and_values(text).unwrap();
        assert_eq!(
            found,
            [
                ("a".into(), "1".into()),
                (r#"b\"}"#.into(), r#"{"x":[1,"]",{"y":"\\"}]}"#.into()),
                ("c".into(), r#""q\\\"}""#.into()),
                ("d".into(), "null".into()),
                ("e".into(), "-1.5e3".into()),
            ]
        );
        assert_eq!(keys_and_values("{}").unwrap(), []);
        let (items, end) = elements(b"[1, {\"a\":[]} ,\"x\"]", 0).unwrap();
        assert_eq!(items, [1..2, 4..12, 14..17]);
        assert_eq!(end, 18);
    }

    #[test]
    fn malformed_input_is_none_not_a_panic() {
        for text in [
            "",
            "{",
            "{\"a\"",
            "{\"a\":",
            "{\"a\":1",
            "{\"a\":1,",
            "{\"a\" 1}",
            "{a:1}",
            "{\"a\":\"x}",
            "{\"a\":[}",
            "{\"a\":1]",
            "{\"a\":\"\\",
            "[",
            "{\"a\":}",
            "{,}",
        ] {
            assert!(keys_and_values(text).is_none(), "{text:?}");
        }
        assert!(elements(b"[1,", 0).is_none());
        assert!(skip_value(b"   ", 0).is_none());
    }
}
