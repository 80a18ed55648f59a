//! The webhook channel: POSTs the alert's JSON body to `cache.alerts.webhook.url`, signed with
//! `X-Inferno-Signature: sha256=<hex HMAC-SHA256 of the body>` when `cache.alerts.webhook.secret` is set.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::alerts::Alert;

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "X-Inferno-Signature";

/// `sha256=<hex>`: the HMAC-SHA256 of `body` under `secret`, as the header carries it.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Sends `alert` once; an answer outside 2xx is an error.
pub async fn send(client: &reqwest::Client, url: &str, secret: &str, alert: &Alert) -> Result<(), String> {
    let body = alert.webhook_body();
    let mut request = client.post(url).header("content-type", "application/json");
    if !secret.is_empty() {
        request = request.header(SIGNATURE_HEADER, signature(secret, &body));
    }
    super::check_answer(request.body(body).send().await).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_hmac() {
        // RFC 4231 test case 2.
        let sig = signature("Jefe", b"what do ya want for nothing?");
        assert_eq!(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
