//! Dictionary tests: training and round trips, old records readable after a retrain, compaction moving
//! records to the current dictionary and deleting the unused one, a missing or damaged dictionary read as a
//! counted miss and named by `verify`, sealing, backup and restore, the automatic rule, and a property test
//! against a HashMap oracle.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;
use crate::cache::codec::{CodecId, Dictionaries, Dictionary, dictionary};
use crate::cache::disk::EntryWrite;
use crate::cache::ops::backup;
use crate::cache::response_store;
use crate::cache::seal;
use crate::config::Config;

fn config(dir: &std::path::Path) -> CacheConfig {
    let mut config = Config::default().cache;
    config.base_dir = dir.to_path_buf();
    config.kind = CacheType::Disk;
    config
}

/// A small deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn words(&mut self, vocabulary: &[&str], count: usize) -> String {
        let words: Vec<&str> =
            (0..count).map(|_| vocabulary[(self.next() % vocabulary.len() as u64) as usize]).collect();
        words.join(" ")
    }
}

const CACHE_WORDS: &[&str] = &[
    "the", "cache", "returns", "a", "response", "model", "disk", "key", "value", "entry", "**note**", "tier",
];
const COOKING_WORDS: &[&str] = &[
    "simmer", "garlic", "onion", "butter", "oven", "minutes", "salt", "pepper", "stir", "bake", "flour",
    "egg",
];

/// A stored response record of about 1.5 KiB in the style of `vocabulary`.
fn response(rng: &mut Rng, vocabulary: &[&str], i: usize) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "model": "tiny",
        "request": {"messages": [{"role": "user", "content": rng.words(vocabulary, 8)}], "temperature": 0},
        "response": {"id": format!("chatcmpl-{:016x}", rng.next()), "created": 1_700_000_000 + i,
                     "model": "tiny", "object": "chat.completion",
                     "choices": [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": rng.words(vocabulary, 200)}}],
                     "usage": {"prompt_tokens": 12, "completion_tokens": 200, "total_tokens": 212}}
    }))
    .unwrap()
}

/// Puts `n` responses under `prefix0..` and returns them.
fn fill(
    cache: &Manager,
    rng: &mut Rng,
    vocabulary: &[&str],
    prefix: &str,
    n: usize,
) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let key = format!("{prefix}{i}");
            let value = response(rng, vocabulary, i);
            response_store::put(cache, &key, "tiny", &value, None).unwrap();
            (key, value)
        })
        .collect()
}

/// The ids of the dictionaries the head and chunks of `key` were compressed with (`None`: no dictionary).
fn dictionaries_of(cache: &Manager, key: &str) -> Vec<Option<u32>> {
    let stored = cache.disk.as_ref().unwrap().get(Kind::Response.code(), key.as_bytes()).unwrap().unwrap();
    let id = |codec: u8, bytes: &[u8]| {
        (seal::inner_codec(codec) == CodecId::ZstdDict as u8)
            .then(|| dictionary::frame_dictionary_id(bytes).unwrap())
    };
    std::iter::once(id(stored.codec, &stored.value))
        .chain(stored.chunks.iter().map(|c| id(c.codec, &c.bytes)))
        .collect()
}

fn misses(cache: &Manager) -> u64 {
    cache.counters().snapshot().kinds.iter().find(|k| k.kind == Kind::Response).unwrap().misses
}

#[test]
fn a_trained_dictionary_compresses_new_responses_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let mut rng = Rng(1);
    let (id, later) = {
        let cache = Manager::open(&config, Access::ReadWrite).unwrap();
        let before = fill(&cache, &mut rng, CACHE_WORDS, "a", 200);
        assert!(dictionaries_of(&cache, "a0").iter().all(Option::is_none), "no dictionary yet");
        let report = cache.train_dictionary().unwrap();
        assert!(report.adopted && report.previous_id.is_none());
        assert!(report.held_out_with_dictionary < report.held_out_without_dictionary, "{report:?}");
        let later = fill(&cache, &mut rng, CACHE_WORDS, "b", 20);
        for (key, _) in &later {
            assert!(dictionaries_of(&cache, key).iter().all(|d| *d == Some(report.id)), "{key}");
        }
        for (key, value) in before.iter().chain(&later) {
            assert_eq!(cache.get(Kind::Response, key).unwrap().as_deref(), Some(&value[..]), "{key}");
        }
        assert!(cache.entries(None).iter().all(|e| e.kind == Kind::Response), "the dictionary is no entry");
        (report.id, later)
    };
    let cache = Manager::open(&config, Access::ReadOnly).unwrap();
    for (key, value) in &later {
        assert_eq!(
            cache.get(Kind::Response, key).unwrap().as_deref(),
            Some(&value[..]),
            "{key} after reopen"
        );
    }
    let report = cache.dictionary_report().unwrap();
    assert_eq!((report.dictionaries, report.current_id), (1, Some(id)));
    assert!(report.measured_values >= 20);
    assert!(report.ratio_with_dictionary.unwrap() > report.ratio_without_dictionary.unwrap(), "{report:?}");
}

#[test]
fn small_values_are_compressed_with_a_dictionary_whatever_the_threshold() {
    let mut rng = Rng(2);
    let samples: Vec<Vec<u8>> = (0..300).map(|i| response(&mut rng, CACHE_WORDS, i)).collect();
    let bytes = dictionary::train(&samples, 8 << 10).unwrap();
    let dictionary = Dictionary::load(&bytes, 3).unwrap();
    let codec = Codec::from_cache_config(&Config::default().cache);
    let small = &samples[0][..300];
    let mut scratch = Vec::new();
    assert_eq!(codec.encode_with(small, &mut scratch, None).0, CodecId::None, "below the 1 KiB threshold");
    let (id, stored) = codec.encode_with(small, &mut scratch, Some(&dictionary));
    assert_eq!(id, CodecId::ZstdDict);
    let stored = stored.to_vec();
    let mut out = Vec::new();
    let none = Codec::decode(id, &stored, small.len(), &mut out).unwrap_err();
    assert!(
        matches!(none, crate::cache::codec::CodecError::MissingDictionary(got) if got == dictionary.id())
    );
    let set = Dictionaries::new([std::sync::Arc::new(dictionary)], None);
    assert_eq!(Codec::decode_with(id, &stored, small.len(), &mut out, &set).unwrap(), small);
}

#[test]
fn a_dictionary_whose_bytes_changed_is_refused() {
    let mut rng = Rng(3);
    let samples: Vec<Vec<u8>> = (0..300).map(|i| response(&mut rng, CACHE_WORDS, i)).collect();
    let mut bytes = dictionary::train(&samples, 8 << 10).unwrap();
    assert!(Dictionary::load(&bytes, 3).is_ok());
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let err = Dictionary::load(&bytes, 3).unwrap_err().to_string();
    assert!(err.contains("the bytes were changed"), "{err}");
}

#[test]
fn old_records_stay_readable_after_a_retrain_and_compaction_moves_them_to_the_current_dictionary() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let mut rng = Rng(4);
    let cache = Manager::open(&config, Access::ReadWrite).unwrap();
    let cache_answers = fill(&cache, &mut rng, CACHE_WORDS, "a", 200);
    let first = cache.train_dictionary().unwrap().id;
    let under_first = fill(&cache, &mut rng, CACHE_WORDS, "b", 20);
    let cooking = fill(&cache, &mut rng, COOKING_WORDS, "c", 300);
    let second = cache.train_dictionary().unwrap();
    assert!(second.adopted, "the content drifted: {second:?}");
    assert_ne!(second.id, first);
    let under_second = fill(&cache, &mut rng, COOKING_WORDS, "d", 20);
    assert!(dictionaries_of(&cache, "b0").contains(&Some(first)));
    assert!(dictionaries_of(&cache, "d0").iter().all(|d| *d == Some(second.id)));
    let all: Vec<_> = [&cache_answers, &under_first, &cooking, &under_second].into_iter().flatten().collect();
    for (key, value) in &all {
        assert_eq!(cache.get(Kind::Response, key).unwrap().as_deref(), Some(&value[..]), "{key}");
    }
    assert_eq!(cache.dictionary_report().unwrap().dictionaries, 2);
    let pass = cache.compact().unwrap();
    assert!(pass.reencoded > 0);
    for (key, value) in &all {
        assert!(dictionaries_of(&cache, key).iter().all(|d| *d == Some(second.id)), "{key} re-encoded");
        assert_eq!(cache.get(Kind::Response, key).unwrap().as_deref(), Some(&value[..]), "{key}");
    }
    let report = cache.dictionary_report().unwrap();
    assert_eq!((report.dictionaries, report.current_id), (1, Some(second.id)), "the unused one is deleted");
    drop(cache);
    let cache = Manager::open(&config, Access::ReadOnly).unwrap();
    for (key, value) in &all {
        assert_eq!(cache.get(Kind::Response, key).unwrap().as_deref(), Some(&value[..]), "{key} reopened");
    }
}

#[test]
fn values_whose_dictionary_is_gone_are_counted_misses_and_named_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let mut rng = Rng(5);
    let id = {
        let cache = Manager::open(&config, Access::ReadWrite).unwrap();
        fill(&cache, &mut rng, CACHE_WORDS, "a", 200);
        let id = cache.train_dictionary().unwrap().id;
        fill(&cache, &mut rng, CACHE_WORDS, "b", 5);
        // The dictionary is lost (as a record deleted by a bug or a hand would be).
        let key = format!("zstd-dictionary-{id}");
        assert!(cache.disk.as_ref().unwrap().remove(DICTIONARY_KIND, key.as_bytes()).unwrap());
        id
    };
    let cache = Manager::open(&config, Access::ReadWrite).unwrap();
    assert!(cache.dictionary_report().is_none());
    let before = misses(&cache);
    let err = cache.get(Kind::Response, "b0").unwrap_err().to_string();
    assert!(err.contains(&format!("needs zstd dictionary {id}")), "{err}");
    assert_eq!(misses(&cache), before + 1, "counted as a miss");
    assert!(cache.get(Kind::Response, "a0").unwrap().is_some(), "values stored before it are intact");
    let report = cache.verify(false).unwrap();
    let named: Vec<&str> = report.damaged.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(named.len(), 5, "{named:?}");
    assert!(named.contains(&"b0") && report.damaged.iter().all(|d| d.reason.contains("dictionary")));
    let fixed = cache.verify(true).unwrap();
    assert!(fixed.fixed);
    assert_eq!(cache.get(Kind::Response, "b0").unwrap(), None, "quarantined");
    assert!(cache.verify(false).unwrap().is_clean());
}

#[test]
fn a_damaged_dictionary_is_not_loaded_and_its_values_are_misses() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let mut rng = Rng(6);
    {
        let cache = Manager::open(&config, Access::ReadWrite).unwrap();
        fill(&cache, &mut rng, CACHE_WORDS, "a", 200);
        let id = cache.train_dictionary().unwrap().id;
        fill(&cache, &mut rng, CACHE_WORDS, "b", 5);
        // Rewritten with changed bytes under its own key, checksum intact: only the content id catches it.
        let disk = cache.disk.as_ref().unwrap();
        let key = format!("zstd-dictionary-{id}");
        let mut bytes = cache.dictionaries.snapshot().current().unwrap().bytes().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x55;
        disk.put_entry(&EntryWrite {
            kind: DICTIONARY_KIND,
            key: key.as_bytes(),
            name: "zstd dictionary",
            codec: 0,
            value: &bytes,
            raw_len: bytes.len() as u32,
            refs: &[],
            payload_len: 0,
            created_ms: 1,
            expires: Expiry::NEVER,
        })
        .unwrap();
    }
    let cache = Manager::open(&config, Access::ReadWrite).unwrap();
    assert!(cache.dictionary_report().is_none(), "not loaded");
    assert!(cache.get(Kind::Response, "b1").is_err());
    let report = cache.verify(false).unwrap();
    let kinds: Vec<u8> = report.damaged.iter().map(|d| d.kind).collect();
    assert!(kinds.contains(&DICTIONARY_KIND) && kinds.contains(&Kind::Response.code()), "{report:?}");
}

#[test]
fn a_sealed_cache_seals_its_dictionaries_and_a_rekey_keeps_them_readable() {
    use crate::config::Encryption;
    let dir = tempfile::tempdir().unwrap();
    let key_file = |name: &str, byte: u8| {
        let path = dir.path().join(name);
        std::fs::write(&path, [byte; 32]).unwrap();
        path
    };
    let mut sealed = config(&dir.path().join("cache"));
    sealed.security.encryption = Encryption::Aes256Gcm;
    sealed.security.key_file = key_file("a", 1);
    let mut rng = Rng(7);
    let later = {
        let cache = Manager::open(&sealed, Access::ReadWrite).unwrap();
        fill(&cache, &mut rng, CACHE_WORDS, "a", 200);
        let id = cache.train_dictionary().unwrap().id;
        let stored =
            cache.disk.as_ref().unwrap().get(DICTIONARY_KIND, format!("zstd-dictionary-{id}").as_bytes());
        let stored = stored.unwrap().unwrap();
        assert!(seal::is_sealed(stored.codec), "the dictionary is sealed");
        assert!(
            stored
                .value
                .windows(8)
                .all(|w| w != &cache.dictionaries.snapshot().current().unwrap().bytes()[8..16])
        );
        let later = fill(&cache, &mut rng, CACHE_WORDS, "b", 5);
        cache.rekey(&key_file("b", 2), &|_, _| {}).unwrap();
        later
    };
    sealed.security.key_file = dir.path().join("b");
    let cache = Manager::open(&sealed, Access::ReadOnly).unwrap();
    assert_eq!(cache.dictionary_report().unwrap().dictionaries, 1, "loaded under the new key");
    for (key, value) in &later {
        assert_eq!(cache.get(Kind::Response, key).unwrap().as_deref(), Some(&value[..]), "{key}");
    }
}

#[test]
fn a_backup_and_restore_keep_the_dictionaries() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(&dir.path().join("cache"));
    let mut rng = Rng(8);
    let later = {
        let cache = Manager::open(&config, Access::ReadWrite).unwrap();
        fill(&cache, &mut rng, CACHE_WORDS, "a", 200);
        cache.train_dictionary().unwrap();
        let later = fill(&cache, &mut rng, CACHE_WORDS, "b", 5);
        cache.flush().unwrap();
        later
    };
    backup::write(&config, &dir.path().join("backup"), true).unwrap();
    let mut elsewhere = config.clone();
    elsewhere.base_dir = dir.path().join("restored");
    backup::restore(&elsewhere, &dir.path().join("backup")).unwrap();
    let cache = Manager::open(&elsewhere, Access::ReadOnly).unwrap();
    assert_eq!(cache.dictionary_report().unwrap().dictionaries, 1);
    for (key, value) in &later {
        assert_eq!(cache.get(Kind::Response, key).unwrap().as_deref(), Some(&value[..]), "{key}");
    }
}

#[test]
fn housekeeping_trains_once_enough_responses_are_stored_and_leaves_dictionaries_to_clear_and_eviction() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.compression.dictionary_samples = 100;
    let mut rng = Rng(9);
    let cache = Manager::open(&config, Access::ReadWrite).unwrap();
    fill(&cache, &mut rng, CACHE_WORDS, "a", 50);
    cache.housekeeping().unwrap();
    assert!(cache.dictionary_report().is_none(), "50 of 100 responses: not yet");
    fill(&cache, &mut rng, CACHE_WORDS, "b", 60);
    cache.housekeeping().unwrap();
    assert_eq!(cache.dictionary_report().unwrap().dictionaries, 1, "110 responses: trained");
    cache.remove_matching(&Filter::default()).unwrap();
    cache.remove_older_than(std::time::Duration::ZERO, None).unwrap();
    assert!(cache.entries(None).is_empty());
    assert_eq!(cache.dictionary_report().unwrap().dictionaries, 1, "clear and cleanup leave it");
    let kept = fill(&cache, &mut rng, CACHE_WORDS, "k", 3);
    assert!(dictionaries_of(&cache, "k0").iter().all(Option::is_some), "still used after the clear");
    let mut off = config.clone();
    off.compression.dictionary = false;
    drop(cache);
    let cache = Manager::open(&off, Access::ReadWrite).unwrap();
    fill(&cache, &mut rng, CACHE_WORDS, "c", 120);
    cache.housekeeping().unwrap();
    assert!(dictionaries_of(&cache, "c0").iter().all(Option::is_none), "dictionary = false: not used");
    assert_eq!(cache.dictionary_report().unwrap().dictionaries, 1, "but kept");
    for (key, value) in &kept {
        assert_eq!(cache.get(Kind::Response, key).unwrap().as_deref(), Some(&value[..]), "readable: {key}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    /// Puts, removes, trainings and compactions in any order: every get answers what a HashMap says.
    #[test]
    fn gets_match_a_hashmap_oracle_across_trainings_and_compactions(
        ops in proptest::collection::vec((0u8..10, 0usize..40, any::<u64>()), 1..120)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let cache = Manager::open(&config(dir.path()), Access::ReadWrite).unwrap();
        let mut rng = Rng(10);
        fill(&cache, &mut rng, CACHE_WORDS, "seed", 60);
        let mut oracle: HashMap<String, Vec<u8>> = HashMap::new();
        for (op, key, seed) in ops {
            let key = format!("k{key}");
            match op {
                0..=5 => {
                    let vocabulary = if seed % 2 == 0 { CACHE_WORDS } else { COOKING_WORDS };
                    let value = response(&mut Rng(seed), vocabulary, seed as usize % 1000);
                    response_store::put(&cache, &key, "tiny", &value, None).unwrap();
                    oracle.insert(key, value);
                }
                6 | 7 => {
                    cache.remove(Kind::Response, &key).unwrap();
                    oracle.remove(&key);
                }
                8 => {
                    let _ = cache.train_dictionary();
                }
                _ => {
                    cache.compact().unwrap();
                }
            }
        }
        for i in 0..40 {
            let key = format!("k{i}");
            let got = cache.get(Kind::Response, &key).unwrap();
            prop_assert_eq!(got.as_deref(), oracle.get(&key).map(Vec::as_slice), "{}", key);
        }
    }
}
