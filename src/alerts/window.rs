//! The served requests of the last `window_minutes`: for each, when it ended, its cache result (HIT, MISS or
//! BYPASS) and its time from request in to last byte out. The hit-ratio and response-time rules read it.

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

/// A sliding window of served requests.
#[derive(Debug)]
pub struct Window {
    span: Duration,
    samples: Mutex<VecDeque<(Instant, Served, Duration)>>,
}

impl Window {
    /// A window that keeps requests for `span`.
    pub fn new(span: Duration) -> Self {
        Self { span, samples: Mutex::new(VecDeque::new()) }
    }

    /// Records one request that ended now.
    pub fn record(&self, served: Served, took: Duration) {
        self.record_at(Instant::now(), served, took);
    }

    fn record_at(&self, at: Instant, served: Served, took: Duration) {
        let mut samples = self.samples.lock();
        prune(&mut samples, at, self.span);
        samples.push_back((at, served, took));
    }

    /// The figures of the requests that ended within the window before `now`.
    pub fn figures(&self, now: Instant) -> WindowFigures {
        let mut samples = self.samples.lock();
        prune(&mut samples, now, self.span);
        let (mut cached, mut uncached) = (Vec::new(), Vec::new());
        let mut figures = WindowFigures::default();
        for (_, served, took) in samples.iter() {
            match served {
                Served::Hit => {
                    figures.hits += 1;
                    cached.push(*took);
                }
                Served::Miss => {
                    figures.misses += 1;
                    uncached.push(*took);
                }
                Served::Bypass => uncached.push(*took),
            }
        }
        figures.cached = cached.len() as u64;
        figures.cached_p95_ms = p95_ms(&mut cached);
        figures.uncached_p95_ms = p95_ms(&mut uncached);
        figures
    }
}

fn prune(samples: &mut VecDeque<(Instant, Served, Duration)>, now: Instant, span: Duration) {
    while samples.front().is_some_and(|(at, _, _)| now.saturating_duration_since(*at) > span) {
        samples.pop_front();
    }
}

/// The 95th percentile (nearest rank) in milliseconds.
fn p95_ms(times: &mut [Duration]) -> Option<f64> {
    if times.is_empty() {
        return None;
    }
    times.sort_unstable();
    let rank = ((times.len() as f64) * 0.95).ceil() as usize;
    Some(times[rank.clamp(1, times.len()) - 1].as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_count_results_and_take_p95_per_side() {
        let window = Window::new(Duration::from_secs(10));
        let start = Instant::now();
        for ms in 1..=100 {
            window.record_at(start, Served::Hit, Duration::from_millis(ms));
        }
        window.record_at(start, Served::Miss, Duration::from_millis(900));
        window.record_at(start, Served::Bypass, Duration::from_millis(5));
        let f = window.figures(start);
        assert_eq!((f.hits, f.misses, f.cached), (100, 1, 100));
        assert_eq!(f.cached_p95_ms, Some(95.0));
        assert_eq!(f.uncached_p95_ms, Some(900.0));
    }

    #[test]
    fn old_requests_leave_the_window() {
        let window = Window::new(Duration::from_secs(10));
        let start = Instant::now();
        window.record_at(start, Served::Miss, Duration::from_millis(1));
        window.record_at(start + Duration::from_secs(8), Served::Hit, Duration::from_millis(1));
        let f = window.figures(start + Duration::from_secs(12));
        assert_eq!((f.hits, f.misses), (1, 0));
        assert_eq!(Served::from_header("HIT"), Some(Served::Hit));
        assert_eq!(Served::from_header("nope"), None);
        assert_eq!(window.figures(start + Duration::from_secs(30)), WindowFigures::default());
    }
}
