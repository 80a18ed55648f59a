//! ONNX embedding models: which ONNX models count as embedding models ([`Signature::of`]), and turning a
//! batch of inputs into one embedding per input ([`embed`]).
//!
//! An ONNX model is an embedding model when its inputs are one of:
//!
//! - **vectors**: exactly one input, `f32` of rank 2 `[N, d]` with `d` fixed: each input is `d` numbers;
//! - **text**: `input_ids` (`i64`, rank 2 `[N, S]`), optionally with `attention_mask` and `token_type_ids`
//!   (same type and shape) and no other input: each input is a text (tokenized by the model's
//!   `tokenizer.json`, see [`crate::models::tokenizer`]) or a list of token ids;
//!
//! and its **embedding output** — the output named `sentence_embedding` when there is one, else its first
//! output — is `f32` of rank 2 `[N, dim]` (used as is) or, for text models, rank 3 `[N, S, dim]` (token
//! states, mean-pooled over the tokens the attention mask keeps). Embeddings are the model's numbers as they
//! are: nothing is normalised.
//!
//! Inputs are run at most [`MAX_BATCH`] at a time (or as many as a fixed batch dimension says, the last
//! chunk padded with zero rows whose outputs are dropped). Token rows are padded to the longest in their
//! chunk, or to a fixed sequence dimension, with the tokenizer's pad id and mask 0.

use crate::models::onnx::{OnnxError, OnnxModel, TensorData, TensorInfo};
use crate::models::tokenizer::{LoadedTokenizer, TokenRow, TokenizerError};

/// The most inputs run at once when the model's batch dimension is dynamic.
pub const MAX_BATCH: usize = 32;

/// The output name preferred as the embedding output (sentence-transformers exports).
pub const SENTENCE_EMBEDDING: &str = "sentence_embedding";

/// What an embedding model takes, read from its declared inputs and outputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signature {
    /// One `f32` input `[N, width]`.
    Vectors {
        /// The input's name.
        input: String,
        /// Numbers per vector.
        width: usize,
        /// The batch dimension, when the model fixes it.
        batch: Option<usize>,
        /// Where the embedding output is among the outputs.
        output: usize,
    },
    /// `input_ids` and optionally `attention_mask` and `token_type_ids`, `i64` `[N, S]`.
    Text(TextInputs),
}

/// What a text embedding model takes and gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TextInputs {
    /// The model takes `attention_mask`.
    pub mask: bool,
    /// The model takes `token_type_ids`.
    pub type_ids: bool,
    /// The batch dimension, when the model fixes it.
    pub batch: Option<usize>,
    /// The sequence dimension, when the model fixes it.
    pub seq: Option<usize>,
    /// Where the embedding output is among the outputs.
    pub output: usize,
    /// The output is `[N, S, dim]` and is mean-pooled.
    pub pooled: bool,
}

/// A batch of inputs, in the form the model's [`Signature`] takes.
#[derive(Clone, Copy, Debug)]
pub enum Batch<'a> {
    /// Vectors, for a vector model.
    Vectors(&'a [Vec<f32>]),
    /// Texts, for a text model with a tokenizer.
    Texts(&'a [String]),
    /// Token ids, for a text model.
    Tokens(&'a [Vec<i64>]),
}

/// One embedding per input, and how many tokens the inputs had.
#[derive(Clone, Debug, PartialEq)]
pub struct Embeddings {
    /// The embeddings, in input order.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens the model read (padding excluded); 0 for vectors.
    pub tokens: usize,
}

/// Why inputs got no embeddings.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbeddingError {
    /// The inputs do not fit the model (the client's mistake).
    #[error("{0}")]
    Input(String),
    /// The tokenizer failed.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// ONNX Runtime failed, or the model's output is not what its signature declared.
    #[error(transparent)]
    Inference(#[from] OnnxError),
}

impl Signature {
    /// The signature of `model`, or why it is not an embedding model.
    pub fn of(model: &OnnxModel) -> Result<Self, String> {
        Self::from_declared(model.inputs(), model.outputs())
    }

    /// The signature of a model that declares `inputs` and `outputs`, or why it is not an embedding model.
    pub fn from_declared(inputs: &[TensorInfo], outputs: &[TensorInfo]) -> Result<Self, String> {
        // A fixed dimension of 0 holds nothing: it is read as dynamic (batch, sequence) or refused (width).
        let batch = |info: &TensorInfo| info.shape.first().copied().flatten().filter(|&n| n > 0);
        if let [input] = inputs
            && input.element_type == "f32"
        {
            let [_, Some(width @ 1..)] = input.shape[..] else {
                return Err(format!(
                    "its input {:?} is {}, not [N, d] with a fixed d > 0",
                    input.name,
                    shape_text(input)
                ));
            };
            let (output, _) = embedding_output(outputs, false)?;
            return Ok(Self::Vectors { input: input.name.clone(), width, batch: batch(input), output });
        }
        let Some(ids) = inputs.iter().find(|i| i.name == "input_ids") else {
            let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
            return Err(format!(
                "its inputs {names:?} are neither one f32 [N, d] input nor input_ids (with attention_mask \
                 and token_type_ids)"
            ));
        };
        for input in inputs {
            if !["input_ids", "attention_mask", "token_type_ids"].contains(&input.name.as_str()) {
                return Err(format!(
                    "it takes input {:?}; inferno feeds text models only input_ids, attention_mask and \
                     token_type_ids",
                    input.name
                ));
            }
            if input.element_type != "i64" || input.shape.len() != 2 {
                return Err(format!(
                    "its input {:?} is {} {}, not i64 [N, S]",
                    input.name,
                    input.element_type,
                    shape_text(input)
                ));
            }
        }
        let (output, pooled) = embedding_output(outputs, true)?;
        Ok(Self::Text(TextInputs {
            mask: inputs.iter().any(|i| i.name == "attention_mask"),
            type_ids: inputs.iter().any(|i| i.name == "token_type_ids"),
            batch: batch(ids),
            seq: ids.shape[1].filter(|&n| n > 0),
            output,
            pooled,
        }))
    }

    /// True for a text model.
    pub fn takes_text(&self) -> bool {
        matches!(self, Self::Text(_))
    }

    /// How the model's input reads to a client: `[N, 4]` for vectors, `[N, S] token ids` for text.
    pub fn describe(&self) -> String {
        match self {
            Self::Vectors { width, .. } => format!("vectors of {width} numbers (input shape [N, {width}])"),
            Self::Text(_) => "text (input_ids [N, S])".into(),
        }
    }
}

/// The embedding output's index, and whether it is rank 3 (to be pooled).
fn embedding_output(outputs: &[TensorInfo], text: bool) -> Result<(usize, bool), String> {
    let index = outputs.iter().position(|o| o.name == SENTENCE_EMBEDDING).unwrap_or(0);
    let Some(output) = outputs.get(index) else {
        return Err("it has no outputs".into());
    };
    match (output.element_type.as_str(), output.shape.len()) {
        ("f32", 2) => Ok((index, false)),
        ("f32", 3) if text => Ok((index, true)),
        (ty, _) => {
            let ranks = if text { "[N, dim] or [N, S, dim]" } else { "[N, dim]" };
            Err(format!("its output {:?} is {ty} {}, not f32 {ranks}", output.name, shape_text(output)))
        }
    }
}

fn shape_text(info: &TensorInfo) -> String {
    let dims: Vec<String> = info
        .shape
        .iter()
        .zip(info.dimension_names.iter().chain(std::iter::repeat(&String::new())))
        .map(|(d, name)| match (d, name.is_empty()) {
            (Some(d), _) => d.to_string(),
            (None, false) => name.clone(),
            (None, true) => "?".into(),
        })
        .collect();
    format!("[{}]", dims.join(", "))
}

/// Runs `model` (whose signature is `signature`) on `batch`: one embedding per input. Texts need
/// `tokenizer`; token ids use its pad id and vocabulary size when there is one.
pub fn embed(
    model: &OnnxModel,
    signature: &Signature,
    tokenizer: Option<&LoadedTokenizer>,
    batch: Batch<'_>,
) -> Result<Embeddings, EmbeddingError> {
    match (signature, batch) {
        (Signature::Vectors { input, width, batch, output }, Batch::Vectors(vectors)) => {
            for (i, v) in vectors.iter().enumerate() {
                if v.len() != *width {
                    return Err(EmbeddingError::Input(format!(
                        "input[{i}] has {} numbers; the model takes vectors of {width} (input {input:?} is \
                         [N, {width}])",
                        v.len()
                    )));
                }
            }
            let mut embeddings = Vec::with_capacity(vectors.len());
            for chunk in vectors.chunks(batch.unwrap_or(MAX_BATCH)) {
                let rows = batch.unwrap_or(chunk.len());
                let mut data: Vec<f32> = chunk.iter().flatten().copied().collect();
                data.resize(rows * width, 0.0);
                let outputs = model.run_tensors(&[(input, vec![rows, *width], TensorData::F32(data))])?;
                let (name, shape, values) = &outputs[*output];
                embeddings
                    .extend(rows_of(model, name, shape, values, rows, None)?.into_iter().take(chunk.len()));
            }
            Ok(Embeddings { vectors: embeddings, tokens: 0 })
        }
        (Signature::Text(text), Batch::Texts(texts)) => {
            let Some(tokenizer) = tokenizer else {
                return Err(EmbeddingError::Input(
                    "the model has no tokenizer.json to read text with".into(),
                ));
            };
            run_text(model, text, tokenizer.encode(texts)?, tokenizer.pad_id())
        }
        (Signature::Text(text), Batch::Tokens(tokens)) => {
            let vocab = tokenizer.map(|t| t.vocab_size() as i64);
            for (i, ids) in tokens.iter().enumerate() {
                if ids.is_empty() {
                    return Err(EmbeddingError::Input(format!("input[{i}] has no token ids")));
                }
                if let Some(&bad) = ids.iter().find(|&&id| id < 0 || vocab.is_some_and(|n| id >= n)) {
                    return Err(EmbeddingError::Input(format!(
                        "input[{i}] has token id {bad}, not in the vocabulary"
                    )));
                }
            }
            let rows = tokens
                .iter()
                .map(|ids| TokenRow {
                    ids: ids.clone(),
                    mask: vec![1; ids.len()],
                    type_ids: vec![0; ids.len()],
                })
                .collect();
            run_text(model, text, rows, tokenizer.map_or(0, LoadedTokenizer::pad_id))
        }
        (signature, _) => Err(EmbeddingError::Input(format!("the model takes {}", signature.describe()))),
    }
}

/// Runs token rows through a text model, chunk by chunk, pooling where the output has a sequence axis.
fn run_text(
    model: &OnnxModel,
    text: &TextInputs,
    rows: Vec<TokenRow>,
    pad_id: u32,
) -> Result<Embeddings, EmbeddingError> {
    let TextInputs { mask, type_ids, batch, seq, output, pooled } = *text;
    if let Some(limit) = seq
        && let Some((i, row)) = rows.iter().enumerate().find(|(_, r)| r.ids.len() > limit)
    {
        return Err(EmbeddingError::Input(format!(
            "input[{i}] has {} tokens; the model takes at most {limit}",
            row.ids.len()
        )));
    }
    let tokens = rows.iter().map(|r| r.mask.iter().filter(|&&m| m != 0).count()).sum();
    let mut embeddings = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(batch.unwrap_or(MAX_BATCH)) {
        let n = batch.unwrap_or(chunk.len());
        let len = seq.unwrap_or_else(|| chunk.iter().map(|r| r.ids.len()).max().unwrap_or(0)).max(1);
        let padding =
            TokenRow { ids: vec![i64::from(pad_id); len], mask: vec![0; len], type_ids: vec![0; len] };
        let padded: Vec<TokenRow> = chunk
            .iter()
            .map(|r| pad(r, len, pad_id))
            .chain(std::iter::repeat_n(padding, n - chunk.len()))
            .collect();
        let flat =
            |pick: fn(&TokenRow) -> &Vec<i64>| padded.iter().flat_map(pick).copied().collect::<Vec<_>>();
        let shape = vec![n, len];
        let mut inputs = vec![("input_ids", shape.clone(), TensorData::I64(flat(|r| &r.ids)))];
        if mask {
            inputs.push(("attention_mask", shape.clone(), TensorData::I64(flat(|r| &r.mask))));
        }
        if type_ids {
            inputs.push(("token_type_ids", shape.clone(), TensorData::I64(flat(|r| &r.type_ids))));
        }
        let outputs = model.run_tensors(&inputs)?;
        let (name, out_shape, values) = &outputs[output];
        let masks: Vec<&[i64]> = padded.iter().map(|r| r.mask.as_slice()).collect();
        let pooling = pooled.then_some((len, masks.as_slice()));
        embeddings.extend(rows_of(model, name, out_shape, values, n, pooling)?.into_iter().take(chunk.len()));
    }
    Ok(Embeddings { vectors: embeddings, tokens })
}

/// `row` cut or padded to `len` tokens.
fn pad(row: &TokenRow, len: usize, pad_id: u32) -> TokenRow {
    let fit = |values: &[i64], fill: i64| {
        let mut v = values.to_vec();
        v.resize(len, fill);
        v
    };
    TokenRow {
        ids: fit(&row.ids, i64::from(pad_id)),
        mask: fit(&row.mask, 0),
        type_ids: fit(&row.type_ids, 0),
    }
}

/// The output tensor as `rows` embeddings: `[rows, dim]` as is, or `[rows, seq, dim]` mean-pooled over the
/// tokens each row's mask keeps (all zeros for a row that keeps none).
fn rows_of(
    model: &OnnxModel,
    name: &str,
    shape: &[usize],
    values: &[f32],
    rows: usize,
    pooling: Option<(usize, &[&[i64]])>,
) -> Result<Vec<Vec<f32>>, OnnxError> {
    let unexpected = |want: String| OnnxError::Inference {
        path: model.path().to_path_buf(),
        reason: format!("output {name:?} has shape {shape:?}; expected {want}"),
    };
    match (pooling, shape) {
        (None, &[n, dim]) if n == rows && dim > 0 => Ok(values.chunks(dim).map(<[f32]>::to_vec).collect()),
        (Some((seq, masks)), &[n, s, dim]) if n == rows && s == seq && dim > 0 => Ok(values
            .chunks(seq * dim)
            .zip(masks)
            .map(|(states, mask)| {
                let mut sum = vec![0.0f32; dim];
                let kept = mask.iter().filter(|&&m| m != 0).count();
                for (state, _) in states.chunks(dim).zip(*mask).filter(|(_, m)| **m != 0) {
                    sum.iter_mut().zip(state).for_each(|(acc, x)| *acc += x);
                }
                sum.iter_mut().for_each(|x| *x /= kept.max(1) as f32);
                sum
            })
            .collect()),
        (None, _) => Err(unexpected(format!("[{rows}, dim] with dim > 0"))),
        (Some((seq, _)), _) => Err(unexpected(format!("[{rows}, {seq}, dim] with dim > 0"))),
    }
}

#[cfg(test)]
mod tests;
