//! Writer → reader round trips: every value type, nested arrays, tensor layout and writer errors.

use std::path::Path;

use proptest::prelude::*;

use super::{f32_data, read_bytes, to_bytes};
use crate::models::gguf::{
    GgmlType, GgufHeader, GgufWriteError, GgufWriter, MetaArray, MetaValue, ValueType,
};

fn every_type() -> Vec<(String, MetaValue)> {
    let nested = MetaArray::Array(vec![
        MetaArray::String(vec!["x".into(), String::new()]),
        MetaArray::Array(vec![MetaArray::U8(vec![1, 2]), MetaArray::F64(vec![])]),
        MetaArray::Bool(vec![]),
    ]);
    let values = [
        MetaValue::U8(0xAB),
        MetaValue::I8(-5),
        MetaValue::U16(0xBEEF),
        MetaValue::I16(-30_000),
        MetaValue::U32(0xDEAD_BEEF),
        MetaValue::I32(-2_000_000_000),
        MetaValue::F32(3.25),
        MetaValue::Bool(true),
        MetaValue::String("héllo ▁".into()),
        MetaValue::U64(u64::MAX - 1),
        MetaValue::I64(i64::MIN),
        MetaValue::F64(-1e300),
        MetaValue::Array(MetaArray::U8(vec![0, 255])),
        MetaValue::Array(MetaArray::I8(vec![-128, 127])),
        MetaValue::Array(MetaArray::U16(vec![1, 65_535])),
        MetaValue::Array(MetaArray::I16(vec![-1, 2])),
        MetaValue::Array(MetaArray::U32(vec![7])),
        MetaValue::Array(MetaArray::I32(vec![-7, 8, 9])),
        MetaValue::Array(MetaArray::F32(vec![0.5, -0.0, f32::INFINITY])),
        MetaValue::Array(MetaArray::Bool(vec![true, false, true])),
        MetaValue::Array(MetaArray::String(vec!["a".into(), "<0x0A>".into()])),
        MetaValue::Array(MetaArray::U64(vec![u64::MAX])),
        MetaValue::Array(MetaArray::I64(vec![i64::MAX, -3])),
        MetaValue::Array(MetaArray::F64(vec![1.5])),
        MetaValue::Array(nested),
    ];
    values.into_iter().enumerate().map(|(i, v)| (format!("test.value_{i}"), v)).collect()
}

#[test]
fn every_value_type_and_nested_arrays_read_back_equal() {
    let mut w = GgufWriter::new();
    let entries = every_type();
    for (k, v) in &entries {
        w.add_metadata(k, v.clone()).unwrap();
    }
    w.add_f32_tensor("a", &[3], vec![1.0, 2.0, 3.0]).unwrap();
    w.add_f32_tensor("b", &[2, 2], vec![-1.0, -2.0, -3.0, -4.0]).unwrap();
    let bytes = to_bytes(&w);
    let h = read_bytes(&bytes).unwrap();
    assert_eq!(h.version(), 3);
    assert_eq!(h.metadata(), &entries[..]);
    let types: Vec<ValueType> = h.metadata().iter().map(|(_, v)| v.value_type()).collect();
    for t in ValueType::ALL {
        assert!(types.contains(&t), "{t:?} is covered");
        assert_eq!(ValueType::from_id(t.id()), Some(t));
    }
    assert_eq!(ValueType::from_id(13), None);
    assert_eq!(h.tensor_count(), 2);
    let b = h.tensor("b").unwrap();
    assert_eq!((b.dims.clone(), b.ggml_type, b.offset), (vec![2, 2], GgmlType::F32, 32));
    assert_eq!(h.data_offset() % 32, 0);
    assert_eq!(f32_data(&bytes, &h, "a"), [1.0, 2.0, 3.0]);
    assert_eq!(f32_data(&bytes, &h, "b"), [-1.0, -2.0, -3.0, -4.0]);
    assert_eq!(h.parameter_count(), 7);
    assert_eq!(bytes.len() as u64, h.data_offset() + 32 + 32, "the data section ends padded");
}

#[test]
fn custom_alignment_places_data_and_offsets_on_it() {
    let mut w = GgufWriter::new();
    w.add_metadata("general.alignment", MetaValue::U32(256)).unwrap();
    w.add_f32_tensor("x", &[5], vec![1.0; 5]).unwrap().add_zero_f32_tensor("y", &[70]).unwrap();
    let bytes = to_bytes(&w);
    let h = read_bytes(&bytes).unwrap();
    assert_eq!(h.alignment(), 256);
    assert_eq!(h.data_offset() % 256, 0);
    assert_eq!(h.tensor("y").unwrap().offset, 256);
    assert_eq!(f32_data(&bytes, &h, "y"), vec![0.0; 70]);
    assert_eq!(bytes.len() as u64, h.data_offset() + 256 + 512);
}

#[test]
fn writer_rejects_bad_input_by_name() {
    let mut w = GgufWriter::new();
    w.add_metadata("k", MetaValue::U8(1)).unwrap();
    assert!(
        matches!(w.add_metadata("k", MetaValue::U8(2)), Err(GgufWriteError::Duplicate { name }) if name == "k")
    );
    assert!(matches!(
        w.add_metadata("general.alignment", MetaValue::U32(48)),
        Err(GgufWriteError::BadAlignment)
    ));
    assert!(matches!(
        w.add_metadata("general.alignment", MetaValue::U64(64)),
        Err(GgufWriteError::BadAlignment)
    ));
    let err = w.add_f32_tensor("t", &[2, 3], vec![0.0; 5]).unwrap_err();
    assert!(matches!(&err, GgufWriteError::Shape { name, len: 5, .. } if name == "t"), "{err}");
    assert!(w.add_zero_f32_tensor("t", &[1, 1, 1, 1, 1]).is_err(), "5 dimensions");
    assert!(w.add_zero_f32_tensor("t", &[]).is_err(), "no dimensions");
    assert!(w.add_zero_f32_tensor("t", &[u64::MAX, 2]).is_err(), "overflowing size");
    let long = "n".repeat(64);
    assert!(matches!(w.add_zero_f32_tensor(&long, &[1]), Err(GgufWriteError::NameTooLong { .. })));
    w.add_zero_f32_tensor("t", &[1]).unwrap();
    assert!(matches!(w.add_zero_f32_tensor("t", &[1]), Err(GgufWriteError::Duplicate { .. })));
}

#[test]
fn write_path_and_read_path_agree() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", MetaValue::String("llama".into())).unwrap();
    w.add_f32_tensor("w", &[4], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
    let len = w.write_path(&path).unwrap();
    assert_eq!(len, std::fs::metadata(&path).unwrap().len());
    let h = GgufHeader::read_path(&path).unwrap();
    assert_eq!(h.path(), path);
    assert_eq!(h.architecture(), Some("llama"));
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        h,
        read_bytes(&bytes)
            .map(|mut h| {
                h.path = path.clone();
                h
            })
            .unwrap()
    );
    let missing = GgufHeader::read_path(Path::new("/nonexistent/x.gguf")).unwrap_err();
    assert!(missing.to_string().contains("/nonexistent/x.gguf"), "{missing}");
}

fn scalar() -> impl Strategy<Value = MetaValue> {
    prop_oneof![
        any::<u8>().prop_map(MetaValue::U8),
        any::<i16>().prop_map(MetaValue::I16),
        any::<u32>().prop_map(MetaValue::U32),
        any::<i64>().prop_map(MetaValue::I64),
        any::<bool>().prop_map(MetaValue::Bool),
        (-1e6f32..1e6).prop_map(MetaValue::F32),
        (-1e6f64..1e6).prop_map(MetaValue::F64),
        ".{0,12}".prop_map(MetaValue::String),
    ]
}

fn array() -> impl Strategy<Value = MetaArray> {
    let leaf = prop_oneof![
        prop::collection::vec(any::<i8>(), 0..6).prop_map(MetaArray::I8),
        prop::collection::vec(any::<u16>(), 0..6).prop_map(MetaArray::U16),
        prop::collection::vec(any::<u64>(), 0..6).prop_map(MetaArray::U64),
        prop::collection::vec(any::<bool>(), 0..6).prop_map(MetaArray::Bool),
        prop::collection::vec(".{0,6}", 0..6).prop_map(MetaArray::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| prop::collection::vec(inner, 0..4).prop_map(MetaArray::Array))
}

proptest! {
    #[test]
    fn random_metadata_round_trips(
        values in prop::collection::vec(prop_oneof![scalar(), array().prop_map(MetaValue::Array)], 0..12),
    ) {
        let mut w = GgufWriter::new();
        let entries: Vec<(String, MetaValue)> =
            values.into_iter().enumerate().map(|(i, v)| (format!("k.{i}"), v)).collect();
        for (k, v) in &entries {
            w.add_metadata(k, v.clone()).unwrap();
        }
        let h = read_bytes(&to_bytes(&w)).unwrap();
        prop_assert_eq!(h.metadata(), &entries[..]);
    }
}
