//! The prompt-prefix KV cache on the tiny model, over an in-memory store that counts its calls: greedy output
//! is the same with the cache cold, warm and after a restart as without it; another model never restores;
//! damaged, foreign and refused records are removed and the request prefills normally; short prompts never
//! touch the store; concurrent restores stay exact.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::prefix_record::{self, Record, StateRecordWriter};
use super::*;
use crate::models::gguf::tiny::{LlamaShape, SPACE_ID, TINY};
use crate::models::prefix::{PrefixConfig, PrefixStore};

const BLOCK: u32 = 16;
const MIN_PREFIX: u32 = 32;

/// What the store was asked.
#[derive(Clone, Debug, Default, PartialEq)]
struct Calls {
    contains: usize,
    get: usize,
    put: usize,
    removed: Vec<[u8; 32]>,
    reused_tokens: u64,
    reused: usize,
}

/// A `PrefixStore` over a HashMap that counts every call.
#[derive(Debug, Default)]
struct MemoryStore {
    map: Mutex<HashMap<[u8; 32], Arc<[u8]>>>,
    calls: Mutex<Calls>,
}

impl PrefixStore for MemoryStore {
    fn contains(&self, key: &[u8; 32]) -> bool {
        self.calls.lock().contains += 1;
        self.map.lock().contains_key(key)
    }
    fn get(&self, key: &[u8; 32]) -> Option<Arc<[u8]>> {
        self.calls.lock().get += 1;
        self.map.lock().get(key).cloned()
    }
    fn put(&self, key: &[u8; 32], bytes: &[u8]) {
        self.calls.lock().put += 1;
        self.map.lock().insert(*key, bytes.into());
    }
    fn remove(&self, key: &[u8; 32]) {
        self.calls.lock().removed.push(*key);
        self.map.lock().remove(key);
    }
    fn reused(&self, tokens: u64, seconds_saved: f64) {
        assert!(seconds_saved >= 0.0);
        let mut calls = self.calls.lock();
        calls.reused += 1;
        calls.reused_tokens += tokens;
    }
}

impl MemoryStore {
    fn calls(&self) -> Calls {
        self.calls.lock().clone()
    }

    /// The key of the one state record (the others are aliases).
    fn state_key(&self) -> [u8; 32] {
        let map = self.map.lock();
        let states: Vec<[u8; 32]> = map
            .iter()
            .filter(|(_, v)| matches!(prefix_record::parse(v), Ok(Record::State(_))))
            .map(|(k, _)| *k)
            .collect();
        assert_eq!(states.len(), 1, "one state record");
        states[0]
    }

    fn bytes(&self, key: &[u8; 32]) -> Vec<u8> {
        self.map.lock()[key].to_vec()
    }

    fn replace(&self, key: &[u8; 32], bytes: Vec<u8>) {
        self.map.lock().insert(*key, bytes.into());
    }
}

/// A model of the tiny model's shape (1024-token context) whose greedy output depends on the whole prompt:
/// pseudo-random weights seeded by `name`, with attention strong enough that a restore of the wrong state
/// (or none) changes what it writes. Control and byte tokens get no output weight, so it writes letters,
/// digits and spaces. Another name is another model of the same shape.
fn write_model(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.gguf"));
    let shape = LlamaShape { n_ctx: 1024, ..TINY };
    let mut writer = shape.metadata(name).unwrap();
    let mut state =
        name.bytes().fold(0x9E37_79B9_7F4A_7C15u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3));
    let mut noise = |amplitude: f32| {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32 * 2.0 * amplitude - amplitude
    };
    for (tensor, dims) in shape.tensors() {
        let len = dims.iter().product::<u64>() as usize;
        let values: Vec<f32> = match tensor.rsplit('.').nth(1).unwrap_or_default() {
            "output_norm" | "attn_norm" | "ffn_norm" => vec![1.0; len],
            "token_embd" => (0..len).map(|_| noise(1.0)).collect(),
            "output" => (0..len)
                .map(|i| if (i as u64 / shape.n_embd) < u64::from(SPACE_ID) { 0.0 } else { noise(1.0) })
                .collect(),
            _ => (0..len).map(|_| noise(0.3)).collect(),
        };
        writer.add_f32_tensor(&tensor, &dims, values).unwrap();
    }
    writer.write_path(&path).unwrap();
    path
}

fn load(path: &Path, store: Option<&Arc<MemoryStore>>, parallel: u32) -> GgufModel {
    let prefix = store.map(|store| PrefixConfig {
        store: Arc::clone(store) as Arc<dyn PrefixStore>,
        block_tokens: BLOCK,
        min_prefix_tokens: MIN_PREFIX,
    });
    GgufModel::load_with(path, &SlotConfig { parallel, prefix, ..SlotConfig::default() }).unwrap()
}

/// `len` characters of letters and digits (one token each, after BOS and `▁`), varied by `seed`.
fn text(len: usize, seed: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len).map(|i| CHARS[(i * 7 + seed * 13 + i / 5) % CHARS.len()] as char).collect()
}

fn params() -> GenerateParams {
    GenerateParams { max_tokens: 8, ..GenerateParams::default() }
}

/// Generates and returns (text, cached tokens), after the saves of the request are in the store.
fn run(model: &GgufModel, prompt: &str) -> (String, usize) {
    let out = model.generate(prompt, &params()).unwrap();
    model.wait_for_prefix_saves();
    (out.text, out.cached_tokens)
}

#[test]
fn greedy_output_is_the_same_cold_warm_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_model(dir.path(), "tiny");
    let plain = load(&path, None, 4);
    let prompt = text(150, 0); // 152 tokens: 9 whole blocks
    let longer = format!("{prompt}{}", text(40, 1)); // the next turn of a chat
    let forked = format!("{}{}", &prompt[..100], text(60, 2)); // shares 102 tokens, 6 whole blocks
    let expected: Vec<String> = [&prompt, &longer, &forked].iter().map(|p| run(&plain, p).0).collect();
    assert!(expected.iter().all(|t| t.len() == 8), "{expected:?}");
    assert!(expected[0] != expected[1] && expected[1] != expected[2], "the output depends on the prompt");

    let store = Arc::new(MemoryStore::default());
    let cached = load(&path, Some(&store), 4);
    assert_eq!(run(&cached, &prompt), (expected[0].clone(), 0), "cold");
    let calls = store.calls();
    assert_eq!((calls.put, calls.get), (9, 0), "one state and 8 aliases saved, nothing read");
    assert_eq!(run(&cached, &prompt), (expected[0].clone(), 151), "warm: all but the last token");
    assert_eq!(run(&cached, &longer), (expected[1].clone(), 152), "the whole earlier prompt");
    assert_eq!(run(&cached, &forked).1, 102, "the shared prefix, through an alias");
    assert_eq!(run(&cached, &forked).0, expected[2]);
    drop(cached);

    // A restart: a new instance of the model over the same store.
    let restarted = load(&path, Some(&store), 4);
    assert_eq!(run(&restarted, &prompt), (expected[0].clone(), 151), "after a restart");
    assert_eq!(run(&restarted, &longer).0, expected[1]);
    let calls = store.calls();
    assert!(calls.removed.is_empty(), "{calls:?}");
    assert_eq!(calls.reused, 6);
    // Restored tokens are not decoded: each request read only its last prompt token.
    assert_eq!(restarted.slot_stats().prompt_tokens, 2);
}

#[test]
fn a_different_model_of_the_same_shape_never_restores() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStore::default());
    let prompt = text(100, 3);
    let first = load(&write_model(dir.path(), "first"), Some(&store), 2);
    run(&first, &prompt);
    assert_eq!(run(&first, &prompt).1, 101);
    let other_path = write_model(dir.path(), "other");
    let expected = run(&load(&other_path, None, 2), &prompt).0;
    let other = load(&other_path, Some(&store), 2);
    let gets = store.calls().get;
    assert_eq!(run(&other, &prompt), (expected, 0), "another file: other keys");
    assert_eq!(store.calls().get, gets, "nothing was even read");
}

/// A state record like `bytes` (a valid one) with other tokens or another fingerprint, checksum valid.
fn forged(bytes: &[u8], fingerprint: Option<[u8; 32]>, token_change: Option<usize>) -> Vec<u8> {
    let Ok(Record::State(state)) = prefix_record::parse(bytes) else { panic!("a state record") };
    let header = 8 + 4 + 1 + 32 + 4;
    let mut tokens: Vec<i32> = bytes[header..header + 4 * state.n_tokens()]
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    if let Some(at) = token_change {
        tokens[at] = if tokens[at] == 262 { 263 } else { 262 };
    }
    let fingerprint = fingerprint.unwrap_or(state.fingerprint);
    let mut writer = StateRecordWriter::new(&fingerprint, &tokens, state.state.len());
    writer.state_mut().copy_from_slice(&bytes[state.state.clone()]);
    writer.finish()
}

#[test]
fn damaged_foreign_and_refused_records_are_removed_and_prefill_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_model(dir.path(), "tiny");
    let prompt = text(120, 4); // 122 tokens, 7 whole blocks
    let expected = run(&load(&path, None, 2), &prompt).0;
    let store = Arc::new(MemoryStore::default());
    let model = load(&path, Some(&store), 2);
    run(&model, &prompt);
    let key = store.state_key();
    let good = store.bytes(&key);
    let Ok(Record::State(state)) = prefix_record::parse(&good) else { panic!("a state record") };
    let state_at = state.state.start;
    let damages: [(&str, Vec<u8>); 5] = [
        ("truncated", good[..good.len() - 100].to_vec()),
        ("bit-flipped", {
            let mut b = good.clone();
            b[state_at + 1000] ^= 0x10;
            b
        }),
        ("wrong tokens", forged(&good, None, Some(40))),
        ("other fingerprint", forged(&good, Some([0xAA; 32]), None)),
        ("refused by llama.cpp", {
            // A record that reads and matches, with state bytes llama.cpp rejects (zeros, checksum fixed).
            let mut b = good.clone();
            b[state.state.clone()].fill(0);
            let end = b.len() - 16;
            let sum = xxhash_rust::xxh3::xxh3_128(&b[..end]).to_le_bytes();
            b[end..].copy_from_slice(&sum);
            b
        }),
    ];
    for (what, bytes) in damages {
        store.replace(&key, bytes);
        let before = store.calls().removed.len();
        assert_eq!(run(&model, &prompt), (expected.clone(), 0), "{what}: a normal prefill");
        let removed = store.calls().removed[before..].to_vec();
        assert!(removed.contains(&key), "{what}: the record was removed ({removed:?})");
        // The prefill saved a good state again, and it restores.
        assert_eq!(run(&model, &prompt), (expected.clone(), 121), "{what}: saved again");
    }
}

#[test]
fn short_prompts_never_touch_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStore::default());
    let model = load(&write_model(dir.path(), "tiny"), Some(&store), 2);
    // 31 tokens (BOS, `▁`, 29 characters) are under min_prefix_tokens; 33 are looked up.
    run(&model, &text(29, 5));
    run(&model, &text(29, 5));
    assert_eq!(store.calls(), Calls::default());
    run(&model, &text(31, 5));
    assert!(store.calls().contains > 0);
}

#[test]
fn several_sequences_restoring_concurrently_stay_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_model(dir.path(), "tiny");
    let shared = text(90, 6);
    let prompts: Vec<String> = (0..4).map(|i| format!("{shared}{}", text(10 + i, 10 + i))).collect();
    let plain = load(&path, None, 4);
    let expected: Vec<String> = prompts.iter().map(|p| run(&plain, p).0).collect();
    let store = Arc::new(MemoryStore::default());
    let model = load(&path, Some(&store), 4);
    run(&model, &shared);
    let together: Vec<(String, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = prompts
            .iter()
            .map(|p| {
                let model = &model;
                s.spawn(move || {
                    let out = model.generate(p, &params()).unwrap();
                    (out.text, out.cached_tokens)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for ((text, cached), expected) in together.iter().zip(&expected) {
        assert_eq!(text, expected);
        assert_eq!(*cached, 92, "the whole shared prompt");
    }
    let distinct: HashSet<&String> = expected.iter().collect();
    assert!(distinct.len() > 1, "the prompts' answers differ, so a mixed-up restore would show");
}
