//! The dedup and compression figures of the disk tier, checked against numbers this test computes on its
//! own: the payload of a response (its JSON without `id`, `created`, `model` and `system_fingerprint`, keys
//! sorted) and the per-key head, cut into chunks with FastCDC at the documented bounds, counted once per
//! distinct chunk and compressed with `zstd::bulk::compress` / flate2's `GzEncoder`; record sizes follow
//! docs/format.md (64-byte header, key, name, 33 bytes per chunk reference, stored value). Also: values that
//! do not compress are stored raw, however often that happens in a row.

use std::collections::HashSet;
use std::io::Write;

use inferno::cache::codec::{Codec, CodecId};
use inferno::cache::dedup::splice;
use inferno::cache::response_store;
use inferno::cache::{Access, Kind, Manager};
use inferno::config::units::Size;
use inferno::config::{CacheType, CompressionAlgorithm, CompressionConfig};
use serde_json::Value;

use crate::util::{self, Style};

/// The compression threshold of the default config: `persistence.compression_threshold_kb = 1`.
const THRESHOLD: usize = 1000;
/// The dedup chunk size these tests configure.
const CHUNK: usize = 1024;

/// Bytes a value is stored as with zstd at `level`: compressed when at least the threshold and smaller.
fn zstd_stored_len(raw: &[u8], level: i32) -> usize {
    if raw.len() < THRESHOLD {
        return raw.len();
    }
    zstd::bulk::compress(raw, level).unwrap().len().min(raw.len())
}

/// The same for gzip, with flate2's own gzip writer.
fn gzip_stored_len(raw: &[u8], level: u32) -> usize {
    if raw.len() < THRESHOLD {
        return raw.len();
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    encoder.write_all(raw).unwrap();
    encoder.finish().unwrap().len().min(raw.len())
}

/// Content-defined chunks at the bounds chunk.rs documents (min avg/4, max avg*4; no longer than the
/// average: one chunk), computed with fastcdc directly.
fn chunks(data: &[u8]) -> Vec<&[u8]> {
    if data.len() <= CHUNK {
        return vec![data];
    }
    fastcdc::v2020::FastCDC::new(data, CHUNK / 4, CHUNK, CHUNK * 4)
        .map(|c| &data[c.offset..c.offset + c.length])
        .collect()
}

/// Size of a record as docs/format.md lays it out.
fn record_len(key: &str, name: &str, refs: usize, stored: usize) -> u64 {
    (64 + key.len() + name.len() + 33 * refs + stored) as u64
}

fn response(i: usize, answer: &str) -> Value {
    util::response_record(
        "tiny",
        &format!("question {i}"),
        &format!("chatcmpl-{i}"),
        1_700_000_000 + i as u64,
        answer,
    )
}

#[test]
fn dedup_figures_match_chunks_counted_independently() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = util::config(dir.path(), CacheType::Disk, CompressionAlgorithm::Zstd, true);
    config.deduplication.chunk_size = Size(CHUNK as u64);
    // Four distinct answers, two of them long enough for several chunks, one shared by eight responses.
    let answers: Vec<String> = [120, 2500, 9000, 16000]
        .iter()
        .enumerate()
        .map(|(i, len)| String::from_utf8(util::make_value(*len, Style::Text, 10 + i as u64)).unwrap())
        .collect();
    let uses = |i: usize| if i < 8 { 2 } else { i % answers.len() };
    let n = 20;

    // The figures, computed here: payload = response minus its envelope fields, keys sorted, compact.
    let mut payloads = Vec::new();
    for answer in &answers {
        let mut payload = response(0, answer)["response"].clone();
        for field in ["id", "created", "model", "system_fingerprint"] {
            payload.as_object_mut().unwrap().remove(field);
        }
        let bytes = serde_json::to_vec(&payload).unwrap();
        let record = serde_json::to_vec(&response(0, answer)).unwrap();
        let split = splice::split(&record, &response_store::per_key_ranges(&record).unwrap());
        assert_eq!(bytes, split.1, "payload bytes");
        payloads.push(bytes);
    }
    let distinct: HashSet<&[u8]> = payloads.iter().flat_map(|p| chunks(p)).collect();
    assert!(distinct.len() >= 10, "the payloads make several chunks each ({})", distinct.len());
    let blob_raw_bytes: u64 = distinct.iter().map(|c| c.len() as u64).sum();
    let blob_stored_bytes: u64 = distinct.iter().map(|c| zstd_stored_len(c, 3) as u64).sum();
    let mut referenced = 0;
    let mut logical = 0;
    let mut entry_bytes = 0;
    for i in 0..n {
        // The head: the splice magic, then three pieces (the record up to the response, the response's
        // `created`, `id` and `model` members, the closing brace), each with an 8-byte offset and length.
        let record = serde_json::to_vec(&response(i, &answers[uses(i)])).unwrap();
        let payload = &payloads[uses(i)];
        let head_len = 2 + 3 * 8 + record.len() - payload.len();
        referenced += payload.len() as u64;
        logical += (head_len + payload.len()) as u64;
        entry_bytes += record_len(&format!("key-{i}"), "tiny", chunks(payload).len(), head_len);
    }

    let cache = Manager::open(&config, Access::ReadWrite).unwrap();
    for i in 0..n {
        let record = serde_json::to_vec(&response(i, &answers[uses(i)])).unwrap();
        response_store::put(&cache, &format!("key-{i}"), "tiny", &record, None).unwrap();
    }
    cache.flush().unwrap();
    let stats = cache.disk_stats().unwrap();
    assert_eq!(stats.blobs, distinct.len() as u64, "{stats:?}");
    assert_eq!(stats.blob_raw_bytes, blob_raw_bytes, "{stats:?}");
    assert_eq!(stats.blob_stored_bytes, blob_stored_bytes, "{stats:?}");
    assert_eq!(stats.referenced_payload_bytes, referenced, "{stats:?}");
    assert_eq!(stats.unreferenced_blobs, 0, "{stats:?}");
    let responses = stats.kinds[&Kind::Response.code()];
    assert_eq!(responses.entries, n as u64);
    assert_eq!(responses.logical_bytes, logical, "decoded head + payload bytes");
    assert_eq!(responses.stored_bytes, entry_bytes, "entry record bytes");
    // Nothing but those records is in the segment files (after each file's 16-byte header).
    let blob_records: u64 = distinct.iter().map(|c| record_len("", "", 0, zstd_stored_len(c, 3)) + 33).sum();
    let files: u64 = util::files_ending(&util::data_dir(dir.path()), ".log")
        .iter()
        .map(|p| p.metadata().unwrap().len() - 16)
        .sum();
    assert_eq!(stats.record_bytes, blob_records + entry_bytes);
    assert_eq!(files, stats.record_bytes);
    assert_eq!(stats.live_bytes, stats.record_bytes);

    // The index rebuilt from the hints at open gives the same figures.
    drop(cache);
    let cache = Manager::open(&config, Access::ReadWrite).unwrap();
    assert_eq!(cache.disk_stats().unwrap(), stats);

    // Removing every response of the 9000-byte answer frees exactly its chunks no other payload shares.
    let others: HashSet<&[u8]> =
        payloads.iter().enumerate().filter(|(i, _)| *i != 2).flat_map(|(_, p)| chunks(p)).collect();
    let only_mine: Vec<&[u8]> = chunks(&payloads[2]).into_iter().filter(|c| !others.contains(c)).collect();
    let mut removed = 0;
    for i in (0..n).filter(|i| uses(*i) == 2) {
        assert!(cache.remove(Kind::Response, &format!("key-{i}")).unwrap());
        removed += 1;
    }
    let after = cache.disk_stats().unwrap();
    assert_eq!(after.unreferenced_blobs, only_mine.iter().collect::<HashSet<_>>().len() as u64, "{after:?}");
    assert_eq!(after.referenced_payload_bytes, referenced - removed * payloads[2].len() as u64);
    cache.compact().unwrap();
    let compacted = cache.disk_stats().unwrap();
    assert_eq!(compacted.blobs, after.blobs - after.unreferenced_blobs, "{compacted:?}");
    assert_eq!(compacted.unreferenced_blobs, 0);
    assert_eq!(compacted.referenced_payload_bytes, after.referenced_payload_bytes);
    for i in 0..n {
        let got = cache.get(Kind::Response, &format!("key-{i}")).unwrap();
        if uses(i) == 2 {
            assert_eq!(got, None);
        } else {
            let got: Value = serde_json::from_slice(&got.unwrap()).unwrap();
            assert_eq!(got, response(i, &answers[uses(i)]));
        }
    }
}

#[test]
fn compressed_sizes_match_the_codecs_run_in_the_test() {
    let values: Vec<Vec<u8>> = vec![
        util::make_value(999, Style::Text, 1),
        util::make_value(1000, Style::Text, 2),
        util::make_value(4096, Style::Text, 3),
        util::make_value(20_000, Style::Text, 4),
        util::make_value(5000, Style::Constant, 5),
        util::make_value(5000, Style::Noise, 6),
        util::make_value(1000, Style::Noise, 7),
        Vec::new(),
    ];
    for (algorithm, level) in
        [(CompressionAlgorithm::Zstd, 3), (CompressionAlgorithm::Zstd, 19), (CompressionAlgorithm::Gzip, 6)]
    {
        let dir = tempfile::tempdir().unwrap();
        let mut config = util::config(dir.path(), CacheType::Persistent, algorithm, false);
        config.compression.level = level;
        let cache = Manager::open(&config, Access::ReadWrite).unwrap();
        let mut expected_stored = 0;
        for (i, value) in values.iter().enumerate() {
            let key = format!("value-{i}");
            cache.put(Kind::Model, &key, "m.gguf", value, None).unwrap();
            let stored = match algorithm {
                CompressionAlgorithm::Gzip => gzip_stored_len(value, level),
                _ => zstd_stored_len(value, level as i32),
            };
            expected_stored += record_len(&key, "m.gguf", 0, stored);
            let slot = cache.disk_index_entries().into_iter().find(|e| e.1 == key.as_bytes()).unwrap().2;
            assert_eq!(
                slot.stored_len as usize,
                stored,
                "{algorithm:?} {level}: {key} of {} bytes",
                value.len()
            );
            assert_eq!(slot.raw_len as usize, value.len());
        }
        let stats = cache.disk_stats().unwrap();
        let models = stats.kinds[&Kind::Model.code()];
        assert_eq!(models.stored_bytes, expected_stored, "{algorithm:?} {level}");
        assert_eq!(models.logical_bytes, values.iter().map(|v| v.len() as u64).sum::<u64>());
        // The codec byte of each record says which values were compressed.
        cache.flush().unwrap();
        for record in util::read_records(&util::data_dir(dir.path()), true) {
            let compressed = record.value_len < record.raw_len;
            let codec = if compressed { CodecId::from(algorithm) as u8 } else { 0 };
            assert_eq!(record.codec, codec, "{record:?}");
        }
        drop(cache);
        let cache = Manager::open(&config, Access::ReadWrite).unwrap();
        for (i, value) in values.iter().enumerate() {
            assert_eq!(cache.get(Kind::Model, &format!("value-{i}")).unwrap().as_deref(), Some(&value[..]));
        }
    }
}

/// gzip gives up on a value that does not get smaller; doing so again and again must keep working (zlib-rs
/// 0.6 panicked a few reuses of a deflate context after such a stream, when reset instead of dropped).
#[test]
fn incompressible_values_are_stored_raw_again_and_again() {
    std::thread::spawn(|| {
        let config = CompressionConfig {
            enabled: true,
            algorithm: CompressionAlgorithm::Gzip,
            level: 6,
            ..CompressionConfig::default()
        };
        let codec = Codec::new(&config, THRESHOLD as u64);
        let raw = util::make_value(15_897, Style::Noise, 0x6042_8af8_bcfa_7ee3);
        for round in 0..8 {
            let mut scratch = Vec::new();
            let (id, stored) = codec.encode(&raw, &mut scratch);
            assert_eq!((id, stored), (CodecId::None, &raw[..]), "round {round}");
        }
        let text = util::make_value(15_897, Style::Text, 1);
        let mut scratch = Vec::new();
        let (id, stored) = codec.encode(&text, &mut scratch);
        assert_eq!(id, CodecId::Gzip);
        let mut out = Vec::new();
        assert_eq!(Codec::decode(id, stored, text.len(), &mut out).unwrap(), &text[..]);
    })
    .join()
    .unwrap();
}
