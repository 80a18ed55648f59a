//! `/v1/embeddings` requests and responses in OpenAI's schema: [`EmbeddingRequest::parse`] validates a
//! request body (400s naming the bad parameter), [`embeddings_body`] builds the `list` of `embedding`
//! objects, as float arrays or base64 (little-endian f32, as OpenAI encodes them).
//!
//! `input` is a string, an array of strings, an array of numbers, or an array of arrays of numbers. Numbers
//! are read by the model: a vector model takes each array as one vector, a text model as token ids (OpenAI's
//! meaning). Which models are embedding models, and how they run: [`crate::models::embedding`] (cargo
//! feature `onnx`); docs/embeddings.md.

use base64::Engine as _;
use serde_json::{Value, json};

use super::InferenceError;

/// The most inputs one request may carry (OpenAI's limit).
pub const MAX_INPUTS: usize = 2048;

/// The inputs of a request, before the model says how numbers are read.
#[derive(Clone, Debug, PartialEq)]
pub enum EmbeddingInput {
    /// Texts (`"input": "…"` or `["…", …]`).
    Texts(Vec<String>),
    /// Arrays of numbers (`"input": [1, 2]` is one array, `[[1, 2], [3, 4]]` two).
    Numbers(Vec<Vec<f64>>),
}

impl EmbeddingInput {
    /// How many inputs there are.
    pub fn len(&self) -> usize {
        match self {
            Self::Texts(texts) => texts.len(),
            Self::Numbers(rows) => rows.len(),
        }
    }

    /// True when there are none (never, for a parsed request).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The arrays as f32 vectors; an error for texts and for numbers beyond f32's range.
    pub fn vectors(&self) -> Result<Vec<Vec<f32>>, InferenceError> {
        let Self::Numbers(rows) = self else {
            return Err(InferenceError::invalid("'input' must be numbers for this model", Some("input")));
        };
        let mut vectors = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            let mut vector = Vec::with_capacity(row.len());
            for (j, &x) in row.iter().enumerate() {
                let narrowed = x as f32;
                if !narrowed.is_finite() {
                    let param = format!("input[{i}][{j}]");
                    return Err(InferenceError::invalid(
                        format!("'{param}' ({x}) is out of f32's range"),
                        Some(&param),
                    ));
                }
                vector.push(narrowed);
            }
            vectors.push(vector);
        }
        Ok(vectors)
    }

    /// The arrays as token ids; an error for texts and for numbers that are not whole and non-negative.
    pub fn tokens(&self) -> Result<Vec<Vec<i64>>, InferenceError> {
        let Self::Numbers(rows) = self else {
            return Err(InferenceError::invalid("'input' must be token ids for this model", Some("input")));
        };
        const LIMIT: f64 = (1u64 << 53) as f64;
        rows.iter()
            .enumerate()
            .map(|(i, row)| {
                row.iter()
                    .enumerate()
                    .map(|(j, &x)| {
                        if x.fract() == 0.0 && (0.0..LIMIT).contains(&x) {
                            Ok(x as i64)
                        } else {
                            let param = format!("input[{i}][{j}]");
                            let message =
                                format!("'{param}' ({x}) is not a token id (a whole number, 0 or more)");
                            Err(InferenceError::invalid(message, Some(&param)))
                        }
                    })
                    .collect()
            })
            .collect()
    }
}

/// How embeddings are written in the response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EncodingFormat {
    /// Arrays of numbers.
    #[default]
    Float,
    /// Base64 of the little-endian f32 bytes.
    Base64,
}

/// A validated `/v1/embeddings` request.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddingRequest {
    /// The model's name.
    pub model: String,
    /// The inputs.
    pub input: EmbeddingInput,
    /// `encoding_format`.
    pub encoding_format: EncodingFormat,
    /// `dimensions`: keep only the first this many numbers of each embedding.
    pub dimensions: Option<usize>,
}

impl EmbeddingRequest {
    /// Reads and validates `body`. `user` and fields this endpoint does not know are ignored.
    pub fn parse(body: &Value) -> Result<Self, InferenceError> {
        let model = match body.get("model") {
            Some(Value::String(m)) if !m.is_empty() => m.clone(),
            _ => return Err(InferenceError::invalid("you must provide a model parameter", Some("model"))),
        };
        let input = parse_input(body.get("input"))?;
        let encoding_format = match body.get("encoding_format") {
            None | Some(Value::Null) => EncodingFormat::Float,
            Some(Value::String(f)) if f == "float" => EncodingFormat::Float,
            Some(Value::String(f)) if f == "base64" => EncodingFormat::Base64,
            Some(other) => {
                return Err(InferenceError::invalid(
                    format!("'encoding_format' is {other}; it must be \"float\" or \"base64\""),
                    Some("encoding_format"),
                ));
            }
        };
        let dimensions = match body.get("dimensions") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match n.as_f64() {
                Some(d) if d >= 1.0 && d.fract() == 0.0 && d <= u32::MAX as f64 => Some(d as usize),
                _ => return Err(positive("dimensions")),
            },
            Some(_) => return Err(positive("dimensions")),
        };
        Ok(Self { model, input, encoding_format, dimensions })
    }
}

fn positive(param: &str) -> InferenceError {
    InferenceError::invalid(format!("'{param}' must be a positive integer"), Some(param))
}

fn parse_input(input: Option<&Value>) -> Result<EmbeddingInput, InferenceError> {
    let shape_error = || {
        InferenceError::invalid(
            "'input' must be a string, an array of strings, an array of numbers, or an array of arrays of \
             numbers",
            Some("input"),
        )
    };
    let numbers = |items: &[Value]| items.iter().map(Value::as_f64).collect::<Option<Vec<f64>>>();
    let parsed = match input {
        None | Some(Value::Null) => {
            return Err(InferenceError::invalid("'input' is required", Some("input")));
        }
        Some(Value::String(text)) => EmbeddingInput::Texts(vec![text.clone()]),
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(InferenceError::invalid("'input' must not be empty", Some("input")));
        }
        Some(Value::Array(items)) => match &items[0] {
            Value::String(_) => EmbeddingInput::Texts(
                items
                    .iter()
                    .map(|v| v.as_str().map(str::to_string))
                    .collect::<Option<_>>()
                    .ok_or_else(shape_error)?,
            ),
            Value::Number(_) => EmbeddingInput::Numbers(vec![numbers(items).ok_or_else(shape_error)?]),
            Value::Array(_) => EmbeddingInput::Numbers(
                items
                    .iter()
                    .map(|row| row.as_array().and_then(|row| numbers(row)))
                    .collect::<Option<_>>()
                    .ok_or_else(shape_error)?,
            ),
            _ => return Err(shape_error()),
        },
        Some(_) => return Err(shape_error()),
    };
    if parsed.len() > MAX_INPUTS {
        return Err(InferenceError::invalid(
            format!("'input' has {} items; at most {MAX_INPUTS} are allowed", parsed.len()),
            Some("input"),
        ));
    }
    Ok(parsed)
}

/// Base64 of `vector`'s little-endian f32 bytes (what OpenAI sends for `encoding_format: "base64"`).
pub fn base64_of(vector: &[f32]) -> String {
    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `x` as the JSON number of its shortest decimal form (`0.1`, not the `0.10000000149011612` of the f64
/// that holds it), which reads back as the same f32.
fn shortest(x: f32) -> Value {
    x.to_string().parse::<f64>().map_or(Value::Null, Value::from)
}

/// The response body: `{"object": "list", "data": [{"object": "embedding", "index", "embedding"}], "model",
/// "usage": {"prompt_tokens", "total_tokens"}}`, each embedding cut to `dimensions` when given. Asking for
/// more dimensions than the model gives is a 400; a non-finite number from the model is a 500.
pub fn embeddings_body(
    model: &str,
    vectors: &[Vec<f32>],
    encoding: EncodingFormat,
    dimensions: Option<usize>,
    tokens: usize,
) -> Result<Value, InferenceError> {
    let mut data = Vec::with_capacity(vectors.len());
    for (index, vector) in vectors.iter().enumerate() {
        let kept = match dimensions {
            Some(d) if d > vector.len() => {
                return Err(InferenceError::invalid(
                    format!("'dimensions' is {d}, but model '{model}' gives embeddings of {}", vector.len()),
                    Some("dimensions"),
                ));
            }
            Some(d) => &vector[..d],
            None => &vector[..],
        };
        if kept.iter().any(|x| !x.is_finite()) {
            return Err(InferenceError::Server {
                message: format!(
                    "model '{model}' gave a non-finite number in the embedding of input[{index}]"
                ),
            });
        }
        let embedding = match encoding {
            EncodingFormat::Float => Value::Array(kept.iter().map(|&x| shortest(x)).collect()),
            EncodingFormat::Base64 => json!(base64_of(kept)),
        };
        data.push(json!({"object": "embedding", "index": index, "embedding": embedding}));
    }
    Ok(json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
}

#[cfg(test)]
mod tests;
