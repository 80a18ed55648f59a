//! One notification's facts (rule, state, value, threshold, window, host, cache dir, times, a summary) and
//! how each channel renders them: the webhook's JSON body, Slack's `text` plus blocks, a plain-text mail.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// What a notification says happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Notice {
    /// The rule's condition has held for `for_minutes`.
    Firing,
    /// A firing rule's condition cleared.
    Resolved,
    /// Sent by `inferno cache alerts test`.
    Test,
}

impl Notice {
    /// `firing`, `resolved` or `test`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
            Self::Test => "test",
        }
    }
}

/// One notification (the webhook's body, field for field; docs/alerts.md).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Payload format version.
    pub version: u32,
    /// The rule's name, e.g. `hit_ratio` (`test` for a test alert).
    pub rule: String,
    /// `firing`, `resolved` or `test`.
    pub state: Notice,
    /// True when this repeats an alert already notified as firing.
    pub repeat: bool,
    /// The measured figure (`null` when there was none).
    pub value: Option<f64>,
    /// The threshold it was compared with.
    pub threshold: Option<f64>,
    /// The sliding window the rule looked at, in seconds.
    pub window_seconds: u64,
    /// The machine that sent it.
    pub host: String,
    /// The cache directory of the server.
    pub cache_dir: String,
    /// When the alert started firing (RFC 3339, UTC).
    pub started_at: String,
    /// When it resolved (RFC 3339), for `resolved`.
    pub ended_at: Option<String>,
    /// One human line.
    pub summary: String,
}

impl Alert {
    /// The subject line of a mail, also the first line of the Slack text.
    pub fn title(&self) -> String {
        let what = match self.state {
            Notice::Firing if self.repeat => "FIRING (repeat)",
            Notice::Firing => "FIRING",
            Notice::Resolved => "RESOLVED",
            Notice::Test => "TEST",
        };
        format!("[inferno {what}] {} on {}", self.rule, self.host)
    }

    /// The facts as lines, for mail and Slack.
    pub fn lines(&self) -> Vec<String> {
        let number = |v: Option<f64>| v.map_or("none".to_string(), |v| format!("{v}"));
        let mut lines = vec![
            self.summary.clone(),
            String::new(),
            format!("rule: {}", self.rule),
            format!("state: {}", self.state.name()),
            format!("value: {}", number(self.value)),
            format!("threshold: {}", number(self.threshold)),
            format!("window: {}", humantime::format_duration(Duration::from_secs(self.window_seconds))),
            format!("host: {}", self.host),
            format!("cache dir: {}", self.cache_dir),
            format!("started at: {}", self.started_at),
        ];
        if let Some(ended) = &self.ended_at {
            lines.push(format!("ended at: {ended}"));
        }
        lines
    }

    /// The webhook's JSON body.
    pub fn webhook_body(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A Slack incoming-webhook payload: `text` (the fallback and notification line) and blocks.
    pub fn slack_payload(&self) -> Value {
        let facts = self.lines().into_iter().skip(2).collect::<Vec<_>>().join("\n");
        json!({
            "text": format!("{}: {}", self.title(), self.summary),
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": self.title()}},
                {"type": "section", "text": {"type": "mrkdwn", "text": self.summary}},
                {"type": "section", "text": {"type": "mrkdwn", "text": format!("```{facts}```")}},
            ],
        })
    }

    /// The plain-text body of a mail.
    pub fn mail_body(&self) -> String {
        self.lines().join("\n") + "\n"
    }
}

/// `time` as RFC 3339 in UTC, to the second.
pub fn rfc3339(time_ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(time_ms)).to_string()
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// This machine's name, for the `host` field.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert() -> Alert {
        Alert {
            version: 1,
            rule: "hit_ratio".into(),
            state: Notice::Resolved,
            repeat: false,
            value: Some(0.95),
            threshold: Some(0.8),
            window_seconds: 900,
            host: "node1".into(),
            cache_dir: "/cache".into(),
            started_at: rfc3339(0),
            ended_at: Some(rfc3339(60_000)),
            summary: "hit ratio is back".into(),
        }
    }

    #[test]
    fn renderings_carry_the_facts() {
        let a = alert();
        let body: Value = serde_json::from_slice(&a.webhook_body()).unwrap();
        assert_eq!(body["state"], "resolved");
        assert_eq!(body["started_at"], "1970-01-01T00:00:00Z");
        assert_eq!(body["ended_at"], "1970-01-01T00:01:00Z");
        let slack = a.slack_payload();
        assert!(slack["text"].as_str().unwrap().starts_with("[inferno RESOLVED] hit_ratio on node1"));
        assert_eq!(slack["blocks"].as_array().unwrap().len(), 3);
        let mail = a.mail_body();
        assert!(mail.contains("window: 15m") && mail.contains("cache dir: /cache"), "{mail}");
        assert!(!host_name().is_empty());
    }
}
