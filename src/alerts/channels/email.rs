//! The email channel: a plain-text mail with the alert's facts, sent over SMTP (lettre) to
//! `cache.alerts.email.to` through `smtp_host:smtp_port`, with `tls = "none" | "starttls" | "tls"` and, when
//! `username` is set, the password read from `password_file`.

use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::alerts::Alert;
use crate::config::{EmailConfig, SmtpTls};

/// A ready SMTP transport and the addresses.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl Mailer {
    /// The mailer `config` describes; errors name the key at fault.
    pub fn new(config: &EmailConfig, timeout: Duration) -> Result<Self, String> {
        let host = config.smtp_host.as_str();
        let builder = match config.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|e| format!("cache.alerts.email.smtp_host {host:?}: {e}"))?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .map_err(|e| format!("cache.alerts.email.smtp_host {host:?}: {e}"))?,
        };
        let mut builder = builder.port(config.smtp_port).timeout(Some(timeout));
        if !config.username.is_empty() {
            let password = if config.password_file.as_os_str().is_empty() {
                String::new()
            } else {
                let text = std::fs::read_to_string(&config.password_file).map_err(|e| {
                    format!(
                        "cache.alerts.email.password_file: cannot read {}: {e}",
                        config.password_file.display()
                    )
                })?;
                text.trim_end_matches(['\r', '\n']).to_string()
            };
            builder = builder.credentials(Credentials::new(config.username.clone(), password));
        }
        let parse = |key: &str, text: &str| {
            text.parse::<Mailbox>().map_err(|e| format!("cache.alerts.email.{key} {text:?}: {e}"))
        };
        let from = parse("from", &config.from)?;
        let to = config.to.iter().map(|a| parse("to", a)).collect::<Result<Vec<_>, _>>()?;
        if to.is_empty() {
            return Err("cache.alerts.email.to: no recipients".into());
        }
        Ok(Self { transport: builder.build(), from, to })
    }

    /// Sends `alert` once.
    pub async fn send(&self, alert: &Alert) -> Result<(), String> {
        let mut message = Message::builder().from(self.from.clone()).subject(alert.title());
        for to in &self.to {
            message = message.to(to.clone());
        }
        let message =
            message.header(ContentType::TEXT_PLAIN).body(alert.mail_body()).map_err(|e| e.to_string())?;
        self.transport.send(message).await.map(drop).map_err(|e| format!("SMTP: {e}"))
    }
}
