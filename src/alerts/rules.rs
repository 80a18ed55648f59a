//! The alert rules and their state machine: each rule reads one figure, compares it with its threshold,
//! and goes inactive → pending (breached, for less than `for_minutes`) → firing → resolved (back to inactive,
//! with a notification). A firing alert is notified again every `repeat_interval_minutes` at most.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::AlertsConfig;

/// One alert rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Response-cache hit ratio of the window below `hit_ratio_min`.
    HitRatio,
    /// Disk use above `size_usage_max` of `max_size_gb`.
    DiskUsage,
    /// Compression ratio of the stored values below `compression_ratio_min`.
    CompressionRatio,
    /// p95 time to serve a cached response above `response_time_max_ms`.
    ResponseTime,
    /// Built in: cache writes failed within the window.
    WriteFailures,
    /// Built in: the shared tier (Redis) cannot be reached.
    RemoteUnreachable,
}

impl Rule {
    /// Every rule, in the order they are reported.
    pub const ALL: [Rule; 6] = [
        Rule::HitRatio,
        Rule::DiskUsage,
        Rule::CompressionRatio,
        Rule::ResponseTime,
        Rule::WriteFailures,
        Rule::RemoteUnreachable,
    ];

    /// The rule's name in payloads, history and `alerts status`.
    pub fn name(self) -> &'static str {
        match self {
            Self::HitRatio => "hit_ratio",
            Self::DiskUsage => "disk_usage",
            Self::CompressionRatio => "compression_ratio",
            Self::ResponseTime => "response_time",
            Self::WriteFailures => "write_failures",
            Self::RemoteUnreachable => "remote_unreachable",
        }
    }

    /// The threshold the configuration sets for this rule.
    pub fn threshold(self, config: &AlertsConfig) -> f64 {
        let t = &config.thresholds;
        match self {
            Self::HitRatio => t.hit_ratio_min,
            Self::DiskUsage => t.size_usage_max,
            Self::CompressionRatio => t.compression_ratio_min,
            Self::ResponseTime => t.response_time_max_ms as f64,
            Self::WriteFailures | Self::RemoteUnreachable => 0.0,
        }
    }

    /// True when `value` breaches `threshold`: below it for the minimum rules, above it for the others.
    pub fn breached(self, value: f64, threshold: f64) -> bool {
        match self {
            Self::HitRatio | Self::CompressionRatio => value < threshold,
            Self::DiskUsage | Self::ResponseTime | Self::WriteFailures | Self::RemoteUnreachable => {
                value > threshold
            }
        }
    }

    /// One line a person reads: what the figure is against the threshold.
    pub fn describe(self, value: f64, threshold: f64) -> String {
        match self {
            Self::HitRatio => {
                format!("hit ratio {:.1}% (threshold: at least {:.1}%)", value * 100.0, threshold * 100.0)
            }
            Self::DiskUsage => {
                format!(
                    "disk use {:.1}% of max_size_gb (threshold: at most {:.1}%)",
                    value * 100.0,
                    threshold * 100.0
                )
            }
            Self::CompressionRatio => {
                format!("compression ratio {value:.2}x (threshold: at least {threshold:.2}x)")
            }
            Self::ResponseTime => {
                format!(
                    "p95 time to serve a cached response {value:.1} ms (threshold: at most {threshold:.0} ms)"
                )
            }
            Self::WriteFailures => format!("{value:.0} failed cache writes in the window"),
            Self::RemoteUnreachable if value > 0.0 => "the shared tier (Redis) is unreachable".into(),
            Self::RemoteUnreachable => "the shared tier (Redis) is reachable".into(),
        }
    }
}

/// Where a rule stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleState {
    /// Not breached (or not enough data).
    Inactive,
    /// Breached for less than `for_minutes`.
    Pending,
    /// Breached for `for_minutes` or more; notified.
    Firing,
}

/// What a step of the state machine asks to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// The alert started firing (`repeat` false) or is repeated (`repeat` true).
    Fire {
        /// A repetition of a firing alert.
        repeat: bool,
    },
    /// A firing alert's condition cleared.
    Resolve,
}

/// One rule's state, advanced at every evaluation.
#[derive(Clone, Debug)]
pub struct Tracker {
    /// Where the rule stands.
    pub state: RuleState,
    /// When the current pending or firing spell began (ms since the epoch).
    pub since_ms: u64,
    /// When the firing alert was last notified.
    last_sent_ms: u64,
}

impl Default for Tracker {
    fn default() -> Self {
        Self { state: RuleState::Inactive, since_ms: 0, last_sent_ms: 0 }
    }
}

impl Tracker {
    /// Advances at `now_ms` given whether the rule is breached (`None`: too little data to judge, which
    /// drops a pending rule back to inactive and leaves a firing one firing).
    pub fn step(
        &mut self,
        now_ms: u64,
        breached: Option<bool>,
        hold: Duration,
        repeat: Duration,
    ) -> Option<Transition> {
        let elapsed = |since: u64| Duration::from_millis(now_ms.saturating_sub(since));
        match (self.state, breached) {
            (RuleState::Pending, None | Some(false)) => {
                self.state = RuleState::Inactive;
                None
            }
            (RuleState::Inactive, None | Some(false)) => None,
            (RuleState::Inactive, Some(true)) => {
                self.state = RuleState::Pending;
                self.since_ms = now_ms;
                self.fire_when_due(now_ms, hold)
            }
            (RuleState::Pending, Some(true)) => self.fire_when_due(now_ms, hold),
            (RuleState::Firing, Some(true) | None) => {
                if breached.is_some() && elapsed(self.last_sent_ms) >= repeat {
                    self.last_sent_ms = now_ms;
                    return Some(Transition::Fire { repeat: true });
                }
                None
            }
            (RuleState::Firing, Some(false)) => {
                self.state = RuleState::Inactive;
                Some(Transition::Resolve)
            }
        }
    }

    fn fire_when_due(&mut self, now_ms: u64, hold: Duration) -> Option<Transition> {
        if Duration::from_millis(now_ms.saturating_sub(self.since_ms)) < hold {
            return None;
        }
        self.state = RuleState::Firing;
        self.since_ms = now_ms;
        self.last_sent_ms = now_ms;
        Some(Transition::Fire { repeat: false })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    #[test]
    fn pending_then_firing_then_repeat_then_resolved() {
        let (hold, repeat) = (Duration::from_secs(300), Duration::from_secs(3600));
        let mut t = Tracker::default();
        assert_eq!(t.step(0, Some(true), hold, repeat), None);
        assert_eq!(t.state, RuleState::Pending);
        assert_eq!(t.step(4 * MIN, Some(true), hold, repeat), None);
        assert_eq!(t.step(5 * MIN, Some(true), hold, repeat), Some(Transition::Fire { repeat: false }));
        assert_eq!(t.state, RuleState::Firing);
        assert_eq!(t.step(30 * MIN, Some(true), hold, repeat), None);
        assert_eq!(t.step(40 * MIN, None, hold, repeat), None, "no data keeps it firing, silently");
        assert_eq!(t.step(65 * MIN, Some(true), hold, repeat), Some(Transition::Fire { repeat: true }));
        assert_eq!(t.step(66 * MIN, Some(false), hold, repeat), Some(Transition::Resolve));
        assert_eq!(t.state, RuleState::Inactive);
    }

    #[test]
    fn a_short_breach_or_missing_data_never_fires() {
        let (hold, repeat) = (Duration::from_secs(300), Duration::from_secs(3600));
        let mut t = Tracker::default();
        t.step(0, Some(true), hold, repeat);
        assert_eq!(t.step(MIN, Some(false), hold, repeat), None);
        assert_eq!(t.state, RuleState::Inactive);
        t.step(2 * MIN, Some(true), hold, repeat);
        assert_eq!(t.step(3 * MIN, None, hold, repeat), None);
        assert_eq!(t.state, RuleState::Inactive);
        assert_eq!(t.step(9 * MIN, Some(true), hold, repeat), None, "the hold starts again");
    }

    #[test]
    fn zero_hold_fires_at_once_and_directions_are_right() {
        let mut t = Tracker::default();
        let fired = t.step(0, Some(true), Duration::ZERO, Duration::from_secs(60));
        assert_eq!(fired, Some(Transition::Fire { repeat: false }));
        assert!(Rule::HitRatio.breached(0.5, 0.8) && !Rule::HitRatio.breached(0.9, 0.8));
        assert!(Rule::ResponseTime.breached(120.0, 100.0) && !Rule::ResponseTime.breached(80.0, 100.0));
        assert!(Rule::WriteFailures.breached(1.0, 0.0) && !Rule::WriteFailures.breached(0.0, 0.0));
        assert!(Rule::HitRatio.describe(0.5, 0.8).contains("50.0%"));
    }
}
