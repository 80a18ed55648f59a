//! `[cache.alerts]` and its tables: the alert rules' timing and thresholds, and the three channels
//! (`webhook`, `slack`, `email`), with their defaults and range checks.
//!
//! A channel is *configured* when its table names where to send (`webhook.url`, `slack.webhook_url`,
//! `email.smtp_host`); one named in `channels` without that is "not configured", which `serve` warns about
//! and `cache status` shows, but is not a configuration error (the guide's own example is written so).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::schema::Violation;
use super::units::{MINUTE, SECOND, Span};

/// `[cache.alerts]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Evaluate the rules in `inferno serve` and deliver alerts.
    pub enabled: bool,
    /// Where alerts go.
    pub channels: Vec<AlertChannel>,
    /// Time between two evaluations of the rules.
    pub evaluation_interval_seconds: Span<SECOND>,
    /// The sliding window the rules look at.
    pub window_minutes: Span<MINUTE>,
    /// Fewest requests in the window before the request-based rules judge anything.
    pub min_samples: u64,
    /// How long a condition must hold (pending) before the alert fires.
    pub for_minutes: Span<MINUTE>,
    /// Shortest time between two notifications of the same firing alert.
    pub repeat_interval_minutes: Span<MINUTE>,
    /// `[cache.alerts.thresholds]`.
    pub thresholds: AlertThresholds,
    /// `[cache.alerts.webhook]`.
    pub webhook: WebhookConfig,
    /// `[cache.alerts.slack]`.
    pub slack: SlackConfig,
    /// `[cache.alerts.email]`.
    pub email: EmailConfig,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            channels: Vec::new(),
            evaluation_interval_seconds: Span::units(60),
            window_minutes: Span::units(15),
            min_samples: 20,
            for_minutes: Span::units(5),
            repeat_interval_minutes: Span::units(60),
            thresholds: AlertThresholds::default(),
            webhook: WebhookConfig::default(),
            slack: SlackConfig::default(),
            email: EmailConfig::default(),
        }
    }
}

/// `cache.alerts.channels` entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertChannel {
    /// Email over SMTP.
    Email,
    /// A Slack incoming webhook.
    Slack,
    /// An HTTP webhook.
    Webhook,
}

impl AlertChannel {
    /// Every channel, in the order they are reported.
    pub const ALL: [AlertChannel; 3] = [AlertChannel::Webhook, AlertChannel::Slack, AlertChannel::Email];

    /// `email`, `slack` or `webhook`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Slack => "slack",
            Self::Webhook => "webhook",
        }
    }
}

impl std::str::FromStr for AlertChannel {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|c| c.name() == text)
            .ok_or_else(|| format!("unknown channel {text:?} (email, slack, webhook)"))
    }
}

/// `[cache.alerts.thresholds]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertThresholds {
    /// Alert when the hit ratio falls below this (0-1).
    pub hit_ratio_min: f64,
    /// Alert when disk use exceeds this fraction of `max_size_gb` (0-1).
    pub size_usage_max: f64,
    /// Alert when the compression ratio falls below this.
    pub compression_ratio_min: f64,
    /// Alert when the p95 time to serve a cached response exceeds this many milliseconds.
    pub response_time_max_ms: u64,
}

impl Default for AlertThresholds {
    fn default() -> Self {
        Self {
            hit_ratio_min: 0.80,
            size_usage_max: 0.90,
            compression_ratio_min: 2.0,
            response_time_max_ms: 100,
        }
    }
}

/// `[cache.alerts.webhook]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where the JSON body is POSTed (http or https).
    pub url: String,
    /// Key of the `X-Inferno-Signature` HMAC-SHA256; empty sends no signature.
    pub secret: String,
}

/// `[cache.alerts.slack]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlackConfig {
    /// The Slack incoming-webhook URL.
    pub webhook_url: String,
}

/// `[cache.alerts.email]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailConfig {
    /// SMTP server name or address.
    pub smtp_host: String,
    /// SMTP port.
    pub smtp_port: u16,
    /// How the connection is secured.
    pub tls: SmtpTls,
    /// SMTP user; empty logs in as nobody.
    pub username: String,
    /// File holding the SMTP password (one line); empty for none.
    pub password_file: PathBuf,
    /// Sender address.
    pub from: String,
    /// Recipient addresses.
    pub to: Vec<String>,
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            smtp_host: String::new(),
            smtp_port: 587,
            tls: SmtpTls::Starttls,
            username: String::new(),
            password_file: PathBuf::new(),
            from: String::new(),
            to: Vec::new(),
        }
    }
}

/// `cache.alerts.email.tls`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain SMTP (a relay on the same host or network).
    None,
    /// Plain connection upgraded with STARTTLS (port 587); refused when the server cannot.
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

impl AlertsConfig {
    /// True when `channel`'s table says where to send.
    pub fn is_configured(&self, channel: AlertChannel) -> bool {
        match channel {
            AlertChannel::Webhook => !self.webhook.url.is_empty(),
            AlertChannel::Slack => !self.slack.webhook_url.is_empty(),
            AlertChannel::Email => !self.email.smtp_host.is_empty(),
        }
    }

    /// The range and shape checks of `[cache.alerts]`.
    pub fn validate(&self) -> Vec<Violation> {
        let mut out = Vec::new();
        let mut check = |ok: bool, key: &'static str, message: String| {
            if !ok {
                out.push(Violation { key, message, related: None });
            }
        };
        let t = &self.thresholds;
        for (key, v) in [
            ("cache.alerts.thresholds.hit_ratio_min", t.hit_ratio_min),
            ("cache.alerts.thresholds.size_usage_max", t.size_usage_max),
        ] {
            check((0.0..=1.0).contains(&v), key, format!("{v} is out of range (0.0-1.0)"));
        }
        let ratio = t.compression_ratio_min;
        check(
            ratio.is_finite() && ratio >= 0.0,
            "cache.alerts.thresholds.compression_ratio_min",
            format!("{ratio} must be a number of 0 or more"),
        );
        let interval = self.evaluation_interval_seconds.duration();
        check(
            interval.as_millis() >= 1000,
            "cache.alerts.evaluation_interval_seconds",
            "must be at least 1 second".into(),
        );
        check(
            self.window_minutes.duration() >= interval,
            "cache.alerts.window_minutes",
            "must be at least cache.alerts.evaluation_interval_seconds".into(),
        );
        check(self.min_samples >= 1, "cache.alerts.min_samples", "must be at least 1".into());
        check(
            !self.repeat_interval_minutes.duration().is_zero(),
            "cache.alerts.repeat_interval_minutes",
            "must be more than 0".into(),
        );
        if let Err(e) = check_url(&self.webhook.url) {
            check(false, "cache.alerts.webhook.url", e);
        }
        if let Err(e) = check_url(&self.slack.webhook_url) {
            check(false, "cache.alerts.slack.webhook_url", e);
        }
        let email = &self.email;
        if !email.smtp_host.is_empty() {
            check(email.smtp_port > 0, "cache.alerts.email.smtp_port", "must be 1-65535".into());
            if let Err(e) = check_address(&email.from) {
                check(false, "cache.alerts.email.from", e);
            }
            check(!email.to.is_empty(), "cache.alerts.email.to", "needs at least one address".into());
            if let Some(e) = email.to.iter().find_map(|a| check_address(a).err()) {
                check(false, "cache.alerts.email.to", e);
            }
            let file = &email.password_file;
            if !file.as_os_str().is_empty() {
                check(
                    !email.username.is_empty(),
                    "cache.alerts.email.username",
                    "is needed with cache.alerts.email.password_file".into(),
                );
                if let Err(e) = std::fs::read_to_string(file) {
                    check(
                        false,
                        "cache.alerts.email.password_file",
                        format!("cannot read {}: {e}", file.display()),
                    );
                }
            }
        }
        out
    }
}

/// An empty text (channel not configured) or an http(s) URL with a host.
fn check_url(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Ok(());
    }
    let url = reqwest::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{text:?} is not an http:// or https:// URL"));
    }
    Ok(())
}

/// A mail address lettre accepts (`ops@example.com` or `Ops <ops@example.com>`).
fn check_address(text: &str) -> Result<(), String> {
    text.parse::<lettre::message::Mailbox>()
        .map(drop)
        .map_err(|e| format!("{text:?} is not a mail address: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(config: &AlertsConfig) -> Vec<&'static str> {
        config.validate().iter().map(|v| v.key).collect()
    }

    #[test]
    fn defaults_are_valid_and_channels_unconfigured() {
        let config = AlertsConfig::default();
        assert!(config.validate().is_empty());
        assert!(AlertChannel::ALL.iter().all(|c| !config.is_configured(*c)));
    }

    #[test]
    fn urls_and_addresses_are_checked() {
        let mut config = AlertsConfig::default();
        config.slack.webhook_url = "not a url".into();
        config.webhook.url = "ftp://example.com/x".into();
        assert_eq!(keys(&config), ["cache.alerts.webhook.url", "cache.alerts.slack.webhook_url"]);
        config.slack.webhook_url = "https://hooks.slack.com/services/T/B/X".into();
        config.webhook.url = "http://127.0.0.1:9/hook".into();
        assert!(keys(&config).is_empty());
        config.email.smtp_host = "localhost".into();
        config.email.from = "inferno".into();
        assert_eq!(keys(&config), ["cache.alerts.email.from", "cache.alerts.email.to"]);
        config.email.from = "Inferno <inferno@example.com>".into();
        config.email.to = vec!["ops@example.com".into()];
        config.email.username = "u".into();
        config.email.password_file = "/nonexistent/inferno-password".into();
        assert_eq!(keys(&config), ["cache.alerts.email.password_file"]);
    }

    #[test]
    fn timing_is_checked() {
        let config = AlertsConfig {
            evaluation_interval_seconds: Span(std::time::Duration::from_millis(10)),
            min_samples: 0,
            ..AlertsConfig::default()
        };
        assert_eq!(keys(&config), ["cache.alerts.evaluation_interval_seconds", "cache.alerts.min_samples"]);
        assert_eq!("slack".parse::<AlertChannel>(), Ok(AlertChannel::Slack));
        assert!("pager".parse::<AlertChannel>().is_err());
    }
}
