//! The default chat format, ChatML, for models whose file carries no chat template (or one llama.cpp cannot
//! apply). Models that have a template use it; see `GgufModel::chat_prompt`.

/// One chat message as a (role, content) pair: `("system" | "user" | "assistant" | "tool", text)`.
pub type ChatTurn = (String, String);

/// Renders `messages` in ChatML, ending with the opening of the assistant's turn:
///
/// ```text
/// <|im_start|>{role}\n{content}<|im_end|>\n   (each message)
/// <|im_start|>assistant\n
/// ```
pub fn chatml(messages: &[ChatTurn]) -> String {
    let mut out = String::new();
    for (role, content) in messages {
        out.push_str("<|im_start|>");
        out.push_str(role);
        out.push('\n');
        out.push_str(content);
        out.push_str("<|im_end|>\n");
    }
    out.push_str("<|im_start|>assistant\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatml_renders_every_turn_and_opens_the_assistant() {
        let messages = [("system".to_string(), "Be terse.".to_string()), ("user".into(), "abc".into())];
        assert_eq!(
            chatml(&messages),
            "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nabc<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(chatml(&[]), "<|im_start|>assistant\n");
    }
}
