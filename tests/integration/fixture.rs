//! A populated cache for the management, toggle, metrics and guide tests: a known set of responses imported
//! with `cache import`, read back with `cache export`, and measured on disk by the test itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};

use crate::util::{Sandbox, stderr, stdout};

/// Responses in [`seed`]: half for `llama-7b`, half for `mistral-7b`.
pub const SEED_COUNT: usize = 40;
/// The first [`SHARED_COUNT`] responses cycle through [`SHARED_ANSWERS`] answers; the rest are unique.
pub const SHARED_COUNT: usize = 24;
/// Distinct answers among the shared ones.
pub const SHARED_ANSWERS: usize = 4;
/// Distinct answers overall (and so distinct deduplicated payloads).
pub const DISTINCT_ANSWERS: usize = SHARED_ANSWERS + SEED_COUNT - SHARED_COUNT;

/// The question of response `i`; zero-padded so that no question is a prefix of another.
pub fn question(i: usize) -> String {
    format!("question {i:03}")
}

/// The answer of response `i`.
pub fn answer(i: usize) -> String {
    if i < SHARED_COUNT {
        format!("common answer {} from the shared pool", i % SHARED_ANSWERS)
    } else {
        format!("unique answer {i:03} nobody else gives")
    }
}

/// The model of response `i`: even ones `llama-7b`, odd ones `mistral-7b`.
pub fn model(i: usize) -> &'static str {
    if i.is_multiple_of(2) { "llama-7b" } else { "mistral-7b" }
}

/// One import line (without `ttl`).
pub fn response_line(model: &str, question: &str, answer: &str, id: &str) -> Value {
    json!({
        "model": model,
        "request": {"messages": [{"role": "user", "content": question}], "temperature": 0},
        "response": {"id": id, "object": "chat.completion", "created": 1_700_000_000, "model": model,
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                                  "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}}
    })
}

/// The seed lines, in order.
pub fn seed_lines() -> Vec<Value> {
    (0..SEED_COUNT)
        .map(|i| response_line(model(i), &question(i), &answer(i), &format!("resp-{i:03}")))
        .collect()
}

/// Runs `inferno <args>` in the sandbox.
pub fn run(sb: &Sandbox, args: &[&str]) -> Output {
    sb.std_command().args(args).output().expect("run inferno")
}

/// Runs `inferno <args>`, requires exit 0, returns stdout.
pub fn ok(sb: &Sandbox, args: &[&str]) -> String {
    let out = run(sb, args);
    assert!(
        out.status.success(),
        "inferno {args:?} failed ({}):\n{}{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Runs `inferno <args> --json`, requires exit 0, parses stdout.
pub fn ok_json(sb: &Sandbox, args: &[&str]) -> Value {
    let mut with_json = args.to_vec();
    with_json.push("--json");
    let text = ok(sb, &with_json);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("inferno {with_json:?} printed no JSON ({e}):\n{text}"))
}

/// Writes `lines` to `work/<name>` and imports them; requires success and returns the import's stdout.
pub fn import(sb: &Sandbox, name: &str, lines: &[Value]) -> String {
    let text: Vec<String> = lines.iter().map(Value::to_string).collect();
    sb.write(format!("work/{name}"), &(text.join("\n") + "\n"));
    ok(sb, &["cache", "import", name])
}

/// Imports [`seed_lines`] into the sandbox's default cache.
pub fn seed(sb: &Sandbox) -> Vec<Value> {
    let lines = seed_lines();
    let out = import(sb, "seed.jsonl", &lines);
    assert!(out.contains(&format!("{SEED_COUNT} new, 0 duplicate, 0 rejected")), "{out}");
    lines
}

/// The question of an import/export line.
pub fn question_of(line: &Value) -> &str {
    line["request"]["messages"][0]["content"].as_str().expect("a line has a question")
}

/// `cache export --format jsonl`, without the `ttl` field, sorted by question.
pub fn export(sb: &Sandbox) -> Vec<Value> {
    let text = ok(sb, &["cache", "export", "--format", "jsonl"]);
    let mut lines: Vec<Value> = text
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("export line {l:?}: {e}"));
            v.as_object_mut().expect("an export line is an object").remove("ttl");
            v
        })
        .collect();
    lines.sort_by(|a, b| question_of(a).cmp(question_of(b)));
    lines
}

/// `lines` sorted by question, as [`export`] returns them.
pub fn sorted(lines: impl IntoIterator<Item = Value>) -> Vec<Value> {
    let mut lines: Vec<Value> = lines.into_iter().collect();
    lines.sort_by(|a, b| question_of(a).cmp(question_of(b)));
    lines
}

/// The sandbox's cache directory (`$XDG_CACHE_HOME/inferno`).
pub fn cache_dir(sb: &Sandbox) -> PathBuf {
    sb.default_cache_dir()
}

/// The cache's `data/` folder.
pub fn data_dir(sb: &Sandbox) -> PathBuf {
    cache_dir(sb).join("data")
}

/// Sum of the sizes of every file below `dir` (0 when it does not exist).
pub fn tree_bytes(dir: &Path) -> u64 {
    snapshot(dir).values().map(|b| b.len() as u64).sum()
}

/// Every file below `dir` with its bytes, by path relative to `dir`.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten() {
            let entry = entry.expect("read dir entry");
            let path = entry.path();
            if entry.file_type().expect("file type").is_dir() {
                todo.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read file");
                out.insert(path.strip_prefix(dir).expect("below dir").to_path_buf(), bytes);
            }
        }
    }
    out
}

/// The segment files (`data/seg-*.log`).
pub fn segments(sb: &Sandbox) -> Vec<PathBuf> {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(data_dir(sb))
        .expect("the cache has a data dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("seg-") && name.ends_with(".log")
        })
        .collect();
    segs.sort();
    segs
}

/// Flips one byte in the middle of the first occurrence of `text` in a segment file; returns that file.
pub fn damage(sb: &Sandbox, text: &str) -> PathBuf {
    for seg in segments(sb) {
        let mut bytes = std::fs::read(&seg).unwrap();
        if let Some(at) = find(&bytes, text.as_bytes()) {
            bytes[at + text.len() / 2] ^= 0x20;
            std::fs::write(&seg, bytes).unwrap();
            return seg;
        }
    }
    panic!("{text:?} is in no segment file");
}

/// Offset of the first `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The key of the live entry record whose value holds `marker`, read from the segment files (record layout
/// in docs/format.md: 64-byte header, then key, name, references, value).
pub fn entry_key_holding(sb: &Sandbox, marker: &str) -> String {
    for seg in segments(sb) {
        let bytes = std::fs::read(&seg).unwrap();
        let mut at = 16;
        while at + 64 <= bytes.len() {
            let h = &bytes[at..at + 64];
            assert_eq!(&h[0..4], b"IREC", "{}: no record at {at}", seg.display());
            let u16_at = |o: usize| u16::from_le_bytes([h[o], h[o + 1]]) as usize;
            let (k, n, r) = (u16_at(32), u16_at(34), u16_at(36));
            let v = u32::from_le_bytes(h[40..44].try_into().unwrap()) as usize;
            let body = &bytes[at + 64..at + 64 + k + n + 33 * r + v];
            if h[4] == 1 && find(&body[k + n + 33 * r..], marker.as_bytes()).is_some() {
                return String::from_utf8(body[..k].to_vec()).expect("response keys are text");
            }
            at += 64 + body.len();
        }
    }
    panic!("no entry record holds {marker:?}");
}

/// `cache stats --json`.
pub fn stats(sb: &Sandbox) -> Value {
    ok_json(sb, &["cache", "stats"])
}

/// Live response entries according to `cache stats --json`.
pub fn response_entries(sb: &Sandbox) -> u64 {
    let s = stats(sb);
    assert_eq!(s["kinds"][0]["kind"], "response", "{s:#}");
    s["kinds"][0]["entries"].as_u64().expect("entries is a number")
}

/// The SI text the CLI prints for a byte count (`bytesize`, as `src/cli` formats it).
pub fn si(n: u64) -> String {
    bytesize::ByteSize(n).display().si().to_string()
}
