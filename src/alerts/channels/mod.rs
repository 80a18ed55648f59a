//! Delivery of alerts to the configured channels, all at once, each with retries and exponential backoff,
//! counted in `inferno_alerts_sent_total{channel,outcome}` (`delivered`, `retried`, `failed`).
//!
//! A channel named in `cache.alerts.channels` whose table does not say where to send is "not configured":
//! it is reported, never tried.

pub mod email;
pub mod slack;
pub mod webhook;

use std::time::Duration;

use prometheus::{Encoder, IntCounterVec, Opts, Registry, TextEncoder};
use serde::{Deserialize, Serialize};

use super::Alert;
use crate::config::{AlertChannel, AlertsConfig};

/// How hard to try one channel.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// Wait before the second attempt; doubled before each later one.
    pub first_delay: Duration,
    /// Limit of one attempt (connect, send, answer).
    pub timeout: Duration,
}

impl Retry {
    /// What `inferno serve` does: 4 attempts, 1 s, 2 s and 4 s apart, 10 s each.
    pub const SERVE: Retry =
        Retry { attempts: 4, first_delay: Duration::from_secs(1), timeout: Duration::from_secs(10) };
    /// What `inferno cache alerts test` does: one attempt of 10 s, reported at once.
    pub const ONCE: Retry =
        Retry { attempts: 1, first_delay: Duration::ZERO, timeout: Duration::from_secs(10) };
}

/// What happened on one channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// `webhook`, `slack` or `email`.
    pub channel: String,
    /// Whether an attempt succeeded.
    pub ok: bool,
    /// Attempts made.
    pub attempts: u32,
    /// The last attempt's error, when none succeeded.
    pub error: Option<String>,
}

enum Sender {
    Webhook { url: String, secret: String },
    Slack { url: String },
    Email(Box<email::Mailer>),
}

/// The channels alerts go to.
pub struct Channels {
    senders: Vec<(AlertChannel, Result<Sender, String>)>,
    not_configured: Vec<AlertChannel>,
    client: reqwest::Client,
    retry: Retry,
    sent: IntCounterVec,
    registry: Registry,
}

impl Channels {
    /// The channels of `config.channels` (only `only`, when given) that are configured.
    pub fn new(config: &AlertsConfig, only: Option<AlertChannel>, retry: Retry) -> Self {
        let client = reqwest::Client::builder()
            .timeout(retry.timeout)
            .user_agent(concat!("inferno/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        let mut named: Vec<AlertChannel> = config.channels.clone();
        named.sort();
        named.dedup();
        named.retain(|c| only.is_none_or(|o| o == *c));
        let (configured, not_configured): (Vec<_>, Vec<_>) =
            named.into_iter().partition(|c| config.is_configured(*c));
        let senders = configured
            .into_iter()
            .map(|channel| {
                let sender = match channel {
                    AlertChannel::Webhook => Ok(Sender::Webhook {
                        url: config.webhook.url.clone(),
                        secret: config.webhook.secret.clone(),
                    }),
                    AlertChannel::Slack => Ok(Sender::Slack { url: config.slack.webhook_url.clone() }),
                    AlertChannel::Email => {
                        email::Mailer::new(&config.email, retry.timeout).map(|m| Sender::Email(Box::new(m)))
                    }
                };
                (channel, sender)
            })
            .collect();
        let registry = Registry::new();
        let sent = IntCounterVec::new(
            Opts::new("inferno_alerts_sent_total", "Alert notifications by channel and outcome."),
            &["channel", "outcome"],
        )
        .expect("valid metric");
        registry.register(Box::new(sent.clone())).expect("unique metric");
        let channels = Self { senders, not_configured, client, retry, sent, registry };
        for (channel, _) in &channels.senders {
            for outcome in ["delivered", "retried", "failed"] {
                channels.sent.with_label_values(&[channel.name(), outcome]);
            }
        }
        channels
    }

    /// Channels named in `cache.alerts.channels` without their table.
    pub fn not_configured(&self) -> &[AlertChannel] {
        &self.not_configured
    }

    /// Channels that will be tried.
    pub fn configured(&self) -> Vec<AlertChannel> {
        self.senders.iter().map(|(c, _)| *c).collect()
    }

    /// Sends `alert` to every configured channel at once, retrying each as [`Retry`] says.
    pub async fn deliver(&self, alert: &Alert) -> Vec<Delivery> {
        let tries = self.senders.iter().map(|(channel, sender)| self.deliver_one(*channel, sender, alert));
        futures_util::future::join_all(tries).await
    }

    async fn deliver_one(
        &self,
        channel: AlertChannel,
        sender: &Result<Sender, String>,
        alert: &Alert,
    ) -> Delivery {
        let name = channel.name();
        let mut delay = self.retry.first_delay;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let result = match sender {
                Err(e) => Err(e.clone()),
                Ok(Sender::Webhook { url, secret }) => webhook::send(&self.client, url, secret, alert).await,
                Ok(Sender::Slack { url }) => slack::send(&self.client, url, alert).await,
                Ok(Sender::Email(mailer)) => mailer.send(alert).await,
            };
            match result {
                Ok(()) => {
                    self.sent.with_label_values(&[name, "delivered"]).inc();
                    tracing::info!(
                        channel = name,
                        rule = alert.rule,
                        state = alert.state.name(),
                        "alert delivered"
                    );
                    return Delivery { channel: name.into(), ok: true, attempts, error: None };
                }
                Err(error) if attempts < self.retry.attempts && sender.is_ok() => {
                    self.sent.with_label_values(&[name, "retried"]).inc();
                    tracing::warn!(
                        channel = name,
                        attempt = attempts,
                        "alert delivery failed, retrying in {delay:?}: {error}"
                    );
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(error) => {
                    self.sent.with_label_values(&[name, "failed"]).inc();
                    tracing::error!(
                        channel = name,
                        attempts,
                        rule = alert.rule,
                        "alert not delivered: {error}"
                    );
                    return Delivery { channel: name.into(), ok: false, attempts, error: Some(error) };
                }
            }
        }
    }

    /// `inferno_alerts_sent_total` in Prometheus text format.
    pub fn encode_metrics(&self) -> Result<String, prometheus::Error> {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// An HTTP answer as a delivery result: 2xx is delivered; anything else names the status and the body's start.
async fn check_answer(answer: Result<reqwest::Response, reqwest::Error>) -> Result<(), String> {
    // Without the URL: a Slack webhook URL is a secret, and errors are logged and recorded.
    let response = answer.map_err(|e| describe(&e.without_url()))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    let body: String = body.chars().take(200).collect();
    Err(format!("the receiver answered {status}: {body}"))
}

/// A reqwest error with its causes (reqwest's own message omits them).
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() { "timed out".to_string() } else { error.to_string() };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}
