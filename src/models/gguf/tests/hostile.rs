//! Hostile and damaged input: truncation at every header byte, absurd counts and lengths, malformed fields,
//! and random bytes. Each must give the documented error, never a panic or a huge allocation.

use std::io::{self, Read};
use std::path::Path;

use proptest::prelude::*;

use super::{read_bytes, to_bytes};
use crate::models::gguf::{
    GgufError, GgufHeader, GgufWriter, MAX_HEADER_BYTES, MAX_STRING_LEN, MAX_TENSORS, MetaValue, tiny,
};

/// Little-endian bytes of a hand-made header.
#[derive(Default)]
struct Raw(Vec<u8>);

impl Raw {
    /// `GGUF`, version 3 and the two counts.
    fn header(tensors: u64, kvs: u64) -> Raw {
        Raw::default().bytes(b"GGUF").u32(3).u64(tensors).u64(kvs)
    }
    fn bytes(mut self, b: &[u8]) -> Raw {
        self.0.extend_from_slice(b);
        self
    }
    fn u32(self, v: u32) -> Raw {
        self.bytes(&v.to_le_bytes())
    }
    fn u64(self, v: u64) -> Raw {
        self.bytes(&v.to_le_bytes())
    }
    fn str(self, s: &str) -> Raw {
        self.u64(s.len() as u64).bytes(s.as_bytes())
    }
    /// A tensor info.
    fn tensor(self, name: &str, dims: &[u64], ggml_type: u32, offset: u64) -> Raw {
        let mut r = self.str(name).u32(dims.len() as u32);
        for d in dims {
            r = r.u64(*d);
        }
        r.u32(ggml_type).u64(offset)
    }
    fn read(&self) -> Result<GgufHeader, GgufError> {
        read_bytes(&self.0)
    }
    /// Reads these bytes followed by endless zeros, as a file of 1 TiB would be: any loop or allocation sized
    /// by a bogus count would take forever or abort the test.
    fn read_huge(&self) -> Result<GgufHeader, GgufError> {
        let reader = self.0.as_slice().chain(io::repeat(0));
        GgufHeader::read_from(reader, 1 << 40, Path::new("huge.gguf"))
    }
}

fn limit_of(err: GgufError) -> (String, u64, u64) {
    match err {
        GgufError::LimitExceeded { what, value, limit, .. } => (what, value, limit),
        other => panic!("expected a limit error, got {other}"),
    }
}

#[test]
fn truncation_at_every_header_byte_names_the_offset() {
    let bytes = super::to_bytes(&tiny::tiny_llama().unwrap());
    let data_offset = read_bytes(&bytes).unwrap().data_offset() as usize;
    for len in 0..data_offset {
        match read_bytes(&bytes[..len]) {
            Err(GgufError::Truncated { offset, ref what, .. }) if offset == len as u64 => {
                assert!(!what.is_empty());
            }
            other => panic!("truncated at {len}: {other:?}"),
        }
    }
    let err = read_bytes(&bytes[..bytes.len() - 1]).unwrap_err();
    assert!(
        matches!(&err, GgufError::TensorOutOfRange { name, .. } if name == "blk.1.ffn_down.weight"),
        "{err}"
    );
    let msg = read_bytes(&bytes[..100]).unwrap_err().to_string();
    assert!(msg.starts_with("test.gguf: truncated at byte offset 100 while reading"), "{msg}");
}

#[test]
fn wrong_magic_and_versions_are_named() {
    let err = Raw::default().bytes(b"GGML").u32(3).read().unwrap_err();
    assert!(matches!(err, GgufError::BadMagic { found, .. } if &found == b"GGML"));
    for version in [0, 1, 4, 0x0300_0000] {
        let err = Raw::default().bytes(b"GGUF").u32(version).u64(0).u64(0).read().unwrap_err();
        assert!(matches!(err, GgufError::UnsupportedVersion { version: v, .. } if v == version), "{err}");
    }
    let v2 = Raw::default().bytes(b"GGUF").u32(2).u64(0).u64(0).read().unwrap();
    assert_eq!((v2.version(), v2.tensor_count(), v2.data_offset()), (2, 0, 32));
}

#[test]
fn absurd_counts_and_lengths_hit_limits_without_allocating() {
    let (what, ..) = limit_of(Raw::header(u64::MAX, 0).read_huge().unwrap_err());
    assert_eq!(what, "header size");
    let (what, value, limit) = limit_of(Raw::header(MAX_TENSORS + 1, 0).read_huge().unwrap_err());
    assert_eq!((what.as_str(), value, limit), ("tensor count", MAX_TENSORS + 1, MAX_TENSORS));
    let (what, ..) = limit_of(Raw::header(0, u64::MAX).read_huge().unwrap_err());
    assert_eq!(what, "header size");
    let (what, value, _) = limit_of(Raw::header(0, 1).u64(u64::MAX).read_huge().unwrap_err());
    assert_eq!((what.as_str(), value), ("length of key of metadata entry 0", u64::MAX));
    let long = Raw::header(0, 1).str("k").u32(8).u64(MAX_STRING_LEN + 1);
    assert_eq!(limit_of(long.read_huge().unwrap_err()).2, MAX_STRING_LEN);
    let (what, value, limit) =
        limit_of(Raw::header(0, 1).str("k").u32(9).u32(0).u64(1 << 40).read_huge().unwrap_err());
    assert_eq!((what.as_str(), limit), ("header size", MAX_HEADER_BYTES));
    assert!(value > MAX_HEADER_BYTES);
    let strings = Raw::header(0, 1).str("k").u32(9).u32(8).u64(u64::MAX / 8);
    assert_eq!(limit_of(strings.read_huge().unwrap_err()).0, "header size");
    let mut deep = Raw::header(0, 1).str("k").u32(9);
    for _ in 0..20 {
        deep = deep.u32(9).u64(1);
    }
    let (what, value, limit) = limit_of(deep.read_huge().unwrap_err());
    assert!(what.starts_with("array nesting"), "{what}");
    assert_eq!((value, limit), (9, 8));
    let (what, value, _) = limit_of(Raw::header(1, 0).str("t").u32(5).read_huge().unwrap_err());
    assert_eq!((what.as_str(), value), ("dimension count of tensor \"t\"", 5));
    // A small file cannot hold what its counts claim: that is truncation at its end.
    let small = Raw::header(1000, 0);
    assert!(matches!(small.read().unwrap_err(), GgufError::Truncated { offset: 24, .. }));
}

#[test]
fn malformed_fields_are_named() {
    let err = Raw::header(0, 1).str("k").u32(13).read().unwrap_err();
    assert!(matches!(err, GgufError::UnknownValueType { type_id: 13, offset: 33, .. }), "{err}");
    let err = Raw::header(0, 1).str("k").u32(9).u32(77).u64(0).read().unwrap_err();
    assert!(matches!(err, GgufError::UnknownValueType { type_id: 77, .. }), "{err}");
    let err = Raw::header(0, 2).str("k").u32(0).bytes(&[1]).str("k").u32(0).bytes(&[2]).read().unwrap_err();
    assert!(matches!(err, GgufError::DuplicateKey { ref key, offset: 38, .. } if key == "k"), "{err}");
    let err = Raw::header(0, 1).u64(2).bytes(&[0xC3, 0x28]).u32(0).bytes(&[0]).read().unwrap_err();
    assert!(matches!(err, GgufError::InvalidUtf8 { offset: 32, .. }), "{err}");
    for bad in [Raw::default().u32(4).u32(48), Raw::default().u32(10).u64(32), Raw::default().u32(4).u32(0)] {
        let err = Raw::header(0, 1).str("general.alignment").bytes(&bad.0).read().unwrap_err();
        assert!(matches!(err, GgufError::BadAlignment { .. }), "{err}");
    }
    let bad_tensor = |raw: Raw| match raw.read_huge() {
        Err(GgufError::BadTensor { name, reason, .. }) => format!("{name}: {reason}"),
        other => panic!("expected a bad tensor, got {other:?}"),
    };
    assert!(bad_tensor(Raw::header(1, 0).tensor("t", &[u64::MAX, 2], 0, 0)).contains("overflow"));
    assert!(bad_tensor(Raw::header(1, 0).tensor("t", &[4], 4, 0)).contains("unknown ggml type 4"));
    assert!(bad_tensor(Raw::header(1, 0).tensor("t", &[33], 8, 0)).contains("block of 32"));
    assert!(
        bad_tensor(Raw::header(1, 0).tensor("t", &[4], 0, 4)).contains("not a multiple of the alignment")
    );
    let gap = Raw::header(2, 0).tensor("t", &[4], 0, 0).tensor("u", &[4], 0, 64);
    assert_eq!(bad_tensor(gap), "u: data offset 64 is not the expected 32");
    let twice = Raw::header(2, 0).tensor("t", &[4], 0, 0).tensor("t", &[4], 0, 32);
    assert!(bad_tensor(twice).contains("twice"));
    let err = Raw::header(1, 0).tensor(&"n".repeat(64), &[1], 0, 0).read().unwrap_err();
    assert_eq!(limit_of(err).2, 63);
    let mut beyond = Raw::header(1, 0).tensor("t", &[16], 0, 0);
    beyond.0.resize(64 + 63, 0);
    let err = beyond.read().unwrap_err();
    assert!(matches!(err, GgufError::TensorOutOfRange { start: 64, end: 128, file_len: 127, .. }), "{err}");
    beyond.0.push(0);
    assert_eq!(beyond.read().unwrap().tensor("t").unwrap().dims, [16]);
}

fn small_file() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", MetaValue::String("llama".into())).unwrap();
    w.add_metadata("llama.context_length", MetaValue::U32(8)).unwrap();
    let tokens = crate::models::gguf::MetaArray::String(vec!["a".into(), "bb".into()]);
    w.add_metadata("tokenizer.ggml.tokens", MetaValue::Array(tokens)).unwrap();
    w.add_f32_tensor("x", &[2, 2], vec![1.0; 4]).unwrap();
    w.add_f32_tensor("y", &[3], vec![2.0; 3]).unwrap();
    to_bytes(&w)
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600), gguf in any::<bool>()) {
        let mut input = if gguf { b"GGUF\x03\0\0\0".to_vec() } else { Vec::new() };
        input.extend(bytes);
        let _ = read_bytes(&input);
    }

    #[test]
    fn flipped_bytes_in_a_valid_file_never_panic(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        tiny_header in any::<bool>(),
    ) {
        let mut bytes = if tiny_header { super::to_bytes(&tiny::tiny_llama().unwrap()) } else { small_file() };
        let header_len = read_bytes(&bytes).unwrap().data_offset() as usize;
        for (at, value) in flips {
            let i = at.index(header_len);
            bytes[i] ^= value.max(1);
        }
        let _ = read_bytes(&bytes);
    }
}
