//! [`GgufWriter`]: builds a GGUF v3 file from metadata entries of any type and named F32 tensors, laid out
//! as llama.cpp's own writer does (tensor infos in the order added, each tensor's data at the next multiple
//! of the alignment, the data section padded to the alignment). All-zero tensors are streamed, never held,
//! so multi-gigabyte benchmark files cost no memory.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use super::GgufWriteError;
use super::reader::{DEFAULT_ALIGNMENT, MAGIC, MAX_DIMS, MAX_TENSOR_NAME_LEN};
use super::types::GgmlType;
use super::value::{MetaArray, MetaValue};

/// Bytes written per `write` call when converting or streaming tensor data.
const CHUNK: usize = 1 << 16;

/// A tensor's values: given, or all zeros.
#[derive(Clone, Debug)]
enum Data {
    F32(Vec<f32>),
    Zeros,
}

#[derive(Clone, Debug)]
struct Tensor {
    name: String,
    dims: Vec<u64>,
    data: Data,
}

impl Tensor {
    fn byte_len(&self) -> u64 {
        self.dims.iter().product::<u64>() * 4
    }
}

/// Collects metadata and tensors, then writes them as one GGUF v3 file.
#[derive(Clone, Debug, Default)]
pub struct GgufWriter {
    metadata: Vec<(String, MetaValue)>,
    tensors: Vec<Tensor>,
}

impl GgufWriter {
    /// An empty file: no metadata, no tensors.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds metadata entry `key`. `general.alignment` must be a power-of-two `MetaValue::U32`.
    pub fn add_metadata(&mut self, key: &str, value: MetaValue) -> Result<&mut Self, GgufWriteError> {
        if self.metadata.iter().any(|(k, _)| k == key) {
            return Err(GgufWriteError::Duplicate { name: key.into() });
        }
        if key == "general.alignment" && !matches!(value, MetaValue::U32(a) if a.is_power_of_two()) {
            return Err(GgufWriteError::BadAlignment);
        }
        self.metadata.push((key.into(), value));
        Ok(self)
    }

    /// Adds an F32 tensor with dimensions in ggml order (`ne0` first) and its values, `ne0` varying fastest.
    pub fn add_f32_tensor(
        &mut self,
        name: &str,
        dims: &[u64],
        values: Vec<f32>,
    ) -> Result<&mut Self, GgufWriteError> {
        self.add(name, dims, Some(values.len() as u64), Data::F32(values))
    }

    /// Adds an F32 tensor of all zeros; its data is streamed when the file is written.
    pub fn add_zero_f32_tensor(&mut self, name: &str, dims: &[u64]) -> Result<&mut Self, GgufWriteError> {
        self.add(name, dims, None, Data::Zeros)
    }

    fn add(
        &mut self,
        name: &str,
        dims: &[u64],
        len: Option<u64>,
        data: Data,
    ) -> Result<&mut Self, GgufWriteError> {
        let elements = dims.iter().try_fold(1u64, |n, d| n.checked_mul(*d)).filter(|n| *n <= u64::MAX / 4);
        let fits = elements.is_some_and(|n| len.is_none_or(|len| len == n));
        if dims.is_empty() || dims.len() > MAX_DIMS as usize || !fits {
            let shape = GgufWriteError::Shape { name: name.into(), dims: dims.into(), len: len.unwrap_or(0) };
            return Err(shape);
        }
        if name.len() as u64 > MAX_TENSOR_NAME_LEN {
            return Err(GgufWriteError::NameTooLong { name: name.into() });
        }
        if self.tensors.iter().any(|t| t.name == name) {
            return Err(GgufWriteError::Duplicate { name: name.into() });
        }
        self.tensors.push(Tensor { name: name.into(), dims: dims.into(), data });
        Ok(self)
    }

    /// The data-section alignment the file will use.
    pub fn alignment(&self) -> u64 {
        match self.metadata.iter().find(|(k, _)| k == "general.alignment") {
            Some((_, MetaValue::U32(a))) => u64::from(*a),
            _ => DEFAULT_ALIGNMENT,
        }
    }

    /// Writes the file to `path` (created or truncated) and returns its length in bytes.
    pub fn write_path(&self, path: &Path) -> Result<u64, GgufWriteError> {
        let io_err = |source| GgufWriteError::Io { path: path.into(), source };
        let file = File::create(path).map_err(io_err)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let len = self.write_to(&mut out).map_err(io_err)?;
        out.into_inner().map_err(|e| io_err(e.into_error()))?.sync_all().map_err(io_err)?;
        Ok(len)
    }

    /// Writes the file to `out` and returns the number of bytes written.
    pub fn write_to<W: Write>(&self, out: W) -> io::Result<u64> {
        let align = self.alignment();
        let mut out = Counted { inner: out, pos: 0 };
        out.write_all(&MAGIC)?;
        out.write_all(&3u32.to_le_bytes())?;
        out.write_all(&(self.tensors.len() as u64).to_le_bytes())?;
        out.write_all(&(self.metadata.len() as u64).to_le_bytes())?;
        for (key, value) in &self.metadata {
            write_str(&mut out, key)?;
            out.write_all(&value.value_type().id().to_le_bytes())?;
            write_value(&mut out, value)?;
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            write_str(&mut out, &t.name)?;
            out.write_all(&(t.dims.len() as u32).to_le_bytes())?;
            for d in &t.dims {
                out.write_all(&d.to_le_bytes())?;
            }
            out.write_all(&GgmlType::F32.0.to_le_bytes())?;
            out.write_all(&offset.to_le_bytes())?;
            offset = (offset + t.byte_len()).next_multiple_of(align);
        }
        for t in &self.tensors {
            out.pad_to(out.pos.next_multiple_of(align))?;
            match &t.data {
                Data::F32(values) => {
                    for chunk in values.chunks(CHUNK / 4) {
                        let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
                        out.write_all(&bytes)?;
                    }
                }
                Data::Zeros => out.pad_to(out.pos + t.byte_len())?,
            }
        }
        out.pad_to(out.pos.next_multiple_of(align))?;
        out.inner.flush()?;
        Ok(out.pos)
    }
}

/// A writer that counts the bytes through it.
struct Counted<W> {
    inner: W,
    pos: u64,
}

impl<W: Write> Counted<W> {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.inner.write_all(bytes)?;
        self.pos += bytes.len() as u64;
        Ok(())
    }

    /// Writes zeros up to absolute position `to`.
    fn pad_to(&mut self, to: u64) -> io::Result<()> {
        static ZEROS: [u8; CHUNK] = [0; CHUNK];
        while self.pos < to {
            let n = (to - self.pos).min(CHUNK as u64) as usize;
            self.write_all(&ZEROS[..n])?;
        }
        Ok(())
    }
}

fn write_str<W: Write>(out: &mut Counted<W>, s: &str) -> io::Result<()> {
    out.write_all(&(s.len() as u64).to_le_bytes())?;
    out.write_all(s.as_bytes())
}

fn write_value<W: Write>(out: &mut Counted<W>, value: &MetaValue) -> io::Result<()> {
    match value {
        MetaValue::U8(v) => out.write_all(&v.to_le_bytes()),
        MetaValue::I8(v) => out.write_all(&v.to_le_bytes()),
        MetaValue::U16(v) => out.write_all(&v.to_le_bytes()),
        MetaValue::I16(v) => out.write_all(&v.to_le_bytes()),
        MetaValue::U32(v) => out.write_all(&v.to_le_bytes()),
        MetaValue::I32(v) => out.write_all(&v.to_le_bytes()),
        MetaValue::F32(v) => out.write_all(&v.to_le_bytes()),
        MetaValue::Bool(v) => out.write_all(&[u8::from(*v)]),
        MetaValue::String(s) => write_str(out, s),
        MetaValue::Array(a) => write_array(out, a),
        MetaValue::U64(v) => out.write_all(&v.to_le_bytes()),
        MetaValue::I64(v) => out.write_all(&v.to_le_bytes()),
        MetaValue::F64(v) => out.write_all(&v.to_le_bytes()),
    }
}

fn write_array<W: Write>(out: &mut Counted<W>, array: &MetaArray) -> io::Result<()> {
    out.write_all(&array.element_type().id().to_le_bytes())?;
    out.write_all(&(array.len() as u64).to_le_bytes())?;
    macro_rules! each {
        ($items:expr) => {{
            for v in $items {
                out.write_all(&v.to_le_bytes())?;
            }
            Ok(())
        }};
    }
    match array {
        MetaArray::U8(v) => out.write_all(v),
        MetaArray::I8(v) => each!(v),
        MetaArray::U16(v) => each!(v),
        MetaArray::I16(v) => each!(v),
        MetaArray::U32(v) => each!(v),
        MetaArray::I32(v) => each!(v),
        MetaArray::F32(v) => each!(v),
        MetaArray::Bool(v) => each!(v.iter().map(|b| u8::from(*b))),
        MetaArray::String(v) => v.iter().try_for_each(|s| write_str(out, s)),
        MetaArray::Array(v) => v.iter().try_for_each(|a| write_array(out, a)),
        MetaArray::U64(v) => each!(v),
        MetaArray::I64(v) => each!(v),
        MetaArray::F64(v) => each!(v),
    }
}
