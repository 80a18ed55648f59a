//! Receivers the alert tests send to: an HTTP server on loopback that records every request (for the webhook
//! and Slack channels) and answers with a chosen status or not at all, and the SMTP server of
//! tests/python/smtp_sink.py (aiosmtpd), whose mails land as files.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request the HTTP receiver got.
#[derive(Clone, Debug)]
pub struct Captured {
    /// The request target, e.g. `/hook`.
    pub path: String,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Captured {
    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// An HTTP/1.1 receiver on 127.0.0.1: paths starting with `/fail` get 500, `/hang` never get an answer,
/// anything else 200.
pub struct HttpReceiver {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    requests: Arc<Mutex<Vec<Captured>>>,
}

impl HttpReceiver {
    /// Starts the receiver on a free port.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = Arc::clone(&seen);
                std::thread::spawn(move || serve(stream, &seen));
            }
        });
        Self { base, requests }
    }

    /// The requests received so far on `path`.
    pub fn on(&self, path: &str) -> Vec<Captured> {
        self.requests.lock().unwrap().iter().filter(|r| r.path == path).cloned().collect()
    }

    /// Waits up to `limit` for a request on `path` whose JSON satisfies `want`; returns it.
    pub fn wait_for(
        &self,
        path: &str,
        limit: Duration,
        want: impl Fn(&serde_json::Value) -> bool,
    ) -> Captured {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(found) = self.on(path).into_iter().find(|r| want(&r.json())) {
                return found;
            }
            assert!(Instant::now() < deadline, "nothing wanted arrived on {path}: {:?}", self.on(path));
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn serve(stream: TcpStream, seen: &Mutex<Vec<Captured>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let len = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        seen.lock().unwrap().push(Captured { path: path.clone(), headers, body });
        if path.starts_with("/hang") {
            std::thread::sleep(Duration::from_secs(60));
            return;
        }
        let (status, text) =
            if path.starts_with("/fail") { ("500 Internal Server Error", "boom") } else { ("200 OK", "ok") };
        let reply = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{text}",
            text.len()
        );
        if (&stream).write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// The aiosmtpd server of tests/python/smtp_sink.py; stopped when dropped.
pub struct SmtpSink {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
}

impl SmtpSink {
    /// Starts it (python3 with aiosmtpd must be installed: `scripts/setup.sh --deps-only`).
    pub fn start(python: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/smtp_sink.py");
        let mut child = Command::new(python)
            .arg(script)
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the SMTP sink");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| panic!("the SMTP sink printed {line:?}"));
        Self { child, port, dir }
    }

    /// The mails received so far, oldest first.
    pub fn mails(&self) -> Vec<String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        files.sort();
        files.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect()
    }

    /// Waits up to `limit` for a mail containing `needle`; returns it.
    pub fn wait_for(&self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(mail) = self.mails().into_iter().find(|m| m.contains(needle)) {
                return mail;
            }
            assert!(Instant::now() < deadline, "no mail with {needle:?}: {:?}", self.mails());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
