//! What text generation takes and gives, whatever the backend: [`GenerateParams`], [`Generation`] and
//! [`FinishReason`], and [`TextStream`], which turns generated token bytes into text pieces that are safe to
//! show as they come (whole UTF-8 characters only, nothing that may still turn out to be a stop string).
//!
//! Plain data and pure code: nothing here needs llama.cpp, so the OpenAI layer builds without it.

/// How to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateParams {
    /// Most new tokens.
    pub max_tokens: u32,
    /// 0 = greedy; otherwise the softmax temperature.
    pub temperature: f32,
    /// Nucleus sampling threshold (1.0 = off).
    pub top_p: f32,
    /// Keep only the k most likely tokens (0 = off).
    pub top_k: i32,
    /// Seed of the sampler when temperature > 0.
    pub seed: u32,
    /// Generation stops when the text ends with one of these; the stop string is not returned.
    pub stop: Vec<String>,
    /// Most tokens (prompt and answer) this request may use (0 = the whole context of the model's slots).
    pub n_ctx: u32,
    /// Whether special-token text in the prompt (`<|im_start|>`, `<s>`, ...) becomes those tokens, as
    /// llama.cpp's server does; `false` tokenizes the prompt as plain text.
    pub parse_special: bool,
}

impl Default for GenerateParams {
    fn default() -> Self {
        Self {
            max_tokens: 16,
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            seed: 0,
            stop: Vec::new(),
            n_ctx: 0,
            parse_special: false,
        }
    }
}

/// The inference slots of a loaded GGUF model: how many requests it decodes together, how many may wait
/// for a slot, and the context they share.
#[derive(Clone, Debug)]
pub struct SlotConfig {
    /// Sequences decoded together in one batch (`server.parallel`).
    pub parallel: u32,
    /// Requests that may wait for a slot; one more is refused (`server.queue_size`).
    pub queue_size: u32,
    /// Largest context: the slots share the model's training context, at most this many tokens.
    pub max_context: u32,
    /// The prompt-prefix KV cache the slots restore from and save to (`[cache.kv]`), if any.
    pub prefix: Option<super::prefix::PrefixConfig>,
}

impl Default for SlotConfig {
    fn default() -> Self {
        Self { parallel: 16, queue_size: 512, max_context: 4096, prefix: None }
    }
}

/// What a model's slots are doing and have done, for `/metrics` and `inferno models list`.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SlotStats {
    /// Slots (sequences of the shared context).
    pub parallel: u32,
    /// Tokens of the shared context (all slots together).
    pub n_ctx: u32,
    /// Slots serving a request now.
    pub busy: u32,
    /// Most slots busy at once so far (how many sequences shared a batch at best).
    pub peak_busy: u32,
    /// Requests waiting for a slot now.
    pub queued: u32,
    /// Most requests that may wait (`server.queue_size`).
    pub queue_size: u32,
    /// Requests refused because the queue was full.
    pub rejected: u64,
    /// Requests that got a slot.
    pub admitted: u64,
    /// Seconds admitted requests spent waiting for their slot, together.
    pub queued_seconds: f64,
    /// Tokens generated.
    pub generated_tokens: u64,
    /// Prompt tokens decoded (prefill).
    pub prompt_tokens: u64,
    /// Seconds the decode loop spent decoding and sampling.
    pub decode_seconds: f64,
}

impl SlotStats {
    /// True when every slot is busy and the queue is full: one more request would be refused.
    pub fn saturated(&self) -> bool {
        self.busy >= self.parallel && self.queued >= self.queue_size
    }

    /// Generated tokens per second of decoding, all slots together (0 before the first token).
    pub fn tokens_per_second(&self) -> f64 {
        if self.decode_seconds > 0.0 { self.generated_tokens as f64 / self.decode_seconds } else { 0.0 }
    }
}

/// Why generation ended, in OpenAI's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// The model produced an end-of-generation token or a stop string (or the caller stopped it).
    Stop,
    /// `max_tokens` was reached.
    Length,
}

impl FinishReason {
    /// `"stop"` or `"length"`, as OpenAI's `finish_reason` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
        }
    }
}

/// The result of a generation.
#[derive(Clone, Debug, PartialEq)]
pub struct Generation {
    /// The generated text.
    pub text: String,
    /// Tokens in the prompt (including BOS when the model adds one).
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// Prompt tokens restored from the prompt-prefix KV cache instead of being prefilled (OpenAI's
    /// `usage.prompt_tokens_details.cached_tokens`).
    pub cached_tokens: usize,
    /// Why it ended.
    pub finish_reason: FinishReason,
}

/// Generated bytes in, displayable text pieces out.
///
/// Each [`TextStream::push`] takes one token's bytes and gives back the text that became safe to show: a
/// multi-byte character split across tokens waits until it is whole, and text that is the start of a stop
/// string waits until it either completes the stop string (then it is dropped, with everything after) or
/// cannot any more. Invalid UTF-8 becomes U+FFFD, as `String::from_utf8_lossy` does. The pieces concatenate
/// to [`TextStream::text`].
#[derive(Clone, Debug, Default)]
pub struct TextStream {
    stops: Vec<String>,
    longest_stop: usize,
    /// Bytes of an incomplete character at the end.
    pending: Vec<u8>,
    /// All decoded text (cut at the stop string once one is found).
    text: String,
    /// How much of `text` has been handed out.
    sent: usize,
    stopped: bool,
}

/// What one [`TextStream::push`] gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pushed<'a> {
    /// Text now safe to show; may be empty.
    pub piece: &'a str,
    /// A stop string was found: the text ends before it and generation should end.
    pub stopped: bool,
}

impl TextStream {
    /// A stream that ends at the first of `stops` (empty strings are ignored).
    pub fn new(stops: &[String]) -> Self {
        let stops: Vec<String> = stops.iter().filter(|s| !s.is_empty()).cloned().collect();
        let longest_stop = stops.iter().map(String::len).max().unwrap_or(0);
        Self { stops, longest_stop, ..Self::default() }
    }

    /// Adds one token's bytes. After a stop string was found, further bytes are ignored.
    pub fn push(&mut self, bytes: &[u8]) -> Pushed<'_> {
        if self.stopped {
            return Pushed { piece: "", stopped: true };
        }
        let before = self.text.len();
        self.pending.extend_from_slice(bytes);
        self.decode_pending();
        if let Some(cut) = self.find_stop(before) {
            self.text.truncate(cut);
            self.pending.clear();
            self.stopped = true;
            return Pushed { piece: self.take(self.text.len()), stopped: true };
        }
        let mut end = self.text.len() - self.held_back();
        while !self.text.is_char_boundary(end) {
            end -= 1;
        }
        Pushed { piece: self.take(end.max(self.sent)), stopped: false }
    }

    /// Ends the stream: gives back everything not yet handed out (held-back text, and an incomplete
    /// character as U+FFFD).
    pub fn finish(&mut self) -> &str {
        if !self.stopped && !self.pending.is_empty() {
            let rest = String::from_utf8_lossy(&self.pending).into_owned();
            self.text.push_str(&rest);
            self.pending.clear();
        }
        self.take(self.text.len())
    }

    /// All text so far, cut before the stop string if one was found (held-back text included).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Consumes the stream, giving its text.
    pub fn into_text(self) -> String {
        self.text
    }

    /// Hands out `text[sent..end]`.
    fn take(&mut self, end: usize) -> &str {
        let start = self.sent;
        self.sent = end.min(self.text.len()).max(start);
        self.text.get(start..self.sent).unwrap_or_default()
    }

    /// Moves every complete character (and U+FFFD for each invalid sequence) from `pending` to `text`.
    fn decode_pending(&mut self) {
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(all) => {
                    self.text.push_str(all);
                    self.pending.clear();
                    return;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    self.text.push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match e.error_len() {
                        None => {
                            self.pending.drain(..valid);
                            return;
                        }
                        Some(bad) => {
                            self.text.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// The start of the earliest stop string in `text`; only stop strings ending after byte `before` can be
    /// new, so the search starts just early enough to find them.
    fn find_stop(&self, before: usize) -> Option<usize> {
        let from = before.saturating_sub(self.longest_stop.saturating_sub(1));
        let hay = &self.text.as_bytes()[from..];
        self.stops
            .iter()
            .filter_map(|s| hay.windows(s.len()).position(|w| w == s.as_bytes()))
            .min()
            .map(|at| from + at)
    }

    /// How many bytes at the end of `text` (not yet handed out) are the start of some stop string.
    fn held_back(&self) -> usize {
        let unsent = &self.text.as_bytes()[self.sent..];
        let most = unsent.len().min(self.longest_stop.saturating_sub(1));
        (1..=most)
            .rev()
            .find(|&k| self.stops.iter().any(|s| s.len() > k && unsent.ends_with(&s.as_bytes()[..k])))
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `tokens` through a stream; returns the pieces, whether it stopped, and the final text.
    fn run(stops: &[&str], tokens: &[&[u8]]) -> (Vec<String>, bool, String) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut stream = TextStream::new(&stops);
        let mut pieces = Vec::new();
        let mut stopped = false;
        for token in tokens {
            let pushed = stream.push(token);
            pieces.push(pushed.piece.to_string());
            if pushed.stopped {
                stopped = true;
                break;
            }
        }
        if !stopped {
            pieces.push(stream.finish().to_string());
        }
        (pieces, stopped, stream.into_text())
    }

    #[test]
    fn plain_text_passes_through_piece_by_piece() {
        let (pieces, stopped, text) = run(&[], &[b"de", b"f", b"gh"]);
        assert_eq!(pieces, ["de", "f", "gh", ""]);
        assert!(!stopped);
        assert_eq!(text, "defgh");
    }

    #[test]
    fn split_characters_wait_until_whole() {
        // "é" is C3 A9; "😀" is F0 9F 98 80.
        let (pieces, _, text) = run(&[], &[b"caf\xC3", b"\xA9 ", b"\xF0\x9F", b"\x98", b"\x80!"]);
        assert_eq!(pieces, ["caf", "é ", "", "", "😀!", ""]);
        assert_eq!(text, "café 😀!");
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let (pieces, _, text) = run(&[], &[b"a\xFFb", b"\xC3"]);
        assert_eq!(pieces, ["a\u{FFFD}b", "", "\u{FFFD}"]);
        assert_eq!(text, "a\u{FFFD}b\u{FFFD}");
        assert_eq!(text, String::from_utf8_lossy(b"a\xFFb\xC3"));
    }

    #[test]
    fn stop_strings_are_held_back_then_dropped() {
        let (pieces, stopped, text) = run(&["gh"], &[b"d", b"e", b"f", b"g", b"h", b"i"]);
        assert_eq!(pieces, ["d", "e", "f", "", ""]);
        assert!(stopped);
        assert_eq!(text, "def");
        // A stop string inside one token, with text after it in the same token.
        let (pieces, stopped, text) = run(&["END"], &[b"abc", b"xEND yz"]);
        assert_eq!((pieces.concat(), stopped, text.as_str()), ("abcx".to_string(), true, "abcx"));
    }

    #[test]
    fn a_false_start_is_released() {
        let (pieces, stopped, text) = run(&["ghx"], &[b"f", b"g", b"h", b"i"]);
        assert_eq!(pieces, ["f", "", "", "ghi", ""]);
        assert!(!stopped);
        assert_eq!(text, "fghi");
        // Held-back text that never completes comes out at the end.
        let (pieces, _, text) = run(&["ghx"], &[b"f", b"gh"]);
        assert_eq!(pieces, ["f", "", "gh"]);
        assert_eq!(text, "fgh");
    }

    #[test]
    fn the_earliest_of_several_stop_strings_wins() {
        let (_, stopped, text) = run(&["cd", "b"], &[b"abcd"]);
        assert!(stopped);
        assert_eq!(text, "a");
        let (_, _, text) = run(&["", "é"], &[b"caf\xC3", b"\xA9s"]);
        assert_eq!(text, "caf");
    }
}
