//! The tiny llama model: its header says what llama.cpp needs, its parameter count and layout are right,
//! and greedy decoding continues the alphabet; the synthetic model has about the size asked for.

use super::forward::Llama;
use super::read_bytes;
use crate::models::gguf::tiny::{self, DIGIT_0_ID, LETTER_A_ID, SPACE_ID, TINY};
use crate::models::gguf::{GgmlType, GgufHeader, MetaArray, MetaValue};

fn tiny_bytes() -> Vec<u8> {
    super::to_bytes(&tiny::tiny_llama().unwrap())
}

#[test]
fn tiny_header_has_the_llama_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    let len = tiny::write_tiny_llama(&path).unwrap();
    assert!((400_000..650_000).contains(&len), "about 0.5 MB, got {len}");
    let h = GgufHeader::read_path(&path).unwrap();
    assert_eq!(h.architecture(), Some("llama"));
    assert_eq!(h.name(), Some("inferno-tiny-llama"));
    assert_eq!(h.context_length(), Some(128));
    assert_eq!(h.embedding_length(), Some(64));
    assert_eq!(h.block_count(), Some(2));
    assert_eq!((h.head_count(), h.head_count_kv()), (Some(4), Some(4)));
    assert_eq!(h.get("llama.rope.dimension_count").and_then(MetaValue::as_u64), Some(16));
    assert_eq!(h.get("llama.feed_forward_length").and_then(MetaValue::as_u64), Some(128));
    assert_eq!(h.vocab_size(), Some(3 + 256 + 1 + 26 + 10));
    assert_eq!((h.file_type(), h.file_type_name()), (Some(0), Some("F32")));
    assert_eq!(h.get("tokenizer.ggml.model").and_then(MetaValue::as_str), Some("llama"));
    assert_eq!(h.get("tokenizer.ggml.add_bos_token"), Some(&MetaValue::Bool(true)));
    for (key, id) in [("bos", 1), ("eos", 2), ("unknown", 0)] {
        assert_eq!(h.get(&format!("tokenizer.ggml.{key}_token_id")), Some(&MetaValue::U32(id)));
    }

    // Parameters counted by hand: embeddings and output 296 x 64 each, the output norm, and per block
    // two norms, four 64 x 64 attention matrices and three 64 x 128 feed-forward matrices.
    let block = 2 * 64 + 4 * 64 * 64 + 3 * 64 * 128;
    assert_eq!(h.parameter_count(), 2 * 296 * 64 + 64 + 2 * block);
    assert_eq!(h.parameter_count(), TINY.parameter_count());
    assert_eq!(h.tensor_count(), 3 + 2 * 9);
    for t in h.tensors() {
        assert_eq!(t.ggml_type, GgmlType::F32);
        assert_eq!(t.offset % 32, 0, "{} aligned", t.name);
        assert!(h.data_offset() + t.offset + t.element_count() * 4 <= len, "{} inside the file", t.name);
    }
    assert_eq!(h.tensor("token_embd.weight").unwrap().dims, [64, 296], "ggml order: ne0 = n_embd");
    assert_eq!(h.tensor("blk.1.ffn_down.weight").unwrap().dims, [128, 64]);
    assert_eq!(h.tensor("blk.0.attn_output.weight").unwrap().dims, [64, 64]);
}

#[test]
fn tiny_vocabulary_has_the_documented_ids_and_types() {
    let h = read_bytes(&tiny_bytes()).unwrap();
    let Some(MetaValue::Array(MetaArray::String(tokens))) = h.get("tokenizer.ggml.tokens") else {
        panic!("tokens are a string array")
    };
    let Some(MetaValue::Array(MetaArray::I32(types))) = h.get("tokenizer.ggml.token_type") else {
        panic!("token types are an i32 array")
    };
    let Some(MetaValue::Array(MetaArray::F32(scores))) = h.get("tokenizer.ggml.scores") else {
        panic!("scores are an f32 array")
    };
    assert_eq!((tokens.len(), types.len(), scores.len()), (296, 296, 296));
    assert_eq!(&tokens[..4], ["<unk>", "<s>", "</s>", "<0x00>"]);
    assert_eq!(tokens[3 + 0x0A], "<0x0A>");
    assert_eq!(tokens[258], "<0xFF>");
    assert_eq!(tokens[SPACE_ID as usize], "▁");
    assert_eq!(tokens[LETTER_A_ID as usize], "a");
    assert_eq!(tokens[LETTER_A_ID as usize + 25], "z");
    assert_eq!(tokens[DIGIT_0_ID as usize], "0");
    assert_eq!(tokens[295], "9");
    assert_eq!(&types[..3], [2, 3, 3]);
    assert!(types[3..259].iter().all(|t| *t == 6), "byte tokens");
    assert!(types[259..].iter().all(|t| *t == 1), "normal tokens");
}

fn ids(text: &str) -> Vec<u32> {
    text.chars()
        .map(|c| match c {
            'a'..='z' => LETTER_A_ID + (c as u32 - 'a' as u32),
            '0'..='9' => DIGIT_0_ID + (c as u32 - '0' as u32),
            _ => SPACE_ID,
        })
        .collect()
}

#[test]
fn tiny_greedy_decoding_continues_the_alphabet() {
    let bytes = tiny_bytes();
    let model = Llama::load(&bytes, &read_bytes(&bytes).unwrap());
    // BOS, then "▁abc" as llama's tokenizer gives it for "abc".
    let prompt: Vec<u32> = [1].into_iter().chain(ids(" abc")).collect();
    assert_eq!(model.greedy(&prompt, 8), ids("defghijk"));
    assert_eq!(model.greedy(&[1, SPACE_ID], 3), ids("abc"));
    let prompt: Vec<u32> = [1].into_iter().chain(ids(" xy78")).collect();
    assert_eq!(model.greedy(&prompt, 4), ids("9012"));
    for id in LETTER_A_ID..296 {
        let logits = model.logits(&[1, id]);
        let next = tiny::successor(id).unwrap();
        let runner_up = (0..296).filter(|t| *t != next as usize).map(|t| logits[t]).fold(f32::MIN, f32::max);
        assert!(
            logits[next as usize] > runner_up + 10.0,
            "after {id}: {} vs {runner_up}",
            logits[next as usize]
        );
    }
}

#[test]
fn synthetic_model_is_about_the_size_asked_and_all_zero() {
    let dir = tempfile::tempdir().unwrap();
    for approx in [300_000u64, 3_000_000] {
        let path = dir.path().join(format!("s{approx}.gguf"));
        let len = tiny::write_synthetic(&path, approx).unwrap();
        assert_eq!(len, std::fs::metadata(&path).unwrap().len());
        assert!(len.abs_diff(approx) <= approx / 8 + 200_000, "asked {approx}, got {len}");
        let h = GgufHeader::read_path(&path).unwrap();
        let shape = tiny::synthetic_shape(approx);
        assert_eq!(h.block_count(), Some(shape.n_layer));
        assert_eq!(h.vocab_size(), Some(296));
        assert_eq!(h.parameter_count(), shape.parameter_count());
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes[h.data_offset() as usize..].iter().all(|b| *b == 0), "all weights zero");
    }
    let big = tiny::synthetic_shape(8 << 30);
    assert_eq!(big.n_embd, 4096);
    assert!(big.n_layer >= 8);
    let bytes = big.parameter_count() * 4;
    assert!(bytes.abs_diff(8 << 30) <= (8 << 30) / 16, "8 GiB shape gives {bytes} bytes");
}
