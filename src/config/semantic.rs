//! `[cache.semantic]`: the semantic response cache (docs/semantic-cache.md) — whether it is on, the ONNX
//! embedding model, the cosine-similarity threshold and its floor, and the index's bounds, with their range
//! checks. Whether the model exists and embeds text is checked when `serve` starts (it needs the model).

use serde::{Deserialize, Serialize};

use super::schema::Violation;

/// `[cache.semantic]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SemanticCacheConfig {
    /// Answer an exact miss from a near-duplicate request of the same scope (off by default).
    pub enabled: bool,
    /// The ONNX text embedding model: a name in `models.dir` or a path, with its tokenizer.json beside it.
    pub model: String,
    /// Cosine similarity (in (0, 1]) a stored request must reach to answer.
    pub threshold: f64,
    /// The lowest threshold a request's `cache.semantic_threshold` may ask for.
    pub min_threshold: f64,
    /// Most vectors kept in the index; the oldest go first.
    pub max_entries: u64,
    /// Last user messages longer than this (in the embedding model's tokens) are matched exactly only.
    pub max_prompt_tokens: u64,
}

impl Default for SemanticCacheConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            model: String::new(),
            threshold: 0.95,
            min_threshold: 0.90,
            max_entries: 100_000,
            max_prompt_tokens: 256,
        }
    }
}

/// The longest prompt a BERT-style embedding model (512 positions) reads whole.
pub const MAX_PROMPT_TOKENS_LIMIT: u64 = 512;

impl SemanticCacheConfig {
    /// The range checks of `[cache.semantic]`.
    pub fn validate(&self) -> Vec<Violation> {
        let mut out = Vec::new();
        let in_unit = |v: f64| v.is_finite() && v > 0.0 && v <= 1.0;
        for (key, value) in [
            ("cache.semantic.threshold", self.threshold),
            ("cache.semantic.min_threshold", self.min_threshold),
        ] {
            if !in_unit(value) {
                out.push(Violation {
                    key,
                    message: format!("{value} is out of range: a cosine similarity in (0, 1], e.g. 0.95"),
                    related: None,
                });
            }
        }
        if in_unit(self.threshold) && in_unit(self.min_threshold) && self.threshold < self.min_threshold {
            out.push(Violation {
                key: "cache.semantic.threshold",
                message: format!(
                    "{} is below cache.semantic.min_threshold ({}): raise it or lower the floor",
                    self.threshold, self.min_threshold
                ),
                related: Some("cache.semantic.min_threshold"),
            });
        }
        if self.max_entries == 0 {
            out.push(Violation {
                key: "cache.semantic.max_entries",
                message: "must be at least 1".into(),
                related: None,
            });
        }
        if !(1..=MAX_PROMPT_TOKENS_LIMIT).contains(&self.max_prompt_tokens) {
            out.push(Violation {
                key: "cache.semantic.max_prompt_tokens",
                message: format!(
                    "{} is out of range (1 to {MAX_PROMPT_TOKENS_LIMIT} tokens)",
                    self.max_prompt_tokens
                ),
                related: None,
            });
        }
        if self.enabled && self.model.trim().is_empty() {
            out.push(Violation {
                key: "cache.semantic.enabled",
                message: "the semantic cache needs an embedding model: set cache.semantic.model to an ONNX \
                          text embedding model in models.dir (e.g. all-minilm-l6-v2-int8)"
                    .into(),
                related: Some("cache.semantic.model"),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(config: &SemanticCacheConfig) -> Vec<&'static str> {
        config.validate().into_iter().map(|v| v.key).collect()
    }

    #[test]
    fn defaults_are_valid_and_off() {
        let config = SemanticCacheConfig::default();
        assert!(config.validate().is_empty());
        assert!(!config.enabled);
        assert_eq!((config.threshold, config.min_threshold), (0.95, 0.90));
    }

    #[test]
    fn ranges_are_checked() {
        let base = SemanticCacheConfig::default;
        for bad in [0.0, -0.5, 1.01, f64::NAN] {
            let threshold = SemanticCacheConfig { threshold: bad, ..base() };
            assert_eq!(keys(&threshold), ["cache.semantic.threshold"], "{bad}");
            let floor = SemanticCacheConfig { min_threshold: bad, threshold: 1.0, ..base() };
            assert_eq!(keys(&floor), ["cache.semantic.min_threshold"], "{bad}");
        }
        assert!(SemanticCacheConfig { threshold: 1.0, ..base() }.validate().is_empty());
        let below_floor = SemanticCacheConfig { threshold: 0.85, ..base() };
        assert_eq!(keys(&below_floor), ["cache.semantic.threshold"]);
        assert_eq!(keys(&SemanticCacheConfig { max_entries: 0, ..base() }), ["cache.semantic.max_entries"]);
        for tokens in [0, 513] {
            let config = SemanticCacheConfig { max_prompt_tokens: tokens, ..base() };
            assert_eq!(keys(&config), ["cache.semantic.max_prompt_tokens"]);
        }
        let no_model = SemanticCacheConfig { enabled: true, ..base() };
        assert_eq!(keys(&no_model), ["cache.semantic.enabled"]);
        assert!(SemanticCacheConfig { enabled: true, model: "m".into(), ..base() }.validate().is_empty());
    }
}
