//! Real `redis-server` processes for the remote-tier tests, on ephemeral ports (never 6379): a standalone
//! server per test, and a 3 primary + 3 replica Redis Cluster formed here by hand (CLUSTER SET-CONFIG-EPOCH,
//! ADDSLOTSRANGE, MEET, REPLICATE), one shared by the whole test binary ([`shared_cluster`]) plus private ones
//! for tests that break theirs. Every server is killed, and its folder removed, when the binary exits.
//!
//! Without `redis-server` on PATH the tests that need it print why and return; with `CI` set they fail
//! instead, saying what to install.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

use redis::FromRedisValue;

static PIDS: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

extern "C" fn clean_up() {
    if let Ok(pids) = PIDS.lock() {
        for pid in pids.iter() {
            // SAFETY: kill(2) on a redis-server this binary started.
            unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
        }
    }
    if let Ok(dirs) = DIRS.lock() {
        for dir in dirs.iter() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The `redis-server` binary; `None` (after saying so) when it is missing, a panic when `CI` is set.
pub fn redis_server() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths).map(|d| d.join("redis-server")).find(|p| p.is_file())
    });
    if found.is_none() {
        let msg = "redis-server is not installed: run `apt-get install redis-server` \
                   (`scripts/setup.sh --deps-only` installs it)";
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        // Straight to fd 2: the test harness captures `eprintln!` of passing tests, and this must be seen.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!("SKIPPED (not run): {msg}\n").as_bytes(),
        );
    }
    found
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One `redis-server` process.
pub struct Node {
    /// Client port.
    pub port: u16,
    /// Cluster bus port (cluster nodes).
    pub bus: u16,
    child: Option<Child>,
}

impl Node {
    /// Starts a server (a cluster node when `cluster`) and waits until it answers PING.
    pub fn start(bin: &Path, cluster: bool) -> Node {
        static AT_EXIT: Once = Once::new();
        // SAFETY: registers a plain extern "C" function.
        AT_EXIT.call_once(|| unsafe {
            libc::atexit(clean_up);
        });
        let dir = tempfile::Builder::new().prefix("inferno-redis-").tempdir().unwrap().keep();
        DIRS.lock().unwrap().push(dir.clone());
        let (port, bus) = (free_port(), free_port());
        let mut cmd = Command::new(bin);
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--protected-mode", "no", "--repl-diskless-sync-delay", "0"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if cluster {
            cmd.args(["--cluster-enabled", "yes", "--cluster-port", &bus.to_string()])
                .args(["--cluster-node-timeout", "1000", "--cluster-require-full-coverage", "no"])
                .args(["--cluster-config-file", "nodes.conf"]);
        }
        let child = cmd.spawn().expect("start redis-server");
        PIDS.lock().unwrap().push(child.id());
        let node = Node { port, bus, child: Some(child) };
        wait_for("redis-server to answer PING", || node.try_cmd::<String>(&["PING"]).is_ok());
        node
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Runs one command on this node.
    pub fn try_cmd<T: FromRedisValue>(&self, args: &[&str]) -> redis::RedisResult<T> {
        let client = redis::Client::open(format!("redis://{}", self.addr()))?;
        let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
        redis::cmd(args[0]).arg(&args[1..]).query(&mut conn)
    }

    /// Runs one command on this node; it must succeed.
    pub fn cmd<T: FromRedisValue>(&self, args: &[&str]) -> T {
        self.try_cmd(args).unwrap_or_else(|e| panic!("{args:?} on {}: {e}", self.addr()))
    }

    /// SIGKILLs the server.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `done` every 50 ms for up to 20 s.
pub fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Three primaries (nodes 0-2, slots split evenly) each with one replica (nodes 3-5).
pub struct Cluster {
    /// The nodes, primaries first.
    pub nodes: Vec<Node>,
}

/// The slot ranges of the three primaries.
pub const SLOTS: [(u16, u16); 3] = [(0, 5460), (5461, 10922), (10923, 16383)];

impl Cluster {
    /// Starts six nodes and forms the cluster; returns when every node says `cluster_state:ok` and every
    /// replica is in sync.
    pub fn form(bin: &Path) -> Cluster {
        let nodes: Vec<Node> = (0..6).map(|_| Node::start(bin, true)).collect();
        for (i, node) in nodes.iter().enumerate() {
            node.cmd::<()>(&["CLUSTER", "SET-CONFIG-EPOCH", &(i + 1).to_string()]);
        }
        for (node, (from, to)) in nodes.iter().zip(SLOTS) {
            node.cmd::<()>(&["CLUSTER", "ADDSLOTSRANGE", &from.to_string(), &to.to_string()]);
        }
        for node in &nodes[1..] {
            nodes[0].cmd::<()>(&[
                "CLUSTER",
                "MEET",
                "127.0.0.1",
                &node.port.to_string(),
                &node.bus.to_string(),
            ]);
        }
        wait_for("every node to know the other five", || {
            nodes.iter().all(|n| {
                let text: String = n.cmd(&["CLUSTER", "NODES"]);
                text.lines().count() == 6 && !text.contains("handshake") && !text.contains("noaddr")
            })
        });
        for i in 3..6 {
            let id: String = nodes[i - 3].cmd(&["CLUSTER", "MYID"]);
            wait_for("CLUSTER REPLICATE", || nodes[i].try_cmd::<()>(&["CLUSTER", "REPLICATE", &id]).is_ok());
        }
        let cluster = Cluster { nodes };
        cluster.wait_healthy();
        cluster
    }

    /// Waits until every live node says `cluster_state:ok` and every live primary has an online replica.
    pub fn wait_healthy(&self) {
        wait_for("the cluster to be healthy", || {
            self.nodes.iter().filter(|n| n.child.is_some()).all(|n| {
                let info: String = n.try_cmd(&["CLUSTER", "INFO"]).unwrap_or_default();
                let repl: String = n.try_cmd(&["INFO", "replication"]).unwrap_or_default();
                info.contains("cluster_state:ok")
                    && (!repl.contains("role:master") || repl.contains("state=online"))
            })
        });
    }

    /// The seeds, comma-separated `host:port`.
    pub fn seeds(&self) -> String {
        self.nodes.iter().map(Node::addr).collect::<Vec<_>>().join(",")
    }

    /// The hash slot of `key`.
    pub fn slot(&self, key: &str) -> u16 {
        let live = self.nodes.iter().find(|n| n.child.is_some()).expect("a live node");
        live.cmd::<u16>(&["CLUSTER", "KEYSLOT", key])
    }

    /// Runs a keyed command through a cluster client.
    pub fn cmd<T: FromRedisValue>(&self, args: &[&str]) -> T {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| format!("redis://{}", n.addr()))
            .collect();
        let client = redis::cluster::ClusterClient::new(seeds).unwrap();
        let mut conn = client.get_connection().unwrap();
        redis::cmd(args[0]).arg(&args[1..]).query(&mut conn).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }
}

/// The cluster every test of this binary shares; `None` when redis-server is missing (outside CI).
pub fn shared_cluster() -> Option<&'static Cluster> {
    static CLUSTER: OnceLock<Option<Cluster>> = OnceLock::new();
    CLUSTER.get_or_init(|| redis_server().map(|bin| Cluster::form(&bin))).as_ref()
}
