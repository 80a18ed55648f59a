//! `/metrics` of a live `inferno serve`: off (404 saying how to turn it on) until
//! `cache.metrics.prometheus_enabled` is set, every metric name the docs, dashboard and alerts rely on,
//! `promtool check metrics` clean, and counters that move with the requests that should move them.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use crate::export_metrics::{Series, parse_prometheus, sample, total};
use crate::server::{Server, with_tiny_model};
use crate::tools;
use crate::util::Sandbox;

/// The env var that turns `/metrics` on.
pub const METRICS_ON: (&str, &str) = ("INFERNO_CACHE__METRICS__PROMETHEUS_ENABLED", "true");

/// The names docs/serve-ops.md promises, with their Prometheus type.
pub const PROMISED: &[(&str, &str)] = &[
    ("inferno_cache_hits_total", "counter"),
    ("inferno_cache_misses_total", "counter"),
    ("inferno_cache_evictions_total", "counter"),
    ("inferno_cache_lookups_total", "counter"),
    ("inferno_cache_lookup_seconds_total", "counter"),
    ("inferno_cache_size_bytes", "gauge"),
    ("inferno_cache_max_size_bytes", "gauge"),
    ("inferno_cache_entries", "gauge"),
    ("inferno_cache_compression_ratio", "gauge"),
    ("inferno_cache_deduplication_ratio", "gauge"),
    ("inferno_http_requests_total", "counter"),
    ("inferno_http_request_duration_seconds", "histogram"),
    ("inferno_inference_duration_seconds", "histogram"),
    ("inferno_response_cache_requests_total", "counter"),
    ("inferno_models_loaded", "gauge"),
    ("inferno_models_resident_bytes", "gauge"),
    ("inferno_models_memory_limit_bytes", "gauge"),
    ("inferno_model_cache_events_total", "counter"),
    ("inferno_cache_kv_tokens_reused_total", "counter"),
    ("inferno_prefill_seconds_saved_total", "counter"),
    ("inferno_cache_kv_bytes", "gauge"),
    ("inferno_cache_kv_dropped_writes_total", "counter"),
    ("inferno_cache_kv_evictions_total", "counter"),
];

fn completion(prompt: &str) -> serde_json::Value {
    json!({"model": "tiny", "prompt": prompt, "temperature": 0, "max_tokens": 8})
}

/// A persistent-cache server with metrics on, after a spread of requests (misses, hits, a chat, a stream, a
/// 404) so that every family has samples.
pub fn busy_server(sb: &Sandbox, models: &std::path::Path) -> Server {
    let server = Server::start(sb, models, &["--cache-persist"], &[METRICS_ON]);
    for _ in 0..2 {
        assert_eq!(server.post("/v1/completions", &completion("abc"), &[]).status, 200);
        let chat = json!({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": 0, "max_tokens": 4});
        assert_eq!(server.post("/v1/chat/completions", &chat, &[]).status, 200);
    }
    let mut stream = completion("xyz");
    stream["stream"] = json!(true);
    assert_eq!(server.post("/v1/completions", &stream, &[]).status, 200);
    assert_eq!(server.get("/v1/models", &[]).status, 200);
    assert_eq!(server.post("/v1/completions", &json!({"model": "nope", "prompt": "a"}), &[]).status, 404);
    server
}

/// Scrapes `/metrics`; it must answer 200 in the text format.
pub fn scrape(server: &Server) -> String {
    let reply = server.get("/metrics", &[]);
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.content_type.as_deref(), Some("text/plain; version=0.0.4; charset=utf-8"));
    reply.text
}

/// Every metric family in a scrape (`# TYPE` lines), with its type.
pub fn families(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|rest| {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name type");
            (name.to_string(), kind.to_string())
        })
        .collect()
}

/// Every name a query may use against a scrape: the families, and a histogram's `_bucket`, `_sum` and
/// `_count` series.
pub fn queryable_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (name, kind) in families(text) {
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        }
        names.insert(name);
    }
    names
}

#[test]
fn metrics_are_off_until_prometheus_enabled_is_configured() {
    let (sb, dir) = with_tiny_model();
    let server = Server::start(&sb, &dir, &[], &[]);
    let off = server.get("/metrics", &[]);
    assert_eq!(off.status, 404, "{}", off.text);
    let error = &off.json()["error"];
    assert_eq!(error["code"], "metrics_disabled");
    let message = error["message"].as_str().unwrap();
    for needle in [
        "cache.metrics.prometheus_enabled = true",
        "inferno cache configure --prometheus-enabled",
        "INFERNO_CACHE__METRICS__PROMETHEUS_ENABLED=true",
    ] {
        assert!(message.contains(needle), "{needle:?} not in {message:?}");
    }
    assert_eq!(server.get("/health", &[]).status, 200, "the other routes still answer");
    assert_eq!(server.stop(libc::SIGTERM), Some(0));

    // The guide's command turns it on for the next start.
    let out = sb.cmd().args(["cache", "configure", "--prometheus-enabled"]).output().unwrap();
    assert!(out.status.success(), "{}", crate::util::stderr(&out));
    assert!(sb.read(sb.project_file()).contains("prometheus_enabled = true"));
    let server = Server::start(&sb, &dir, &[], &[]);
    let text = scrape(&server);
    assert!(families(&text).contains_key("inferno_cache_hits_total"), "{text}");

    // And `--prometheus-enabled=false` off again.
    assert_eq!(server.stop(libc::SIGTERM), Some(0));
    let out = sb.cmd().args(["cache", "configure", "--prometheus-enabled=false"]).output().unwrap();
    assert!(out.status.success(), "{}", crate::util::stderr(&out));
    let server = Server::start(&sb, &dir, &[], &[]);
    assert_eq!(server.get("/metrics", &[]).status, 404);
}

#[test]
fn a_scrape_has_every_promised_metric_and_passes_promtool() {
    let (sb, dir) = with_tiny_model();
    let server = busy_server(&sb, &dir);
    let text = scrape(&server);
    let found = families(&text);
    for (name, kind) in PROMISED {
        assert_eq!(
            found.get(*name).map(String::as_str),
            Some(*kind),
            "{name} should be a {kind} in:\n{text}"
        );
        assert!(text.contains(&format!("# HELP {name} ")), "{name} has no HELP line");
    }
    let m = parse_prometheus(&text);
    assert!(sample(&m, "inferno_cache_compression_ratio", &[]) > 0.0);
    assert!((0.0..=1.0).contains(&sample(&m, "inferno_cache_deduplication_ratio", &[])), "a share of values");
    assert_eq!(sample(&m, "inferno_models_loaded", &[]), 1.0);
    // The KV states' hits and misses are those of kind kv, like every kind's (none here: every prompt is
    // shorter than cache.kv.min_prefix_tokens).
    for tier in ["memory", "disk"] {
        assert_eq!(sample(&m, "inferno_cache_hits_total", &[("type", "kv"), ("tier", tier)]), 0.0);
    }
    assert_eq!(sample(&m, "inferno_cache_entries", &[("type", "kv")]), 0.0);
    assert_eq!(sample(&m, "inferno_cache_kv_max_bytes", &[]), 5e9);
    assert_eq!(
        sample(&m, "inferno_http_requests_total", &[("route", "/v1/completions"), ("status", "404")]),
        1.0
    );

    let Some(promtool) = tools::promtool("promtool check metrics on /metrics") else { return };
    let out = tools::run(&promtool, &["check", "metrics"], Some(&text));
    let transcript = tools::transcript(&out);
    eprintln!("promtool check metrics:\n{transcript}");
    assert!(out.status.success(), "promtool check metrics found problems:\n{transcript}\n\n{text}");
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "promtool has lint remarks:\n{transcript}");
}

/// Samples of one series across scrapes.
fn delta(before: &BTreeMap<Series, f64>, after: &BTreeMap<Series, f64>, name: &str) -> f64 {
    total(after, name) - total(before, name)
}

fn series_sum(m: &BTreeMap<Series, f64>, name: &str, label: (&str, &str)) -> f64 {
    m.iter()
        .filter(|((n, labels), _)| n == name && labels.get(label.0).map(String::as_str) == Some(label.1))
        .map(|(_, v)| v)
        .sum()
}

#[test]
fn counters_move_with_requests() {
    let (sb, dir) = with_tiny_model();
    let server = Server::start(&sb, &dir, &["--cache-persist"], &[METRICS_ON]);
    let m0 = parse_prometheus(&scrape(&server));

    let first = server.post("/v1/completions", &completion("counted"), &[]);
    assert_eq!(first.cache.as_deref(), Some("MISS"));
    let m1 = parse_prometheus(&scrape(&server));
    let response_misses =
        |m: &BTreeMap<Series, f64>| series_sum(m, "inferno_cache_misses_total", ("type", "response"));
    let response_hits =
        |m: &BTreeMap<Series, f64>| series_sum(m, "inferno_cache_hits_total", ("type", "response"));
    assert_eq!(response_misses(&m1) - response_misses(&m0), 1.0, "one response-cache miss");
    assert_eq!(response_hits(&m1) - response_hits(&m0), 0.0);
    assert_eq!(sample(&m1, "inferno_response_cache_requests_total", &[("result", "MISS")]), 1.0);
    assert_eq!(sample(&m1, "inferno_inference_duration_seconds_count", &[("model", "tiny")]), 1.0);
    assert!(sample(&m1, "inferno_inference_duration_seconds_sum", &[("model", "tiny")]) > 0.0);
    assert_eq!(sample(&m1, "inferno_models_loaded", &[]), 1.0);
    assert_eq!(sample(&m1, "inferno_model_cache_events_total", &[("event", "load")]), 1.0);
    assert!(delta(&m0, &m1, "inferno_cache_lookups_total") >= 1.0, "the miss was a timed lookup");

    let second = server.post("/v1/completions", &completion("counted"), &[]);
    assert_eq!(second.cache.as_deref(), Some("HIT"));
    let m2 = parse_prometheus(&scrape(&server));
    assert_eq!(response_hits(&m2) - response_hits(&m1), 1.0, "the repeat is a hit");
    assert_eq!(response_misses(&m2) - response_misses(&m1), 0.0);
    assert_eq!(sample(&m2, "inferno_response_cache_requests_total", &[("result", "HIT")]), 1.0);
    assert_eq!(
        sample(&m2, "inferno_inference_duration_seconds_count", &[("model", "tiny")]),
        1.0,
        "a hit runs no inference"
    );
    assert_eq!(
        sample(&m2, "inferno_http_requests_total", &[("route", "/v1/completions"), ("status", "200")]),
        2.0
    );
    assert_eq!(
        sample(&m2, "inferno_http_request_duration_seconds_count", &[("route", "/v1/completions")]),
        2.0
    );
    // Each scrape is itself a request, counted before the next one.
    assert_eq!(sample(&m2, "inferno_http_requests_total", &[("route", "/metrics"), ("status", "200")]), 2.0);
    assert!(delta(&m1, &m2, "inferno_cache_lookup_seconds_total") > 0.0);
}

#[test]
fn with_model_caching_off_every_request_loads_its_own_instance() {
    let (sb, dir) = with_tiny_model();
    let loads = |server: &Server| {
        let m = parse_prometheus(&scrape(server));
        (
            sample(&m, "inferno_model_cache_events_total", &[("event", "load")]),
            sample(&m, "inferno_models_loaded", &[]),
        )
    };
    let on = Server::start(&sb, &dir, &[], &[METRICS_ON]);
    for prompt in ["a", "b", "c"] {
        assert_eq!(on.post("/v1/completions", &completion(prompt), &[]).status, 200);
    }
    assert_eq!(loads(&on), (1.0, 1.0), "the model cache keeps one instance for all requests");
    drop(on);

    let off = Server::start(&sb, &dir, &[], &[METRICS_ON, ("INFERNO_CACHE__MODEL__ENABLED", "false")]);
    for prompt in ["d", "e", "f"] {
        let reply = off.post("/v1/completions", &completion(prompt), &[]);
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    assert_eq!(loads(&off), (3.0, 0.0), "cache.model.enabled = false: a load per request, none kept");
}

#[test]
fn time_based_unloading_frees_idle_models_on_the_servers_timer() {
    let (sb, dir) = with_tiny_model();
    let env = [
        METRICS_ON,
        ("INFERNO_CACHE__MODEL__UNLOAD_POLICY", "time_based"),
        ("INFERNO_CACHE__MODEL__KEEP_ALIVE_MINUTES", "1s"),
    ];
    let server = Server::start(&sb, &dir, &[], &env);
    assert_eq!(server.post("/v1/completions", &completion("idle"), &[]).status, 200);
    let loaded = |server: &Server| {
        let m = parse_prometheus(&scrape(server));
        (
            sample(&m, "inferno_models_loaded", &[]),
            sample(&m, "inferno_model_cache_events_total", &[("event", "idle_unload")]),
        )
    };
    assert_eq!(loaded(&server), (1.0, 0.0), "loaded right after the request");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while loaded(&server) != (0.0, 1.0) {
        assert!(std::time::Instant::now() < deadline, "not unloaded after keep_alive: {:?}", loaded(&server));
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // The next request loads it again.
    assert_eq!(server.post("/v1/completions", &completion("idle again"), &[]).status, 200);
    assert_eq!(loaded(&server).0, 1.0);
}
