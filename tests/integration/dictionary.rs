//! zstd dictionaries end to end with the real binary: `cache train-dictionary` on a cache filled by
//! `cache import`, `cache stats` showing the ratio with and without the dictionary, `cache compact`
//! re-encoding the older records, every answer exported unchanged, and bad settings refused with exit 2.

use serde_json::Value;

use crate::fixture::{export, import, ok, ok_json, response_line, run, sorted};
use crate::util::{Sandbox, stderr};

const WORDS: &[&str] =
    &["the", "cache", "returns", "a", "response", "model", "disk", "key", "**note**", "tier"];

/// `n` import lines from `first`, each answer about 1 KiB of words.
fn lines(first: usize, n: usize) -> Vec<Value> {
    (first..first + n)
        .map(|i| {
            let answer: Vec<&str> = (0..180).map(|j| WORDS[(i * 7 + j * j + j / 3) % WORDS.len()]).collect();
            response_line("llama-7b", &format!("question {i:04}"), &answer.join(" "), &format!("resp-{i:04}"))
        })
        .collect()
}

#[test]
fn train_dictionary_then_compact_reencodes_and_stats_show_both_ratios() {
    let sb = Sandbox::new();
    let first = lines(0, 200);
    import(&sb, "first.jsonl", &first);
    let trained = ok_json(&sb, &["cache", "train-dictionary"]);
    assert_eq!(trained["adopted"], true, "{trained:#}");
    assert!(trained["entries_sampled"].as_u64().unwrap() >= 200, "{trained:#}");
    let with = trained["held_out_with_dictionary"].as_u64().unwrap();
    assert!(with < trained["held_out_without_dictionary"].as_u64().unwrap(), "{trained:#}");

    let second = lines(200, 30);
    import(&sb, "second.jsonl", &second);
    let stats = ok_json(&sb, &["cache", "stats"]);
    let dictionary = &stats["dictionary"];
    assert_eq!(
        (&dictionary["dictionaries"], &dictionary["current_id"]),
        (&1.into(), &trained["id"]),
        "{stats:#}"
    );
    assert!(dictionary["measured_values"].as_u64().unwrap() >= 30, "{dictionary:#}");
    let ratio = |key: &str| dictionary[key].as_f64().unwrap();
    assert!(ratio("ratio_with_dictionary") > ratio("ratio_without_dictionary"), "{dictionary:#}");
    let text = ok(&sb, &["cache", "stats"]);
    assert!(text.contains("Dictionary: 1 stored") && text.contains("with it"), "{text}");
    let before = stats["disk"]["compression_ratio"].as_f64().unwrap();

    let compact = ok_json(&sb, &["cache", "compact"]);
    assert!(
        compact["reencoded"].as_u64().unwrap() >= 200,
        "the first answers move to the dictionary: {compact:#}"
    );
    let after = ok_json(&sb, &["cache", "stats"])["disk"]["compression_ratio"].as_f64().unwrap();
    assert!(after > before, "compaction re-encodes under the dictionary: {before} -> {after}");
    assert_eq!(export(&sb), sorted(first.into_iter().chain(second)), "every answer unchanged");
    let entries = ok_json(&sb, &["cache", "stats"])["kinds"][0]["entries"].as_u64().unwrap();
    assert_eq!(entries, 230, "the dictionary is not a cache entry");
}

#[test]
fn training_with_too_few_responses_or_without_zstd_fails_clearly() {
    let sb = Sandbox::new();
    import(&sb, "few.jsonl", &lines(0, 3));
    let out = run(&sb, &["cache", "train-dictionary"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot train a zstd dictionary"), "{}", stderr(&out));
    let gzip = sb
        .std_command()
        .args(["cache", "train-dictionary"])
        .env("INFERNO_CACHE_COMPRESS", "gzip")
        .output()
        .unwrap();
    assert_eq!(gzip.status.code(), Some(1));
    assert!(stderr(&gzip).contains("dictionaries need zstd"), "{}", stderr(&gzip));
}

#[test]
fn dictionary_samples_out_of_range_is_a_configuration_error() {
    let sb = Sandbox::new();
    let out = sb
        .std_command()
        .args(["cache", "status"])
        .env("INFERNO_CACHE__COMPRESSION__DICTIONARY_SAMPLES", "3")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cache.compression.dictionary_samples"), "{}", stderr(&out));
    let status = ok(&sb, &["cache", "status"]);
    assert!(status.contains("cache.compression.dictionary_samples") && status.contains("1000"), "{status}");
}

#[test]
fn train_dictionary_goes_through_a_running_server() {
    let (sb, models) = crate::server::with_tiny_model();
    import(&sb, "first.jsonl", &lines(0, 200));
    let server = crate::server::Server::start(&sb, &models, &[], &[]);
    let trained = ok_json(&sb, &["cache", "train-dictionary"]);
    assert_eq!(trained["adopted"], true, "{trained:#}");
    let stats = ok_json(&sb, &["cache", "stats"]);
    assert_eq!(stats["server"]["pid"], server.pid(), "the server answered: {stats:#}");
    assert_eq!(stats["dictionary"]["current_id"], trained["id"], "{stats:#}");
    let compact = ok_json(&sb, &["cache", "compact"]);
    assert!(compact["reencoded"].as_u64().unwrap() >= 200, "{compact:#}");
}
