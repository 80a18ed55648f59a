//! A running `inferno serve` for end-to-end tests: started on an ephemeral port with the tiny llama model,
//! its address read from the line it prints, stopped with SIGTERM (or SIGKILL) on request or when dropped.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use inferno::models::gguf::tiny::write_tiny_llama;
use serde_json::Value;

use crate::util::Sandbox;

/// A server process and where it listens.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

/// A sandbox with `<root>/models/tiny.gguf`; returns the models directory.
pub fn with_tiny_model() -> (Sandbox, PathBuf) {
    let sb = Sandbox::new();
    let dir = sb.path("models");
    std::fs::create_dir_all(&dir).unwrap();
    write_tiny_llama(&dir.join("tiny.gguf")).unwrap();
    (sb, dir)
}

impl Server {
    /// Starts `inferno serve --port 0 --models-dir DIR <extra>` with `env`; waits for its address line.
    pub fn start(sb: &Sandbox, models: &std::path::Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = sb.std_command();
        cmd.args(["serve", "--port", "0", "--models-dir", models.to_str().unwrap()])
            .args(extra)
            .envs(env.iter().copied());
        Self::spawn(&mut cmd)
    }

    /// [`start`](Self::start) with the server's log (stderr) written to `log`.
    pub fn start_logging(
        sb: &Sandbox,
        models: &std::path::Path,
        extra: &[&str],
        env: &[(&str, &str)],
        log: &std::path::Path,
    ) -> Self {
        let mut cmd = sb.std_command();
        cmd.args(["serve", "--port", "0", "--models-dir", models.to_str().unwrap()])
            .args(extra)
            .envs(env.iter().copied());
        Self::spawn_logging_to(&mut cmd, std::fs::File::create(log).unwrap())
    }

    /// Starts `cmd`, an `inferno serve` command line that listens on loopback; waits for its address line.
    pub fn spawn(cmd: &mut std::process::Command) -> Self {
        Self::spawn_logging_to(cmd, Stdio::inherit())
    }

    /// [`Server::spawn`], with the server's stderr (its logs) going to `logs`.
    pub fn spawn_logging_to(cmd: &mut std::process::Command, logs: impl Into<Stdio>) -> Self {
        cmd.stdout(Stdio::piped()).stderr(logs);
        let mut child = cmd.spawn().expect("start inferno serve");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read the address line");
        let base = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        Self { child: Some(child), base }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends `signal` and waits for the exit; returns the exit code (None when killed by a signal).
    pub fn stop(mut self, signal: i32) -> Option<i32> {
        let mut child = self.child.take().unwrap();
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, signal) };
        wait_timeout(&mut child, Duration::from_secs(30)).code()
    }

    /// An agent that never retries and returns error statuses as responses.
    pub fn agent() -> ureq::Agent {
        ureq::Agent::config_builder().http_status_as_error(false).build().into()
    }

    /// POSTs JSON to `path`; returns status, headers of interest and the body text.
    pub fn post(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
        let mut req = Self::agent().post(format!("{}{path}", self.base));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        Reply::from(req.send_json(body).expect("request"))
    }

    /// DELETEs `path` (query string included), with a JSON body when given.
    pub fn delete(&self, path: &str, body: Option<&Value>, headers: &[(&str, &str)]) -> Reply {
        let mut req = Self::agent().delete(format!("{}{path}", self.base));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        Reply::from(match body {
            Some(body) => req.force_send_body().send_json(body).expect("request"),
            None => req.call().expect("request"),
        })
    }

    /// GETs `path`.
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut req = Self::agent().get(format!("{}{path}", self.base));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        Reply::from(req.call().expect("request"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_timeout(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(std::time::Instant::now() < deadline, "the server did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A response, read whole.
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `X-Inferno-Cache`.
    pub cache: Option<String>,
    /// `X-Inferno-Cache-Key`.
    pub key: Option<String>,
    /// `X-Inferno-Cache-Similarity` (semantic hits).
    pub similarity: Option<String>,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// The body.
    pub text: String,
}

impl From<ureq::http::Response<ureq::Body>> for Reply {
    fn from(mut response: ureq::http::Response<ureq::Body>) -> Self {
        let header =
            |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let (cache, key, content_type) =
            (header("x-inferno-cache"), header("x-inferno-cache-key"), header("content-type"));
        let similarity = header("x-inferno-cache-similarity");
        Self {
            status: response.status().as_u16(),
            cache,
            key,
            similarity,
            content_type,
            text: response.body_mut().read_to_string().expect("body"),
        }
    }
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// The `data:` payloads of an SSE body, `[DONE]` included.
    pub fn events(&self) -> Vec<String> {
        self.text.lines().filter_map(|l| l.strip_prefix("data: ")).map(str::to_string).collect()
    }
}
