//! The errors of reading and writing GGUF files: each names the file (or tensor) and what is wrong with it.

use std::io;
use std::path::PathBuf;

/// Why a GGUF header could not be read, or why a header read does not fit its file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GgufError {
    /// The file could not be opened, measured or read (other than ending early).
    #[error("{path}: cannot read GGUF file: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The first four bytes are not `GGUF`.
    #[error("{path}: not a GGUF file (the first bytes are {found:02x?}, expected \"GGUF\")")]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The four bytes found at offset 0.
        found: [u8; 4],
    },
    /// The version is not 2 or 3 (version 1 used 32-bit counts; big-endian files show a byte-swapped version).
    #[error("{path}: unsupported GGUF version {version} (only versions 2 and 3, little-endian, are read)")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version field as read little-endian.
        version: u32,
    },
    /// The file ends before the header does.
    #[error("{path}: truncated at byte offset {offset} while reading {what}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Where the bytes ran out (the file's length when the file is shorter than its header).
        offset: u64,
        /// What was being read, e.g. `value of key "general.name"`.
        what: String,
    },
    /// A metadata value (or array element) type id is not one of GGUF's 0..=12.
    #[error("{path}: unknown value type {type_id} at byte offset {offset} in {what}")]
    UnknownValueType {
        /// The file.
        path: PathBuf,
        /// Where the type id starts.
        offset: u64,
        /// The type id found.
        type_id: u32,
        /// What was being read.
        what: String,
    },
    /// A count, length, depth or size is beyond what this reader accepts or what the file can hold.
    #[error("{path}: {what} at byte offset {offset} is {value}, over the limit of {limit}")]
    LimitExceeded {
        /// The file.
        path: PathBuf,
        /// Where the offending field starts.
        offset: u64,
        /// Which count or length, e.g. `length of key`.
        what: String,
        /// The value found.
        value: u64,
        /// The most accepted here.
        limit: u64,
    },
    /// A string (key, value or tensor name) is not valid UTF-8.
    #[error("{path}: {what} at byte offset {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// The file.
        path: PathBuf,
        /// Where the string's bytes start.
        offset: u64,
        /// Which string.
        what: String,
    },
    /// The same metadata key appears twice.
    #[error("{path}: metadata key \"{key}\" appears twice (second at byte offset {offset})")]
    DuplicateKey {
        /// The file.
        path: PathBuf,
        /// The repeated key.
        key: String,
        /// Where the second occurrence starts.
        offset: u64,
    },
    /// `general.alignment` is not a non-zero power of two stored as u32.
    #[error("{path}: general.alignment must be a non-zero power of two of type u32, found {found}")]
    BadAlignment {
        /// The file.
        path: PathBuf,
        /// The value (and type) found.
        found: String,
    },
    /// A tensor info is unusable: a repeated name, too many dimensions, an element count that overflows, an
    /// unknown ggml type, a row not a multiple of the type's block, or a misaligned offset.
    #[error("{path}: tensor \"{name}\": {reason}")]
    BadTensor {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A tensor's data does not lie within the file.
    #[error("{path}: tensor \"{name}\" data spans bytes {start}..{end} but the file has {file_len} bytes")]
    TensorOutOfRange {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// First byte of its data (absolute).
        start: u64,
        /// One past its last byte (absolute).
        end: u64,
        /// The file's length.
        file_len: u64,
    },
}

/// Why a GGUF file could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GgufWriteError {
    /// Creating or writing the file failed.
    #[error("{path}: cannot write GGUF file: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A tensor's data does not have as many elements as its dimensions say, or it has no or too many dimensions.
    #[error("tensor \"{name}\": dimensions {dims:?} do not fit {len} elements of data (1 to 4 dimensions)")]
    Shape {
        /// The tensor's name.
        name: String,
        /// The dimensions given (ggml order, `ne0` first).
        dims: Vec<u64>,
        /// The number of values given.
        len: u64,
    },
    /// A tensor name is longer than ggml accepts ([`MAX_TENSOR_NAME_LEN`](super::MAX_TENSOR_NAME_LEN) bytes).
    #[error("tensor name \"{name}\" is longer than 63 bytes")]
    NameTooLong {
        /// The name.
        name: String,
    },
    /// A tensor or metadata key was added twice.
    #[error("\"{name}\" was added twice")]
    Duplicate {
        /// The repeated tensor name or key.
        name: String,
    },
    /// `general.alignment` was set to something other than a non-zero power of two u32.
    #[error("general.alignment must be a non-zero power of two of type u32")]
    BadAlignment,
}
