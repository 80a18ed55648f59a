//! A timing run, not a check (ignored by default): the HTTP hit path of a second `inferno serve` replica
//! answered from Redis, next to the same requests answered from its memory tier. Numbers are in
//! docs/performance.md ("Remote tier"). Run on a release build:
//! `cargo test --release --test integration remote_http -- --ignored --nocapture`.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::redis_nodes::{Node, redis_server, wait_for};
use crate::server::{Server, with_tiny_model};

const REQUESTS: usize = 300;

fn summary(mut times: Vec<Duration>) -> String {
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1];
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    format!("p50 {:>8.1?}  p99 {:>8.1?}  mean {:>8.1?}  ({} requests)", at(0.5), at(0.99), mean, times.len())
}

#[test]
#[ignore = "a timing run; see docs/performance.md"]
fn remote_http_hit_latency() {
    let Some(bin) = redis_server() else { return };
    let redis = Node::start(&bin, false);
    let addr = redis.addr();
    let env = [
        ("INFERNO_CACHE__DISTRIBUTED__ENABLED", "true"),
        ("INFERNO_CACHE__DISTRIBUTED__CLUSTER_NODES", &addr),
    ];
    let (sa, dir_a) = with_tiny_model();
    let a = Server::start(&sa, &dir_a, &[], &env);
    let agent = Server::agent();
    let body =
        |i: usize| json!({"model": "tiny", "prompt": format!("p{i}"), "temperature": 0, "max_tokens": 4});
    let post = |server: &Server, i: usize| {
        let started = Instant::now();
        let mut reply = agent.post(format!("{}/v1/completions", server.base)).send_json(body(i)).unwrap();
        let _ = reply.body_mut().read_to_string().unwrap();
        let cache = reply.headers().get("x-inferno-cache").map(|v| v.to_str().unwrap().to_string());
        (started.elapsed(), cache)
    };
    for i in 0..REQUESTS {
        assert_eq!(post(&a, i).1.as_deref(), Some("MISS"));
    }
    wait_for("every write in Redis", || redis.cmd::<usize>(&["DBSIZE"]) == REQUESTS);
    let (sb, dir_b) = with_tiny_model();
    let b = Server::start(&sb, &dir_b, &[], &env);
    // One request to a key nobody has, so both servers' first-request costs are out of the way.
    let _ = post(&b, REQUESTS + 1);
    let mut remote = Vec::new();
    let mut local = Vec::new();
    for i in 0..REQUESTS {
        let (took, cache) = post(&b, i);
        assert_eq!(cache.as_deref(), Some("HIT"));
        remote.push(took);
    }
    for i in 0..REQUESTS {
        let (took, cache) = post(&b, i);
        assert_eq!(cache.as_deref(), Some("HIT"));
        local.push(took);
    }
    println!("HTTP hit, answered from Redis:       {}", summary(remote));
    println!("HTTP hit, answered from memory tier: {}", summary(local));
}
