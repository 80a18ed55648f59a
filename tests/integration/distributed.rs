//! The remote tier (`[cache.distributed]`) end to end: real `inferno serve` processes on real `redis-server`s
//! (see `redis_nodes.rs`): responses shared between replicas through a standalone server and through a cluster,
//! damaged values, replication acknowledgements, `cache status` / `stats` / `clear`, and Redis being down.

use serde_json::{Value, json};

use std::time::{Duration, Instant};

use crate::redis_nodes::{Cluster, Node, SLOTS, free_port, redis_server, shared_cluster, wait_for};
use crate::server::{Server, with_tiny_model};
use crate::util::{Sandbox, stdout};

fn completion(prompt: &str) -> Value {
    json!({"model": "tiny", "prompt": prompt, "temperature": 0, "max_tokens": 8})
}

/// The env that turns the remote tier on with these seeds.
fn remote_env(seeds: &str, factor: u32) -> Vec<(&'static str, String)> {
    vec![
        ("INFERNO_CACHE__DISTRIBUTED__ENABLED", "true".into()),
        ("INFERNO_CACHE__DISTRIBUTED__CLUSTER_NODES", seeds.into()),
        ("INFERNO_CACHE__DISTRIBUTED__REPLICATION_FACTOR", factor.to_string()),
        ("INFERNO_CACHE__METRICS__PROMETHEUS_ENABLED", "true".into()),
    ]
}

fn env_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// A server with its own sandbox (own cache directory) on the remote tier.
fn replica(env: &[(&'static str, String)]) -> (Sandbox, Server) {
    let (sb, dir) = with_tiny_model();
    let server = Server::start(&sb, &dir, &[], &env_refs(env));
    (sb, server)
}

/// The value of one sample in `/metrics`, 0 when absent.
fn metric(server: &Server, sample: &str) -> f64 {
    let text = server.get("/metrics", &[]).text;
    text.lines()
        .find_map(|l| l.strip_prefix(sample).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

fn remote_status(sb: &Sandbox, env: &[(&'static str, String)]) -> Value {
    sb.status(&[], &env_refs(env)).0["cache"]["remote"].clone()
}

#[test]
fn standalone_a_response_computed_by_one_server_is_a_hit_on_another() {
    let Some(bin) = redis_server() else { return };
    let redis = Node::start(&bin, false);
    // No replica: every write is under-replicated for a factor of 2, and still no request fails.
    let env = remote_env(&redis.addr(), 2);
    let (_sa, a) = replica(&env);
    let first = a.post("/v1/completions", &completion("abc"), &[]);
    assert_eq!((first.status, first.cache.as_deref()), (200, Some("MISS")), "{}", first.text);
    let key = format!("inferno:v1:resp:{}", first.key.clone().unwrap());
    wait_for("the write-behind to reach Redis", || redis.cmd::<bool>(&["EXISTS", &key]));

    let value: Vec<u8> = redis.cmd(&["GET", &key]);
    assert_eq!(&value[..4], b"IREC", "the disk tier's record framing");
    let ttl: i64 = redis.cmd(&["TTL", &key]);
    assert!((86_390..=86_400).contains(&ttl), "TTL mirrors response.ttl_hours, inherited (24h): {ttl}");
    wait_for("the WAIT to time out and be counted", || {
        metric(&a, "inferno_cache_remote_under_replicated_writes_total") == 1.0
    });

    let (sb, b) = replica(&env);
    let hit = b.post("/v1/completions", &completion("abc"), &[]);
    assert_eq!((hit.status, hit.cache.as_deref()), (200, Some("HIT")), "{}", hit.text);
    assert_eq!(hit.json()["choices"], first.json()["choices"]);
    let metrics = b.get("/metrics", &[]).text;
    assert!(!metrics.contains("inferno_inference_duration_seconds_count"), "B ran no inference:\n{metrics}");
    assert_eq!(metric(&b, r#"inferno_cache_hits_total{tier="remote",type="response"}"#), 1.0);
    assert_eq!(metric(&b, "inferno_cache_remote_up"), 1.0);
    // The hit was kept locally: asking again does not go to Redis.
    assert_eq!(b.post("/v1/completions", &completion("abc"), &[]).cache.as_deref(), Some("HIT"));
    assert_eq!(metric(&b, r#"inferno_cache_remote_lookups_total{result="hit"}"#), 1.0);

    let status = remote_status(&sb, &env);
    assert_eq!((status["reachable"].clone(), status["mode"].clone()), (json!(true), json!("standalone")));
    assert_eq!(status["replicas_seen"], 0);
    assert!(
        status["error"].as_str().unwrap().contains("replication_factor = 2 needs 1 replicas"),
        "{status}"
    );

    // A damaged value is a miss (counted), never served; the answer is generated again and rewritten.
    redis.cmd::<()>(&["SETRANGE", &key, "100", "#"]);
    let (_sc, c) = replica(&env);
    let again = c.post("/v1/completions", &completion("abc"), &[]);
    assert_eq!((again.status, again.cache.as_deref()), (200, Some("MISS")));
    assert_eq!(metric(&c, r#"inferno_cache_remote_lookups_total{result="corrupt"}"#), 1.0);

    // `cache stats` of B after it stopped: its counters were saved.
    b.stop(libc::SIGTERM);
    let out = sb.cmd().args(["cache", "stats", "--json"]).envs(env_refs(&env)).output().unwrap();
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["remote"]["hits"], 1, "{stats}");
    assert_eq!(stats["remote"]["status"]["reachable"], true);
    let text = stdout(&sb.cmd().args(["cache", "stats"]).envs(env_refs(&env)).output().unwrap());
    assert!(text.contains("Remote tier: reachable, standalone"), "{text}");
    assert!(text.contains("lookups: 1 hits"), "{text}");
}

#[test]
fn cluster_a_response_computed_by_one_server_is_a_hit_on_another() {
    let Some(cluster) = shared_cluster() else { return };
    let env = remote_env(&cluster.seeds(), 2);
    let (_sa, a) = replica(&env);
    let first = a.post("/v1/completions", &completion("cluster"), &[]);
    assert_eq!(first.cache.as_deref(), Some("MISS"));
    let key = format!("inferno:v1:resp:{}", first.key.clone().unwrap());
    wait_for("the write-behind to reach Redis", || cluster.cmd::<bool>(&["EXISTS", &key]));
    assert_eq!(metric(&a, r#"inferno_cache_remote_writes_total{result="ok"}"#), 1.0);
    assert_eq!(metric(&a, "inferno_cache_remote_under_replicated_writes_total"), 0.0, "WAIT 1 was met");

    let (sb, b) = replica(&env);
    let hit = b.post("/v1/completions", &completion("cluster"), &[]);
    assert_eq!((hit.status, hit.cache.as_deref()), (200, Some("HIT")), "{}", hit.text);
    assert_eq!(hit.json()["choices"], first.json()["choices"]);
    assert!(!b.get("/metrics", &[]).text.contains("inferno_inference_duration_seconds_count"));

    let status = remote_status(&sb, &env);
    assert_eq!(status["mode"], "cluster", "{status}");
    assert_eq!((status["primaries"].clone(), status["replicas_seen"].clone()), (json!(3), json!(1)));
    assert!(status["error"].is_null(), "{status}");

    // `clear` walks every primary with SCAN; --type model selects no remote key, --pattern this key does.
    b.stop(libc::SIGTERM);
    let clear = |args: &[&str]| {
        let out =
            sb.cmd().args(["cache", "clear", "--yes"]).args(args).envs(env_refs(&env)).output().unwrap();
        assert!(out.status.success(), "{}", crate::util::stderr(&out));
        stdout(&out)
    };
    let text = clear(&["--type", "model"]);
    assert!(text.contains("Remote tier: removed 0 of 0 entries"), "{text}");
    let text = clear(&["--pattern", first.key.as_deref().unwrap()]);
    assert!(text.contains("Remote tier: removed 1 of ") && text.contains("on 3 nodes"), "{text}");
    assert!(!cluster.cmd::<bool>(&["EXISTS", &key]));
}

#[test]
fn redis_down_serves_from_the_local_tiers_and_status_says_unreachable() {
    let env = remote_env(&format!("127.0.0.1:{}", free_port()), 1);
    let (sb, server) = replica(&env);
    let first = server.post("/v1/completions", &completion("down"), &[]);
    assert_eq!((first.status, first.cache.as_deref()), (200, Some("MISS")));
    let second = server.post("/v1/completions", &completion("down"), &[]);
    assert_eq!((second.status, second.cache.as_deref()), (200, Some("HIT")));
    assert_eq!(metric(&server, "inferno_cache_remote_up"), 0.0);
    assert_eq!(metric(&server, r#"inferno_cache_remote_lookups_total{result="skipped"}"#), 1.0);
    assert_eq!(metric(&server, r#"inferno_cache_remote_writes_total{result="dropped"}"#), 1.0);

    let status = remote_status(&sb, &env);
    assert_eq!(status["reachable"], false, "{status}");
    assert!(status["error"].as_str().unwrap().contains("refused"), "{status}");
    let out = sb.cmd().args(["cache", "status"]).envs(env_refs(&env)).output().unwrap();
    assert!(stdout(&out).contains("Remote tier: unreachable"), "{}", stdout(&out));
}

#[test]
fn killing_a_primary_under_load_fails_no_request_and_its_keys_come_back_after_failover() {
    let Some(bin) = redis_server() else { return };
    let mut cluster = Cluster::form(&bin);
    let env = remote_env(&cluster.seeds(), 1);
    let (_sa, a) = replica(&env);
    let prompts: Vec<String> = (0..24).map(|i| format!("shard test {i}")).collect();
    let keys: Vec<String> = prompts
        .iter()
        .map(|p| format!("inferno:v1:resp:{}", a.post("/v1/completions", &completion(p), &[]).key.unwrap()))
        .collect();
    wait_for("every write to reach Redis", || keys.iter().all(|k| cluster.cmd::<bool>(&["EXISTS", k])));
    let on_dead: Vec<bool> = keys.iter().map(|k| cluster.slot(k) <= SLOTS[0].1).collect();
    let dead_count = on_dead.iter().filter(|d| **d).count();
    assert!(dead_count > 0 && dead_count < keys.len(), "keys spread over the shards");

    // B has none of them locally; `no-store` makes it look up every time and never store what it generates.
    let (_sb, b) = replica(&env);
    let no_store = [("cache-control", "no-store")];
    cluster.nodes[0].kill();
    let killed = Instant::now();
    let load = std::thread::scope(|scope| {
        let hammer = scope.spawn(|| {
            let mut statuses = Vec::new();
            while killed.elapsed() < Duration::from_secs(4) {
                let prompt = format!("load {}", statuses.len());
                statuses.push(b.post("/v1/completions", &completion(&prompt), &[]).status);
            }
            statuses
        });
        let mut dead_misses = 0;
        let mut live_hits = 0;
        let mut recovered = None;
        while recovered.is_none() && killed.elapsed() < Duration::from_secs(20) {
            for (prompt, dead) in prompts.iter().zip(&on_dead) {
                let reply = b.post("/v1/completions", &completion(prompt), &no_store);
                assert!(reply.status < 500, "a 5xx after the kill: {} {}", reply.status, reply.text);
                match (dead, reply.cache.as_deref()) {
                    (true, Some("HIT")) => recovered = recovered.or(Some(killed.elapsed())),
                    (true, _) => dead_misses += 1,
                    (false, Some("HIT")) => live_hits += 1,
                    (false, _) => {}
                }
            }
        }
        (hammer.join().unwrap(), dead_misses, live_hits, recovered)
    });
    let (statuses, dead_misses, live_hits, recovered) = load;
    assert!(statuses.iter().all(|s| *s < 500), "5xx under load: {statuses:?}");
    assert!(dead_misses > 0, "the dead shard's keys missed while its replica took over");
    assert!(live_hits > 0, "the other shards kept answering");
    let recovered = recovered.expect("the dead shard's keys hit again after failover");
    eprintln!(
        "dead shard's keys hit again {recovered:?} after the kill; {} requests under load",
        statuses.len()
    );
    assert!(recovered < Duration::from_secs(15), "{recovered:?}");
}

#[test]
fn the_documented_config_shares_responses_between_two_servers() {
    let Some(bin) = redis_server() else { return };
    let redis = Node::start(&bin, false);
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/distributed.md")).unwrap();
    let block = doc.split("```toml\n").nth(1).and_then(|b| b.split("```").next()).expect("a toml block");
    assert!(block.contains("[cache.distributed]\nenabled = true\n"), "{block}");
    // The environment overrides the documented seed with this test's server.
    let env = vec![("INFERNO_CACHE__DISTRIBUTED__CLUSTER_NODES", redis.addr())];
    let start = || {
        let (sb, dir) = with_tiny_model();
        sb.write_project(block);
        let server = Server::start(&sb, &dir, &[], &env_refs(&env));
        (sb, server)
    };
    let (_sa, a) = start();
    let first = a.post("/v1/completions", &completion("documented"), &[]);
    assert_eq!(first.cache.as_deref(), Some("MISS"));
    let key = format!("inferno:v1:resp:{}", first.key.unwrap());
    wait_for("the write-behind to reach Redis", || redis.cmd::<bool>(&["EXISTS", &key]));
    let (sb, b) = start();
    assert_eq!(b.post("/v1/completions", &completion("documented"), &[]).cache.as_deref(), Some("HIT"));
    let out = sb.cmd().args(["cache", "status"]).envs(env_refs(&env)).output().unwrap();
    let expected = format!(
        "Remote tier: reachable, standalone, 1 primary, at least 0 replicas each (replication_factor 1); seeds {}",
        redis.addr()
    );
    assert!(stdout(&out).contains(&expected), "{}", stdout(&out));
}

#[test]
fn the_kubernetes_example_config_loads() {
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/kubernetes/redis/inferno.yaml"
    ))
    .unwrap();
    let toml: String = yaml
        .lines()
        .skip_while(|l| l.trim() != "config.toml: |")
        .skip(1)
        .take_while(|l| l.starts_with("    ") || l.trim().is_empty())
        .map(|l| format!("{}\n", l.get(4..).unwrap_or("")))
        .collect();
    let sb = Sandbox::new();
    let file = sb.write("etc/k8s.toml", &toml);
    let status = sb.status(&["--config", file.to_str().unwrap()], &[]);
    assert_eq!(status.value("cache.distributed.enabled"), &json!(true));
    assert_eq!(status.value("cache.distributed.cluster_nodes"), &json!(["redis-0.redis:6379"]));
    assert_eq!(status.value("cache.distributed.replication_factor"), &json!(2));
    assert_eq!(status.value("server.bind"), &json!("0.0.0.0"));
    assert_eq!(status.0["cache"]["remote"]["reachable"], false, "no such host here");
}

#[test]
fn import_reaches_redis_and_clear_by_name_pattern_removes_only_matching_keys() {
    let Some(bin) = redis_server() else { return };
    let redis = Node::start(&bin, false);
    let sb = Sandbox::new();
    sb.write_project(&format!(
        "[cache.distributed]\nenabled = true\ncluster_nodes = [\"{}\"]\n",
        redis.addr()
    ));
    // Puts made while the first connection is still being made are queued, not dropped.
    let lines = crate::fixture::seed(&sb);
    assert_eq!(redis.cmd::<usize>(&["DBSIZE"]), lines.len());
    let llama = lines.iter().filter(|l| l["model"] == "llama-7b").count();
    assert!(llama > 0 && llama < lines.len());
    let text = crate::fixture::ok(&sb, &["cache", "clear", "--pattern", "llama*", "--yes"]);
    assert!(
        text.contains(&format!("Remote tier: removed {llama} of {} entries on 1 node", lines.len())),
        "{text}"
    );
    assert_eq!(redis.cmd::<usize>(&["DBSIZE"]), lines.len() - llama);
    let json = crate::fixture::ok_json(&sb, &["cache", "clear", "--all", "--yes"]);
    assert_eq!(json["remote"]["removed"], lines.len() - llama, "{json}");
    assert_eq!(redis.cmd::<usize>(&["DBSIZE"]), 0);
}

#[test]
fn a_clear_on_one_replica_is_seen_by_the_others_within_a_second() {
    let Some(bin) = redis_server() else { return };
    let redis = Node::start(&bin, false);
    // The admin API over TCP needs the admin key (docs/security.md).
    let mut env = remote_env(&redis.addr(), 1);
    env.push(("INFERNO_SERVER__ADMIN_KEY", "adm1n".into()));
    let (_sa, a) = replica(&env);
    let (_sb, b) = replica(&env);
    wait_for("both replicas to listen for clears", || {
        redis.cmd::<(String, i64)>(&["PUBSUB", "NUMSUB", "inferno:v1:clear"]).1 == 2
    });
    let first = a.post("/v1/completions", &completion("to clear"), &[]);
    assert_eq!(first.cache.as_deref(), Some("MISS"));
    let key = format!("inferno:v1:resp:{}", first.key.clone().unwrap());
    wait_for("the write-behind to reach Redis", || redis.cmd::<bool>(&["EXISTS", &key]));
    // B reads it from Redis once; from then on it answers from its own local tiers.
    assert_eq!(b.post("/v1/completions", &completion("to clear"), &[]).cache.as_deref(), Some("HIT"));
    redis.cmd::<i64>(&["DEL", &key]);
    assert_eq!(b.post("/v1/completions", &completion("to clear"), &[]).cache.as_deref(), Some("HIT"));
    redis.cmd::<()>(&["SET", &key, "placeholder so that A's clear has a key to remove"]);

    let cleared = a.delete("/v1/cache?all=true", None, &[("authorization", "Bearer adm1n")]);
    assert_eq!(cleared.status, 200, "{}", cleared.text);
    std::thread::sleep(Duration::from_secs(1));
    let after = b.post("/v1/completions", &completion("to clear"), &[]);
    assert_eq!(after.cache.as_deref(), Some("MISS"), "B dropped its local copy within a second of A's clear");
}
