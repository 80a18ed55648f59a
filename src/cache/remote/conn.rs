//! Talking to Redis: seed addresses, telling a cluster from a standalone server (`INFO cluster`), what the
//! nodes and their replicas look like (`CLUSTER NODES`, `INFO replication`), and the connections the tier
//! uses, with the timeouts and retries of the read path.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Cmd, FromRedisValue, Pipeline, RedisResult};
use serde::Serialize;

use super::endpoint::Endpoints;

/// How long connecting to one node may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long one read attempt may take.
pub const READ_TIMEOUT: Duration = Duration::from_millis(150);
/// Read attempts after the first that failed.
pub const READ_RETRIES: u32 = 2;
/// How long `WAIT` waits for replica acknowledgements.
pub const WAIT_MS: u64 = 250;
/// How long one write (SET, and WAIT) may take.
pub const WRITE_TIMEOUT: Duration = Duration::from_millis(WAIT_MS + 1_000);

/// A seed as a `redis://` URL: `host:port` gets the scheme, URLs are kept.
pub fn seed_url(node: &str) -> String {
    if node.contains("://") { node.to_string() } else { format!("redis://{node}") }
}

/// The `host:port` of a seed (`host:port` or URL, credentials and database left out).
pub fn host_port(node: &str) -> &str {
    let rest = node.split_once("://").map_or(node, |(_, r)| r);
    let rest = rest.split('/').next().unwrap_or(rest);
    rest.rsplit('@').next().unwrap_or(rest)
}

/// The URL of node `addr` with the scheme and credentials of `seed`.
pub fn node_url(seed: &str, addr: &str) -> String {
    let url = seed_url(seed);
    let (scheme, rest) = url.split_once("://").unwrap_or(("redis", &url));
    let creds = rest
        .split('/')
        .next()
        .unwrap_or(rest)
        .rsplit_once('@')
        .map_or(String::new(), |(c, _)| format!("{c}@"));
    format!("{scheme}://{creds}{addr}")
}

/// Standalone server or cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One server (maybe with replicas); the first seed that answers is used.
    Standalone,
    /// Redis Cluster; every seed is used to discover the slots.
    Cluster,
}

/// One node as the seed that answered describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct NodeInfo {
    /// `host:port`.
    pub addr: String,
    /// `primary` or `replica`.
    pub role: String,
    /// For a replica, the address of its primary (when known).
    pub primary: Option<String>,
    /// Hash slots it serves (cluster primaries).
    pub slots: u32,
    /// Not marked failing and its link is up.
    pub healthy: bool,
}

/// What the seed that answered said about the deployment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Topology {
    /// Cluster or standalone.
    pub mode: Mode,
    /// The seed that answered.
    pub seed: String,
    /// Every node it knows of.
    pub nodes: Vec<NodeInfo>,
    /// The fewest healthy replicas any primary (with slots) has.
    pub min_replicas: u32,
}

impl Topology {
    /// Healthy primaries that serve slots (the one server when standalone), as `host:port`.
    pub fn primaries(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.role == "primary" && n.healthy && (self.mode == Mode::Standalone || n.slots > 0))
            .map(|n| n.addr.clone())
            .collect()
    }
}

/// A plain connection to one node (with the login and TLS of `endpoints`), for discovery and `clear`.
pub async fn node_connection(
    endpoints: &Endpoints,
    url: &str,
    response_timeout: Duration,
) -> RedisResult<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(response_timeout));
    endpoints.client(url)?.get_multiplexed_async_connection_with_config(&config).await
}

/// Asks the seeds in order; the first that answers describes the deployment. The error says, for each
/// seed (password masked), what went wrong in one line.
pub async fn discover(endpoints: &Endpoints) -> Result<Topology, String> {
    let mut errors = Vec::new();
    for seed in &endpoints.seeds {
        match describe(endpoints, seed).await {
            Ok(topology) => return Ok(topology),
            Err(err) => {
                errors.push(format!("{}: {}", crate::config::redact_node(seed), endpoints.explain(&err)))
            }
        }
    }
    Err(if errors.is_empty() { "no cluster_nodes configured".into() } else { errors.join("; ") })
}

async fn describe(endpoints: &Endpoints, seed: &str) -> RedisResult<Topology> {
    let mut conn = node_connection(endpoints, seed, Duration::from_millis(1_000)).await?;
    let cluster: String = redis::cmd("INFO").arg("cluster").query_async(&mut conn).await?;
    if cluster.lines().any(|l| l.trim() == "cluster_enabled:1") {
        let nodes: String = redis::cmd("CLUSTER").arg("NODES").query_async(&mut conn).await?;
        Ok(cluster_topology(seed, &nodes))
    } else {
        let info: String = redis::cmd("INFO").arg("replication").query_async(&mut conn).await?;
        Ok(standalone_topology(seed, &info))
    }
}

/// The topology in a `CLUSTER NODES` reply.
pub fn cluster_topology(seed: &str, text: &str) -> Topology {
    struct Line<'a> {
        id: &'a str,
        node: NodeInfo,
        primary_id: &'a str,
    }
    let lines: Vec<Line> = text
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            let flags: Vec<&str> = f[2].split(',').collect();
            let addr = f[1].split(['@', ',']).next().unwrap_or_default().to_string();
            let failing = flags.iter().any(|x| matches!(*x, "fail" | "fail?" | "noaddr" | "handshake"));
            let slots = f[8..]
                .iter()
                .filter(|s| !s.starts_with('['))
                .map(|s| match s.split_once('-') {
                    Some((a, b)) => b.parse::<u32>().unwrap_or(0).saturating_sub(a.parse().unwrap_or(0)) + 1,
                    None => 1,
                })
                .sum();
            let role = if flags.contains(&"master") { "primary" } else { "replica" };
            Some(Line {
                id: f[0],
                primary_id: f[3],
                node: NodeInfo {
                    addr,
                    role: role.into(),
                    primary: None,
                    slots,
                    healthy: !failing && f[7] == "connected",
                },
            })
        })
        .collect();
    let addr_of = |id: &str| lines.iter().find(|l| l.id == id).map(|l| l.node.addr.clone());
    let min_replicas = lines
        .iter()
        .filter(|l| l.node.role == "primary" && l.node.slots > 0)
        .map(|p| {
            lines
                .iter()
                .filter(|r| r.primary_id == p.id && r.node.role == "replica" && r.node.healthy)
                .count() as u32
        })
        .min()
        .unwrap_or(0);
    let nodes = lines
        .iter()
        .map(|l| {
            let mut node = l.node.clone();
            if node.role == "replica" {
                node.primary = addr_of(l.primary_id);
            }
            node
        })
        .collect();
    Topology { mode: Mode::Cluster, seed: seed.to_string(), nodes, min_replicas }
}

/// The topology in an `INFO replication` reply of a standalone server.
pub fn standalone_topology(seed: &str, info: &str) -> Topology {
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.trim().strip_prefix(name).and_then(|v| v.strip_prefix(':')).map(str::to_string))
    };
    let addr = host_port(seed).to_string();
    let mut nodes = Vec::new();
    if field("role").as_deref() == Some("slave") {
        let primary = field("master_host").zip(field("master_port")).map(|(h, p)| format!("{h}:{p}"));
        let up = field("master_link_status").as_deref() == Some("up");
        nodes.push(NodeInfo { addr, role: "replica".into(), primary, slots: 0, healthy: up });
        return Topology { mode: Mode::Standalone, seed: seed.to_string(), nodes, min_replicas: 0 };
    }
    nodes.push(NodeInfo {
        addr: addr.clone(),
        role: "primary".into(),
        primary: None,
        slots: 0,
        healthy: true,
    });
    let mut online = 0;
    for line in info.lines().filter(|l| l.starts_with("slave") && l.contains("ip=")) {
        let value = line.split_once(':').map_or("", |(_, v)| v.trim());
        let get =
            |k: &str| value.split(',').find_map(|kv| kv.strip_prefix(k).and_then(|v| v.strip_prefix('=')));
        let healthy = get("state") == Some("online");
        online += u32::from(healthy);
        let replica = format!("{}:{}", get("ip").unwrap_or("?"), get("port").unwrap_or("?"));
        nodes.push(NodeInfo {
            addr: replica,
            role: "replica".into(),
            primary: Some(addr.clone()),
            slots: 0,
            healthy,
        });
    }
    Topology { mode: Mode::Standalone, seed: seed.to_string(), nodes, min_replicas: online }
}

/// A connection of the tier: one server through a reconnecting manager, or the cluster client.
#[derive(Clone)]
pub enum Conn {
    /// Standalone server.
    Single(ConnectionManager),
    /// Redis Cluster.
    Cluster(ClusterConnection),
}

impl Conn {
    /// Connects for `topology`, with `response_timeout` per attempt. The cluster client's own retries are
    /// cut to [`READ_RETRIES`] with waits of 10-50 ms (its defaults retry 16 times, waiting 1.28 s or more).
    pub async fn open(
        topology: &Topology,
        endpoints: &Endpoints,
        response_timeout: Duration,
    ) -> RedisResult<Conn> {
        match topology.mode {
            Mode::Standalone => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(response_timeout))
                    .set_number_of_retries(READ_RETRIES as usize)
                    .set_min_delay(Duration::from_millis(10))
                    .set_max_delay(Duration::from_millis(200));
                let client = endpoints.client(&topology.seed)?;
                Ok(Conn::Single(ConnectionManager::new_with_config(client, config).await?))
            }
            Mode::Cluster => {
                let client = endpoints
                    .cluster()
                    .retries(READ_RETRIES)
                    .min_retry_wait(10)
                    .max_retry_wait(50)
                    .retry_wait_formula(10, 2)
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(response_timeout)
                    .overall_response_timeout(Some(
                        response_timeout * (READ_RETRIES + 1) + Duration::from_millis(100),
                    ))
                    .build()?;
                Ok(Conn::Cluster(client.get_async_connection().await?))
            }
        }
    }

    /// Runs one command.
    pub async fn query<T: FromRedisValue>(&mut self, cmd: &Cmd) -> RedisResult<T> {
        match self {
            Conn::Single(c) => cmd.query_async(c).await,
            Conn::Cluster(c) => cmd.query_async(c).await,
        }
    }

    /// Runs a pipeline; in a cluster it goes to the node of its first keyed command.
    pub async fn pipeline<T: FromRedisValue>(&mut self, pipe: &Pipeline) -> RedisResult<T> {
        match self {
            Conn::Single(c) => pipe.query_async(c).await,
            Conn::Cluster(c) => pipe.query_async(c).await,
        }
    }

    /// Whether the client retries by itself (the cluster client does; the standalone manager only
    /// reconnects).
    pub fn retries_itself(&self) -> bool {
        matches!(self, Conn::Cluster(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_are_parsed() {
        let text = "\
a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460
a2 127.0.0.1:7002@17002 master - 0 0 2 connected 5461-10922
a3 127.0.0.1:7003@17003 master,fail - 0 0 3 disconnected 10923-16383
b1 127.0.0.1:7004@17004 slave a1 0 0 1 connected
b2 127.0.0.1:7005@17005 slave a2 0 0 2 connected
b3 127.0.0.1:7006@17006 slave,fail? a2 0 0 2 connected
";
        let t = cluster_topology("127.0.0.1:7001", text);
        assert_eq!(t.mode, Mode::Cluster);
        assert_eq!(t.nodes.len(), 6);
        assert_eq!(t.nodes[0].slots, 5461);
        assert_eq!(t.primaries(), ["127.0.0.1:7001", "127.0.0.1:7002"]);
        assert_eq!(t.nodes[3].primary.as_deref(), Some("127.0.0.1:7001"));
        assert_eq!(t.min_replicas, 0, "a3 has no replica");
    }

    #[test]
    fn standalone_replication_is_parsed() {
        let info = "# Replication\r\nrole:master\r\nconnected_slaves:1\r\n\
slave0:ip=127.0.0.1,port=7101,state=online,offset=1,lag=0\r\n";
        let t = standalone_topology("redis://127.0.0.1:7100/", info);
        assert_eq!(t.mode, Mode::Standalone);
        assert_eq!(t.min_replicas, 1);
        assert_eq!(t.primaries(), ["127.0.0.1:7100"]);
        assert_eq!(t.nodes[1].addr, "127.0.0.1:7101");
        assert_eq!(seed_url("h:1"), "redis://h:1");
        assert_eq!(seed_url("redis://h:1/0"), "redis://h:1/0");
        assert_eq!(host_port("redis://u:p@h:1/2"), "h:1");
        assert_eq!(node_url("redis://u:p@h:1/2", "n:5"), "redis://u:p@n:5");
        assert_eq!(node_url("h:1", "n:5"), "redis://n:5");
    }
}
