//! The "access" section of `inferno cache report`, from the audit records of the period: requests per
//! client and key id and how many were hits (from `lookup` records, written with `cache.audit.log_reads`),
//! the keys hit most, and the requests refused for a missing or wrong key.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Outcome, Record};

/// How many of the keys hit most are listed.
pub const TOP_KEYS: usize = 10;

/// One client, by address (without the port) and the id of the key it used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClientRequests {
    /// IP address, or `socket` / `cli`.
    pub client: String,
    /// The key's id, when it sent one.
    pub key_id: Option<String>,
    /// Lookups made for it.
    pub requests: u64,
    /// Of those, hits.
    pub hits: u64,
    /// Requests of it refused.
    pub denied: u64,
}

/// A response key and its hits in the period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyHits {
    /// The request key (a hash, never text).
    pub key: String,
    /// Hits.
    pub hits: u64,
}

/// The access section.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Access {
    /// Lookups recorded (0 unless `cache.audit.log_reads` was on).
    pub lookups: u64,
    /// Per client and key id, most requests first.
    pub clients: Vec<ClientRequests>,
    /// The keys hit most, most first.
    pub top_keys: Vec<KeyHits>,
    /// Requests refused (admin requests always; others with `log_reads`).
    pub denied: u64,
    /// Administrative actions recorded.
    pub admin_actions: u64,
}

/// The access section of `records`.
pub fn summarize(records: &[Record]) -> Access {
    let mut out = Access::default();
    let mut clients: BTreeMap<(String, Option<String>), ClientRequests> = BTreeMap::new();
    let mut keys: BTreeMap<String, u64> = BTreeMap::new();
    for r in records {
        let client = r.who.client.as_deref().map_or_else(
            || r.who.via.clone(),
            |c| c.parse::<std::net::SocketAddr>().map_or_else(|_| c.to_string(), |a| a.ip().to_string()),
        );
        let id = (client.clone(), r.who.key_id.clone());
        let entry =
            || ClientRequests { client, key_id: r.who.key_id.clone(), requests: 0, hits: 0, denied: 0 };
        match (r.action.as_str(), r.outcome) {
            ("lookup", _) => {
                out.lookups += 1;
                let row = clients.entry(id).or_insert_with(entry);
                row.requests += 1;
                if r.arguments["hit"] == true {
                    row.hits += 1;
                    if let Some(key) = r.arguments["key"].as_str() {
                        *keys.entry(key.to_string()).or_default() += 1;
                    }
                }
            }
            (_, Outcome::Denied) => {
                out.denied += 1;
                clients.entry(id).or_insert_with(entry).denied += 1;
            }
            _ => out.admin_actions += 1,
        }
    }
    out.clients = clients.into_values().collect();
    out.clients.sort_by_key(|c| std::cmp::Reverse(c.requests + c.denied));
    let mut top: Vec<KeyHits> = keys.into_iter().map(|(key, hits)| KeyHits { key, hits }).collect();
    top.sort_by(|a, b| b.hits.cmp(&a.hits).then_with(|| a.key.cmp(&b.key)));
    top.truncate(TOP_KEYS);
    out.top_keys = top;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Who;
    use serde_json::json;

    #[test]
    fn clients_keys_and_refusals_are_counted() {
        let who = |client: &str, key: Option<&str>| Who {
            via: "http".into(),
            client: Some(client.into()),
            key_id: key.map(str::to_string),
            ..Who::default()
        };
        let lookup = |client, key, hit, k: &str| {
            Record::now("lookup", json!({"key": k, "hit": hit}), Outcome::Ok, who(client, key))
        };
        let records = vec![
            lookup("10.0.0.1:5000", Some("aaaa0000"), true, "k1"),
            lookup("10.0.0.1:5001", Some("aaaa0000"), true, "k1"),
            lookup("10.0.0.1:5002", Some("aaaa0000"), false, "k2"),
            lookup("10.0.0.2:7000", None, true, "k2"),
            Record::now("denied", json!({}), Outcome::Denied, who("10.0.0.9:1", None)),
            Record::now("clear", json!([]), Outcome::Ok, Who::this_process()),
        ];
        let access = summarize(&records);
        assert_eq!((access.lookups, access.denied, access.admin_actions), (4, 1, 1));
        assert_eq!(access.clients[0].client, "10.0.0.1");
        assert_eq!((access.clients[0].requests, access.clients[0].hits), (3, 2));
        assert_eq!(access.top_keys[0], KeyHits { key: "k1".into(), hits: 2 });
        assert_eq!(access.clients.iter().find(|c| c.client == "10.0.0.9").unwrap().denied, 1);
    }
}
