//! The evaluator `inferno serve` runs: every `evaluation_interval_seconds` it measures each rule's figure
//! (the request window; the cache's disk use and compression; the write-failure and Redis counters), steps
//! each rule's state machine, and hands the notifications to the channels on their own task, so no request
//! waits for a delivery. It also answers `cache alerts status` through the admin socket ([`AlertsView`]).

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::alert::{Alert, Notice, host_name, now_ms, rfc3339};
use super::channels::{Channels, Retry};
use super::history::{self, Entry};
use super::rules::{Rule, RuleState, Tracker, Transition};
use super::window::{Served, Window};
use crate::cache::{CacheReport, Manager};
use crate::config::{AlertChannel, AlertsConfig, CompressionAlgorithm, Config};

/// One rule as `cache alerts status` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuleView {
    /// The rule's name.
    pub rule: Rule,
    /// Where it stands.
    pub state: RuleState,
    /// The last measured figure (`None`: too little data, or it does not apply).
    pub value: Option<f64>,
    /// Its threshold.
    pub threshold: f64,
    /// Requests behind the figure, for the request-based rules.
    pub samples: Option<u64>,
    /// When the current pending or firing spell began (RFC 3339).
    pub since: Option<String>,
    /// Why the rule is not judged, when it is not.
    pub note: Option<String>,
}

/// One channel as `cache alerts status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelView {
    /// `webhook`, `slack` or `email`.
    pub channel: AlertChannel,
    /// False when named in `channels` without its table.
    pub configured: bool,
}

/// The answer of `GET /v1/cache/alerts` and the document of `cache alerts status --json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertsView {
    /// `cache.alerts.enabled`.
    pub enabled: bool,
    /// Where it comes from: `server` (live) or `history` (the recorded notifications).
    pub source: String,
    /// The channels of `cache.alerts.channels`.
    pub channels: Vec<ChannelView>,
    /// Every rule.
    pub rules: Vec<RuleView>,
}

/// The channels of `config` with whether each is configured.
pub fn channel_views(config: &AlertsConfig) -> Vec<ChannelView> {
    let mut named = config.channels.clone();
    named.sort();
    named.dedup();
    named
        .into_iter()
        .map(|channel| ChannelView { channel, configured: config.is_configured(channel) })
        .collect()
}

/// One rule's figure at an evaluation.
struct Measured {
    rule: Rule,
    value: Option<f64>,
    samples: Option<u64>,
    note: Option<String>,
}

/// The rule evaluator of a server.
pub struct Engine {
    config: AlertsConfig,
    base_dir: PathBuf,
    compressing: bool,
    window: Window,
    channels: Channels,
    rules: Mutex<BTreeMap<Rule, RuleView>>,
    trackers: Mutex<BTreeMap<Rule, Tracker>>,
    failures: Mutex<VecDeque<(Instant, u64)>>,
    host: String,
}

impl Engine {
    /// The evaluator for `config` (idle when `cache.alerts.enabled` is false).
    pub fn new(config: &Config) -> Self {
        let alerts = config.cache.alerts.clone();
        let c = &config.cache.compression;
        let rules = Rule::ALL
            .iter()
            .map(|rule| {
                let view = RuleView {
                    rule: *rule,
                    state: RuleState::Inactive,
                    value: None,
                    threshold: rule.threshold(&alerts),
                    samples: None,
                    since: None,
                    note: Some("not evaluated yet".into()),
                };
                (*rule, view)
            })
            .collect();
        Self {
            window: Window::new(alerts.window_minutes.duration()),
            channels: Channels::new(&alerts, None, Retry::SERVE),
            config: alerts,
            base_dir: config.cache.base_dir.clone(),
            compressing: c.enabled && c.algorithm != CompressionAlgorithm::None,
            rules: Mutex::new(rules),
            trackers: Mutex::new(BTreeMap::new()),
            failures: Mutex::new(VecDeque::new()),
            host: host_name(),
        }
    }

    /// `cache.alerts.enabled`.
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// Records a served request (only while alerts are enabled).
    pub fn record(&self, served: Served, took: Duration) {
        if self.config.enabled {
            self.window.record(served, took);
        }
    }

    /// Warnings for the log at start: channels named without their table, or no channel at all.
    pub fn start_warnings(&self) -> Vec<String> {
        if !self.config.enabled {
            return Vec::new();
        }
        let mut out: Vec<String> = self
            .channels
            .not_configured()
            .iter()
            .map(|c| {
                format!(
                    "alert channel {0:?} is named in cache.alerts.channels but not configured: add a \
                     [cache.alerts.{0}] table (docs/alerts.md); its alerts are not sent",
                    c.name()
                )
            })
            .collect();
        if self.channels.configured().is_empty() {
            out.push(
                "cache.alerts.enabled is true but no channel is configured: alerts are only recorded".into(),
            );
        }
        out
    }

    /// `inferno_alerts_sent_total` in Prometheus text format.
    pub fn encode_metrics(&self) -> Result<String, prometheus::Error> {
        self.channels.encode_metrics()
    }

    /// The rules and channels now.
    pub fn view(&self) -> AlertsView {
        AlertsView {
            enabled: self.config.enabled,
            source: "server".into(),
            channels: channel_views(&self.config),
            rules: self.rules.lock().values().cloned().collect(),
        }
    }

    /// Evaluates every `evaluation_interval_seconds` until the task is dropped.
    pub async fn run(self: Arc<Self>, manager: Arc<Manager>) {
        if !self.config.enabled {
            return;
        }
        let mut tick = tokio::time::interval(self.config.evaluation_interval_seconds.duration());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (engine, manager) = (Arc::clone(&self), Arc::clone(&manager));
            let measured = tokio::task::spawn_blocking(move || engine.measure(&manager)).await;
            let Ok(measured) = measured else { continue };
            for alert in self.step(measured) {
                let engine = Arc::clone(&self);
                tokio::spawn(async move { engine.send(alert).await });
            }
        }
    }

    /// Each rule's figure, sample count and note, measured now.
    fn measure(&self, manager: &Manager) -> Vec<Measured> {
        let now = Instant::now();
        let min = self.config.min_samples;
        let f = self.window.figures(now);
        let few =
            |n: u64| (n < min).then(|| format!("{n} requests in the window, fewer than min_samples = {min}"));
        let requests = f.hits + f.misses;
        let hit_ratio = (requests >= min).then(|| f.hits as f64 / requests as f64);
        let response = f.cached_p95_ms.filter(|_| f.cached >= min);
        let report = CacheReport::measure(manager);
        let disk = report.disk.as_ref();
        let usage = disk.map(|d| d.usage_ratio);
        let compression = if self.compressing { disk.and_then(|d| d.compression_ratio) } else { None };
        let counters = manager.counters();
        let remote = counters.remote.snapshot();
        // Disk writes that failed (counted by the disk tier, at put or at flush) and remote writes lost.
        let disk_failures: u64 = disk.map_or(0, |d| d.writes.errors.values().sum());
        let total = disk_failures + remote.write_errors + remote.dropped_writes;
        let failures = {
            let mut seen = self.failures.lock();
            seen.push_back((now, total));
            let span = self.window_span();
            while seen.len() > 1 && seen.front().is_some_and(|(at, _)| now.duration_since(*at) > span) {
                seen.pop_front();
            }
            total - seen.front().map_or(total, |(_, t)| *t)
        };
        let unreachable = manager.remote_status(false).map(|s| if s.reachable { 0.0 } else { 1.0 });
        let m = |rule, value, samples, note| Measured { rule, value, samples, note };
        vec![
            m(Rule::HitRatio, hit_ratio, Some(requests), few(requests)),
            m(Rule::DiskUsage, usage, None, usage.is_none().then(|| "no disk tier".into())),
            m(
                Rule::CompressionRatio,
                compression,
                None,
                compression.is_none().then(|| "compression is off, or nothing is stored".into()),
            ),
            m(
                Rule::ResponseTime,
                response,
                Some(f.cached),
                few(f.cached).or_else(|| {
                    f.uncached_p95_ms.map(|ms| format!("uncached answers (not judged): p95 {ms:.1} ms"))
                }),
            ),
            m(Rule::WriteFailures, Some(failures as f64), None, None),
            m(
                Rule::RemoteUnreachable,
                unreachable,
                None,
                unreachable.is_none().then(|| "cache.distributed is off".into()),
            ),
        ]
    }

    fn window_span(&self) -> Duration {
        self.config.window_minutes.duration()
    }

    /// Steps every rule with its figure; returns the notifications to send.
    fn step(&self, measured: Vec<Measured>) -> Vec<Alert> {
        let now = now_ms();
        let (hold, repeat) =
            (self.config.for_minutes.duration(), self.config.repeat_interval_minutes.duration());
        let mut trackers = self.trackers.lock();
        let mut views = self.rules.lock();
        let mut out = Vec::new();
        for Measured { rule, value, samples, note } in measured {
            let threshold = rule.threshold(&self.config);
            let tracker = trackers.entry(rule).or_default();
            let transition = tracker.step(now, value.map(|v| rule.breached(v, threshold)), hold, repeat);
            if let Some(transition) = transition {
                out.push(self.alert(rule, transition, value, threshold, tracker.since_ms, now));
            }
            let active = tracker.state != RuleState::Inactive;
            views.insert(
                rule,
                RuleView {
                    rule,
                    state: tracker.state,
                    value,
                    threshold,
                    samples,
                    since: active.then(|| rfc3339(tracker.since_ms)),
                    note,
                },
            );
        }
        out
    }

    fn alert(
        &self,
        rule: Rule,
        t: Transition,
        value: Option<f64>,
        threshold: f64,
        since: u64,
        now: u64,
    ) -> Alert {
        let (state, repeat) = match t {
            Transition::Fire { repeat } => (Notice::Firing, repeat),
            Transition::Resolve => (Notice::Resolved, false),
        };
        let figure = value.map_or("no figure".to_string(), |v| rule.describe(v, threshold));
        let summary = match state {
            Notice::Resolved => format!("{} resolved on {}: {figure}", rule.name(), self.host),
            _ => format!("{} firing on {}: {figure}", rule.name(), self.host),
        };
        Alert {
            version: 1,
            rule: rule.name().into(),
            state,
            repeat,
            value,
            threshold: Some(threshold),
            window_seconds: self.window_span().as_secs(),
            host: self.host.clone(),
            cache_dir: self.base_dir.display().to_string(),
            started_at: rfc3339(since),
            ended_at: (state == Notice::Resolved).then(|| rfc3339(now)),
            summary,
        }
    }

    /// Delivers `alert` to every channel and records it in the history.
    async fn send(&self, alert: Alert) {
        tracing::warn!(rule = alert.rule, state = alert.state.name(), "alert: {}", alert.summary);
        let deliveries = self.channels.deliver(&alert).await;
        let entry = Entry { time_ms: now_ms(), alert, deliveries };
        if let Err(e) = history::record(&self.base_dir, &entry) {
            tracing::warn!(
                "cannot record the alert in {}: {e}",
                self.base_dir.join(history::ALERTS_FILE).display()
            );
        }
    }
}

/// The view `cache alerts status` prints without a running server: each rule's last notification.
pub fn view_from_history(config: &Config) -> AlertsView {
    let alerts = &config.cache.alerts;
    let entries = history::load(&config.cache.base_dir, 0);
    let rules = Rule::ALL
        .iter()
        .map(|rule| {
            let last = entries.iter().rev().find(|e| e.alert.rule == rule.name());
            let state = match last.map(|e| e.alert.state) {
                Some(Notice::Firing) => RuleState::Firing,
                _ => RuleState::Inactive,
            };
            RuleView {
                rule: *rule,
                state,
                value: last.and_then(|e| e.alert.value),
                threshold: rule.threshold(alerts),
                samples: None,
                since: last.map(|e| e.alert.started_at.clone()).filter(|_| state == RuleState::Firing),
                note: Some(match last {
                    Some(e) => {
                        format!("last notification: {} at {}", e.alert.state.name(), rfc3339(e.time_ms))
                    }
                    None => "no notification recorded".into(),
                }),
            }
        })
        .collect();
    AlertsView { enabled: alerts.enabled, source: "history".into(), channels: channel_views(alerts), rules }
}
