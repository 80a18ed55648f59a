//! Codec tests: round trips on edge sizes, the threshold and "only if smaller" rules, hostile input, interop
//! with plain flate2/zstd, an independent compression-ratio check, and a round-trip property for every level.

use std::io::{Read, Write};

use proptest::prelude::*;

use super::{Codec, CodecError, CodecId, shuffle2, unshuffle2};
use crate::config::{CompressionAlgorithm, CompressionConfig, KvCompression};

const ALGORITHMS: [CompressionAlgorithm; 3] =
    [CompressionAlgorithm::None, CompressionAlgorithm::Gzip, CompressionAlgorithm::Zstd];

fn codec(algorithm: CompressionAlgorithm, level: u32, threshold_bytes: u64) -> Codec {
    Codec::new(
        &CompressionConfig { enabled: true, algorithm, level, ..CompressionConfig::default() },
        threshold_bytes,
    )
}

/// Deterministic pseudo-random bytes (splitmix64).
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        bytes.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// About `len` bytes of JSON shaped like a cached chat-completion response.
fn json_like(len: usize) -> Vec<u8> {
    let words = ["the", "model", "cache", "returns", "a", "**markdown**", "answer", "with", "`code`", "and"];
    let mut text =
        String::from(r#"{"id":"chatcmpl-1","object":"chat.completion","choices":[{"message":{"content":""#);
    let mut i = 0usize;
    while text.len() < len - 3 {
        text.push_str(words[(i * 7 + i / 3) % words.len()]);
        text.push(if i % 11 == 10 { '\n' } else { ' ' });
        i += 1;
    }
    text.truncate(len - 3);
    text.push_str("\"}}");
    text.into_bytes()
}

fn round_trip(codec: &Codec, raw: &[u8]) -> CodecId {
    let mut scratch = Vec::new();
    let (id, stored) = codec.encode(raw, &mut scratch);
    assert!(stored.len() <= raw.len(), "{id} grew the value");
    let mut out = Vec::new();
    let decoded = Codec::decode(id, stored, raw.len(), &mut out).expect("decodes");
    assert_eq!(decoded, raw, "{id} round trip");
    id
}

#[test]
fn codec_ids_are_fixed() {
    let ids = [CodecId::None, CodecId::Gzip, CodecId::Zstd, CodecId::ZstdShuffle2, CodecId::ZstdDict];
    assert_eq!(ids.map(|id| id as u8), [0, 1, 2, 3, 4]);
    for id in ids {
        assert_eq!(CodecId::try_from(id as u8).unwrap(), id);
    }
    for byte in 5..=u8::MAX {
        assert!(matches!(CodecId::try_from(byte), Err(CodecError::UnknownCodec(b)) if b == byte));
    }
}

#[test]
fn every_codec_round_trips_edge_sizes() {
    let inputs = [Vec::new(), vec![7u8], json_like(2048), random_bytes(1 << 20, 1)];
    for algorithm in ALGORITHMS {
        let codec = codec(algorithm, 3, 0);
        for raw in &inputs {
            round_trip(&codec, raw);
        }
        let expected = if algorithm == CompressionAlgorithm::None { CodecId::None } else { algorithm.into() };
        assert_eq!(round_trip(&codec, &inputs[2]), expected, "2 KiB JSON is compressed by {algorithm:?}");
    }
}

#[test]
fn values_below_the_threshold_are_stored_raw() {
    for algorithm in [CompressionAlgorithm::Gzip, CompressionAlgorithm::Zstd] {
        let codec = codec(algorithm, 6, 1000);
        assert_eq!(round_trip(&codec, &json_like(999)), CodecId::None);
        assert_eq!(round_trip(&codec, &json_like(1000)), CodecId::from(algorithm));
    }
}

#[test]
fn disabled_compression_stores_raw() {
    let off = Codec::new(&CompressionConfig { enabled: false, ..CompressionConfig::default() }, 0);
    assert_eq!(off.id(), CodecId::None);
    assert_eq!(round_trip(&off, &json_like(4096)), CodecId::None);
    assert_eq!(round_trip(&codec(CompressionAlgorithm::None, 3, 0), &json_like(4096)), CodecId::None);
}

#[test]
fn incompressible_values_stay_raw() {
    for algorithm in [CompressionAlgorithm::Gzip, CompressionAlgorithm::Zstd] {
        let raw = random_bytes(4096, 2);
        let mut scratch = Vec::new();
        let (id, stored) = codec(algorithm, 9, 0).encode(&raw, &mut scratch);
        assert_eq!(id, CodecId::None, "{algorithm:?}");
        assert_eq!(stored, raw.as_slice());
    }
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let mut out = Vec::new();
    for seed in 0..500u64 {
        let garbage = random_bytes((seed as usize * 7) % 300, seed);
        for id in [CodecId::Gzip, CodecId::Zstd] {
            for raw_len in [0, 1, garbage.len(), 4096] {
                assert!(Codec::decode(id, &garbage, raw_len, &mut out).is_err(), "{id} seed {seed}");
            }
        }
    }
}

#[test]
fn truncated_and_flipped_values_never_panic() {
    let raw = json_like(2048);
    let mut out = Vec::new();
    for algorithm in [CompressionAlgorithm::Gzip, CompressionAlgorithm::Zstd] {
        let mut scratch = Vec::new();
        let (id, stored) = codec(algorithm, 3, 0).encode(&raw, &mut scratch);
        let stored = stored.to_vec();
        for cut in 0..stored.len() {
            assert!(Codec::decode(id, &stored[..cut], raw.len(), &mut out).is_err(), "{id} cut at {cut}");
        }
        for (i, noise) in random_bytes(stored.len(), 3).iter().enumerate() {
            let mut bad = stored.clone();
            bad[i] ^= noise | 1;
            // A flipped literal can still decode (zstd frames carry no checksum here); it must not panic,
            // and whatever comes back has the recorded length.
            if let Ok(decoded) = Codec::decode(id, &bad, raw.len(), &mut out) {
                assert_eq!(decoded.len(), raw.len());
            }
        }
    }
}

#[test]
fn a_wrong_raw_length_is_an_error() {
    let raw = json_like(2048);
    let mut out = Vec::new();
    for algorithm in ALGORITHMS {
        let mut scratch = Vec::new();
        let (id, stored) = codec(algorithm, 3, 0).encode(&raw, &mut scratch);
        for raw_len in [raw.len() - 1, raw.len() + 1, 0] {
            assert!(Codec::decode(id, stored, raw_len, &mut out).is_err(), "{id} with raw_len {raw_len}");
        }
    }
}

#[test]
fn a_bomb_never_produces_more_than_raw_len() {
    let bomb = zstd::encode_all(&vec![0u8; 8 << 20][..], 3).unwrap();
    let mut out = Vec::new();
    assert!(Codec::decode(CodecId::Zstd, &bomb, 1024, &mut out).is_err());
    assert!(out.capacity() < 1 << 20, "zstd allocated {} bytes", out.capacity());

    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&vec![0u8; 8 << 20]).unwrap();
    let mut bomb = encoder.finish().unwrap();
    // Make the trailer claim 1024 bytes so only the inflater's bound stands between us and 8 MiB.
    let len = bomb.len();
    bomb[len - 4..].copy_from_slice(&1024u32.to_le_bytes());
    let mut out = Vec::new();
    assert!(matches!(Codec::decode(CodecId::Gzip, &bomb, 1024, &mut out), Err(CodecError::TooLong { .. })));
    assert!(out.capacity() < 1 << 20, "gzip allocated {} bytes", out.capacity());
}

#[test]
fn values_interoperate_with_plain_flate2_and_zstd() {
    let raw = json_like(2048);
    let mut scratch = Vec::new();
    let mut out = Vec::new();

    let (id, ours) = codec(CompressionAlgorithm::Gzip, 6, 0).encode(&raw, &mut scratch);
    assert_eq!(id, CodecId::Gzip);
    let mut theirs = Vec::new();
    flate2::read::GzDecoder::new(ours).read_to_end(&mut theirs).unwrap();
    assert_eq!(theirs, raw);
    let mut encoder = flate2::GzBuilder::new()
        .filename("response.json")
        .comment("written by flate2")
        .extra(vec![1, 2, 3])
        .write(Vec::new(), flate2::Compression::default());
    encoder.write_all(&raw).unwrap();
    let foreign = encoder.finish().unwrap();
    assert_eq!(Codec::decode(CodecId::Gzip, &foreign, raw.len(), &mut out).unwrap(), raw.as_slice());

    let (id, ours) = codec(CompressionAlgorithm::Zstd, 3, 0).encode(&raw, &mut scratch);
    assert_eq!(id, CodecId::Zstd);
    assert_eq!(zstd::bulk::decompress(ours, raw.len()).unwrap(), raw);
    // A streamed frame has no content size in its header; the length check must still hold.
    let streamed = zstd::encode_all(&raw[..], 5).unwrap();
    assert_eq!(Codec::decode(CodecId::Zstd, &streamed, raw.len(), &mut out).unwrap(), raw.as_slice());
    assert!(Codec::decode(CodecId::Zstd, &streamed, raw.len() - 1, &mut out).is_err());
}

#[test]
fn compression_ratio_matches_an_independent_computation() {
    let raw = json_like(2048);
    let mut scratch = Vec::new();

    let (_, ours) = codec(CompressionAlgorithm::Zstd, 3, 0).encode(&raw, &mut scratch);
    let reference = zstd::bulk::compress(&raw, 3).unwrap();
    let zstd_ratio = raw.len() as f64 / ours.len() as f64;
    assert_eq!(ours.len(), reference.len());
    assert!((zstd_ratio - raw.len() as f64 / reference.len() as f64).abs() < 1e-12);

    let (_, ours) = codec(CompressionAlgorithm::Gzip, 6, 0).encode(&raw, &mut scratch);
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    encoder.write_all(&raw).unwrap();
    let reference = encoder.finish().unwrap();
    assert_eq!(ours.len(), reference.len());
    let gzip_ratio = raw.len() as f64 / ours.len() as f64;

    // Repetitive JSON compresses well past the default `compression_ratio_min` alert (2.0).
    assert!(zstd_ratio > 2.0 && gzip_ratio > 2.0, "zstd {zstd_ratio:.2}, gzip {gzip_ratio:.2}");
}

fn algorithm_and_level() -> impl Strategy<Value = (CompressionAlgorithm, u32)> {
    prop_oneof![
        Just((CompressionAlgorithm::None, 0)),
        (1..=9u32).prop_map(|level| (CompressionAlgorithm::Gzip, level)),
        (1..=21u32).prop_map(|level| (CompressionAlgorithm::Zstd, level)),
    ]
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..3000),
        (1..3000usize).prop_map(|len| json_like(len.max(4))),
        (proptest::collection::vec(any::<u8>(), 1..16), 0..300usize).prop_map(|(unit, n)| unit.repeat(n)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn every_codec_and_level_round_trips(
        (algorithm, level) in algorithm_and_level(),
        threshold in 0..2048u64,
        raw in value(),
    ) {
        let codec = codec(algorithm, level, threshold);
        let id = round_trip(&codec, &raw);
        if (raw.len() as u64) < threshold || algorithm == CompressionAlgorithm::None {
            prop_assert_eq!(id, CodecId::None);
        }
    }
}

#[test]
fn shuffle_splits_even_and_odd_bytes_and_inverts() {
    assert_eq!(shuffle2(b"aAbBc"), b"abcAB");
    assert_eq!(unshuffle2(b"abcAB"), b"aAbBc");
    for len in [0, 1, 2, 3, 4095, 4096] {
        let raw = random_bytes(len, len as u64);
        assert_eq!(unshuffle2(&shuffle2(&raw)), raw, "length {len}");
    }
}

#[test]
fn kv_state_codecs_round_trip_and_refuse_damage() {
    let raw: Vec<u8> = (0..50_000u32).flat_map(|i| ((i % 97) as u16 * 3).to_le_bytes()).collect();
    assert_eq!(round_trip(&Codec::for_kv_states(KvCompression::None), &raw), CodecId::None);
    let zstd = Codec::for_kv_states(KvCompression::Zstd);
    assert_eq!(round_trip(&zstd, &raw), CodecId::ZstdShuffle2);
    assert_eq!(round_trip(&zstd, b"x"), CodecId::None, "a value compression cannot shrink stays raw");
    let mut scratch = Vec::new();
    let (_, stored) = zstd.encode(&raw, &mut scratch);
    let mut out = Vec::new();
    assert!(Codec::decode(CodecId::ZstdShuffle2, &stored[..stored.len() / 2], raw.len(), &mut out).is_err());
    assert!(Codec::decode(CodecId::ZstdShuffle2, stored, raw.len() + 1, &mut out).is_err());
}
