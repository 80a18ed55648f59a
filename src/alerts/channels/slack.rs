//! The Slack channel: POSTs an incoming-webhook payload (`text` plus blocks) to
//! `cache.alerts.slack.webhook_url`.

use crate::alerts::Alert;

/// Sends `alert` once; an answer outside 2xx is an error.
pub async fn send(client: &reqwest::Client, url: &str, alert: &Alert) -> Result<(), String> {
    let body = serde_json::to_vec(&alert.slack_payload()).map_err(|e| e.to_string())?;
    let request = client.post(url).header("content-type", "application/json").body(body);
    super::check_answer(request.send().await).await
}
