//! Alerts end to end: a server whose hit ratio falls below the threshold delivers a firing alert to a real
//! webhook receiver (HMAC checked), a Slack receiver and an SMTP server, then a resolved one after hits;
//! `cache alerts test` and `cache alerts status`; the history in `cache report`; bad channel settings.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::receivers::{HttpReceiver, SmtpSink};
use crate::server::{Server, with_tiny_model};
use crate::tools;
use crate::util::{Sandbox, stderr, stdout};

fn completion(prompt: &str) -> Value {
    json!({"model": "tiny", "prompt": prompt, "temperature": 0, "max_tokens": 4})
}

/// `[cache.alerts]` with all three channels pointing at the receivers.
fn channels_toml(http: &HttpReceiver, smtp_port: u16, hook: &str) -> String {
    format!(
        r#"
[cache.alerts.webhook]
url = "{base}{hook}"
secret = "s3cret"

[cache.alerts.slack]
webhook_url = "{base}/slack"

[cache.alerts.email]
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
tls = "none"
from = "Inferno <inferno@example.com>"
to = ["ops@example.com", "oncall@example.com"]
"#,
        base = http.base
    )
}

fn verify_signature(body: &[u8], header: Option<&str>) {
    let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
    mac.update(body);
    let want: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(header, Some(format!("sha256={want}").as_str()), "X-Inferno-Signature");
}

#[test]
fn a_low_hit_ratio_fires_to_every_channel_then_resolves() {
    let Some(python) = tools::python_with(&["aiosmtpd"], "alert mail") else { return };
    let (sb, models) = with_tiny_model();
    let http = HttpReceiver::start();
    let smtp = SmtpSink::start(python);
    sb.write_project(&format!(
        r#"
[cache.metrics]
prometheus_enabled = true

[cache.alerts]
enabled = true
channels = ["webhook", "slack", "email"]
evaluation_interval_seconds = 1
window_minutes = "3s"
min_samples = 3
for_minutes = 0

[cache.alerts.thresholds]
hit_ratio_min = 0.99
compression_ratio_min = 0
{}"#,
        channels_toml(&http, smtp.port, "/hook")
    ));
    let server = Server::start(&sb, &models, &[], &[]);
    for i in 0..4 {
        let reply = server.post("/v1/completions", &completion(&format!("miss {i}")), &[]);
        assert_eq!(reply.cache.as_deref(), Some("MISS"));
    }
    let limit = Duration::from_secs(20);
    let firing = http.wait_for("/hook", limit, |a| a["rule"] == "hit_ratio" && a["state"] == "firing");
    verify_signature(&firing.body, firing.header("x-inferno-signature"));
    assert_eq!(firing.header("content-type"), Some("application/json"));
    let alert = firing.json();
    assert_eq!(alert["value"], 0.0);
    assert_eq!(alert["threshold"], 0.99);
    assert_eq!(alert["window_seconds"], 3);
    assert_eq!(alert["version"], 1);
    assert_eq!(alert["cache_dir"], sb.default_cache_dir().display().to_string());
    assert!(alert["host"].as_str().is_some_and(|h| !h.is_empty()));
    assert!(alert["started_at"].as_str().unwrap().ends_with('Z'));
    assert!(alert["summary"].as_str().unwrap().contains("hit ratio 0.0%"), "{alert}");
    let slack = http.wait_for("/slack", limit, |p| p["text"].as_str().unwrap().contains("FIRING] hit_ratio"));
    assert_eq!(slack.json()["blocks"][0]["type"], "header");
    let mail = smtp.wait_for("[inferno FIRING] hit_ratio", limit);
    assert!(mail.contains("X-Envelope-To: ops@example.com,oncall@example.com"), "{mail}");
    assert!(mail.contains("rule: hit_ratio") && mail.contains("threshold: 0.99"), "{mail}");

    let live = sb.cmd().args(["cache", "alerts", "status", "--json"]).output().unwrap();
    assert!(live.status.success(), "{}", stderr(&live));
    let view: Value = serde_json::from_slice(&live.stdout).unwrap();
    assert_eq!(view["source"], "server");
    let rule = view["rules"].as_array().unwrap().iter().find(|r| r["rule"] == "hit_ratio").unwrap().clone();
    assert_eq!((rule["state"].clone(), rule["threshold"].clone()), (json!("firing"), json!(0.99)));

    // Hits only, until the misses have left the 3 s window and the rule resolves.
    let deadline = std::time::Instant::now() + limit;
    while http.on("/hook").iter().all(|r| r.json()["state"] != "resolved") {
        assert!(std::time::Instant::now() < deadline, "no resolved alert");
        let reply = server.post("/v1/completions", &completion("miss 0"), &[]);
        assert_eq!(reply.cache.as_deref(), Some("HIT"));
        std::thread::sleep(Duration::from_millis(100));
    }
    let resolved = http.wait_for("/hook", limit, |a| a["state"] == "resolved");
    verify_signature(&resolved.body, resolved.header("x-inferno-signature"));
    assert!(resolved.json()["ended_at"].is_string());
    smtp.wait_for("[inferno RESOLVED] hit_ratio", limit);
    http.wait_for("/slack", limit, |p| p["text"].as_str().unwrap().contains("RESOLVED] hit_ratio"));

    let metrics = server.get("/metrics", &[]).text;
    for channel in ["webhook", "slack", "email"] {
        let line = format!("inferno_alerts_sent_total{{channel=\"{channel}\",outcome=\"delivered\"}} ");
        let n: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .unwrap_or_else(|| panic!("no {line} in /metrics"))
            .parse()
            .unwrap();
        assert!(n >= 2.0, "{line}{n}");
    }
    assert_eq!(server.stop(libc::SIGTERM), Some(0));

    let report = sb.cmd().args(["cache", "report", "--json"]).output().unwrap();
    assert!(report.status.success(), "{}", stderr(&report));
    let report: Value = serde_json::from_slice(&report.stdout).unwrap();
    let alerts = report["alerts"].as_array().unwrap();
    let states: Vec<&str> = alerts
        .iter()
        .filter(|e| e["alert"]["rule"] == "hit_ratio")
        .map(|e| e["alert"]["state"].as_str().unwrap())
        .collect();
    assert_eq!(&states[..2], ["firing", "resolved"]);
    assert!(alerts[0]["deliveries"].as_array().unwrap().iter().all(|d| d["ok"] == true), "{}", alerts[0]);
    let text = stdout(&sb.cmd().args(["cache", "report"]).output().unwrap());
    assert!(text.contains("hit_ratio") && text.contains("-> email, slack, webhook"), "{text}");
    let offline = stdout(&sb.cmd().args(["cache", "alerts", "status"]).output().unwrap());
    assert!(
        offline.contains("from the recorded history") && offline.contains("last notification: resolved"),
        "{offline}"
    );
}

#[test]
fn alerts_test_reports_each_channel_and_exits_1_on_a_failure() {
    let Some(python) = tools::python_with(&["aiosmtpd"], "alert mail") else { return };
    let sb = Sandbox::new();
    let http = HttpReceiver::start();
    let smtp = SmtpSink::start(python);
    let config = |hook: &str| {
        format!(
            "[cache.alerts]\nenabled = true\nchannels = [\"webhook\", \"slack\", \"email\"]\n{}",
            channels_toml(&http, smtp.port, hook)
        )
    };
    sb.write_project(&config("/hook"));
    let out = sb.cmd().args(["cache", "alerts", "test"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for channel in ["webhook", "slack", "email"] {
        assert!(text.contains(&format!("{channel}: delivered (1 attempt)")), "{text}");
    }
    let hook = http.wait_for("/hook", Duration::from_secs(5), |a| a["state"] == "test");
    verify_signature(&hook.body, hook.header("x-inferno-signature"));
    smtp.wait_for("[inferno TEST] test", Duration::from_secs(5));
    assert_eq!(http.on("/slack").len(), 1);

    let only = sb.cmd().args(["cache", "alerts", "test", "--channel", "slack"]).output().unwrap();
    assert!(only.status.success());
    assert_eq!(stdout(&only).lines().count(), 1);
    assert_eq!(http.on("/slack").len(), 2);
    assert_eq!(http.on("/hook").len(), 1);

    sb.write_project(&config("/fail"));
    let out = sb.cmd().args(["cache", "alerts", "test", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let webhook =
        doc["deliveries"].as_array().unwrap().iter().find(|d| d["channel"] == "webhook").unwrap().clone();
    assert_eq!(webhook["ok"], false);
    assert!(webhook["error"].as_str().unwrap().contains("500"), "{webhook}");
    assert!(stderr(&out).contains("1 of 3 alert channels failed"), "{}", stderr(&out));

    let bad = sb.cmd().args(["cache", "alerts", "test", "--channel", "pager"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));

    // Nobody listens on the SMTP port any more: a clear failure, exit 1.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    sb.write_project(
        &config("/hook").replace(&format!("smtp_port = {}", smtp.port), &format!("smtp_port = {closed}")),
    );
    let out = sb.cmd().args(["cache", "alerts", "test", "--channel", "email"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).starts_with("email: FAILED after 1 attempt: SMTP: "), "{}", stdout(&out));

    // A Slack URL nobody answers: the error says why without printing the (secret) URL.
    let slack = format!("http://127.0.0.1:{closed}/services/T0/B0/SECRET");
    sb.write_project(&config("/hook").replace(&format!("{}/slack", http.base), &slack));
    let out = sb.cmd().args(["cache", "alerts", "test", "--channel", "slack"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.starts_with("slack: FAILED after 1 attempt: ") && !text.contains("SECRET"), "{text}");
}

#[test]
fn a_failing_webhook_is_retried_counted_and_recorded_while_serving_goes_on() {
    let (sb, models) = with_tiny_model();
    let http = HttpReceiver::start();
    sb.write_project(&format!(
        "[cache.metrics]\nprometheus_enabled = true\n\n[cache.alerts]\nenabled = true\nchannels = [\"webhook\"]\n\
         evaluation_interval_seconds = 1\nwindow_minutes = \"30s\"\nmin_samples = 1\nfor_minutes = 0\n\n\
         [cache.alerts.thresholds]\nhit_ratio_min = 0.99\ncompression_ratio_min = 0\n\n\
         [cache.alerts.webhook]\nurl = \"{}/fail\"\n",
        http.base
    ));
    let server = Server::start(&sb, &models, &[], &[]);
    assert_eq!(server.post("/v1/completions", &completion("y"), &[]).cache.as_deref(), Some("MISS"));
    let sample = |outcome: &str| {
        let line = format!("inferno_alerts_sent_total{{channel=\"webhook\",outcome=\"{outcome}\"}} ");
        let text = server.get("/metrics", &[]).text;
        text.lines().find_map(|l| l.strip_prefix(&line)).map_or(0.0, |v| v.parse::<f64>().unwrap())
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while sample("failed") < 1.0 {
        assert!(std::time::Instant::now() < deadline, "the delivery was never given up");
        assert_eq!(server.post("/v1/completions", &completion("y"), &[]).status, 200, "serving goes on");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!((sample("retried"), sample("delivered")), (3.0, 0.0));
    assert_eq!(http.on("/fail").len(), 4, "four attempts");
    let path = sb.default_cache_dir().join("alerts.jsonl");
    while !std::fs::read_to_string(&path).is_ok_and(|t| t.ends_with('\n')) {
        assert!(std::time::Instant::now() < deadline, "the alert was not recorded");
        std::thread::sleep(Duration::from_millis(50));
    }
    let history = sb.read(&path);
    let entry: Value = serde_json::from_str(history.lines().next().unwrap()).unwrap();
    assert_eq!(entry["deliveries"][0]["attempts"], 4);
    assert_eq!(entry["deliveries"][0]["ok"], false);
    assert!(entry["deliveries"][0]["error"].as_str().unwrap().contains("500"), "{entry}");
}

#[test]
fn a_channel_without_its_table_is_not_configured_and_secrets_are_masked() {
    let sb = Sandbox::new();
    // The guide's own example: channels named, no tables.
    sb.write_project(
        "[cache.alerts]\nenabled = true\nchannels = [\"email\", \"slack\"]\n\n[cache.alerts.webhook]\nsecret = \"hush\"\n",
    );
    let out = sb.cmd().args(["cache", "status"]).output().unwrap();
    let text = stdout(&out);
    assert!(text.contains("Alerts: enabled; channels: email (not configured"), "{text}");
    assert!(text.contains("slack (not configured"), "{text}");
    assert!(!text.contains("hush"), "{text}");
    assert!(!text.lines().any(|l| l.contains("cache.alerts") && l.ends_with('*')), "{text}");
    let status = sb.status(&[], &[]);
    assert_eq!(status.value("cache.alerts.webhook.secret"), "(set)");
    assert_eq!(
        status.0["alerts"]["channels"],
        json!([{"channel": "email", "configured": false}, {"channel": "slack", "configured": false}])
    );
    assert_eq!(status.setting("cache.alerts.enabled")["active"], true);
    let test = sb.cmd().args(["cache", "alerts", "test"]).output().unwrap();
    assert_eq!(test.status.code(), Some(1));
    assert!(stdout(&test).contains("email: not configured"), "{}", stdout(&test));
    assert!(stderr(&test).contains("no alert channel is configured"), "{}", stderr(&test));
}

#[test]
fn bad_channel_settings_exit_2_naming_the_key_and_line() {
    let sb = Sandbox::new();
    let file = sb.write_project("[cache.alerts.slack]\nwebhook_url = \"not a url\"\n");
    let out = sb.cmd().args(["cache", "status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}:2:", file.display())) && err.contains("cache.alerts.slack.webhook_url"),
        "{err}"
    );

    sb.write_project(
        "[cache.alerts.email]\nsmtp_host = \"127.0.0.1\"\nfrom = \"a@example.com\"\nto = [\"b@example.com\"]\n\
         username = \"u\"\npassword_file = \"missing-password\"\n",
    );
    let out = sb.cmd().args(["cache", "alerts", "test", "--channel", "email"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains(":6:") && err.contains("cache.alerts.email.password_file"), "{err}");
}

#[test]
fn a_hanging_webhook_does_not_slow_serving() {
    let (sb, models) = with_tiny_model();
    let http = HttpReceiver::start();
    sb.write_project(&format!(
        "[cache.alerts]\nenabled = true\nchannels = [\"webhook\"]\nevaluation_interval_seconds = 1\n\
         window_minutes = \"5s\"\nmin_samples = 1\nfor_minutes = 0\n\n[cache.alerts.thresholds]\n\
         hit_ratio_min = 0.99\ncompression_ratio_min = 0\n\n[cache.alerts.webhook]\nurl = \"{}/hang\"\n",
        http.base
    ));
    let server = Server::start(&sb, &models, &[], &[]);
    server.post("/v1/completions", &completion("x"), &[]);
    http.wait_for("/hang", Duration::from_secs(10), |a| a["state"] == "firing");
    for _ in 0..20 {
        let started = std::time::Instant::now();
        assert_eq!(server.post("/v1/completions", &completion("x"), &[]).cache.as_deref(), Some("HIT"));
        assert!(started.elapsed() < Duration::from_secs(1), "a request waited on the alert delivery");
    }
}
