//! The server's Prometheus metrics: HTTP requests and their durations, inference time, and the model cache,
//! exposed on `/metrics` after the cache engine's own metrics (`cache::observe::prometheus`).
//!
//! - `inferno_http_requests_total{route,status}` counter
//! - `inferno_http_request_duration_seconds{route}` histogram
//! - `inferno_inference_duration_seconds{model}` histogram — generation time of answers not served from cache
//! - `inferno_response_cache_requests_total{result}` counter — HIT, MISS or BYPASS per completion request
//! - `inferno_models_loaded`, `inferno_models_resident_bytes`, `inferno_models_memory_limit_bytes` gauges
//! - `inferno_model_cache_events_total{event}` counter — hits, misses, loads, load_failures, evictions,
//!   idle_unloads, manual_unloads of the model cache
//! - per loaded GGUF model (`{model}`): `inferno_slots`, `inferno_slots_busy`, `inferno_slot_queue_length`
//!   gauges; `inferno_slot_admitted_total`, `inferno_slot_rejected_total`, `inferno_slot_queue_seconds_total`
//!   (time admitted requests waited for a slot), `inferno_generated_tokens_total`,
//!   `inferno_prompt_tokens_total`, `inferno_decode_seconds_total` counters; `inferno_tokens_per_second`
//!   gauge (generated tokens over decoding time, all slots together, since the model was loaded)

use std::collections::BTreeMap;

use prometheus::core::Collector;
use prometheus::{
    CounterVec, Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use crate::models::pool::ModelCacheStats;

/// Request-path metrics, registered once per server.
pub struct Metrics {
    registry: Registry,
    /// Requests by route and status.
    pub requests: IntCounterVec,
    /// Request durations by route.
    pub durations: HistogramVec,
    /// Inference durations by model.
    pub inference: HistogramVec,
    /// Response-cache results of completion requests.
    pub cache_results: IntCounterVec,
}

impl Metrics {
    /// Registers the metrics.
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("inferno_http_requests_total", "HTTP requests answered, by route and status."),
            &["route", "status"],
        )
        .expect("valid metric");
        let durations = HistogramVec::new(
            HistogramOpts::new("inferno_http_request_duration_seconds", "HTTP request durations, by route.")
                .buckets(vec![
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0,
                ]),
            &["route"],
        )
        .expect("valid metric");
        let inference = HistogramVec::new(
            HistogramOpts::new("inferno_inference_duration_seconds", "Time to generate an answer, by model.")
                .buckets(vec![0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0]),
            &["model"],
        )
        .expect("valid metric");
        let cache_results = IntCounterVec::new(
            Opts::new(
                "inferno_response_cache_requests_total",
                "Completion requests by response-cache result.",
            ),
            &["result"],
        )
        .expect("valid metric");
        for metric in [&requests, &cache_results] {
            registry.register(Box::new(metric.clone())).expect("unique metric");
        }
        for metric in [&durations, &inference] {
            registry.register(Box::new(metric.clone())).expect("unique metric");
        }
        Self { registry, requests, durations, inference, cache_results }
    }

    /// HTTP requests answered since the server started, over every route and status.
    pub fn requests_answered(&self) -> u64 {
        let families = self.requests.collect();
        let metrics = families.iter().flat_map(|family| family.get_metric());
        metrics.map(|m| m.get_counter().get_value() as u64).sum()
    }

    /// Completion requests per response-cache result (`HIT`, `MISS`, `BYPASS`) since the server started.
    pub fn cache_result_counts(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for family in self.cache_results.collect() {
            for metric in family.get_metric() {
                let result = metric.get_label().first().map_or("", |l| l.value()).to_string();
                *counts.entry(result).or_default() += metric.get_counter().get_value() as u64;
            }
        }
        counts
    }

    /// The request-path metrics and the model cache's figures, in Prometheus text format.
    pub fn encode(&self, models: &ModelCacheStats) -> Result<String, prometheus::Error> {
        let scrape = Registry::new();
        let gauge = |name: &str, help: &str, value: u64| -> Result<(), prometheus::Error> {
            let g = IntGauge::new(name, help)?;
            g.set(value as i64);
            scrape.register(Box::new(g))
        };
        gauge("inferno_models_loaded", "Models loaded now.", models.loaded as u64)?;
        gauge(
            "inferno_models_resident_bytes",
            "Estimated memory of the loaded models.",
            models.resident_bytes,
        )?;
        gauge(
            "inferno_models_memory_limit_bytes",
            "cache.model.memory_limit_gb in bytes.",
            models.memory_limit_bytes,
        )?;
        let events = IntCounterVec::new(
            Opts::new("inferno_model_cache_events_total", "Model cache events since the server started."),
            &["event"],
        )?;
        scrape.register(Box::new(events.clone()))?;
        let c = &models.counters;
        for (event, n) in [
            ("hit", c.hits),
            ("miss", c.misses),
            ("load", c.loads),
            ("load_failure", c.load_failures),
            ("eviction", c.evictions),
            ("idle_unload", c.idle_unloads),
            ("manual_unload", c.manual_unloads),
        ] {
            events.with_label_values(&[event]).inc_by(n);
        }
        slot_metrics(&scrape, models)?;
        let mut families = self.registry.gather();
        families.extend(scrape.gather());
        let mut out = Vec::new();
        TextEncoder::new().encode(&families, &mut out)?;
        Ok(String::from_utf8(out).expect("the text format is UTF-8"))
    }
}

/// The slots of each loaded GGUF model, labelled with its name.
fn slot_metrics(scrape: &Registry, models: &ModelCacheStats) -> Result<(), prometheus::Error> {
    let family = |name: &str, help: &str| -> Result<GaugeVec, prometheus::Error> {
        let vec = GaugeVec::new(Opts::new(name, help), &["model"])?;
        scrape.register(Box::new(vec.clone()))?;
        Ok(vec)
    };
    let counter = |name: &str, help: &str| -> Result<CounterVec, prometheus::Error> {
        let vec = CounterVec::new(Opts::new(name, help), &["model"])?;
        scrape.register(Box::new(vec.clone()))?;
        Ok(vec)
    };
    let slots = family("inferno_slots", "Inference slots (sequences decoded together) of the model.")?;
    let busy = family("inferno_slots_busy", "Slots serving a request now.")?;
    let queue = family("inferno_slot_queue_length", "Requests waiting for a slot now.")?;
    let rate = family(
        "inferno_tokens_per_second",
        "Generated tokens per second of decoding, all slots together, since the model was loaded.",
    )?;
    let admitted = counter("inferno_slot_admitted_total", "Requests that got a slot.")?;
    let rejected = counter("inferno_slot_rejected_total", "Requests refused with 503: the queue was full.")?;
    let waited = counter(
        "inferno_slot_queue_seconds_total",
        "Seconds admitted requests waited for a slot, together.",
    )?;
    let generated = counter("inferno_generated_tokens_total", "Tokens generated.")?;
    let prompt = counter("inferno_prompt_tokens_total", "Prompt tokens decoded (prefill).")?;
    let decoding = counter("inferno_decode_seconds_total", "Seconds the decode loop spent decoding.")?;
    for model in &models.models {
        let Some(s) = model.slots else { continue };
        let label = [model.name.as_str()];
        slots.with_label_values(&label).set(f64::from(s.parallel));
        busy.with_label_values(&label).set(f64::from(s.busy));
        queue.with_label_values(&label).set(f64::from(s.queued));
        rate.with_label_values(&label).set(s.tokens_per_second());
        admitted.with_label_values(&label).inc_by(s.admitted as f64);
        rejected.with_label_values(&label).inc_by(s.rejected as f64);
        waited.with_label_values(&label).inc_by(s.queued_seconds);
        generated.with_label_values(&label).inc_by(s.generated_tokens as f64);
        prompt.with_label_values(&label).inc_by(s.prompt_tokens as f64);
        decoding.with_label_values(&label).inc_by(s.decode_seconds);
    }
    Ok(())
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
