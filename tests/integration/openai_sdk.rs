//! The official OpenAI Python SDK against `inferno serve`: tests/python/openai_client.py lists models, runs
//! chat and text completions (a repeat is a cache HIT with the same answer), streams both (generated and
//! replayed), and gets the SDK's own error classes for an unknown model, an unsupported parameter and a
//! wrong API key. The server requires a key, so the SDK's `Authorization` header is exercised too.

use std::path::Path;
use std::process::Command;

use crate::server::{Server, with_tiny_model};
use crate::tools;

#[test]
fn the_openai_python_sdk_works_against_the_server() {
    let Some(python) = tools::python_with(&["openai"], "the OpenAI Python SDK test") else { return };
    let (sb, dir) = with_tiny_model();
    let server = Server::start(&sb, &dir, &[], &[("INFERNO_API_KEY", "sdk-test-key")]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/openai_client.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(&server.base)
        .env("OPENAI_API_KEY", "sdk-test-key")
        // Only the server on loopback: no proxy from the environment, and no other base URL.
        .env_remove("OPENAI_BASE_URL")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .output()
        .expect("run python3");
    let transcript = tools::transcript(&out);
    eprintln!("{transcript}");
    assert!(out.status.success(), "{} failed:\n{transcript}", script.display());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("all checks passed"), "{transcript}");
    for check in ["first chat is a MISS", "repeated chat is a HIT", "a generated stream comes in pieces"] {
        assert!(stdout.contains(&format!("ok: {check}")), "{check:?} did not run:\n{transcript}");
    }
}
