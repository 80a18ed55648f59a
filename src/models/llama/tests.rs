//! llama.cpp backend tests on the tiny model: greedy and sampled generation, stop strings, streaming,
//! chat templates, and bad files.

use super::*;
use crate::models::gguf::MetaValue;
use crate::models::gguf::tiny::{tiny_llama, write_tiny_llama};

fn tiny() -> (tempfile::TempDir, GgufModel) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    write_tiny_llama(&path).unwrap();
    let model = GgufModel::load(&path).unwrap();
    (dir, model)
}

#[test]
fn greedy_generation_continues_the_alphabet() {
    let (_dir, model) = tiny();
    let params = GenerateParams { max_tokens: 8, n_ctx: 64, ..GenerateParams::default() };
    let out = model.generate("abc", &params).unwrap();
    assert_eq!(out.text, "defghijk");
    assert_eq!(out.prompt_tokens, 5, "BOS, the space prefix and three letters");
    assert_eq!(out.completion_tokens, 8);
    assert_eq!(out.finish_reason, FinishReason::Length);
    assert_eq!(model.generate("xy78", &params).unwrap().text, "90123456");
}

#[test]
fn stop_strings_and_sampling() {
    let (_dir, model) = tiny();
    let stop =
        GenerateParams { max_tokens: 8, n_ctx: 64, stop: vec!["gh".into()], ..GenerateParams::default() };
    let out = model.generate("abc", &stop).unwrap();
    assert_eq!((out.text.as_str(), out.finish_reason), ("def", FinishReason::Stop));
    // The tiny model is so sure of the next letter that sampling at temperature 1 agrees with greedy.
    let sampled = GenerateParams {
        max_tokens: 4,
        n_ctx: 64,
        temperature: 1.0,
        top_k: 5,
        seed: 7,
        ..GenerateParams::default()
    };
    assert_eq!(model.generate("abc", &sampled).unwrap().text, "defg");
}

#[test]
fn bad_files_and_full_contexts_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    write_tiny_llama(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = GgufModel::load(&path).unwrap_err().to_string();
    assert!(err.contains("tiny.gguf"), "{err}");
    std::fs::write(&path, b"not a model").unwrap();
    assert!(GgufModel::load(&path).is_err());
    let (_dir, model) = tiny();
    let params = GenerateParams { max_tokens: 100, n_ctx: 32, ..GenerateParams::default() };
    assert!(matches!(model.generate("abc", &params), Err(LlamaError::ContextFull { .. })));
}

/// The tiny model with `tokenizer.chat_template` set to `template`.
fn tiny_with_template(template: &str) -> (tempfile::TempDir, GgufModel) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny-chat.gguf");
    let mut writer = tiny_llama().unwrap();
    writer.add_metadata("tokenizer.chat_template", MetaValue::String(template.into())).unwrap();
    writer.write_path(&path).unwrap();
    let model = GgufModel::load(&path).unwrap();
    (dir, model)
}

fn turns() -> Vec<ChatTurn> {
    vec![("system".into(), "Be terse.".into()), ("user".into(), "abc".into())]
}

#[test]
fn chat_prompts_use_chatml_without_a_template() {
    let (_dir, model) = tiny();
    assert_eq!(model.chat_template(), None);
    assert_eq!(
        model.chat_prompt(&turns()).unwrap(),
        "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nabc<|im_end|>\n<|im_start|>assistant\n"
    );
    // A template llama.cpp cannot apply falls back to ChatML too.
    let (_dir, odd) = tiny_with_template("{{ messages | no_such_filter }}");
    assert_eq!(odd.chat_template(), None);
    assert_eq!(odd.chat_prompt(&turns()).unwrap(), model.chat_prompt(&turns()).unwrap());
    let nul = [("user".to_string(), "a\0b".to_string())];
    assert_eq!(model.chat_prompt(&nul).unwrap(), "<|im_start|>user\na\0b<|im_end|>\n<|im_start|>assistant\n");
}

#[test]
fn chat_prompts_use_the_models_own_template() {
    // Gemma's template (abridged); llama.cpp recognises it by `<start_of_turn>` and merges the system
    // message into the first user turn.
    let gemma = "{{ bos_token }}{% for message in messages %}<start_of_turn>{{ message['role'] }}\n\
                 {{ message['content'] | trim }}<end_of_turn>\n{% endfor %}<start_of_turn>model\n";
    let (_dir, model) = tiny_with_template(gemma);
    assert_eq!(model.chat_template(), Some(gemma));
    assert_eq!(
        model.chat_prompt(&turns()).unwrap(),
        "<start_of_turn>user\nBe terse.\n\nabc<end_of_turn>\n<start_of_turn>model\n"
    );
    let nul = [("user".to_string(), "a\0b".to_string())];
    assert!(matches!(model.chat_prompt(&nul), Err(LlamaError::Chat { .. })));
}

#[test]
fn streamed_pieces_make_up_the_text() {
    let (_dir, model) = tiny();
    let params = GenerateParams { max_tokens: 8, n_ctx: 64, ..GenerateParams::default() };
    let mut pieces = Vec::new();
    let out = model
        .generate_with("abc", &params, |piece| {
            pieces.push(piece.to_string());
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(pieces, ["d", "e", "f", "g", "h", "i", "j", "k"]);
    assert_eq!(out, model.generate("abc", &params).unwrap());

    let stop = GenerateParams { stop: vec!["gh".into()], ..params.clone() };
    let mut pieces = Vec::new();
    let out = model
        .generate_with("abc", &stop, |piece| {
            pieces.push(piece.to_string());
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!((pieces.concat(), out.text.as_str()), ("def".to_string(), "def"));

    let mut seen = 0;
    let out = model
        .generate_with("abc", &params, |_| {
            seen += 1;
            if seen == 3 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        })
        .unwrap();
    assert_eq!((out.text.as_str(), out.completion_tokens, out.finish_reason), ("def", 3, FinishReason::Stop));
}
