//! The remote tier over TLS with Redis ACLs, on a real `redis-server` started here with `--port 0` and a TLS
//! port only, client certificates required, the `default` user disabled and a user allowed only what the tier
//! needs. Certificates are made here with rcgen. Checked: a response shared through TLS + ACL; a wrong
//! password, a user lacking a permission, a plaintext client, a wrong CA — each a clear one-line error in
//! `cache status`, never a password, and on the request path a miss, never a 5xx.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use serde_json::{Value, json};

use crate::redis_nodes::{free_port, redis_server, wait_for};
use crate::server::{Server, with_tiny_model};
use crate::util::Sandbox;

/// The ACL of the tier's user: the commands it sends, on its keys and its clear channel only.
pub const TIER_ACL: &str = "~inferno:* &inferno:* -@all +get +set +getrange +scan +unlink +wait +info \
                            +ping +cluster|nodes +cluster|slots +cluster|shards +publish +subscribe";
const PASSWORD: &str = "tier-pw-7f3a9c";

/// A certificate authority.
fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// Writes `<name>.pem` and `<name>.key` (0600) signed by `ca`, for 127.0.0.1 and localhost.
fn leaf(ca: &CertifiedIssuer<'static, KeyPair>, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, ca).unwrap();
    let (cert_file, key_file) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    write_private(&key_file, &key.serialize_pem());
    (cert_file, key_file)
}

fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// The certificates of one test.
struct Pki {
    ca: PathBuf,
    wrong_ca: PathBuf,
    client: (PathBuf, PathBuf),
    server: (PathBuf, PathBuf),
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let authority = ca("inferno test CA");
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, authority.pem()).unwrap();
        let wrong_ca = dir.join("wrong-ca.pem");
        std::fs::write(&wrong_ca, ca("some other CA").pem()).unwrap();
        Pki {
            ca: ca_file,
            wrong_ca,
            client: leaf(&authority, dir, "client"),
            server: leaf(&authority, dir, "server"),
        }
    }
}

/// A `redis-server` with TLS only and ACLs; killed when dropped.
pub struct TlsRedis {
    /// The TLS port.
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl TlsRedis {
    fn start(bin: &Path, pki: &Pki, extra_conf: &str) -> TlsRedis {
        let dir = tempfile::Builder::new().prefix("inferno-redis-tls-").tempdir().unwrap();
        let port = free_port();
        let p = |f: &Path| f.display().to_string();
        let conf = format!(
            "port 0\ntls-port {port}\nbind 127.0.0.1\nsave \"\"\nappendonly no\ndir {dir}\n\
             tls-cert-file {cert}\ntls-key-file {key}\ntls-ca-cert-file {ca}\ntls-auth-clients yes\n\
             user default off\nuser inferno on >{PASSWORD} {TIER_ACL}\n\
             user noinfo on >{PASSWORD} ~inferno:* -@all +get +set +ping\n\
             user noset on >{PASSWORD} {TIER_ACL} -set\n{extra_conf}",
            dir = dir.path().display(),
            cert = p(&pki.server.0),
            key = p(&pki.server.1),
            ca = p(&pki.ca),
        );
        let conf_file = dir.path().join("redis.conf");
        std::fs::write(&conf_file, conf).unwrap();
        let child = Command::new(bin)
            .arg(&conf_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        wait_for("redis-server to listen on its TLS port", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        TlsRedis { port, child, _dir: dir }
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TlsRedis {
    /// Runs one command as the test's `admin` user (cluster nodes have one), through TLS.
    fn admin<T: redis::FromRedisValue>(&self, pki: &Pki, args: &[&str]) -> redis::RedisResult<T> {
        let read = |f: &Path| std::fs::read(f).unwrap();
        let certificates = redis::TlsCertificates {
            client_tls: Some(redis::ClientTlsConfig {
                client_cert: read(&pki.client.0),
                client_key: read(&pki.client.1),
            }),
            root_cert: Some(read(&pki.ca)),
        };
        let url = format!("rediss://admin:{PASSWORD}@127.0.0.1:{}", self.port);
        let client = redis::Client::build_with_tls(url, certificates)?;
        let mut conn = client.get_connection_with_timeout(std::time::Duration::from_secs(2))?;
        redis::cmd(args[0]).arg(&args[1..]).query(&mut conn)
    }
}

/// Three TLS cluster primaries (no replicas), the cluster bus on TLS too, formed here.
fn tls_cluster(bin: &Path, pki: &Pki) -> Vec<TlsRedis> {
    let nodes: Vec<(TlsRedis, u16)> = (0..3)
        .map(|_| {
            let bus = free_port();
            let conf = format!(
                "cluster-enabled yes\ncluster-port {bus}\ntls-cluster yes\ncluster-node-timeout 1000\n\
                 cluster-require-full-coverage no\ncluster-config-file nodes.conf\n\
                 user admin on >{PASSWORD} ~* &* +@all\n"
            );
            (TlsRedis::start(bin, pki, &conf), bus)
        })
        .collect();
    let slots = [(0, 5460), (5461, 10922), (10923, 16383)];
    for (i, ((node, _), (from, to))) in nodes.iter().zip(slots).enumerate() {
        node.admin::<()>(pki, &["CLUSTER", "SET-CONFIG-EPOCH", &(i + 1).to_string()]).unwrap();
        node.admin::<()>(pki, &["CLUSTER", "ADDSLOTSRANGE", &from.to_string(), &to.to_string()]).unwrap();
    }
    for (node, bus) in &nodes[1..] {
        let (port, bus) = (node.port.to_string(), bus.to_string());
        nodes[0].0.admin::<()>(pki, &["CLUSTER", "MEET", "127.0.0.1", &port, &bus]).unwrap();
    }
    wait_for("the TLS cluster to be ok on every node", || {
        nodes.iter().all(|(n, _)| {
            n.admin::<String>(pki, &["CLUSTER", "INFO"]).is_ok_and(|i| i.contains("cluster_state:ok"))
        })
    });
    nodes.into_iter().map(|(n, _)| n).collect()
}

/// The env of a tier logging in as `user` with the password file, over TLS with a client certificate.
fn tls_env(sb: &Sandbox, redis: &[&TlsRedis], pki: &Pki, user: &str) -> Vec<(String, String)> {
    let pw = sb.path("redis.pw");
    write_private(&pw, &format!("{PASSWORD}\n"));
    let p = |f: &Path| f.display().to_string();
    vec![
        ("INFERNO_CACHE__DISTRIBUTED__ENABLED".into(), "true".into()),
        ("INFERNO_CACHE__DISTRIBUTED__CLUSTER_NODES".into(), seeds(redis)),
        ("INFERNO_CACHE__DISTRIBUTED__USERNAME".into(), user.into()),
        ("INFERNO_CACHE__DISTRIBUTED__PASSWORD_FILE".into(), p(&pw)),
        ("INFERNO_CACHE__DISTRIBUTED__TLS_CA_FILE".into(), p(&pki.ca)),
        ("INFERNO_CACHE__DISTRIBUTED__TLS_CERT_FILE".into(), p(&pki.client.0)),
        ("INFERNO_CACHE__DISTRIBUTED__TLS_KEY_FILE".into(), p(&pki.client.1)),
        ("INFERNO_CACHE__METRICS__PROMETHEUS_ENABLED".into(), "true".into()),
    ]
}

fn seeds(nodes: &[&TlsRedis]) -> String {
    nodes.iter().map(|n| format!("rediss://127.0.0.1:{}", n.port)).collect::<Vec<_>>().join(",")
}

/// `env` with `key` set to `value` (or removed when `None`).
fn with(env: &[(String, String)], key: &str, value: Option<&str>) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = env.iter().filter(|(k, _)| k != key).cloned().collect();
    if let Some(value) = value {
        env.push((key.into(), value.into()));
    }
    env
}

fn refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn remote(sb: &Sandbox, env: &[(String, String)]) -> Value {
    sb.status(&[], &refs(env)).0["cache"]["remote"].clone()
}

/// `cache status --json`'s remote error for `env`: Redis must be unreachable, the error one line.
fn refused(sb: &Sandbox, env: &[(String, String)]) -> String {
    let status = remote(sb, env);
    assert_eq!(status["reachable"], json!(false), "{status}");
    let error = status["error"].as_str().unwrap_or_else(|| panic!("no error: {status}")).to_string();
    assert!(!error.contains('\n'), "one line: {error}");
    assert!(!error.contains(PASSWORD) && !error.contains("wr0ng-pass"), "no password: {error}");
    error
}

/// The value of one sample in `/metrics`, 0 when absent.
fn metric(server: &Server, sample: &str) -> f64 {
    let text = server.get("/metrics", &[]).text;
    text.lines()
        .find_map(|l| l.strip_prefix(sample).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

fn completion(prompt: &str) -> Value {
    json!({"model": "tiny", "prompt": prompt, "temperature": 0, "max_tokens": 8})
}

#[test]
fn tls_with_acl_shares_a_response_and_every_bad_login_is_a_clear_error() {
    let Some(bin) = redis_server() else { return };
    let root = tempfile::tempdir().unwrap();
    let pki = Pki::new(root.path());
    let redis = TlsRedis::start(&bin, &pki, "");

    let (sa, dir_a) = with_tiny_model();
    let env = tls_env(&sa, &[&redis], &pki, "inferno");
    let status = remote(&sa, &env);
    assert_eq!(
        (status["reachable"].clone(), status["error"].clone()),
        (json!(true), Value::Null),
        "{status}"
    );
    assert_eq!(status["mode"], "standalone");

    // The password comes from the env as well, and `status` shows only that it is set, with its origin.
    let pw_env = "INFERNO_CACHE__DISTRIBUTED__PASSWORD";
    let by_env = with(&with(&env, "INFERNO_CACHE__DISTRIBUTED__PASSWORD_FILE", None), pw_env, Some(PASSWORD));
    assert_eq!(remote(&sa, &by_env)["reachable"], json!(true));
    let out = sa.cmd().args(["cache", "status"]).envs(refs(&by_env)).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!text.contains(PASSWORD), "status never shows the password:\n{text}");
    let line = text.lines().find(|l| l.contains("cache.distributed.password ")).unwrap_or_default();
    assert!(line.contains("(set)") && line.contains(pw_env), "{text}");
    let json_out = sa.cmd().args(["cache", "status", "--json"]).envs(refs(&by_env)).output().unwrap();
    assert!(!String::from_utf8_lossy(&json_out.stdout).contains(PASSWORD));

    // Wrong password (and a password in the URL: masked everywhere).
    let wrong = with(&by_env, pw_env, Some("wr0ng-pass"));
    let error = refused(&sa, &wrong);
    assert!(error.contains("refused the login as user \"inferno\""), "{error}");
    let in_url = with(
        &with(&env, "INFERNO_CACHE__DISTRIBUTED__PASSWORD_FILE", None),
        "INFERNO_CACHE__DISTRIBUTED__CLUSTER_NODES",
        Some(&format!("rediss://inferno:wr0ng-pass@127.0.0.1:{}", redis.port)),
    );
    let in_url = with(&in_url, "INFERNO_CACHE__DISTRIBUTED__USERNAME", None);
    let status = remote(&sa, &in_url);
    assert!(!status.to_string().contains("wr0ng-pass"), "{status}");
    assert!(status["error"].as_str().unwrap().contains("refused the login"), "{status}");

    // The default user is disabled: no login at all is refused.
    let anonymous = with(&env, "INFERNO_CACHE__DISTRIBUTED__PASSWORD_FILE", None);
    let anonymous = with(&anonymous, "INFERNO_CACHE__DISTRIBUTED__USERNAME", None);
    let error = refused(&sa, &anonymous);
    assert!(error.contains("password") || error.contains("login"), "{error}");

    // A user the ACL does not allow INFO.
    let error = refused(&sa, &with(&env, "INFERNO_CACHE__DISTRIBUTED__USERNAME", Some("noinfo")));
    assert!(error.contains("lacks a permission") && error.contains("no permissions to run"), "{error}");

    // A CA that did not sign the server's certificate.
    let wrong_ca =
        with(&env, "INFERNO_CACHE__DISTRIBUTED__TLS_CA_FILE", Some(pki.wrong_ca.to_str().unwrap()));
    let error = refused(&sa, &wrong_ca);
    assert!(error.contains("not trusted") && error.contains("tls_ca_file"), "{error}");
    // No CA file: the public roots do not trust a private CA either.
    let error = refused(&sa, &with(&env, "INFERNO_CACHE__DISTRIBUTED__TLS_CA_FILE", None));
    assert!(error.contains("not trusted"), "{error}");

    // A plaintext client on the TLS port.
    let mut plain = env.clone();
    plain.retain(|(k, _)| !k.contains("TLS_"));
    let plain = with(
        &plain,
        "INFERNO_CACHE__DISTRIBUTED__CLUSTER_NODES",
        Some(&format!("redis://127.0.0.1:{}", redis.port)),
    );
    let error = refused(&sa, &plain);
    assert!(error.contains("rediss://"), "{error}");

    let a = Server::start(&sa, &dir_a, &[], &refs(&env));
    let first = a.post("/v1/completions", &completion("over tls"), &[]);
    assert_eq!((first.status, first.cache.as_deref()), (200, Some("MISS")), "{}", first.text);
    let written = || metric(&a, r#"inferno_cache_remote_writes_total{result="ok"}"#) == 1.0;
    wait_for("the write-behind to reach Redis through TLS", written);

    let (sb, dir_b) = with_tiny_model();
    let env_b = tls_env(&sb, &[&redis], &pki, "inferno");
    let b = Server::start(&sb, &dir_b, &[], &refs(&env_b));
    let hit = b.post("/v1/completions", &completion("over tls"), &[]);
    assert_eq!((hit.status, hit.cache.as_deref()), (200, Some("HIT")), "{}", hit.text);
    assert_eq!(hit.json()["choices"], first.json()["choices"]);

    // A user that may read but not write: answers are served, each write a counted failure saying why.
    let (sd, dir_d) = with_tiny_model();
    let log = sd.path("serve.log");
    let noset = tls_env(&sd, &[&redis], &pki, "noset");
    let d = Server::start_logging(&sd, &dir_d, &[], &refs(&noset), &log);
    let answer = d.post("/v1/completions", &completion("not written"), &[]);
    assert_eq!((answer.status, answer.cache.as_deref()), (200, Some("MISS")), "{}", answer.text);
    wait_for("the refused write to be counted", || {
        metric(&d, r#"inferno_cache_remote_writes_total{result="error"}"#) == 1.0
    });
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("lacks a permission the tier needs"), "{logged}");

    // The request path with a wrong password: a counted miss, never a 5xx; the log says why, once, masked.
    let (sc, dir_c) = with_tiny_model();
    let log = sc.path("serve.log");
    let c = Server::start_logging(&sc, &dir_c, &[], &refs(&wrong), &log);
    let answer = c.post("/v1/completions", &completion("over tls"), &[]);
    assert_eq!((answer.status, answer.cache.as_deref()), (200, Some("MISS")), "{}", answer.text);
    assert_eq!(metric(&c, r#"inferno_cache_remote_lookups_total{result="skipped"}"#), 1.0);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("refused the login as user"), "{logged}");
    assert!(!logged.contains("wr0ng-pass") && !logged.contains(PASSWORD), "{logged}");
}

#[test]
fn tls_cluster_with_acl_shares_a_response_and_clears_it() {
    let Some(bin) = redis_server() else { return };
    let root = tempfile::tempdir().unwrap();
    let pki = Pki::new(root.path());
    let nodes = tls_cluster(&bin, &pki);
    let all: Vec<&TlsRedis> = nodes.iter().collect();

    let (sa, dir_a) = with_tiny_model();
    let env = tls_env(&sa, &all, &pki, "inferno");
    let status = remote(&sa, &env);
    assert_eq!(
        (status["mode"].clone(), status["primaries"].clone()),
        (json!("cluster"), json!(3)),
        "{status}"
    );
    assert_eq!(status["error"], Value::Null, "{status}");
    let wrong = with(&env, "INFERNO_CACHE__DISTRIBUTED__PASSWORD", Some("wr0ng-pass"));
    let wrong = with(&wrong, "INFERNO_CACHE__DISTRIBUTED__PASSWORD_FILE", None);
    assert!(refused(&sa, &wrong).contains("refused the login as user \"inferno\""));

    let a = Server::start(&sa, &dir_a, &[], &refs(&env));
    let first = a.post("/v1/completions", &completion("tls cluster"), &[]);
    assert_eq!((first.status, first.cache.as_deref()), (200, Some("MISS")), "{}", first.text);
    let written = || metric(&a, r#"inferno_cache_remote_writes_total{result="ok"}"#) == 1.0;
    wait_for("the write-behind to reach the TLS cluster", written);
    let (sb, dir_b) = with_tiny_model();
    let env_b = tls_env(&sb, &all, &pki, "inferno");
    let b = Server::start(&sb, &dir_b, &[], &refs(&env_b));
    let hit = b.post("/v1/completions", &completion("tls cluster"), &[]);
    assert_eq!((hit.status, hit.cache.as_deref()), (200, Some("HIT")), "{}", hit.text);
    let stored: i64 = nodes.iter().map(|n| n.admin::<i64>(&pki, &["DBSIZE"]).unwrap()).sum();
    assert_eq!(stored, 1, "one entry, on the primary of its slot");

    // `cache clear` walks every primary (SCAN + UNLINK, as the ACL allows) through TLS.
    b.stop(libc::SIGTERM);
    let out = sb.cmd().args(["cache", "clear", "--yes", "--all"]).envs(refs(&env_b)).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains("Remote tier: removed 1 of 1 entries"), "{text}{err}");
    let left: i64 = nodes.iter().map(|n| n.admin::<i64>(&pki, &["DBSIZE"]).unwrap()).sum();
    assert_eq!(left, 0, "the entry is gone from every primary");
}

#[test]
fn tls_settings_that_cannot_work_are_configuration_errors() {
    let sb = Sandbox::new();
    let ca = sb.path("ca.pem");
    std::fs::write(&ca, "not used").unwrap();
    let run = |env: &[(&str, &str)]| {
        let out = sb.cmd().args(["cache", "status"]).envs(env.iter().copied()).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let nodes = "INFERNO_CACHE__DISTRIBUTED__CLUSTER_NODES";
    let ca_key = "INFERNO_CACHE__DISTRIBUTED__TLS_CA_FILE";
    let (code, err) = run(&[(nodes, "redis://127.0.0.1:1"), (ca_key, ca.to_str().unwrap())]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cache.distributed.cluster_nodes") && err.contains("rediss://"), "{err}");
    let (code, err) = run(&[(nodes, "rediss://127.0.0.1:1,127.0.0.1:2")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("mixes rediss://"), "{err}");
    let (code, err) = run(&[
        (nodes, "rediss://127.0.0.1:1"),
        ("INFERNO_CACHE__DISTRIBUTED__TLS_CERT_FILE", ca.to_str().unwrap()),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cache.distributed.tls_key_file"), "{err}");
    let (code, err) = run(&[
        (nodes, "rediss://127.0.0.1:1"),
        ("INFERNO_CACHE__DISTRIBUTED__ENABLED", "true"),
        ("INFERNO_CACHE__DISTRIBUTED__PASSWORD_FILE", sb.path("missing.pw").to_str().unwrap()),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cache.distributed.password_file") && err.contains("missing.pw"), "{err}");
}
