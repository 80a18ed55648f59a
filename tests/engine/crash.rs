//! Crash safety under a real `SIGKILL`: the test re-runs its own binary as a child process (the
//! `child_writer` test, which does nothing unless `INFERNO_CRASH_CHILD_DIR` is set) that opens a persistent,
//! zstd-compressed, deduplicating cache and writes without end — puts, overwrites and removes derived from a
//! counter — calling `flush()` every few operations and then printing `durable <n>`. The parent kills it at a
//! random moment (sometimes while it is still opening the cache and recovering from the previous kill),
//! reopens the same directory and checks what docs/format.md promises: the cache opens; every operation
//! reported durable is there; what is there is exactly the result of some prefix of the operations (so no
//! key holds a value that was never written for it, a removed key stays removed, and a torn tail is cut
//! rather than reported); and `verify` finds nothing damaged. The directory is reused across iterations so
//! that recoveries stack up. `INFERNO_CRASH_ITERATIONS=N` runs N iterations instead of 20.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use inferno::cache::{Access, Kind, Manager};
use inferno::config::{CacheConfig, CacheType, CompressionAlgorithm};

use crate::util::{self, Rng, Style};

/// Environment variable naming the cache directory of the child writer.
const CHILD_DIR_ENV: &str = "INFERNO_CRASH_CHILD_DIR";
/// Environment variable giving the child its iteration number (which picks its operations).
const CHILD_ITERATION_ENV: &str = "INFERNO_CRASH_CHILD_ITERATION";
/// Keys the writer uses; few, so that later iterations overwrite and remove earlier ones.
const KEYS: u64 = 40;
/// The writer flushes after every this many operations.
const FLUSH_EVERY: u64 = 24;

fn config(dir: &Path) -> CacheConfig {
    util::config(dir, CacheType::Persistent, CompressionAlgorithm::Zstd, true)
}

/// The `n`th operation of iteration `iteration`: a put of `Some(value)` or a remove (`None`) of `key`.
fn operation(iteration: u64, n: u64) -> (String, Option<Vec<u8>>) {
    let mut rng = Rng::new(iteration.wrapping_mul(0x1000_0000_01B3) ^ n);
    let key = format!("key-{}", rng.below(KEYS));
    if rng.percent(15) {
        return (key, None);
    }
    (key.clone(), Some(value(&key, iteration, n, &mut rng)))
}

/// A value that names its key and version, so that a value served under the wrong key or from a version
/// never written is recognised; its tail is one of a few shared texts, so chunks deduplicate across values.
fn value(key: &str, iteration: u64, n: u64, rng: &mut Rng) -> Vec<u8> {
    let mut bytes = format!("{key} iteration {iteration} op {n}\n").into_bytes();
    let len = [0, 200, 900, 1500, 4000][rng.below(5) as usize];
    bytes.extend(util::make_value(len, Style::Text, rng.below(3)));
    if rng.percent(30) {
        bytes.extend(util::make_value(rng.range(0..600) as usize, Style::Noise, rng.next_u64()));
    }
    bytes
}

/// The child: writes until killed. A no-op in an ordinary test run.
#[test]
fn child_writer() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else { return };
    let iteration: u64 = std::env::var(CHILD_ITERATION_ENV).unwrap().parse().unwrap();
    let cache = Manager::open(&config(Path::new(&dir)), Access::ReadWrite).expect("child: open the cache");
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").and_then(|()| out.flush()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    for n in 0.. {
        let (key, value) = operation(iteration, n);
        match value {
            Some(value) => cache.put(Kind::Model, &key, "crash.gguf", &value, None).unwrap(),
            None => {
                cache.remove(Kind::Model, &key).unwrap();
            }
        }
        if (n + 1) % FLUSH_EVERY == 0 {
            cache.flush().unwrap();
            writeln!(out, "durable {}", n + 1).and_then(|()| out.flush()).unwrap();
        }
        // Only reached when the parent never kills: stop rather than write forever.
        assert!(Instant::now() < deadline, "child writer was not killed");
    }
}

/// What the parent saw of one child.
struct Killed {
    /// Operations `0..durable` were reported durable.
    durable: u64,
    /// Whether the child had opened the cache.
    ready: bool,
}

/// Runs the child for iteration `iteration` on `dir` and kills it after a random delay.
fn run_child(dir: &Path, iteration: u64, rng: &mut Rng) -> Killed {
    let stderr = std::fs::File::create(dir.with_extension("child-stderr")).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash::child_writer", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_ITERATION_ENV, iteration.to_string())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn the child writer");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut durable = 0;
        let mut ready = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // libtest prints "test crash::child_writer ... " without a newline before the child's output.
            if line.ends_with("ready") {
                ready = true;
                let _ = tx.send(0);
            } else if let Some((_, n)) = line.rsplit_once("durable ") {
                durable = n.parse().unwrap();
                let _ = tx.send(durable);
            }
        }
        (durable, ready)
    });
    let mut wait_for = |durable: bool| loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(n) if n > 0 || !durable => break,
            Ok(_) => {}
            Err(_) => {
                let _ = child.kill();
                panic!("the child made no progress: {}", child_stderr(dir))
            }
        }
    };
    match rng.below(100) {
        // Kill while the child may still be starting, opening the cache or cutting a torn tail.
        0..15 => std::thread::sleep(Duration::from_millis(rng.range(0..40))),
        // Kill soon after the open, before or during the first flush.
        15..40 => {
            wait_for(false);
            std::thread::sleep(Duration::from_millis(rng.range(0..30)));
        }
        // Kill at any point of a run that has made something durable.
        _ => {
            wait_for(true);
            std::thread::sleep(Duration::from_millis(rng.range(0..100)));
        }
    }
    if let Some(status) = child.try_wait().unwrap() {
        panic!("the child exited by itself ({status}): {}", child_stderr(dir));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let (durable, ready) = reader.join().unwrap();
    Killed { durable, ready }
}

fn child_stderr(dir: &Path) -> String {
    std::fs::read_to_string(dir.with_extension("child-stderr")).unwrap_or_default()
}

/// Appends the first bytes of the last record to the active segment, as an append cut short by the crash
/// would leave them: the next open must cut them off without calling it damage. Skipped when the kill
/// already left a torn record there (a torn write is only ever the last one).
fn tear_the_tail(dir: &Path, rng: &mut Rng) {
    let data = util::data_dir(dir);
    let Some(last) = util::read_records(&data, false).into_iter().max_by_key(|r| (r.segment, r.offset))
    else {
        return;
    };
    let path = data.join(format!("seg-{:010}.log", last.segment));
    let bytes = std::fs::read(&path).unwrap();
    if bytes.len() as u64 != last.offset + last.len {
        return;
    }
    let start = last.offset as usize;
    let torn = &bytes[start..start + rng.range(1..last.len) as usize];
    std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(torn).unwrap();
}

/// Key -> (iteration, op) of the live value, for keys that hold one.
type State = BTreeMap<String, (u64, u64)>;

fn apply(state: &mut State, iteration: u64, n: u64) {
    let (key, value) = operation(iteration, n);
    match value {
        Some(_) => state.insert(key, (iteration, n)),
        None => state.remove(&key),
    };
}

/// The version a value names, if it is one this test wrote for `key`.
fn version_of(key: &str, bytes: &[u8]) -> Option<(u64, u64)> {
    let text = String::from_utf8_lossy(bytes.split(|b| *b == b'\n').next()?).into_owned();
    let rest = text.strip_prefix(key)?.strip_prefix(" iteration ")?;
    let (iteration, n) = rest.split_once(" op ")?;
    let (iteration, n) = (iteration.parse().ok()?, n.parse().ok()?);
    let (written_key, value) = operation(iteration, n);
    (written_key == key && value.as_deref() == Some(bytes)).then_some((iteration, n))
}

#[test]
fn kill_9_loses_nothing_durable_and_recovers_a_prefix() {
    let iterations: u64 =
        std::env::var("INFERNO_CRASH_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cache");
    let seed = std::env::var("INFERNO_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    let mut rng = Rng::new(seed);
    let mut state = State::new();
    for iteration in 0..iterations {
        let context = format!("seed {seed} (INFERNO_CRASH_SEED), iteration {iteration}");
        let killed = run_child(&dir, iteration, &mut rng);

        if rng.percent(30) {
            tear_the_tail(&dir, &mut rng);
        }
        let cache = Manager::open(&config(&dir), Access::ReadWrite)
            .unwrap_or_else(|e| panic!("{context}: reopening after kill -9 failed: {e}"));
        let report = cache.verify(false).unwrap();
        assert!(report.is_clean(), "{context}: verify after kill -9 found damage: {report:?}");

        // What the cache holds now, checked value by value against what was ever written for its key.
        let mut found = State::new();
        for (_, key, _) in cache.disk_index_entries() {
            let key = String::from_utf8(key).unwrap();
            assert!(key.starts_with("key-"), "{context}: unknown key {key:?}");
        }
        for k in 0..KEYS {
            let key = format!("key-{k}");
            if let Some(bytes) = cache.get(Kind::Model, &key).unwrap() {
                let version = version_of(&key, &bytes).unwrap_or_else(|| {
                    panic!("{context}: {key} holds {} bytes never written for it", bytes.len())
                });
                found.insert(key, version);
            }
        }

        // Operations 0..durable are durable; the child may have done up to FLUSH_EVERY more (it is killed
        // before it can print the next line), and any prefix of those may have reached the file.
        let mut expected = state.clone();
        for n in 0..killed.durable {
            apply(&mut expected, iteration, n);
        }
        let mut prefix = None;
        for extra in 0..=FLUSH_EVERY {
            if expected == found {
                prefix = Some(killed.durable + extra);
                break;
            }
            apply(&mut expected, iteration, killed.durable + extra);
        }
        let Some(_) = prefix else {
            let mut durable = state.clone();
            for n in 0..killed.durable {
                apply(&mut durable, iteration, n);
            }
            let lost: Vec<_> = durable.iter().filter(|(k, v)| found.get(*k) != Some(*v)).collect();
            panic!(
                "{context}: after {} durable ops (child ready: {}) the cache is no prefix of the operations; \
                 keys differing from the durable state: {lost:?}, found: {found:?}",
                killed.durable, killed.ready
            );
        };
        state = found;
        drop(cache);
    }
}

/// Dropping the manager releases the writer lock at once, even while another thread is spawning a child
/// process that, between its fork and its exec, holds copies of every descriptor (the lock's among them).
#[test]
fn dropping_the_manager_unlocks_while_a_child_is_being_spawned() {
    use std::io::Read;
    use std::os::unix::process::CommandExt;

    let dir = tempfile::tempdir().unwrap();
    let cache = Manager::open(&config(dir.path()), Access::ReadWrite).unwrap();
    let (mut forked, mut forked_tx) = std::io::pipe().unwrap();
    let (mut go_rx, mut go) = std::io::pipe().unwrap();
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args(["--exact", "crash::child_writer"]).stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: between fork and exec the hook only writes to and reads from pipes (plain syscalls, no
    // allocation or locks).
    unsafe {
        command.pre_exec(move || {
            forked_tx.write_all(b"f")?;
            go_rx.read_exact(&mut [0])
        });
    }
    let spawner = std::thread::spawn(move || command.spawn().and_then(|mut child| child.wait()));
    forked.read_exact(&mut [0]).unwrap();
    // The child now holds the lock's descriptor and waits: dropping the manager must still unlock.
    drop(cache);
    let reopened = Manager::open(&config(dir.path()), Access::ReadWrite);
    go.write_all(b"g").unwrap();
    assert!(spawner.join().unwrap().unwrap().success());
    reopened.expect("reopen after drop while a child process holds a copy of the lock's descriptor");
}
