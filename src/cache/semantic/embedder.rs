//! Turning texts into embeddings for the semantic cache: an ONNX text embedding model from the models
//! directory with its `tokenizer.json`, run on the calling thread (what `/v1/embeddings` runs, see
//! [`crate::models::embedding`]). [`Embedder::for_lookups`] is the server's: one text at a time, unpadded,
//! with a token limit, checked at start by embedding a probe text.

use std::path::Path;

use super::lookup::TextEmbedder;
use crate::models::catalog;
use crate::models::embedding::{Batch, MAX_BATCH, Signature, embed};
use crate::models::onnx::OnnxModel;
use crate::models::tokenizer::{LoadedTokenizer, tokenizer_path};

/// The text embedded at start to check that the model gives embeddings.
pub const PROBE_TEXT: &str = "What is the capital of France?";

/// A loaded text embedding model.
pub struct Embedder {
    model: OnnxModel,
    signature: Signature,
    tokenizer: LoadedTokenizer,
    /// Texts of more tokens (special tokens included) are not embedded by [`TextEmbedder::embed`].
    max_tokens: usize,
    dims: usize,
}

impl Embedder {
    /// Loads the model `name` (a name in `models_dir` or a path): it must be an ONNX text embedding model
    /// with a tokenizer beside it. Errors say which of those it is not.
    pub fn load(name: &str, models_dir: &Path) -> anyhow::Result<Self> {
        let path = catalog::resolve(name, models_dir)?;
        let model = OnnxModel::load(&path)?;
        let signature = Signature::of(&model)
            .map_err(|why| anyhow::anyhow!("model '{name}' is not an embedding model: {why}"))?;
        if !signature.takes_text() {
            anyhow::bail!("model '{name}' embeds vectors ({}), not text", signature.describe());
        }
        let Some(tokenizer) = tokenizer_path(&path) else {
            anyhow::bail!(
                "model '{name}' reads text through a HuggingFace tokenizer.json and none was found beside {}",
                path.display()
            );
        };
        let tokenizer = LoadedTokenizer::load(&tokenizer)?;
        Ok(Embedder { model, signature, tokenizer, max_tokens: usize::MAX, dims: 0 })
    }

    /// [`load`](Self::load) for the semantic cache's lookups: texts over `max_tokens` tokens are not
    /// embedded, and the model must turn [`PROBE_TEXT`] into a non-zero vector of finite numbers.
    pub fn for_lookups(name: &str, models_dir: &Path, max_tokens: usize) -> anyhow::Result<Self> {
        let mut embedder = Self::load(name, models_dir)?;
        embedder.tokenizer = embedder.tokenizer.unpadded(max_tokens.saturating_add(1))?;
        embedder.max_tokens = max_tokens;
        let probe = embedder
            .embed_one(PROBE_TEXT)
            .map_err(|e| anyhow::anyhow!("model '{name}' failed to embed a probe text: {e:#}"))?
            .ok_or_else(|| anyhow::anyhow!("the probe text is over the token limit ({max_tokens})"))?;
        let usable =
            !probe.is_empty() && probe.iter().all(|x| x.is_finite()) && probe.iter().any(|x| *x != 0.0);
        if !usable {
            anyhow::bail!(
                "model '{name}' gives no embedding: the probe text came out as {} numbers that are not a \
                 usable vector (empty, all zeros or not finite)",
                probe.len()
            );
        }
        embedder.dims = probe.len();
        Ok(embedder)
    }

    /// One embedding per text, in order.
    pub fn embed(&self, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
        let mut vectors = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(MAX_BATCH) {
            let embeddings = embed(&self.model, &self.signature, Some(&self.tokenizer), Batch::Texts(chunk))?;
            vectors.extend(embeddings.vectors);
        }
        Ok(vectors)
    }

    fn embed_one(&self, text: &str) -> anyhow::Result<Option<Vec<f32>>> {
        let rows = self.tokenizer.encode(&[text.to_string()])?;
        let Some(row) = rows.into_iter().next() else { anyhow::bail!("the tokenizer gave no tokens") };
        if row.ids.len() > self.max_tokens {
            return Ok(None);
        }
        let out = embed(&self.model, &self.signature, Some(&self.tokenizer), Batch::Tokens(&[row.ids]))?;
        out.vectors.into_iter().next().map(Some).ok_or_else(|| anyhow::anyhow!("the model gave no vector"))
    }
}

impl TextEmbedder for Embedder {
    fn embed(&self, text: &str) -> anyhow::Result<Option<Vec<f32>>> {
        self.embed_one(text)
    }

    fn dims(&self) -> usize {
        self.dims
    }
}
