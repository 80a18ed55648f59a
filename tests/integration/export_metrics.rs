//! `cache export --format prometheus|json` and `cache metrics`: the figures, parsed back, agree with what
//! was imported and with `cache stats --json`.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::fixture::{DISTINCT_ANSWERS, SEED_COUNT, ok, seed, si, stats};
use crate::util::Sandbox;

/// A sample's identity: metric name and its labels.
pub type Series = (String, BTreeMap<String, String>);

/// Parses the Prometheus text exposition: `name{label="value",...} number` lines; `#` lines are skipped.
pub fn parse_prometheus(text: &str) -> BTreeMap<Series, f64> {
    let mut samples = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value in {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|e| panic!("bad value in {line:?}: {e}"));
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
                let labels = inner
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(|pair| {
                        let (k, v) = pair.split_once('=').unwrap_or_else(|| panic!("bad label in {line:?}"));
                        let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).expect("quoted label");
                        (k.to_string(), v.to_string())
                    })
                    .collect();
                (name.to_string(), labels)
            }
        };
        assert!(samples.insert((name, labels), value).is_none(), "duplicate series {line:?}");
    }
    samples
}

/// The value of `name{labels}`; panics when absent.
pub fn sample(samples: &BTreeMap<Series, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let labels: BTreeMap<String, String> =
        labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    *samples
        .get(&(name.to_string(), labels.clone()))
        .unwrap_or_else(|| panic!("no {name}{labels:?} in {:#?}", samples.keys().collect::<Vec<_>>()))
}

/// The sum of every `name` series.
pub fn total(samples: &BTreeMap<Series, f64>, name: &str) -> f64 {
    samples.iter().filter(|((n, _), _)| n == name).map(|(_, v)| v).sum()
}

#[test]
fn prometheus_export_parses_back_to_what_was_imported() {
    let sb = Sandbox::new();
    seed(&sb);
    let stats = stats(&sb);

    // `inferno cache export --format prometheus > cache_metrics.txt`, as the guide writes it.
    let file = sb.path("work/cache_metrics.txt");
    let out = sb
        .std_command()
        .args(["cache", "export", "--format", "prometheus"])
        .stdout(std::fs::File::create(&file).unwrap())
        .status()
        .unwrap();
    assert!(out.success());
    let text = sb.read(&file);
    for name in ["inferno_cache_hits_total", "inferno_cache_size_bytes", "inferno_cache_deduplication_ratio"]
    {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name} has no TYPE line:\n{text}");
        assert!(text.contains(&format!("# HELP {name} ")), "{name} has no HELP line:\n{text}");
    }
    let m = parse_prometheus(&text);

    assert_eq!(sample(&m, "inferno_cache_entries", &[("type", "response")]), SEED_COUNT as f64);
    assert_eq!(sample(&m, "inferno_cache_entries", &[("type", "model")]), 0.0);
    assert_eq!(sample(&m, "inferno_cache_entries", &[("type", "metadata")]), 0.0);
    assert_eq!(sample(&m, "inferno_cache_puts_total", &[("type", "response")]), SEED_COUNT as f64);
    // Import only stores (it checks for duplicates without a lookup), and read-only commands such as export
    // do not persist their counters: no hits and no misses yet.
    assert_eq!(sample(&m, "inferno_cache_hits_total", &[("type", "response"), ("tier", "disk")]), 0.0);
    assert_eq!(total(&m, "inferno_cache_hits_total"), 0.0);
    assert_eq!(sample(&m, "inferno_cache_misses_total", &[("type", "response")]), 0.0);
    assert_eq!(total(&m, "inferno_cache_misses_total"), 0.0);
    let disk_size = sample(&m, "inferno_cache_size_bytes", &[("tier", "disk")]);
    assert!(disk_size > 0.0);
    assert_eq!(disk_size, stats["disk"]["record_bytes"].as_f64().unwrap());
    assert_eq!(sample(&m, "inferno_cache_max_size_bytes", &[]), 10e9);
    // 40 answers, DISTINCT_ANSWERS of them different: that share of values were duplicates.
    let ratio = 1.0 - DISTINCT_ANSWERS as f64 / SEED_COUNT as f64;
    assert_eq!(sample(&m, "inferno_cache_deduplication_ratio", &[]), ratio);
    assert_eq!(
        sample(&m, "inferno_cache_deduplication_saved_bytes", &[]),
        stats["dedup"]["bytes_saved"].as_f64().unwrap()
    );
    assert_eq!(
        sample(&m, "inferno_cache_compression_ratio", &[]),
        stats["disk"]["compression_ratio"].as_f64().unwrap()
    );

    // `--output FILE` writes the same text; after clearing one model, entries drop and puts stay.
    ok(&sb, &["cache", "export", "--format", "prometheus", "--output", "again.txt"]);
    assert_eq!(sb.read("work/again.txt"), text);
    ok(&sb, &["cache", "clear", "--pattern", "llama*"]);
    let m = parse_prometheus(&ok(&sb, &["cache", "export", "--format", "prometheus"]));
    assert_eq!(sample(&m, "inferno_cache_entries", &[("type", "response")]), SEED_COUNT as f64 / 2.0);
    assert_eq!(sample(&m, "inferno_cache_puts_total", &[("type", "response")]), SEED_COUNT as f64);
}

#[test]
fn json_export_agrees_with_stats_json() {
    let sb = Sandbox::new();
    seed(&sb);
    let exported: Value = serde_json::from_str(&ok(&sb, &["cache", "export", "--format", "json"])).unwrap();
    assert_eq!(exported, stats(&sb));
    assert_eq!(exported["kinds"][0]["entries"], SEED_COUNT);
    assert_eq!(exported["dedup"]["total_values"], SEED_COUNT);
    assert_eq!(exported["dedup"]["unique_values"], DISTINCT_ANSWERS);
    ok(&sb, &["cache", "export", "--format", "json", "-o", "metrics.json"]);
    let from_file: Value = serde_json::from_str(&sb.read("work/metrics.json")).unwrap();
    assert_eq!(from_file, exported);
}

#[test]
fn metrics_prints_the_guide_key_lines() {
    let sb = Sandbox::new();
    seed(&sb);
    let s = stats(&sb);
    let text = ok(&sb, &["cache", "metrics"]);
    let saved = s["dedup"]["bytes_saved"].as_f64().unwrap() / s["dedup"]["logical_bytes"].as_f64().unwrap();
    let expected = format!(
        "Hit ratio: n/a\nMiss ratio: n/a\nAverage lookup time: n/a\nCache size: {} / 10.0 GB\n\
         Compression ratio: {:.2}x\nDeduplication savings: {:.1}%\n",
        si(s["disk"]["record_bytes"].as_u64().unwrap()),
        s["disk"]["compression_ratio"].as_f64().unwrap(),
        saved * 100.0
    );
    assert_eq!(text, expected);
    assert!(saved > 0.3, "half the answers are copies: {saved}");
}
