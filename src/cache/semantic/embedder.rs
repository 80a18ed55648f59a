//! Turning texts into embeddings for the semantic cache: an ONNX text embedding model from the models
//! directory with its `tokenizer.json`, run on this thread (what `/v1/embeddings` runs, see
//! [`crate::models::embedding`]).

use std::path::Path;

use crate::models::catalog;
use crate::models::embedding::{Batch, MAX_BATCH, Signature, embed};
use crate::models::onnx::OnnxModel;
use crate::models::tokenizer::{LoadedTokenizer, tokenizer_path};

/// A loaded text embedding model.
pub struct Embedder {
    model: OnnxModel,
    signature: Signature,
    tokenizer: LoadedTokenizer,
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
        Ok(Embedder { model, signature, tokenizer })
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
}
