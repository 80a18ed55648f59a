//! Warming the response cache: each line of a prompts file becomes a request, answered by a GGUF model and
//! stored under the key the server computes for the same request, so that request later is a hit.
//!
//! A line is either plain text, which becomes the chat request
//! `{"model": NAME, "messages": [{"role": "user", "content": LINE}], "temperature": 0}`, or a JSON object,
//! taken as a whole request body (`messages` → chat completions, `prompt` → completions), so any request
//! shape can be warmed. Blank lines are skipped. The server looks up only deterministic requests
//! (`temperature: 0` or a `seed`) unless configured otherwise; a JSON line that is neither is reported as
//! not cacheable and not run.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use serde_json::{Value, json};

use crate::cache::Manager;
use crate::cache::response_store::{Endpoint, ModelIdentity, is_deterministic};
use crate::inference::{CacheControl, CacheStatus, Prepared, respond};
use crate::models::file::ModelFile;
use crate::models::metadata_cache::MetadataCache;
use crate::models::pool::LoadedModel;

use super::WarmError;

/// What happened to one prompt.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum PromptOutcome {
    /// Answered by the model and stored.
    Stored {
        /// The response key.
        key: String,
    },
    /// Already in the cache: nothing was generated.
    AlreadyCached {
        /// The response key.
        key: String,
    },
    /// Not run: the request is not deterministic, so the server would not look it up.
    NotCacheable,
    /// The line is not a usable request, or generation failed.
    Failed {
        /// Why.
        error: String,
    },
}

/// What warming responses through one model did.
#[derive(Clone, Debug, Serialize)]
pub struct ResponseWarmReport {
    /// The model's name (file stem), which is part of every key.
    pub model: String,
    /// The prompts file.
    pub prompts_file: PathBuf,
    /// One outcome per non-blank line, in order, with its 1-based line number.
    pub prompts: Vec<(usize, PromptOutcome)>,
    /// Wall time, seconds.
    pub elapsed_s: f64,
}

impl ResponseWarmReport {
    /// How many prompts ended with `pick`.
    pub fn count(&self, pick: fn(&PromptOutcome) -> bool) -> usize {
        self.prompts.iter().filter(|(_, o)| pick(o)).count()
    }
}

/// The non-blank lines of a prompts file, with their 1-based line numbers.
pub fn read_prompts(path: &Path) -> std::io::Result<Vec<(usize, String)>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r').to_string()))
        .collect())
}

/// The request a prompts-file line stands for, and its endpoint.
pub fn request_for_line(line: &str, model_name: &str) -> Result<(Endpoint, Value), String> {
    if line.trim_start().starts_with('{') {
        let body: Value = serde_json::from_str(line).map_err(|e| format!("not a JSON request body: {e}"))?;
        let endpoint = if body.get("messages").is_some() {
            Endpoint::Chat
        } else if body.get("prompt").is_some() {
            Endpoint::Completion
        } else {
            return Err("a JSON line needs `messages` (chat) or `prompt` (completion)".into());
        };
        return Ok((endpoint, body));
    }
    let body = json!({
        "model": model_name,
        "messages": [{"role": "user", "content": line}],
        "temperature": 0,
    });
    Ok((Endpoint::Chat, body))
}

/// Runs every prompt of `prompts_file` through the GGUF model at `model_path` and stores the answers in
/// `manager`'s response cache. `on_prompt` sees each outcome as it happens.
pub fn warm_responses(
    manager: &Manager,
    model_path: &Path,
    prompts_file: &Path,
    mut on_prompt: impl FnMut(usize, &PromptOutcome),
) -> Result<ResponseWarmReport, WarmError> {
    let started = Instant::now();
    let prompts = read_prompts(prompts_file)
        .map_err(|source| WarmError::Read { path: prompts_file.to_path_buf(), source })?;
    let file = ModelFile::open(model_path)?;
    let metadata = MetadataCache::new(manager).get(&file.path)?.metadata;
    let loaded = LoadedModel::load(&file)?;
    let Some(model) = loaded.gguf() else {
        return Err(WarmError::NotTextModel { path: file.path.clone() });
    };
    let identity = ModelIdentity { name: file.stem(), fingerprint: metadata.fingerprint };
    let mut report = ResponseWarmReport {
        model: identity.name.clone(),
        prompts_file: prompts_file.to_path_buf(),
        prompts: Vec::new(),
        elapsed_s: 0.0,
    };
    for (line_no, line) in prompts {
        let outcome = match request_for_line(&line, &identity.name) {
            Err(error) => PromptOutcome::Failed { error },
            Ok((_, body)) if !is_deterministic(&body) => PromptOutcome::NotCacheable,
            Ok((endpoint, body)) => match CacheControl::from_body(&body)
                .and_then(|control| Prepared::new(manager, identity.clone(), endpoint, body, &control))
                .and_then(|prepared| respond(manager, model, &prepared, None))
            {
                Ok(answer) if answer.status == CacheStatus::Hit => {
                    PromptOutcome::AlreadyCached { key: answer.key }
                }
                Ok(answer) if answer.status == CacheStatus::Miss => PromptOutcome::Stored { key: answer.key },
                Ok(_) => PromptOutcome::Failed {
                    error: "the response cache did not store it (is it disabled?)".into(),
                },
                Err(e) => PromptOutcome::Failed { error: e.to_string() },
            },
        };
        on_prompt(line_no, &outcome);
        report.prompts.push((line_no, outcome));
    }
    report.elapsed_s = started.elapsed().as_secs_f64();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Access;
    use crate::cache::response_store::{CanonicalRequest, response_key};
    use crate::config::CacheConfig;
    use crate::models::gguf::tiny::write_tiny_llama;

    #[test]
    fn lines_become_requests() {
        let (endpoint, body) = request_for_line("abc", "tiny").unwrap();
        assert_eq!(endpoint, Endpoint::Chat);
        assert_eq!(
            body,
            json!({"model": "tiny", "messages": [{"role": "user", "content": "abc"}], "temperature": 0})
        );
        let (endpoint, body) = request_for_line(r#"{"prompt": "abc", "seed": 1}"#, "tiny").unwrap();
        assert_eq!((endpoint, &body["seed"]), (Endpoint::Completion, &json!(1)));
        assert!(request_for_line("{broken", "tiny").unwrap_err().contains("not a JSON request body"));
        assert!(request_for_line(r#"{"input": "x"}"#, "tiny").unwrap_err().contains("`messages`"));
    }

    #[test]
    fn prompts_are_stored_under_the_server_key_and_hit_the_second_time() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("tiny.gguf");
        write_tiny_llama(&model).unwrap();
        let prompts = dir.path().join("prompts.txt");
        let lines = "abc\n\n{\"prompt\": \"xy78\", \"temperature\": 0, \"max_tokens\": 4}\n{\"prompt\": \"a\"}\n{oops\n";
        std::fs::write(&prompts, lines).unwrap();
        let config = CacheConfig { base_dir: dir.path().join("cache"), ..CacheConfig::default() };
        let manager = Manager::open(&config, Access::ReadWrite).unwrap();

        let mut seen = Vec::new();
        let report = warm_responses(&manager, &model, &prompts, |n, _| seen.push(n)).unwrap();
        assert_eq!(seen, [1, 3, 4, 5], "blank line 2 is skipped");
        let outcomes: Vec<&PromptOutcome> = report.prompts.iter().map(|(_, o)| o).collect();
        assert!(matches!(outcomes[0], PromptOutcome::Stored { .. }));
        assert!(matches!(outcomes[1], PromptOutcome::Stored { .. }));
        assert_eq!(outcomes[2], &PromptOutcome::NotCacheable);
        assert!(matches!(outcomes[3], PromptOutcome::Failed { .. }));

        // The key is the one the server computes for the same body and model identity.
        let fingerprint = crate::models::file::fingerprint(&model).unwrap();
        let identity = ModelIdentity { name: "tiny".into(), fingerprint };
        let body = json!({"prompt": "xy78", "temperature": 0, "max_tokens": 4, "model": "anything"});
        let canonical = CanonicalRequest::new(Endpoint::Completion, &body, &identity).unwrap();
        let key = response_key(&canonical, config.response.hash_algorithm);
        assert_eq!(outcomes[1], &PromptOutcome::Stored { key: key.clone() });
        let stored = crate::cache::response_store::get_fresh(&manager, &key, None).unwrap().expect("stored");
        let stored: serde_json::Value = serde_json::from_slice(&stored).unwrap();
        assert_eq!(stored["choices"][0]["text"], "9012");

        let again = warm_responses(&manager, &model, &prompts, |_, _| {}).unwrap();
        assert_eq!(again.count(|o| matches!(o, PromptOutcome::AlreadyCached { .. })), 2);
        assert_eq!(again.count(|o| matches!(o, PromptOutcome::Stored { .. })), 0);
    }

    #[cfg(feature = "onnx")]
    #[test]
    fn an_onnx_model_cannot_answer_prompts() {
        let dir = tempfile::tempdir().unwrap();
        let prompts = dir.path().join("p.txt");
        std::fs::write(&prompts, "hello\n").unwrap();
        let config = CacheConfig { base_dir: dir.path().join("cache"), ..CacheConfig::default() };
        let manager = Manager::open(&config, Access::ReadWrite).unwrap();
        let onnx = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/models/tiny-mlp.onnx"));
        let err = warm_responses(&manager, onnx, &prompts, |_, _| {}).unwrap_err().to_string();
        assert!(err.contains("tiny-mlp.onnx") && err.contains("GGUF"), "{err}");
    }
}
