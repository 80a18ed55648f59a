//! The served requests of the last `window_minutes`: per second, how many were HIT and MISS, and histograms
//! of the time from request in to last byte out of cached (HIT) and uncached (MISS, BYPASS) answers. The
//! hit-ratio and response-time rules read it. Memory is bounded by the window's length in seconds, not by the
//! request rate; a percentile is read from logarithmic buckets 15% wide (the bucket's upper bound).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// A response-cache result as the `X-Inferno-Cache` header says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Served {
    /// Answered from the cache.
    Hit,
    /// Looked up, not found, generated.
    Miss,
    /// The cache was not consulted.
    Bypass,
}

impl Served {
    /// The result named by an `X-Inferno-Cache` value.
    pub fn from_header(value: &str) -> Option<Self> {
        match value {
            "HIT" => Some(Self::Hit),
            "MISS" => Some(Self::Miss),
            "BYPASS" => Some(Self::Bypass),
            _ => None,
        }
    }
}

/// What the window holds now, for the rules.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WindowFigures {
    /// Requests answered from the cache.
    pub hits: u64,
    /// Requests that looked up and missed.
    pub misses: u64,
    /// p95 of the cached responses' time to last byte, in ms (`None` with no cached response).
    pub cached_p95_ms: Option<f64>,
    /// p95 of the uncached (MISS and BYPASS) responses' time to last byte, in ms.
    pub uncached_p95_ms: Option<f64>,
    /// Cached responses in the window (the sample count of `cached_p95_ms`).
    pub cached: u64,
}

/// One second of requests.
#[derive(Debug)]
struct Second {
    at: u64,
    hits: u64,
    misses: u64,
    cached: Vec<u32>,
    uncached: Vec<u32>,
}

/// A sliding window of served requests.
#[derive(Debug)]
pub struct Window {
    span_s: u64,
    start: Instant,
    bounds_us: Vec<u64>,
    seconds: Mutex<VecDeque<Second>>,
}

impl Window {
    /// A window that keeps requests for `span` (whole seconds, rounded up).
    pub fn new(span: Duration) -> Self {
        let mut bounds_us = vec![50];
        while *bounds_us.last().expect("not empty") < 300_000_000 {
            let last = *bounds_us.last().expect("not empty");
            bounds_us.push((last as f64 * 1.15).ceil() as u64);
        }
        let span_s = span.as_millis().div_ceil(1000).max(1) as u64;
        Self { span_s, start: Instant::now(), bounds_us, seconds: Mutex::new(VecDeque::new()) }
    }

    /// Records one request that ended now.
    pub fn record(&self, served: Served, took: Duration) {
        self.record_at(Instant::now(), served, took);
    }

    fn record_at(&self, at: Instant, served: Served, took: Duration) {
        let second = at.saturating_duration_since(self.start).as_secs();
        let us = took.as_micros().min(u64::MAX as u128) as u64;
        let bucket = self.bounds_us.partition_point(|b| *b < us).min(self.bounds_us.len() - 1);
        let mut seconds = self.seconds.lock();
        self.prune(&mut seconds, second);
        if seconds.back().is_none_or(|s| s.at != second) {
            let empty = vec![0; self.bounds_us.len()];
            seconds.push_back(Second {
                at: second,
                hits: 0,
                misses: 0,
                cached: empty.clone(),
                uncached: empty,
            });
        }
        let now = seconds.back_mut().expect("just pushed");
        match served {
            Served::Hit => {
                now.hits += 1;
                now.cached[bucket] += 1;
            }
            Served::Miss => {
                now.misses += 1;
                now.uncached[bucket] += 1;
            }
            Served::Bypass => now.uncached[bucket] += 1,
        }
    }

    fn prune(&self, seconds: &mut VecDeque<Second>, now: u64) {
        while seconds.front().is_some_and(|s| s.at + self.span_s < now) {
            seconds.pop_front();
        }
    }

    /// The figures of the requests that ended within the window before `now`.
    pub fn figures(&self, now: Instant) -> WindowFigures {
        let second = now.saturating_duration_since(self.start).as_secs();
        let mut seconds = self.seconds.lock();
        self.prune(&mut seconds, second);
        let n = self.bounds_us.len();
        let (mut cached, mut uncached) = (vec![0u64; n], vec![0u64; n]);
        let mut figures = WindowFigures::default();
        for s in seconds.iter() {
            figures.hits += s.hits;
            figures.misses += s.misses;
            for i in 0..n {
                cached[i] += u64::from(s.cached[i]);
                uncached[i] += u64::from(s.uncached[i]);
            }
        }
        figures.cached = cached.iter().sum();
        figures.cached_p95_ms = self.p95_ms(&cached);
        figures.uncached_p95_ms = self.p95_ms(&uncached);
        figures
    }

    /// The upper bound of the bucket holding the 95th percentile (nearest rank), in milliseconds.
    fn p95_ms(&self, counts: &[u64]) -> Option<f64> {
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = (total as f64 * 0.95).ceil() as u64;
        let mut seen = 0;
        for (i, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(self.bounds_us[i] as f64 / 1000.0);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_count_results_and_take_p95_per_side() {
        let window = Window::new(Duration::from_secs(10));
        let start = window.start;
        for ms in 1..=100 {
            window.record_at(start, Served::Hit, Duration::from_millis(ms));
        }
        window.record_at(start, Served::Miss, Duration::from_millis(900));
        window.record_at(start, Served::Bypass, Duration::from_millis(5));
        let f = window.figures(start);
        assert_eq!((f.hits, f.misses, f.cached), (100, 1, 100));
        let p95 = f.cached_p95_ms.unwrap();
        assert!((95.0..=95.0 * 1.15).contains(&p95), "{p95}");
        let slow = f.uncached_p95_ms.unwrap();
        assert!((900.0..=900.0 * 1.15).contains(&slow), "{slow}");
    }

    #[test]
    fn old_requests_leave_the_window() {
        let window = Window::new(Duration::from_secs(10));
        let start = window.start;
        window.record_at(start, Served::Miss, Duration::from_millis(1));
        window.record_at(start + Duration::from_secs(8), Served::Hit, Duration::from_millis(1));
        let f = window.figures(start + Duration::from_secs(12));
        assert_eq!((f.hits, f.misses), (1, 0));
        assert_eq!(Served::from_header("HIT"), Some(Served::Hit));
        assert_eq!(Served::from_header("nope"), None);
        assert_eq!(window.figures(start + Duration::from_secs(30)), WindowFigures::default());
    }

    #[test]
    fn memory_follows_the_seconds_not_the_requests() {
        let window = Window::new(Duration::from_secs(5));
        let start = window.start;
        for i in 0..10_000u64 {
            window.record_at(start + Duration::from_millis(i), Served::Hit, Duration::from_micros(i));
        }
        assert!(window.seconds.lock().len() <= 7);
        assert_eq!(window.figures(start + Duration::from_secs(10)).hits, 5_000, "seconds 5 to 9");
    }
}
