use std::collections::HashMap;

use serde_json::json;

use super::*;
use crate::cache::Access;
use crate::config::{CacheConfig, CacheType};

/// Texts with made-up embeddings; "LONG" is over the token limit, anything unknown fails.
struct Table(HashMap<&'static str, Vec<f32>>);

impl TextEmbedder for Table {
    fn embed(&self, text: &str) -> anyhow::Result<Option<Vec<f32>>> {
        if text == "LONG" {
            return Ok(None);
        }
        self.0.get(text).cloned().map(Some).ok_or_else(|| anyhow::anyhow!("no embedding"))
    }

    fn dims(&self) -> usize {
        3
    }
}

const FRANCE: &str = "What's the capital of France?";
const FRANCE_AGAIN: &str = "capital city of france?";
const F_TO_C: &str = "Convert 100 F to C";
const C_TO_F: &str = "Convert 100 C to F";

fn table() -> Box<dyn TextEmbedder> {
    Box::new(Table(HashMap::from([
        (FRANCE, vec![1.0, 0.0, 0.0]),
        (FRANCE_AGAIN, vec![0.98, 0.1, 0.0]),
        (F_TO_C, vec![0.0, 1.0, 0.0]),
        (C_TO_F, vec![0.0, 1.0, 0.01]),
        ("zero", vec![0.0, 0.0, 0.0]),
    ])))
}

fn config(dir: &std::path::Path, kind: CacheType, max_entries: u64) -> CacheConfig {
    let mut config = CacheConfig { base_dir: dir.join("cache"), kind, ..CacheConfig::default() };
    config.semantic.enabled = true;
    config.semantic.model = "table".into();
    config.semantic.max_entries = max_entries;
    config
}

fn query(group: u8, text: &str) -> Query {
    Query { group: [group; 32], text: text.into() }
}

/// Stores an answer under `key` and its vector, as the server does after generating.
fn store(manager: &Manager, cache: &SemanticCache, key: &str, group: u8, text: &str) {
    let record = response_store::record_bytes(
        "tiny",
        "fp",
        &json!({"messages": [{"role": "user", "content": text}]}),
        format!(r#"{{"id":"x","object":"chat.completion","created":1,"model":"tiny","answer":"{key}"}}"#)
            .as_bytes(),
    );
    response_store::put(manager, key, "tiny", &record, None).unwrap();
    let embedded = cache.embed(&query(group, text)).unwrap();
    cache.remember(manager, key, "tiny", &embedded, None);
}

fn find(manager: &Manager, cache: &SemanticCache, group: u8, text: &str) -> Option<SemanticHit> {
    let embedded = cache.embed(&query(group, text))?;
    cache.find(manager, &embedded, 0.95, Some("asked-name"))
}

#[test]
fn a_paraphrase_hits_within_its_group_and_is_marked() {
    let dir = tempfile::tempdir().unwrap();
    let manager = Manager::open(&config(dir.path(), CacheType::Persistent, 100), Access::ReadWrite).unwrap();
    let cache = SemanticCache::open(&manager, table());
    store(&manager, &cache, "k-france", 1, FRANCE);
    let hit = find(&manager, &cache, 1, FRANCE_AGAIN).expect("a paraphrase in the same group");
    assert_eq!(hit.key, "k-france");
    assert!(hit.similarity > 0.99 && hit.similarity < 1.0, "{}", hit.similarity);
    let body: serde_json::Value = serde_json::from_slice(&hit.body).unwrap();
    assert_eq!(body["answer"], "k-france");
    assert_eq!(body["model"], "asked-name");
    assert_eq!(body["cache"]["status"], "HIT-SEMANTIC");
    assert_eq!(body["cache"]["key"], "k-france");
    assert!(body["cache"]["similarity"].as_f64().unwrap() > 0.99);
    assert_eq!(find(&manager, &cache, 2, FRANCE_AGAIN), None, "another group is another scope");
    let counts = manager.counters().semantic.snapshot();
    assert_eq!((counts.lookups, counts.hits, counts.stored), (2, 1, 1));
}

#[test]
fn a_guard_refuses_swapped_units_whatever_the_similarity() {
    let dir = tempfile::tempdir().unwrap();
    let manager = Manager::open(&config(dir.path(), CacheType::Memory, 100), Access::ReadWrite).unwrap();
    let cache = SemanticCache::open(&manager, table());
    store(&manager, &cache, "k-f-to-c", 1, F_TO_C);
    assert_eq!(find(&manager, &cache, 1, C_TO_F), None);
    assert_eq!(manager.counters().semantic.snapshot().guard_refusals, 1);
}

#[test]
fn vectors_whose_answer_or_entry_is_gone_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let manager = Manager::open(&config(dir.path(), CacheType::Persistent, 100), Access::ReadWrite).unwrap();
    let cache = SemanticCache::open(&manager, table());
    store(&manager, &cache, "k1", 1, FRANCE);
    manager.remove(Kind::Response, "k1").unwrap();
    assert_eq!(find(&manager, &cache, 1, FRANCE_AGAIN), None, "the answer was removed");
    assert!(!cache.contains("k1") && !manager.contains(Kind::Semantic, "k1"));

    store(&manager, &cache, "k2", 1, FRANCE);
    manager.remove(Kind::Semantic, "k2").unwrap();
    assert_eq!(find(&manager, &cache, 1, FRANCE_AGAIN), None, "the vector was cleared");
    assert!(!cache.contains("k2"));
    assert_eq!(manager.counters().semantic.snapshot().stale_dropped, 2);

    store(&manager, &cache, "k3", 1, FRANCE);
    assert!(cache.forget(&manager, "k3").unwrap());
    assert!(!manager.contains(Kind::Response, "k3"));
    assert_eq!(find(&manager, &cache, 1, FRANCE_AGAIN), None, "a reported false hit answers nobody");
    assert_eq!(manager.counters().semantic.snapshot().false_hit_reports, 1);
}

#[test]
fn the_index_is_loaded_at_open_within_max_entries() {
    let dir = tempfile::tempdir().unwrap();
    {
        let manager =
            Manager::open(&config(dir.path(), CacheType::Persistent, 100), Access::ReadWrite).unwrap();
        let cache = SemanticCache::open(&manager, table());
        store(&manager, &cache, "old", 1, F_TO_C);
        std::thread::sleep(Duration::from_millis(5));
        store(&manager, &cache, "new", 1, FRANCE);
        manager.put(Kind::Semantic, "junk", "tiny", b"not a vector", None).unwrap();
        manager.flush().unwrap();
    }
    let manager = Manager::open(&config(dir.path(), CacheType::Persistent, 1), Access::ReadWrite).unwrap();
    let cache = SemanticCache::open(&manager, table());
    assert_eq!(cache.len(), 1, "max_entries = 1 keeps the newest");
    assert_eq!(find(&manager, &cache, 1, FRANCE_AGAIN).map(|hit| hit.key).as_deref(), Some("new"));
    assert!(!manager.contains(Kind::Semantic, "old") && !manager.contains(Kind::Semantic, "junk"));
}

#[test]
fn embedding_failures_and_long_texts_are_counted_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let manager = Manager::open(&config(dir.path(), CacheType::Memory, 100), Access::ReadWrite).unwrap();
    let cache = SemanticCache::open(&manager, table());
    assert_eq!(cache.embed(&query(1, "unknown")), None);
    assert_eq!(cache.embed(&query(1, "zero")), None, "a zero vector is no embedding");
    assert_eq!(cache.embed(&query(1, "LONG")), None);
    let counts = manager.counters().semantic.snapshot();
    assert_eq!((counts.embedding_failures, counts.too_long, counts.embeddings), (2, 1, 3));
}

#[test]
fn marking_adds_a_cache_member_to_objects_only() {
    let marked = mark_semantic(br#"{"a":1}  "#.to_vec(), "k", 0.987_71);
    let value: serde_json::Value = serde_json::from_slice(&marked).unwrap();
    assert_eq!(value, json!({"a": 1, "cache": {"status": "HIT-SEMANTIC", "key": "k", "similarity": 0.9877}}));
    assert_eq!(mark_semantic(b"[1]".to_vec(), "k", 1.0), b"[1]");
    assert_eq!(mark_semantic(b"{ }".to_vec(), "k", 1.0), b"{ }");
}
