//! The deployment files against the code: the Dockerfile (built by scripts/setup.sh, its ENV read by the real
//! configuration loader, its CMD and HEALTHCHECK run against the real binary), examples/kubernetes (the
//! ConfigMap's config.toml loads, mounts and probes agree with the image and the binary), and the
//! monitoring examples (alert rules pass `promtool check rules` and `promtool test rules` at the
//! `[cache.alerts.thresholds]` defaults; every metric the dashboard, the rules and docs/serve-ops.md name is
//! one a live server exports). Docker itself does not run here, so the image is checked by what it says.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::metrics::{PROMISED, busy_server, queryable_names, scrape};
use crate::server::with_tiny_model;
use crate::tools;
use crate::util::{Sandbox, env_origin, path_json, stderr};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// The Dockerfile's instructions (continuation lines joined, comments dropped), split into stages.
fn docker_stages() -> Vec<Vec<String>> {
    let text = read("Dockerfile");
    let mut stages: Vec<Vec<String>> = Vec::new();
    let mut current = String::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        current.push_str(line.trim_end_matches('\\').trim_end());
        if line.ends_with('\\') {
            current.push(' ');
            continue;
        }
        let instruction = std::mem::take(&mut current);
        if instruction.starts_with("FROM ") {
            stages.push(Vec::new());
        }
        stages.last_mut().expect("the Dockerfile starts with FROM").push(instruction);
    }
    stages
}

/// The instructions of a stage that start with `word ` (`ENV`, `RUN`, ...), without the word.
fn instructions<'a>(stage: &'a [String], word: &str) -> Vec<&'a str> {
    stage.iter().filter_map(|i| i.strip_prefix(&format!("{word} "))).collect()
}

/// `KEY=VALUE` pairs of a stage's `ENV` lines.
fn env_of(stage: &[String]) -> Vec<(String, String)> {
    instructions(stage, "ENV")
        .iter()
        .map(|e| {
            let (k, v) = e.split_once('=').unwrap_or_else(|| panic!("ENV {e} is not KEY=VALUE"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn env_value(stage: &[String], key: &str) -> String {
    env_of(stage)
        .into_iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("the runtime stage sets no {key}"))
        .1
}

/// The ONNX Runtime library path scripts/setup.sh installs.
fn setup_ort_path() -> String {
    let setup = read("scripts/setup.sh");
    let assigned = |name: &str| -> String {
        let line = setup.lines().find(|l| l.starts_with(&format!("{name}="))).expect(name);
        line.split_once('=').unwrap().1.trim_matches('"').to_string()
    };
    format!("{}/libonnxruntime.so.{}", assigned("ort_dir"), assigned("ort_version"))
}

/// The uid in the runtime stage's `useradd --uid N`.
fn image_uid(runtime: &[String]) -> u64 {
    let run = instructions(runtime, "RUN").into_iter().find(|r| r.contains("useradd")).expect("useradd");
    let uid = run.split("--uid ").nth(1).expect("useradd --uid").split_whitespace().next().unwrap();
    uid.parse().unwrap()
}

/// `CMD [...]` of a stage as its words.
fn cmd_of(stage: &[String]) -> Vec<String> {
    let cmd = instructions(stage, "CMD").pop().expect("a CMD");
    serde_json::from_str(cmd).unwrap_or_else(|e| panic!("CMD {cmd} is not exec form: {e}"))
}

#[test]
fn the_dockerfile_builds_with_setup_sh_and_runs_serve_as_a_non_root_user() {
    let stages = docker_stages();
    assert_eq!(stages.len(), 2, "a build stage and a runtime stage");
    let (build, runtime) = (&stages[0], &stages[1]);
    assert!(build[0].ends_with(" AS build"), "{}", build[0]);

    // Build stage: setup.sh, and nothing else, installs the build dependencies.
    let runs = instructions(build, "RUN");
    assert!(
        runs.iter().any(|r| r.starts_with("bash scripts/setup.sh --deps-only --no-test-tools")),
        "the build stage runs setup.sh: {runs:?}"
    );
    assert!(!runs.iter().any(|r| r.contains("apt-get install")), "only setup.sh installs packages: {runs:?}");
    assert!(runs.contains(&"cargo build --release --locked"), "{runs:?}");
    let usage = Command::new("bash").arg(repo("scripts/setup.sh")).arg("--no-such-flag").output().unwrap();
    assert_eq!(usage.status.code(), Some(2));
    assert!(stderr(&usage).contains("[--deps-only] [--no-test-tools]"), "{}", stderr(&usage));

    // Runtime stage: ONNX Runtime where setup.sh puts it and the binary looks, and what the binary links.
    let ort = setup_ort_path();
    #[cfg(feature = "onnx")]
    assert_eq!(ort, inferno::models::onnx::DEFAULT_RUNTIME_PATH);
    let copies = instructions(runtime, "COPY");
    assert!(copies.contains(&format!("--from=build {ort} {ort}").as_str()), "{copies:?}");
    assert!(
        copies.contains(&"--from=build /src/target/release/inferno /usr/local/bin/inferno"),
        "{copies:?}"
    );
    let installs = instructions(runtime, "RUN").join(" ");
    assert!(installs.contains("libgomp1"), "llama.cpp needs libgomp at run time");

    // A non-root user, by number.
    let user = instructions(runtime, "USER").pop().expect("a USER");
    let uid = image_uid(runtime);
    assert!(uid != 0 && user.split(':').next() == Some(uid.to_string().as_str()), "USER {user}, uid {uid}");

    // The cache on a volume, listening on every interface of the container.
    assert!(instructions(runtime, "VOLUME").contains(&"[\"/cache\"]"));
    assert_eq!(env_value(runtime, "INFERNO_CACHE_DIR"), "/cache");
    assert_eq!(env_value(runtime, "INFERNO_SERVER__BIND"), "0.0.0.0");
    assert_eq!(cmd_of(runtime), ["inferno", "serve", "--cache-persist"]);
    let health = instructions(runtime, "HEALTHCHECK").pop().expect("a HEALTHCHECK");
    assert!(health.contains("http://127.0.0.1:8080/health"), "{health}");
    assert!(installs.contains("curl"), "the HEALTHCHECK runs curl");
    assert_eq!(instructions(runtime, "EXPOSE"), ["8080"]);

    // Every ENV goes through the real loader, and means what the comments say.
    let sb = Sandbox::new();
    let env = env_of(runtime);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let status = sb.status(&[], &env);
    let expect = [
        ("cache.base_dir", "/cache", "INFERNO_CACHE_DIR"),
        ("models.dir", "/models", "INFERNO_MODELS_DIR"),
        ("cache.enabled", "true", "INFERNO_CACHE_ENABLED"),
        ("cache.compression.algorithm", "zstd", "INFERNO_CACHE_COMPRESS"),
        ("server.bind", "0.0.0.0", "INFERNO_SERVER__BIND"),
        ("server.api_key_file", "/run/secrets/inferno-api-key", "INFERNO_SERVER__API_KEY_FILE"),
    ];
    for (key, value, var) in expect {
        let shown = match status.value(key) {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        assert_eq!(shown, value, "{key}");
        assert_eq!(status.origin(key), &env_origin(var), "{key}");
    }
    assert_eq!(status.value("server.port"), 8080, "EXPOSE and HEALTHCHECK use the default port");
    assert_eq!(env.len(), expect.len(), "every ENV line is checked above: {env:?}");
}

#[test]
fn the_images_cmd_serves_and_its_healthcheck_passes() {
    // The CMD with the image's environment, except where it would reach beyond this test: the cache and
    // models in the sandbox, and loopback on a free port instead of every interface on 8080.
    let stages = docker_stages();
    let runtime = &stages[1];
    let (sb, models) = with_tiny_model();
    let mut cmd = sb.std_command();
    for (key, value) in env_of(runtime) {
        cmd.env(key, value);
    }
    let cache = sb.path("cache");
    cmd.env("INFERNO_CACHE_DIR", &cache).env("INFERNO_MODELS_DIR", &models).env("INFERNO_PORT", "0");
    let words = cmd_of(runtime);
    assert_eq!(words[0], "inferno");

    // Closed by default: without the secret the key file names, the image's CMD does not start.
    let out = cmd.args(&words[1..]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "no API key file: {}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("INFERNO_SERVER__API_KEY_FILE: key `server.api_key_file`: cannot read the key file"),
        "{}",
        stderr(&out)
    );
    // Without any key, the image's bind (every interface) is refused too.
    let mut keyless = sb.std_command();
    keyless.envs(env_of(runtime).into_iter().filter(|(k, _)| k != "INFERNO_SERVER__API_KEY_FILE"));
    keyless.env("INFERNO_CACHE_DIR", &cache).env("INFERNO_MODELS_DIR", &models).env("INFERNO_PORT", "0");
    let out = keyless.args(&words[1..]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("key `server.bind`") && stderr(&out).contains("0.0.0.0"),
        "{}",
        stderr(&out)
    );

    // With the secret mounted (here: a file in the sandbox), on loopback.
    let key = sb.write("secrets/inferno-api-key", "image-key\n");
    cmd.env("INFERNO_SERVER__API_KEY_FILE", &key).env("INFERNO_SERVER__BIND", "127.0.0.1");
    let server = crate::server::Server::spawn(&mut cmd);

    let health = instructions(runtime, "HEALTHCHECK").pop().unwrap();
    let check = health.split(" CMD ").nth(1).expect("HEALTHCHECK ... CMD command");
    let check = check.replace("http://127.0.0.1:8080", &server.base);
    let out = Command::new("sh").args(["-c", &check]).stdin(Stdio::null()).output().expect("run sh");
    if out.status.code() == Some(127) || stderr(&out).contains("curl: not found") {
        panic!("curl is not installed: run `scripts/setup.sh --deps-only`, or `apt-get install curl`");
    }
    assert!(out.status.success(), "the HEALTHCHECK failed: {}", tools::transcript(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"ok\""));
    assert_eq!(server.get("/v1/models", &[]).status, 401, "every route but /health needs the key");
    assert_eq!(
        server.get("/v1/models", &[("authorization", "Bearer image-key")]).json()["data"][0]["id"],
        "tiny",
        "models from INFERNO_MODELS_DIR"
    );
    assert_eq!(server.stop(libc::SIGTERM), Some(0), "SIGTERM drains and exits 0");
    let files = std::fs::read_dir(&cache).map(|d| d.count()).unwrap_or(0);
    assert!(files > 0, "--cache-persist keeps the cache in INFERNO_CACHE_DIR");
}

/// Every YAML document of a file, as JSON (PyYAML's safe loader).
fn yaml_documents(rel: &str) -> Option<Vec<Value>> {
    let python = tools::python_with(&["yaml"], &format!("reading {rel}"))?;
    let code = "import json, sys, yaml; json.dump(list(yaml.safe_load_all(open(sys.argv[1]))), sys.stdout)";
    let out = Command::new(python).args(["-c", code]).arg(repo(rel)).output().expect("run python3");
    assert!(out.status.success(), "{rel} is not YAML:\n{}", tools::transcript(&out));
    Some(serde_json::from_slice(&out.stdout).expect("python printed JSON"))
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

#[test]
fn the_kubernetes_manifests_fit_the_image_and_the_configmap_loads() {
    let (Some(configmaps), Some(pvcs), Some(deployment)) = (
        yaml_documents("examples/kubernetes/configmap.yaml"),
        yaml_documents("examples/kubernetes/pvc.yaml"),
        yaml_documents("examples/kubernetes/deployment.yaml"),
    ) else {
        return;
    };
    let configmap = of_kind(&configmaps, "ConfigMap")[0];
    let config_text = configmap["data"]["config.toml"].as_str().expect("data.config.toml");

    // The embedded file loads through the real loader, as --config and as the system file it is mounted as.
    let sb = Sandbox::new();
    let file = sb.write("extracted/config.toml", config_text);
    let out = sb.cmd().args(["--config", file.to_str().unwrap(), "cache", "status"]).output().unwrap();
    assert!(
        out.status.success(),
        "inferno --config <ConfigMap's config.toml> cache status: {}",
        stderr(&out)
    );
    crate::guide_configs::check_loads_from_file(&file);
    // It holds the guide's ConfigMap block (examples/config/kubernetes-cache.toml) line for line.
    for line in read("examples/config/kubernetes-cache.toml").lines().filter(|l| !l.starts_with('#')) {
        assert!(
            config_text.lines().any(|l| l == line),
            "{line:?} of the guide's block is not in the ConfigMap"
        );
    }
    let stages = docker_stages();
    let runtime = &stages[1];
    let image_env = env_of(runtime);
    let image_env: Vec<(&str, &str)> = image_env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut as_system = image_env.clone();
    let file_str = file.to_str().unwrap();
    as_system.push(("INFERNO_SYSTEM_CONFIG", file_str));
    let status = sb.status(&[], &as_system);
    assert_eq!(status.value("cache.metrics.prometheus_enabled"), true, "the pod serves /metrics");
    assert_eq!(status.value("cache.base_dir"), &path_json(Path::new("/cache")));
    let port = status.value("server.port").as_u64().unwrap();

    // Where the binary looks for the system file, by default.
    let mut cmd = sb.std_command();
    cmd.env_remove("INFERNO_SYSTEM_CONFIG").args(["cache", "status", "--json"]);
    let out = cmd.output().unwrap();
    assert!(out.status.success());
    let default_status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let system_path = default_status["config_files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["role"] == "system")
        .expect("a system file")["path"]
        .as_str()
        .unwrap()
        .to_string();

    let deploy = of_kind(&deployment, "Deployment")[0];
    let pod = &deploy["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let volumes = pod["volumes"].as_array().unwrap();
    let mounts = container["volumeMounts"].as_array().unwrap();
    let mount_of = |volume: &Value| -> String {
        let name = &volume["name"];
        let mount =
            mounts.iter().find(|m| &m["name"] == name).unwrap_or_else(|| panic!("{name} is not mounted"));
        mount["mountPath"].as_str().unwrap().to_string()
    };

    // The ConfigMap's config.toml lands on the system config path.
    let config_volume = volumes
        .iter()
        .find(|v| v["configMap"]["name"] == configmap["metadata"]["name"])
        .expect("the ConfigMap is a volume");
    assert!(config_volume["configMap"]["items"].is_null(), "every key of the ConfigMap is a file");
    assert_eq!(format!("{}/config.toml", mount_of(config_volume)), system_path);

    // The PVCs exist, the cache one at the image's cache dir, the models one at its models dir.
    let claims: BTreeSet<&str> = of_kind(&pvcs, "PersistentVolumeClaim")
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap())
        .collect();
    let claim_mount = |dir: &str| {
        let volume = volumes
            .iter()
            .find(|v| v["persistentVolumeClaim"].is_object() && mount_of(v) == dir)
            .unwrap_or_else(|| panic!("no PVC mounted at {dir}"));
        let claim = volume["persistentVolumeClaim"]["claimName"].as_str().unwrap();
        assert!(claims.contains(claim), "{claim} is not in pvc.yaml");
    };
    claim_mount(&env_value(runtime, "INFERNO_CACHE_DIR"));
    claim_mount(&env_value(runtime, "INFERNO_MODELS_DIR"));

    // Closed by default: both keys come from files of a Secret volume, not from the pod's environment.
    let env: Vec<(String, String)> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e["value"].as_str().unwrap_or("").to_string()))
        .collect();
    assert!(!env.iter().any(|(k, _)| k == "INFERNO_API_KEY" || k == "INFERNO_SERVER__API_KEY"), "{env:?}");
    assert!(env.contains(&("INFERNO_CACHE__SECURITY__ENCRYPTION".into(), "aes-256-gcm".into())), "{env:?}");
    for var in [
        "INFERNO_SERVER__API_KEY_FILE",
        "INFERNO_SERVER__ADMIN_KEY_FILE",
        "INFERNO_CACHE__SECURITY__KEY_FILE",
    ] {
        let (_, file) = env.iter().find(|(k, _)| k == var).unwrap_or_else(|| panic!("{var} is set"));
        let (dir, name) = file.rsplit_once('/').unwrap();
        let secret = volumes
            .iter()
            .find(|v| v["secret"].is_object() && mount_of(v) == dir)
            .unwrap_or_else(|| panic!("no Secret mounted at {dir}"));
        assert_eq!(secret["secret"]["secretName"], "inferno-keys");
        assert!(secret["secret"]["items"].is_null(), "every key of the Secret is a file, {name} included");
        assert_eq!(secret["secret"]["defaultMode"], 0o440, "root and the pod's fsGroup only");
        assert!(read("examples/kubernetes/deployment.yaml").contains(&format!("--from-literal={name}=")));
    }

    // The image's command, as the image's user.
    let command: Vec<String> = serde_json::from_value(container["command"].clone()).unwrap();
    assert_eq!(command, cmd_of(runtime));
    assert_eq!(pod["securityContext"]["runAsUser"], image_uid(runtime));
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["fsGroup"], image_uid(runtime), "the PVCs are writable by that user");

    // Probes on /health at the port the config sets; time for the SIGTERM drain.
    let http =
        container["ports"].as_array().unwrap().iter().find(|p| p["name"] == "http").expect("port http");
    assert_eq!(http["containerPort"], port);
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"], "/health", "{probe}");
        assert_eq!(get["port"], "http", "{probe}");
    }
    let grace = pod["terminationGracePeriodSeconds"].as_u64().expect("terminationGracePeriodSeconds");
    assert!(grace >= 60, "time to finish streams and flush: {grace}");
    assert_eq!(deploy["spec"]["replicas"], 1, "one writer per cache volume");
    assert_eq!(deploy["spec"]["strategy"]["type"], "Recreate", "the old pod releases the cache first");

    // Prometheus scrapes the same port; the Service routes to it.
    let annotations = &deploy["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/port"], port.to_string());
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
    let service = of_kind(&deployment, "Service")[0];
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
    assert_eq!(service["spec"]["selector"], deploy["spec"]["selector"]["matchLabels"]);
}

/// Every `inferno_...` metric name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("inferno_") {
        let before = rest[..at].chars().last();
        let tail = &rest[at..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            names.insert(tail[..end].trim_end_matches('_').to_string());
        }
        rest = &tail[end..];
    }
    names
}

/// The PromQL of every dashboard panel, with Grafana's variables replaced by values Prometheus accepts.
fn dashboard_queries() -> Vec<(String, String)> {
    let dashboard: Value = serde_json::from_str(&read("examples/grafana/inferno-dashboard.json")).unwrap();
    let mut queries = Vec::new();
    let mut ids = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        assert!(ids.insert(panel["id"].as_u64().expect("a panel id")), "duplicate panel id");
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("expr").to_string();
            let concrete =
                expr.replace("$__rate_interval", "5m").replace("$__range", "1h").replace("$instance", ".*");
            assert!(!concrete.contains('$'), "an unknown variable in {expr}");
            queries.push((panel["title"].as_str().unwrap().to_string(), concrete));
        }
    }
    queries
}

fn rules() -> Option<Vec<Value>> {
    let docs = yaml_documents("examples/prometheus/alerts.yml")?;
    let groups = docs[0]["groups"].as_array().expect("groups");
    Some(groups.iter().flat_map(|g| g["rules"].as_array().unwrap().clone()).collect())
}

#[test]
fn the_alert_rules_pass_promtool_and_fire_at_the_configured_thresholds() {
    // The thresholds are the [cache.alerts.thresholds] defaults, each rule naming its key.
    let Some(rules) = rules() else { return };
    let t = inferno::config::AlertThresholds::default();
    let expected = [
        ("cache.alerts.thresholds.hit_ratio_min", "<", t.hit_ratio_min),
        ("cache.alerts.thresholds.size_usage_max", ">", t.size_usage_max),
        ("cache.alerts.thresholds.compression_ratio_min", "<", t.compression_ratio_min),
        ("cache.alerts.thresholds.response_time_max_ms", ">", t.response_time_max_ms as f64 / 1000.0),
    ];
    for (key, op, value) in expected {
        let rule = rules
            .iter()
            .find(|r| r["annotations"]["config_key"] == key)
            .unwrap_or_else(|| panic!("no rule for {key}"));
        let expr = rule["expr"].as_str().unwrap().trim();
        let (_, number) =
            expr.rsplit_once(&format!(" {op} ")).unwrap_or_else(|| panic!("{expr} ends in {op} N"));
        assert_eq!(number.parse::<f64>().unwrap(), value, "{key} in {expr}");
    }

    let Some(promtool) = tools::promtool("promtool check rules / test rules on examples/prometheus") else {
        return;
    };
    let alerts = repo("examples/prometheus/alerts.yml");
    let out = tools::run(&promtool, &["check", "rules", alerts.to_str().unwrap()], None);
    let transcript = tools::transcript(&out);
    eprintln!("promtool check rules:\n{transcript}");
    assert!(out.status.success(), "{transcript}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("SUCCESS: {} rules found", rules.len())));
    let tests = repo("examples/prometheus/alerts.test.yml");
    let out = tools::run(&promtool, &["test", "rules", tests.to_str().unwrap()], None);
    let transcript = tools::transcript(&out);
    eprintln!("promtool test rules:\n{transcript}");
    assert!(out.status.success(), "{transcript}");
}

#[test]
fn the_dashboard_the_rules_and_the_docs_use_only_exported_metrics() {
    let (sb, dir) = with_tiny_model();
    let server = busy_server(&sb, &dir);
    let exported = queryable_names(&scrape(&server));

    let queries = dashboard_queries();
    let mut used = BTreeSet::new();
    for (title, expr) in &queries {
        for name in metric_names(expr) {
            assert!(exported.contains(&name), "panel {title:?} uses {name}, which /metrics does not export");
            used.insert(name);
        }
    }
    for (name, _) in PROMISED {
        let as_used =
            |n: &String| n == name || n.strip_suffix("_bucket").or(n.strip_suffix("_count")) == Some(name);
        assert!(used.iter().any(as_used), "no dashboard panel shows {name}");
    }
    let docs = read("docs/serve-ops.md");
    for name in metric_names(&docs) {
        assert!(exported.contains(&name), "docs/serve-ops.md names {name}, which /metrics does not export");
    }
    for (name, _) in PROMISED {
        assert!(docs.contains(&format!("`{name}")), "docs/serve-ops.md does not list {name}");
    }

    let Some(rules) = rules() else { return };
    for rule in &rules {
        let expr = rule["expr"].as_str().unwrap();
        for name in metric_names(expr) {
            assert!(exported.contains(&name), "alert {} uses {name}, not exported", rule["alert"]);
        }
    }

    // The dashboard's PromQL parses: as recording rules, through promtool.
    let Some(promtool) = tools::promtool("promtool check rules on the dashboard's queries") else { return };
    let mut file = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, expr)) in queries.iter().enumerate() {
        file.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {}\n",
            serde_json::json!(expr)
        ));
    }
    let path = sb.write("dashboard-rules.yml", &file);
    let out = tools::run(&promtool, &["check", "rules", path.to_str().unwrap()], None);
    assert!(out.status.success(), "the dashboard's queries do not parse:\n{}", tools::transcript(&out));
}
