//! HuggingFace tokenizers (`tokenizer.json`, read with the `tokenizers` crate) for ONNX text models: where a
//! model's tokenizer lies, loading it, turning texts into token ids, and a cache that keeps loaded tokenizers
//! while their files are unchanged.
//!
//! A model `DIR/NAME.onnx` uses `DIR/NAME.tokenizer.json` when that exists, else `DIR/tokenizer.json` (the
//! layout of a HuggingFace model repository, one model per directory). The tokenizer's own settings apply:
//! normalisation, pre-tokenisation, special tokens (`[CLS] … [SEP]`), truncation and padding; rows are padded
//! further by the caller where a batch needs it, with [`LoadedTokenizer::pad_id`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use tokenizers::Tokenizer;

use crate::models::file::FileStamp;

/// The file name suffix of a model's own tokenizer: `NAME.onnx` → `NAME.tokenizer.json`.
pub const TOKENIZER_SUFFIX: &str = ".tokenizer.json";

/// The tokenizer file of a model directory shared by the models in it.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// Why a tokenizer could not be loaded or could not tokenize.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizerError {
    /// The file could not be read.
    #[error("cannot read the tokenizer {}: {source}", .path.display())]
    Io {
        /// The tokenizer file.
        path: PathBuf,
        /// The OS's reason.
        source: std::io::Error,
    },
    /// The file is not a tokenizer the `tokenizers` crate reads.
    #[error("{} is not a HuggingFace tokenizer.json: {reason}", .path.display())]
    Parse {
        /// The tokenizer file.
        path: PathBuf,
        /// The reader's reason.
        reason: String,
    },
    /// Tokenizing a text failed.
    #[error("the tokenizer {} cannot tokenize the input: {reason}", .path.display())]
    Encode {
        /// The tokenizer file.
        path: PathBuf,
        /// The tokenizer's reason.
        reason: String,
    },
}

/// The tokenizer file of the model at `model`: `NAME.tokenizer.json` beside it, else `tokenizer.json` in its
/// directory; `None` when neither is a file.
pub fn tokenizer_path(model: &Path) -> Option<PathBuf> {
    let dir = model.parent()?;
    let stem = model.file_stem()?.to_string_lossy();
    [dir.join(format!("{stem}{TOKENIZER_SUFFIX}")), dir.join(TOKENIZER_FILE)]
        .into_iter()
        .find(|p| p.is_file())
}

/// One text as token rows of equal length: ids, attention mask (1 for a token, 0 for padding) and token type
/// ids, as the model inputs `input_ids`, `attention_mask` and `token_type_ids` take them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenRow {
    /// Token ids.
    pub ids: Vec<i64>,
    /// 1 for a token, 0 for padding.
    pub mask: Vec<i64>,
    /// Token type (segment) ids.
    pub type_ids: Vec<i64>,
}

/// A tokenizer loaded from its file.
pub struct LoadedTokenizer {
    path: PathBuf,
    stamp: FileStamp,
    fingerprint: String,
    pad_id: u32,
    /// Token ids with added tokens, counted once: the tokenizer counts them by copying its whole vocabulary.
    vocab_size: usize,
    tokenizer: Tokenizer,
}

impl std::fmt::Debug for LoadedTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedTokenizer")
            .field("path", &self.path)
            .field("fingerprint", &self.fingerprint)
            .field("pad_id", &self.pad_id)
            .finish_non_exhaustive()
    }
}

impl LoadedTokenizer {
    /// Reads and parses the tokenizer file at `path`.
    pub fn load(path: &Path) -> Result<Self, TokenizerError> {
        let io = |source| TokenizerError::Io { path: path.to_path_buf(), source };
        let stamp = std::fs::metadata(path).map(|m| FileStamp::of(&m)).map_err(io)?;
        let bytes = std::fs::read(path).map_err(io)?;
        let tokenizer = Tokenizer::from_bytes(&bytes)
            .map_err(|e| TokenizerError::Parse { path: path.to_path_buf(), reason: e.to_string() })?;
        let pad_id = tokenizer
            .get_padding()
            .map(|p| p.pad_id)
            .or_else(|| ["[PAD]", "<pad>", "<|padding|>"].iter().find_map(|t| tokenizer.token_to_id(t)))
            .unwrap_or(0);
        let fingerprint = format!("blake3:{}", blake3::hash(&bytes).to_hex());
        let vocab_size = tokenizer.get_vocab_size(true);
        Ok(Self { path: path.to_path_buf(), stamp, fingerprint, pad_id, vocab_size, tokenizer })
    }

    /// The same tokenizer with no padding and truncating at `max_tokens` (special tokens included): for one
    /// text at a time, where padding is only cost (the file may pad every text to a fixed length), and where
    /// a text over a limit is told by its length.
    pub fn unpadded(mut self, max_tokens: usize) -> Result<Self, TokenizerError> {
        self.tokenizer.with_padding(None);
        let truncation = tokenizers::TruncationParams {
            max_length: max_tokens,
            ..tokenizers::TruncationParams::default()
        };
        self.tokenizer
            .with_truncation(Some(truncation))
            .map_err(|e| TokenizerError::Parse { path: self.path.clone(), reason: e.to_string() })?;
        Ok(self)
    }

    /// The tokenizer file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `blake3:` + the hash of the file's content when it was loaded.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The id that pads rows: the tokenizer's padding id, else the id of `[PAD]`, `<pad>` or `<|padding|>`,
    /// else 0.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// How many token ids there are (added tokens included): valid ids are below it.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// Tokenizes `texts` with special tokens, one row per text. Rows may differ in length unless the
    /// tokenizer's own padding evens them out.
    pub fn encode(&self, texts: &[String]) -> Result<Vec<TokenRow>, TokenizerError> {
        let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let encodings = self
            .tokenizer
            .encode_batch(inputs, true)
            .map_err(|e| TokenizerError::Encode { path: self.path.clone(), reason: e.to_string() })?;
        let widen = |values: &[u32]| values.iter().map(|&v| i64::from(v)).collect();
        Ok(encodings
            .iter()
            .map(|e| TokenRow {
                ids: widen(e.get_ids()),
                mask: widen(e.get_attention_mask()),
                type_ids: widen(e.get_type_ids()),
            })
            .collect())
    }
}

/// Loaded tokenizers by path, each loaded again when its file changes. Shared across threads; blocking (it
/// reads files): call it from a blocking thread.
#[derive(Debug, Default)]
pub struct TokenizerCache {
    loaded: Mutex<HashMap<PathBuf, Arc<LoadedTokenizer>>>,
}

impl TokenizerCache {
    /// The tokenizer at `path`, from the cache while the file's stamp is the one it was loaded with.
    pub fn get(&self, path: &Path) -> Result<Arc<LoadedTokenizer>, TokenizerError> {
        let stamp = std::fs::metadata(path)
            .map(|m| FileStamp::of(&m))
            .map_err(|source| TokenizerError::Io { path: path.to_path_buf(), source })?;
        if let Some(loaded) = self.loaded.lock().get(path).filter(|t| t.stamp == stamp) {
            return Ok(Arc::clone(loaded));
        }
        let loaded = Arc::new(LoadedTokenizer::load(path)?);
        self.loaded.lock().insert(path.to_path_buf(), Arc::clone(&loaded));
        Ok(loaded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn models() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/models")
    }

    #[test]
    fn the_tiny_tokenizer_tokenizes_as_the_script_says() {
        let tokenizer = LoadedTokenizer::load(&models().join("tiny-text.tokenizer.json")).unwrap();
        assert_eq!((tokenizer.pad_id(), tokenizer.vocab_size()), (0, 9));
        assert!(tokenizer.fingerprint().starts_with("blake3:"));
        let rows = tokenizer.encode(&["hello world".into(), "Inferno, cache fast!".into(), String::new()]);
        let ids: Vec<Vec<i64>> = rows.unwrap().into_iter().map(|r| r.ids).collect();
        // What scripts/make-tiny-onnx.py printed: [CLS] … [SEP], unknown words and punctuation as [UNK].
        assert_eq!(ids, [vec![2, 4, 5, 3], vec![2, 6, 1, 7, 8, 1, 3], vec![2, 3]]);
    }

    #[test]
    fn a_model_finds_its_own_tokenizer_before_the_shared_one() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("enc.onnx");
        assert_eq!(tokenizer_path(&model), None);
        std::fs::write(dir.path().join(TOKENIZER_FILE), "{}").unwrap();
        assert_eq!(tokenizer_path(&model), Some(dir.path().join("tokenizer.json")));
        std::fs::write(dir.path().join("enc.tokenizer.json"), "{}").unwrap();
        assert_eq!(tokenizer_path(&model), Some(dir.path().join("enc.tokenizer.json")));
        assert_eq!(tokenizer_path(&dir.path().join("other.onnx")), Some(dir.path().join("tokenizer.json")));
    }

    #[test]
    fn the_cache_reloads_a_changed_file_and_reports_broken_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        let original = std::fs::read(models().join("tiny-text.tokenizer.json")).unwrap();
        std::fs::write(&path, &original).unwrap();
        let cache = TokenizerCache::default();
        let first = cache.get(&path).unwrap();
        assert!(Arc::ptr_eq(&first, &cache.get(&path).unwrap()), "unchanged: the same instance");
        let text = String::from_utf8(original).unwrap().replace("\"hello\"", "\"hi\"");
        std::fs::write(&path, text).unwrap();
        let second = cache.get(&path).unwrap();
        assert_ne!(first.fingerprint(), second.fingerprint(), "changed (in size too): loaded again");
        assert_eq!(second.encode(&["hello".into()]).unwrap()[0].ids, [2, 1, 3]);

        std::fs::write(&path, "not json").unwrap();
        let err = cache.get(&path).unwrap_err().to_string();
        assert!(err.contains("tokenizer.json is not a HuggingFace tokenizer.json"), "{err}");
        let err = cache.get(&dir.path().join("missing.json")).unwrap_err().to_string();
        assert!(err.contains("cannot read the tokenizer") && err.contains("missing.json"), "{err}");
    }
}
