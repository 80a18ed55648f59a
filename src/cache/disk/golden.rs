//! Golden bytes of the whole on-disk format, version by version: the segment header, a full record (its
//! checksum value included, and what the checksum covers), a chunk reference and a hint file. Any change
//! to what is written fails here; the rule in docs/format.md ("Version history") is that such a change
//! gets a new `FORMAT_VERSION` and a new entry in [`GOLDEN`], and the old entries stay.

use super::hint::HintBuilder;
use super::segment::{self, FORMAT_VERSION, SEGMENT_HEADER_LEN};
use crate::cache::dedup::hash::ContentHasher;
use crate::cache::record::{self, HEADER_LEN, RecordRef, RecordType};
use crate::config::HashAlgorithm;

/// The bytes one format version writes for the samples below, as hex.
struct Golden {
    version: u16,
    segment_header: &'static str,
    chunk_ref: &'static str,
    record: &'static str,
    checksum: u64,
    hint: &'static str,
}

/// One entry per format version; the test checks the one of `FORMAT_VERSION`.
const GOLDEN: &[Golden] = &[Golden {
    version: 1,
    // magic "INFSEG\r\n", version 1, segment id 0x04030201, reserved.
    segment_header: concat!("494e465345470d0a", "0100", "01020304", "0000"),
    chunk_ref: concat!(
        "01",                                                               // algorithm id: BLAKE3-256
        "786693fb019ff854d6e68ba30e2ef3e9420d789295fcf9cfdd18b19fd3bf5987", // blake3("a shared chunk")
    ),
    record: concat!(
        "49524543",                                                           // magic "IREC"
        "01",                                                                 // type: entry
        "01",                                                                 // kind: response
        "02",                                                                 // codec: zstd
        "00",                                                                 // flags
        "0201000000000000",                                                   // sequence 0x0102
        "0068e5cf8b010000",                                                   // created 1_700_000_000_000
        "6052e6cf8b010000",                                                   // expires 1_700_000_060_000
        "0300",                                                               // key length
        "0400",                                                               // name length
        "0100",                                                               // chunk references
        "0000",                                                               // reserved
        "03000000",                                                           // stored value length
        "09000000",                                                           // decoded value length
        "0e00000000000000",                                                   // payload length
        "baf7863fe3e631a9", // checksum (XXH3-64, little-endian)
        "6b6579",           // key "key"
        "74696e79",         // name "tiny"
        "01786693fb019ff854d6e68ba30e2ef3e9420d789295fcf9cfdd18b19fd3bf5987", // the chunk reference
        "76616c",           // value "val"
    ),
    checksum: 0xa931_e6e3_3f86_f7ba,
    hint: concat!(
        "494e4648494e540a", // magic "INFHINT\n"
        "0100",             // format version 1
        "0000",             // reserved
        "07000000",         // segment id 7
        "7b00000000000000", // covered length: 16 + the record's 107 bytes
        "0100000000000000", // one line
        "1000000000000000", // line: record offset 16, then header, key, name and reference (no value)
        "495245430101020002010000000000000068e5cf8b0100006052e6cf8b010000",
        "030004000100000003000000090000000e00000000000000baf7863fe3e631a9",
        "6b657974696e79",
        "01786693fb019ff854d6e68ba30e2ef3e9420d789295fcf9cfdd18b19fd3bf5987",
        "4570ad4c01a31b95", // XXH3-64 of every byte before it
    ),
}];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn golden() -> &'static Golden {
    GOLDEN.iter().find(|g| g.version == FORMAT_VERSION).unwrap_or_else(|| {
        panic!("no golden bytes for format version {FORMAT_VERSION}: add them to GOLDEN (docs/format.md)")
    })
}

fn chunk_ref() -> [u8; record::REF_LEN] {
    ContentHasher::for_algorithm(HashAlgorithm::Blake3).hash(b"a shared chunk").to_bytes()
}

/// An entry with every field set: kind 1 (response), codec 2 (zstd), an expiry, a name and one reference.
fn sample_record() -> Vec<u8> {
    let mut out = Vec::new();
    record::encode(
        &RecordRef {
            record_type: RecordType::Entry,
            kind: 1,
            codec: 2,
            seq: 0x0102,
            created_ms: 1_700_000_000_000,
            expires_ms: 1_700_000_060_000,
            key: b"key",
            name: b"tiny",
            refs: &[chunk_ref()],
            value: b"val",
            raw_len: 9,
            payload_len: 14,
        },
        &mut out,
    );
    out
}

#[test]
fn segment_header() {
    let header = segment::file_header(0x0403_0201);
    assert_eq!(header.len() as u64, SEGMENT_HEADER_LEN);
    assert_eq!(hex(&header), golden().segment_header);
}

#[test]
fn chunk_reference() {
    let r = chunk_ref();
    assert_eq!(hex(&r), golden().chunk_ref);
    assert_eq!(r[0], 1, "algorithm id 1 is BLAKE3-256");
    assert_eq!(&r[1..], blake3::hash(b"a shared chunk").as_bytes(), "the digest fills the 32 bytes");
}

#[test]
fn full_record_and_its_checksum() {
    let bytes = sample_record();
    assert_eq!(hex(&bytes), golden().record);
    let stored = u64::from_le_bytes(bytes[56..64].try_into().unwrap());
    assert_eq!(stored, golden().checksum);
    // What the checksum covers: header bytes 0..56 followed by the whole body, in one XXH3-64.
    let mut covered = bytes[..56].to_vec();
    covered.extend_from_slice(&bytes[HEADER_LEN..]);
    assert_eq!(xxhash_rust::xxh3::xxh3_64(&covered), stored);
    // The body in order: key, name, references, value.
    let body = &bytes[HEADER_LEN..];
    assert_eq!(&body[..7], b"keytiny");
    assert_eq!(&body[7..7 + record::REF_LEN], &chunk_ref());
    assert_eq!(&body[7 + record::REF_LEN..], b"val");
}

#[test]
fn hint_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = segment::hint_path(dir.path(), 7);
    let record = sample_record();
    let offset = SEGMENT_HEADER_LEN;
    let mut builder = HintBuilder::default();
    builder.add(offset, &record);
    builder.write(&super::RealFs, &path, 7, offset + record.len() as u64).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(hex(&bytes), golden().hint);
    // One line: the record's offset, then its header, key, name and references (no value).
    let line = &bytes[32..bytes.len() - 8];
    assert_eq!(&line[..8], &offset.to_le_bytes());
    assert_eq!(&line[8..], &record[..record.len() - 3]);
    let (body, sum) = bytes.split_at(bytes.len() - 8);
    assert_eq!(
        xxhash_rust::xxh3::xxh3_64(body).to_le_bytes(),
        sum,
        "the trailer is XXH3-64 of all before it"
    );
}

#[test]
fn docs_name_the_current_version() {
    let doc = include_str!("../../../docs/format.md");
    assert!(
        doc.contains(&format!("\n- **{FORMAT_VERSION}** —")),
        "docs/format.md's version history must describe format version {FORMAT_VERSION}"
    );
}
