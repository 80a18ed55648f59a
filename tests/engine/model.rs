//! Model-based property tests of the cache [`Manager`]: random sequences of put (with the kind's default TTL,
//! a long TTL, a TTL that has already run out, or a 2 ms TTL that runs out at the next "advance expiry" step),
//! get, remove, flush and reopen are run against a `HashMap` oracle, for every `cache.type` (memory: a reopen
//! empties the cache; disk and persistent: a reopen keeps everything, since dropping the manager flushes),
//! every codec (none, gzip, zstd) and dedup off and on. Values are noise, text or constant bytes of 0-20 KiB
//! with extra weight on the sizes around the 1000-byte compression threshold and the 256-byte dedup chunk
//! size, drawn from a small pool so that several keys hold identical values. A second property does the same
//! with response records (`{"model", "request", "response"}`) stored through `response_store::put`, which
//! must come back byte for byte, and checks that `response_store::get_fresh` serves the stored answer under a
//! fresh `id`, every other byte as stored.

use std::collections::HashMap;
use std::time::Duration;

use inferno::cache::{Access, Kind, Manager, response_store};
use inferno::config::{CacheConfig, CacheType, CompressionAlgorithm};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;
use serde_json::Value;

use crate::util::{self, KINDS, Style};

/// Keys per kind; few, so that puts overwrite and gets hit.
const KEYS: u8 = 5;

/// The TTL a put is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ttl {
    /// `None`: the kind's default (hours).
    Default,
    /// One hour.
    Hour,
    /// 1 ns: below the millisecond resolution of expiry times, so the entry is expired when written.
    Expired,
    /// 2 ms: may or may not have run out until the next `AdvanceExpiry`, after which it has.
    Short,
}

impl Ttl {
    fn duration(self) -> Option<Duration> {
        match self {
            Ttl::Default => None,
            Ttl::Hour => Some(Duration::from_secs(3600)),
            Ttl::Expired => Some(Duration::from_nanos(1)),
            Ttl::Short => Some(Duration::from_millis(2)),
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Put {
        kind: Kind,
        key: u8,
        value: Index,
        ttl: Ttl,
    },
    Get {
        kind: Kind,
        key: u8,
    },
    Remove {
        kind: Kind,
        key: u8,
    },
    Flush,
    Reopen,
    /// Sleeps past every `Ttl::Short`.
    AdvanceExpiry,
}

/// What the oracle knows about one key; a key not in the oracle is absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// Readable, holding the pool value with this index.
    Live(usize),
    /// Readable until its 2 ms TTL runs out, then gone.
    Expiring(usize),
    /// Written with a TTL that has run out: never readable again. (Whether `remove` still finds it is the
    /// tier's business, so its return value is not checked.)
    Expired,
}

/// One configuration the operations run against.
#[derive(Clone, Copy, Debug)]
struct Setup {
    kind: CacheType,
    algorithm: CompressionAlgorithm,
    dedup: bool,
}

/// Every type x codec x dedup combination.
fn setups() -> Vec<Setup> {
    let mut all = Vec::new();
    for kind in [CacheType::Memory, CacheType::Disk, CacheType::Persistent] {
        for algorithm in [CompressionAlgorithm::None, CompressionAlgorithm::Gzip, CompressionAlgorithm::Zstd]
        {
            for dedup in [false, true] {
                all.push(Setup { kind, algorithm, dedup });
            }
        }
    }
    all
}

/// Whether `got` is what the cache may return for a put of `expected`: every value, response records
/// included, round-trips byte for byte.
fn same_value(expected: &[u8], got: &[u8]) -> bool {
    expected == got
}

fn key_name(kind: Kind, key: u8) -> String {
    format!("{kind}-key-{key}")
}

/// Runs `ops` against a fresh cache of `setup`, checking every answer against the oracle; after the last
/// operation every key is read back, then once more after a reopen.
fn run(setup: Setup, pool: &[Vec<u8>], ops: &[Op], check_response: bool) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let config: CacheConfig = util::config(dir.path(), setup.kind, setup.algorithm, setup.dedup);
    let open = || Manager::open(&config, Access::ReadWrite).expect("open the cache");
    let mut cache = open();
    let mut oracle: HashMap<(Kind, u8), Slot> = HashMap::new();
    let fail = |step: usize, op: &dyn std::fmt::Debug, what: String| {
        TestCaseError::fail(format!("{setup:?}, step {step} ({op:?}): {what}"))
    };

    let check_get = |cache: &Manager,
                     oracle: &mut HashMap<(Kind, u8), Slot>,
                     kind: Kind,
                     key: u8,
                     step: usize,
                     op: &dyn std::fmt::Debug|
     -> Result<(), TestCaseError> {
        let name = key_name(kind, key);
        let got = cache.get(kind, &name).map_err(|e| fail(step, op, format!("get failed: {e}")))?;
        let slot = oracle.get(&(kind, key)).copied();
        match (slot, got) {
            (Some(Slot::Live(i)) | Some(Slot::Expiring(i)), Some(got)) => {
                if !same_value(&pool[i], &got) {
                    return Err(fail(
                        step,
                        op,
                        format!(
                            "{name}: got {} bytes, expected pool value {i} ({} bytes)",
                            got.len(),
                            pool[i].len()
                        ),
                    ));
                }
                // A 2 ms TTL may run out between the two reads, so only a live entry must answer twice.
                if check_response && kind == Kind::Response && slot == Some(Slot::Live(i)) {
                    check_fresh_response(cache, &name, &pool[i]).map_err(|e| fail(step, op, e))?;
                }
            }
            (Some(Slot::Live(i)), None) => {
                return Err(fail(step, op, format!("{name}: got nothing, expected pool value {i}")));
            }
            (Some(Slot::Expiring(_)), None) => {
                oracle.insert((kind, key), Slot::Expired);
            }
            (Some(Slot::Expired) | None, Some(got)) => {
                return Err(fail(
                    step,
                    op,
                    format!("{name}: got {} bytes for an absent or expired key", got.len()),
                ));
            }
            (Some(Slot::Expired) | None, None) => {}
        }
        if check_response
            && kind == Kind::Response
            && matches!(oracle.get(&(kind, key)), None | Some(Slot::Expired))
        {
            let fresh = response_store::get_fresh(cache, &name, None)
                .map_err(|e| fail(step, op, format!("get_fresh: {e}")))?;
            if fresh.is_some() {
                return Err(fail(step, op, format!("{name}: get_fresh answered for an absent key")));
            }
        }
        Ok(())
    };

    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Put { kind, key, value, ttl } => {
                let i = value.index(pool.len());
                let name = key_name(*kind, *key);
                match kind {
                    Kind::Response => {
                        response_store::put(&cache, &name, "model-name", &pool[i], ttl.duration())
                    }
                    _ => cache.put(*kind, &name, "model-name", &pool[i], ttl.duration()),
                }
                .map_err(|e| fail(step, op, format!("put failed: {e}")))?;
                let slot = match ttl {
                    Ttl::Default | Ttl::Hour => Slot::Live(i),
                    Ttl::Short => Slot::Expiring(i),
                    Ttl::Expired => Slot::Expired,
                };
                oracle.insert((*kind, *key), slot);
            }
            Op::Get { kind, key } => check_get(&cache, &mut oracle, *kind, *key, step, op)?,
            Op::Remove { kind, key } => {
                let name = key_name(*kind, *key);
                let existed =
                    cache.remove(*kind, &name).map_err(|e| fail(step, op, format!("remove failed: {e}")))?;
                match oracle.remove(&(*kind, *key)) {
                    Some(Slot::Live(_)) if !existed => {
                        return Err(fail(step, op, format!("{name}: remove of a live key returned false")));
                    }
                    None if existed => {
                        return Err(fail(step, op, format!("{name}: remove of an absent key returned true")));
                    }
                    _ => {}
                }
            }
            Op::Flush => cache.flush().map_err(|e| fail(step, op, format!("flush failed: {e}")))?,
            Op::Reopen => {
                drop(cache);
                cache = open();
                if setup.kind == CacheType::Memory {
                    oracle.clear();
                }
            }
            Op::AdvanceExpiry => {
                std::thread::sleep(Duration::from_millis(3));
                for slot in oracle.values_mut() {
                    if matches!(slot, Slot::Expiring(_)) {
                        *slot = Slot::Expired;
                    }
                }
            }
        }
    }
    for round in ["end", "end, after a reopen"] {
        if round != "end" {
            drop(cache);
            cache = open();
            if setup.kind == CacheType::Memory {
                oracle.clear();
            }
        }
        for kind in KINDS {
            for key in 0..KEYS {
                check_get(&cache, &mut oracle, kind, key, ops.len(), &round)?;
            }
        }
    }
    Ok(())
}

/// `get_fresh` must serve the stored response's bytes with a new `id` and `created`, every other byte as
/// stored.
fn check_fresh_response(cache: &Manager, key: &str, stored: &[u8]) -> Result<(), String> {
    let fresh = response_store::get_fresh(cache, key, None).map_err(|e| format!("get_fresh: {e}"))?;
    let Some(fresh) = fresh else { return Err(format!("{key}: get_fresh found nothing")) };
    let original = response_store::stored_response(stored).ok_or("pool record has no response")?;
    let parsed: Value = serde_json::from_slice(&fresh).map_err(|e| format!("{key}: not JSON: {e}"))?;
    let stored_parsed: Value = serde_json::from_slice(original).map_err(|e| format!("pool response: {e}"))?;
    let (Some(fresh_id), Some(old_id)) = (parsed["id"].as_str(), stored_parsed["id"].as_str()) else {
        return Err(format!("{key}: a response without an id: {parsed}"));
    };
    if fresh_id == old_id || !fresh_id.starts_with("chatcmpl-") {
        return Err(format!("{key}: id {fresh_id:?} is not a fresh chat completion id (stored {old_id:?})"));
    }
    // Put the stored id and created back into the fresh bytes: what is left must be the stored bytes.
    let created = parsed["created"].to_string();
    let restored = String::from_utf8_lossy(&fresh)
        .replacen(&format!("\"{fresh_id}\""), &format!("\"{old_id}\""), 1)
        .replacen(&format!("\"created\":{created}"), &format!("\"created\":{}", stored_parsed["created"]), 1);
    if restored.as_bytes() != original {
        return Err(format!(
            "{key}: get_fresh served {restored}, stored {}",
            String::from_utf8_lossy(original)
        ));
    }
    Ok(())
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let kind = prop::sample::select(KINDS.to_vec());
    let ttl = prop_oneof![
        6 => Just(Ttl::Default),
        2 => Just(Ttl::Hour),
        1 => Just(Ttl::Expired),
        1 => Just(Ttl::Short),
    ];
    prop_oneof![
        10 => (kind.clone(), 0..KEYS, any::<Index>(), ttl)
            .prop_map(|(kind, key, value, ttl)| Op::Put { kind, key, value, ttl }),
        8 => (kind.clone(), 0..KEYS).prop_map(|(kind, key)| Op::Get { kind, key }),
        2 => (kind, 0..KEYS).prop_map(|(kind, key)| Op::Remove { kind, key }),
        1 => Just(Op::Flush),
        1 => Just(Op::Reopen),
        1 => Just(Op::AdvanceExpiry),
    ]
}

/// Sizes 0-20 KiB, half of them at the edges of the compression threshold (1000 bytes), of the dedup chunk
/// bounds (64 / 256 / 1024 bytes) and of the default chunk size.
fn size_strategy() -> impl Strategy<Value = usize> {
    prop_oneof![
        0usize..=20 * 1024,
        prop::sample::select(vec![
            0,
            1,
            63,
            64,
            255,
            256,
            257,
            999,
            1000,
            1001,
            1023,
            1024,
            1025,
            4095,
            4096,
            4097,
            20 * 1024
        ]),
    ]
}

/// A pool value: its bytes, and a short description that failure reports print instead of them.
#[derive(Clone)]
struct Sample {
    about: String,
    bytes: Vec<u8>,
}

impl std::fmt::Debug for Sample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.about)
    }
}

fn value_strategy() -> impl Strategy<Value = Sample> {
    let style = prop_oneof![Just(Style::Noise), Just(Style::Text), Just(Style::Constant)];
    (size_strategy(), style, any::<u64>()).prop_map(|(len, style, seed)| Sample {
        about: format!("make_value({len}, Style::{style:?}, {seed:#x})"),
        bytes: util::make_value(len, style, seed),
    })
}

fn record_strategy() -> impl Strategy<Value = Sample> {
    let content = prop_oneof![
        Just("Paris.".to_string()),
        Just("The capital of France is Paris. ".repeat(40)),
        (0usize..12 * 1024, any::<u64>()).prop_map(|(len, seed)| String::from_utf8(util::make_value(
            len,
            Style::Text,
            seed
        ))
        .unwrap()),
    ];
    (prop::sample::select(vec!["tiny", "llama-3-8b"]), 0u8..3, "[a-z0-9]{1,12}", any::<u32>(), content)
        .prop_map(|(model, prompt, id, created, content)| {
            let record = util::response_record(
                model,
                &format!("question {prompt}"),
                &format!("chatcmpl-{id}"),
                created as u64,
                &content,
            );
            let bytes = serde_json::to_vec(&record).unwrap();
            Sample {
                about: format!("record {model} q{prompt} {id} {created} ({} bytes)", bytes.len()),
                bytes,
            }
        })
}

/// `default` cases, or what `PROPTEST_CASES` asks for (for longer runs by hand).
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(24), max_shrink_iters: 400, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_agree_with_a_hashmap(
        pool in prop::collection::vec(value_strategy(), 1..6),
        ops in prop::collection::vec(op_strategy(), 1..60),
    ) {
        for setup in setups() {
            let pool: Vec<Vec<u8>> = pool.iter().map(|s| s.bytes.clone()).collect();
            run(setup, &pool, &ops, false)?;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(12), max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn response_records_round_trip_byte_for_byte(
        pool in prop::collection::vec(record_strategy(), 1..6),
        ops in prop::collection::vec(op_strategy(), 1..40),
    ) {
        for setup in setups() {
            let pool: Vec<Vec<u8>> = pool.iter().map(|s| s.bytes.clone()).collect();
            run(setup, &pool, &ops, true)?;
        }
    }
}
