//! Feeds arbitrary bytes to the GGUF header reader as a whole file: it must return a header or an error,
//! never panic, hang or allocate without bound.
#![no_main]

use std::path::Path;

use inferno::models::gguf::GgufHeader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = GgufHeader::read_from(data, data.len() as u64, Path::new("fuzz.gguf")) {
        // A header that reads must describe data inside the input.
        assert!(header.data_offset() <= data.len() as u64 || header.tensor_count() == 0);
        assert!(header.check_tensor_ranges(data.len() as u64).is_ok());
    }
});
