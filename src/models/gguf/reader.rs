//! Parsing a GGUF v2/v3 header from any `Read`: magic, version, counts, metadata, tensor infos. It never
//! reads tensor data and never trusts a count or a length before checking it against the limits below and
//! against the bytes the file can still hold, so a corrupt or hostile file fails with an error naming the
//! byte offset instead of allocating gigabytes or panicking.
//!
//! All integers are little-endian. Layout: `"GGUF"`, u32 version, u64 tensor count, u64 metadata count,
//! the metadata entries (string key, u32 type, value), the tensor infos (string name, u32 n_dims, n_dims ×
//! u64 dims, u32 ggml type, u64 offset into the data section), padding to `general.alignment` (default 32),
//! then the data section. Like llama.cpp, the reader requires tensor data to be laid out in tensor-info
//! order, each tensor starting where the previous one's size, padded to the alignment, ends.

use std::collections::HashSet;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::GgufError;
use super::header::{GgufHeader, TensorInfo};
use super::types::GgmlType;
use super::value::{MetaArray, MetaValue, ValueType};

/// The file's first four bytes.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// Data-section alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Most bytes a header (everything before the data section) may take: real models need under 20 MiB
/// (vocabularies of 256k tokens with their merges), and this caps the memory a hostile header can make the
/// reader use at a small multiple of it.
pub const MAX_HEADER_BYTES: u64 = 64 << 20;
/// Longest string value, in bytes (chat templates run to tens of KiB).
pub const MAX_STRING_LEN: u64 = 1 << 20;
/// Longest metadata key, in bytes, as the GGUF spec allows.
pub const MAX_KEY_LEN: u64 = 65_535;
/// Longest tensor name, in bytes: ggml's `GGML_MAX_NAME` (64) less its terminating NUL.
pub const MAX_TENSOR_NAME_LEN: u64 = 63;
/// Most dimensions of a tensor (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: u32 = 4;
/// Most tensors in one file (real models have at most tens of thousands).
pub const MAX_TENSORS: u64 = 1 << 20;
/// Deepest nesting of arrays inside arrays.
pub const MAX_ARRAY_DEPTH: usize = 8;
/// Largest element count of one tensor, as ggml's `int64_t` sizes allow.
const MAX_ELEMENTS: u64 = i64::MAX as u64;
/// Most elements reserved up front for an array; longer arrays grow as their elements actually arrive.
const MAX_RESERVE: u64 = 1 << 16;

/// Reads `reader` (positioned at the start of a file of `file_len` bytes) up to the end of the tensor infos.
pub(super) fn parse<R: Read>(reader: R, file_len: u64, path: &Path) -> Result<GgufHeader, GgufError> {
    let mut src = Source { inner: reader, pos: 0, limit: file_len.min(MAX_HEADER_BYTES), file_len, path };
    let magic: [u8; 4] = src.bytes(&|| "magic".into())?;
    if magic != MAGIC {
        return Err(GgufError::BadMagic { path: path.into(), found: magic });
    }
    let version = u32::from_le_bytes(src.bytes(&|| "version".into())?);
    if !(2..=3).contains(&version) {
        return Err(GgufError::UnsupportedVersion { path: path.into(), version });
    }
    let tensor_count = src.count(24, &|| "tensor count".into())?;
    if tensor_count > MAX_TENSORS {
        return Err(src.limit_err(8, "tensor count", tensor_count, MAX_TENSORS));
    }
    let kv_count = src.count(13, &|| "metadata count".into())?;

    let mut metadata = Vec::with_capacity(reserve(kv_count));
    let mut keys = HashSet::new();
    for i in 0..kv_count {
        let at = src.pos;
        let key = src.string(MAX_KEY_LEN, &|| format!("key of metadata entry {i}"))?;
        if !keys.insert(key.clone()) {
            return Err(GgufError::DuplicateKey { path: path.into(), key, offset: at });
        }
        let ty = src.value_type(&|| format!("type of key \"{key}\""))?;
        let value = src.value(ty, 0, &|| format!("value of key \"{key}\""))?;
        metadata.push((key, value));
    }
    let alignment = alignment(&metadata, path)?;

    let mut tensors = Vec::with_capacity(reserve(tensor_count));
    let mut names = HashSet::new();
    let mut expected_offset = 0u64;
    for i in 0..tensor_count {
        let name = src.string(MAX_TENSOR_NAME_LEN, &|| format!("name of tensor {i}"))?;
        let info = src.tensor_info(name, alignment)?;
        if !names.insert(info.name.clone()) {
            return Err(bad_tensor(path, &info.name, "the name appears twice".into()));
        }
        // As llama.cpp requires: tensors follow each other in order, each padded to the alignment.
        if info.offset != expected_offset {
            let reason = format!("data offset {} is not the expected {expected_offset}", info.offset);
            return Err(bad_tensor(path, &info.name, reason));
        }
        expected_offset = info
            .byte_size()
            .and_then(|size| expected_offset.checked_add(size.checked_next_multiple_of(alignment)?))
            .ok_or_else(|| bad_tensor(path, &info.name, "data section size overflows".into()))?;
        tensors.push(info);
    }
    let data_offset = src.pos.next_multiple_of(alignment);
    Ok(GgufHeader { path: path.into(), version, metadata, tensors, alignment, data_offset })
}

/// `general.alignment`, checked, or the default.
fn alignment(metadata: &[(String, MetaValue)], path: &Path) -> Result<u64, GgufError> {
    match metadata.iter().find(|(k, _)| k == "general.alignment").map(|(_, v)| v) {
        None => Ok(DEFAULT_ALIGNMENT),
        Some(MetaValue::U32(a)) if a.is_power_of_two() => Ok(u64::from(*a)),
        Some(other) => Err(GgufError::BadAlignment { path: path.into(), found: format!("{other:?}") }),
    }
}

fn bad_tensor(path: &Path, name: &str, reason: String) -> GgufError {
    GgufError::BadTensor { path: path.into(), name: name.into(), reason }
}

fn reserve(count: u64) -> usize {
    count.min(MAX_RESERVE) as usize
}

/// A reader that counts its position and refuses to go past `limit`.
struct Source<'p, R> {
    inner: R,
    pos: u64,
    limit: u64,
    file_len: u64,
    path: &'p Path,
}

type What<'a> = &'a dyn Fn() -> String;

impl<R: Read> Source<'_, R> {
    fn path(&self) -> PathBuf {
        self.path.into()
    }

    /// The error for needing bytes past `limit`: the file ends there, or the header cap does.
    fn past_limit(&self, need: u64, what: What) -> GgufError {
        if self.limit < self.file_len {
            self.limit_err(0, "header size", self.pos.saturating_add(need), MAX_HEADER_BYTES)
        } else {
            GgufError::Truncated { path: self.path(), offset: self.limit, what: what() }
        }
    }

    /// A limit error for the field that started `back` bytes before the current position.
    fn limit_err(&self, back: u64, what: &str, value: u64, limit: u64) -> GgufError {
        let offset = self.pos - back;
        GgufError::LimitExceeded { path: self.path(), offset, what: what.into(), value, limit }
    }

    fn fill(&mut self, buf: &mut [u8], what: What) -> Result<(), GgufError> {
        let room = usize::try_from(self.limit - self.pos).unwrap_or(usize::MAX);
        let avail = buf.len().min(room);
        let mut filled = 0;
        while filled < avail {
            match self.inner.read(&mut buf[filled..avail]) {
                Ok(0) => {
                    let offset = self.pos;
                    return Err(GgufError::Truncated { path: self.path(), offset, what: what() });
                }
                Ok(n) => {
                    filled += n;
                    self.pos += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => return Err(GgufError::Io { path: self.path(), source }),
            }
        }
        if avail < buf.len() {
            return Err(self.past_limit((buf.len() - avail) as u64, what));
        }
        Ok(())
    }

    fn bytes<const N: usize>(&mut self, what: What) -> Result<[u8; N], GgufError> {
        let mut buf = [0; N];
        self.fill(&mut buf, what)?;
        Ok(buf)
    }

    fn u32(&mut self, what: What) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.bytes(what)?))
    }

    fn u64(&mut self, what: What) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.bytes(what)?))
    }

    /// A u64 count of items taking at least `min_len` bytes each, checked against the bytes left.
    fn count(&mut self, min_len: u64, what: What) -> Result<u64, GgufError> {
        let count = self.u64(what)?;
        let need = count.saturating_mul(min_len);
        if need > self.limit - self.pos {
            return Err(self.past_limit(need, &|| format!("{} (the file cannot hold {count} items)", what())));
        }
        Ok(count)
    }

    fn string(&mut self, max: u64, what: What) -> Result<String, GgufError> {
        let len = self.u64(&|| format!("length of {}", what()))?;
        if len > max {
            return Err(self.limit_err(8, &format!("length of {}", what()), len, max));
        }
        let at = self.pos;
        let mut buf = vec![0; len as usize];
        self.fill(&mut buf, what)?;
        String::from_utf8(buf).map_err(|_| GgufError::InvalidUtf8 {
            path: self.path(),
            offset: at,
            what: what(),
        })
    }

    fn value_type(&mut self, what: What) -> Result<ValueType, GgufError> {
        let at = self.pos;
        let id = self.u32(what)?;
        ValueType::from_id(id).ok_or_else(|| GgufError::UnknownValueType {
            path: self.path(),
            offset: at,
            type_id: id,
            what: what(),
        })
    }

    fn value(&mut self, ty: ValueType, depth: usize, what: What) -> Result<MetaValue, GgufError> {
        Ok(match ty {
            ValueType::U8 => MetaValue::U8(u8::from_le_bytes(self.bytes(what)?)),
            ValueType::I8 => MetaValue::I8(i8::from_le_bytes(self.bytes(what)?)),
            ValueType::U16 => MetaValue::U16(u16::from_le_bytes(self.bytes(what)?)),
            ValueType::I16 => MetaValue::I16(i16::from_le_bytes(self.bytes(what)?)),
            ValueType::U32 => MetaValue::U32(u32::from_le_bytes(self.bytes(what)?)),
            ValueType::I32 => MetaValue::I32(i32::from_le_bytes(self.bytes(what)?)),
            ValueType::F32 => MetaValue::F32(f32::from_le_bytes(self.bytes(what)?)),
            ValueType::Bool => MetaValue::Bool(u8::from_le_bytes(self.bytes(what)?) != 0),
            ValueType::String => MetaValue::String(self.string(MAX_STRING_LEN, what)?),
            ValueType::Array => MetaValue::Array(self.array(depth, what)?),
            ValueType::U64 => MetaValue::U64(u64::from_le_bytes(self.bytes(what)?)),
            ValueType::I64 => MetaValue::I64(i64::from_le_bytes(self.bytes(what)?)),
            ValueType::F64 => MetaValue::F64(f64::from_le_bytes(self.bytes(what)?)),
        })
    }

    fn array(&mut self, depth: usize, what: What) -> Result<MetaArray, GgufError> {
        if depth >= MAX_ARRAY_DEPTH {
            return Err(self.limit_err(
                0,
                &format!("array nesting of {}", what()),
                depth as u64 + 1,
                MAX_ARRAY_DEPTH as u64,
            ));
        }
        let ty = self.value_type(&|| format!("element type of {}", what()))?;
        let count = self.count(ty.min_encoded_len(), &|| format!("element count of {}", what()))?;
        let elem = |i: u64| move || format!("element {i} of {}", what());
        macro_rules! read_all {
            ($variant:ident, $t:ty) => {{
                let mut items = Vec::with_capacity(reserve(count));
                for i in 0..count {
                    items.push(<$t>::from_le_bytes(self.bytes(&elem(i))?));
                }
                MetaArray::$variant(items)
            }};
        }
        Ok(match ty {
            ValueType::U8 => read_all!(U8, u8),
            ValueType::I8 => read_all!(I8, i8),
            ValueType::U16 => read_all!(U16, u16),
            ValueType::I16 => read_all!(I16, i16),
            ValueType::U32 => read_all!(U32, u32),
            ValueType::I32 => read_all!(I32, i32),
            ValueType::F32 => read_all!(F32, f32),
            ValueType::U64 => read_all!(U64, u64),
            ValueType::I64 => read_all!(I64, i64),
            ValueType::F64 => read_all!(F64, f64),
            ValueType::Bool => {
                let mut items = Vec::with_capacity(reserve(count));
                for i in 0..count {
                    items.push(u8::from_le_bytes(self.bytes(&elem(i))?) != 0);
                }
                MetaArray::Bool(items)
            }
            ValueType::String => {
                let mut items = Vec::with_capacity(reserve(count));
                for i in 0..count {
                    items.push(self.string(MAX_STRING_LEN, &elem(i))?);
                }
                MetaArray::String(items)
            }
            ValueType::Array => {
                let mut items = Vec::with_capacity(reserve(count));
                for i in 0..count {
                    items.push(self.array(depth + 1, &elem(i))?);
                }
                MetaArray::Array(items)
            }
        })
    }

    fn tensor_info(&mut self, name: String, alignment: u64) -> Result<TensorInfo, GgufError> {
        let what = |field: &'static str| {
            let name = name.clone();
            move || format!("{field} of tensor \"{name}\"")
        };
        let n_dims = self.u32(&what("dimension count"))?;
        if n_dims > MAX_DIMS {
            let field = format!("dimension count of tensor \"{name}\"");
            return Err(self.limit_err(4, &field, n_dims.into(), MAX_DIMS.into()));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        let mut elements: u64 = 1;
        for _ in 0..n_dims {
            let d = self.u64(&what("dimensions"))?;
            elements = elements.checked_mul(d).filter(|e| *e <= MAX_ELEMENTS).ok_or_else(|| {
                bad_tensor(self.path, &name, format!("dimensions overflow ggml's int64 sizes at {d}"))
            })?;
            dims.push(d);
        }
        let ggml_type = GgmlType(self.u32(&what("ggml type"))?);
        let offset = self.u64(&what("data offset"))?;
        let Some((block, _)) = ggml_type.block() else {
            return Err(bad_tensor(self.path, &name, format!("{ggml_type}")));
        };
        let row = dims.first().copied().unwrap_or(1);
        if !row.is_multiple_of(block) {
            let reason = format!("row of {row} elements is not a multiple of {ggml_type}'s block of {block}");
            return Err(bad_tensor(self.path, &name, reason));
        }
        if !offset.is_multiple_of(alignment) {
            let reason = format!("data offset {offset} is not a multiple of the alignment {alignment}");
            return Err(bad_tensor(self.path, &name, reason));
        }
        Ok(TensorInfo { name, dims, ggml_type, offset })
    }
}
