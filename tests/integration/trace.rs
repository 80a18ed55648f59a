//! `cache trace`: the operations of a running writer (here `cache import -` fed slowly through stdin) stream
//! to the tracer; with no writer running, trace fails with a clear message.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

use crate::util::Sandbox;

#[test]
fn trace_streams_a_running_writers_operations() {
    let sb = Sandbox::new();
    let mut writer = sb
        .std_command()
        .args(["cache", "import", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = writer.stdin.take().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let tracer = sb
        .std_command()
        .args(["cache", "trace", "--operations", "write", "--count", "3", "--duration", "20s", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    for i in 0..6 {
        let line = json!({"model": "m", "request": {"prompt": format!("p{i}")},
                          "response": {"id": "x", "choices": [{"text": "t"}]}});
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    let out = tracer.wait_with_output().unwrap();
    drop(stdin);
    assert!(writer.wait().unwrap().success());
    assert!(out.status.success());
    let events: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.len(), 3, "--count 3");
    assert!(events.iter().all(|e| e["op"] == "write" && e["kind"] == "response"));
    assert!(events.iter().all(|e| e["key"].as_str().unwrap().len() == 64), "keys, never prompt text");
    assert!(!sb.default_cache_dir().join("trace.request").exists(), "the request is withdrawn");
}

#[test]
fn trace_without_a_writer_fails_clearly() {
    let sb = Sandbox::new();
    let out = sb.std_command().args(["cache", "trace", "--operations", "read"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no process is writing the cache"));
    let out = sb.std_command().args(["cache", "trace", "--operations", "peek"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
