//! Alerts that reach people: rules evaluated by `inferno serve` over a sliding window, each going
//! pending → firing → resolved, and notifications delivered to webhook, Slack and email off the request path.
//!
//! - [`window`]: the served requests of the last `window_minutes` (cache result and time to last byte).
//! - [`rules`]: the rules, what they measure, and the per-rule state machine.
//! - [`alert`]: one notification's facts, and its webhook, Slack and mail renderings.
//! - [`channels`]: delivery with retries and backoff, counted in `inferno_alerts_sent_total`.
//! - [`history`]: `alerts.jsonl` in the cache directory: what fired, resolved, and where it was delivered.
//! - [`engine`]: the evaluator a server runs, and the view `cache alerts status` prints.
//!
//! docs/alerts.md describes the behaviour and the payloads.

pub mod alert;
pub mod channels;
pub mod engine;
pub mod history;
pub mod rules;
pub mod window;

pub use alert::{Alert, Notice};
pub use engine::{AlertsView, ChannelView, Engine, RuleView};
pub use rules::{Rule, RuleState};
