//! Tests of the GGUF reader, writer and test models: round trips, the tiny model's metadata and greedy
//! output, and hostile or truncated input.

mod forward;
mod hostile;
mod roundtrip;
mod tiny;

use std::path::Path;

use super::{GgufError, GgufHeader, GgufWriter};

/// Reads a header from a whole file held in memory.
fn read_bytes(bytes: &[u8]) -> Result<GgufHeader, GgufError> {
    GgufHeader::read_from(bytes, bytes.len() as u64, Path::new("test.gguf"))
}

/// Writes `w` to memory.
fn to_bytes(w: &GgufWriter) -> Vec<u8> {
    let mut out = Vec::new();
    let len = w.write_to(&mut out).expect("writing to memory");
    assert_eq!(len, out.len() as u64, "write_to reports the bytes it wrote");
    out
}

/// The F32 values of tensor `name` in a whole file held in memory.
fn f32_data(bytes: &[u8], header: &GgufHeader, name: &str) -> Vec<f32> {
    let t = header.tensor(name).unwrap_or_else(|| panic!("tensor {name} missing"));
    let start = (header.data_offset() + t.offset) as usize;
    let end = start + t.byte_size().expect("known type") as usize;
    bytes[start..end].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}
