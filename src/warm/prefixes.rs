//! Warming the prompt-prefix KV cache (`inferno cache warm --prefixes FILE`): each line of a prefixes file
//! is run through a GGUF model's slots with `max_tokens: 0` and the cache's KV store attached, so the
//! slots save the prompt's state after prefill and a later request that starts with it restores it.
//!
//! A line is one JSON value: a string is a prompt (as `/v1/completions` takes it), an array is chat messages
//! (as `/v1/chat/completions` takes them; the model's chat template renders them, as the server does, so
//! the saved tokens are the ones its requests produce). Blank lines are skipped. Every line is checked
//! before any work starts: a bad one is an error naming the file and the line.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Value, json};

use crate::cache::response_store::Endpoint;
use crate::inference::Request;

/// One prefix to warm: its 1-based line number and the request it stands for.
#[derive(Clone, Debug)]
pub struct PrefixLine {
    /// Where it is in the file.
    pub line: usize,
    /// The request (a prompt or chat messages), validated as the server would.
    pub request: Request,
}

/// Why a prefixes file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrefixFileError {
    /// The file cannot be read.
    #[error("{path}: cannot read the prefixes file: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A line is not a prompt or a messages array.
    #[error("{path}:{line}: {reason}")]
    Line {
        /// The file.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// Only blank lines.
    #[error("{path}: holds no prefixes (one JSON string or messages array per line)")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// The request a line stands for, or what is wrong with it.
pub fn request_for_line(line: &str) -> Result<Request, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let (endpoint, body) = match value {
        Value::String(prompt) => (Endpoint::Completion, json!({ "prompt": prompt })),
        messages @ Value::Array(_) => (Endpoint::Chat, json!({ "messages": messages })),
        _ => {
            return Err("a line is a JSON string (a prompt) or a JSON array of chat messages \
                        ({\"role\": ..., \"content\": ...})"
                .into());
        }
    };
    Request::parse(endpoint, &body).map_err(|e| e.to_string())
}

/// Every prefix of the file at `path`, each checked; the first bad line is the error.
pub fn read_prefixes(path: &Path) -> Result<Vec<PrefixLine>, PrefixFileError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| PrefixFileError::Read { path: path.to_path_buf(), source })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let request = request_for_line(line).map_err(|reason| PrefixFileError::Line {
            path: path.to_path_buf(),
            line: i + 1,
            reason,
        })?;
        out.push(PrefixLine { line: i + 1, request });
    }
    if out.is_empty() {
        return Err(PrefixFileError::Empty { path: path.to_path_buf() });
    }
    Ok(out)
}

/// What warming prefixes through one model did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PrefixWarmReport {
    /// The model's name (file stem).
    pub model: String,
    /// The prefixes file.
    pub prefixes_file: PathBuf,
    /// Prefixes run.
    pub prompts: usize,
    /// Prefixes shorter than `cache.kv.min_prefix_tokens`, which the slots do not save.
    pub too_short: usize,
    /// Prompt tokens prefilled.
    pub prompt_tokens: u64,
    /// States stored in the cache.
    pub states_stored: u64,
    /// States not stored (the writer's queue was full, or a state larger than `cache.kv.max_size_gb`).
    pub states_dropped: u64,
    /// Prefixes that failed, by line.
    pub failed: Vec<(usize, String)>,
    /// Wall time, seconds.
    pub elapsed_s: f64,
}

#[cfg(feature = "llama")]
pub use run::warm_prefixes;

#[cfg(feature = "llama")]
mod run {
    use std::path::Path;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::Instant;

    use super::{PrefixLine, PrefixWarmReport};
    use crate::cache::kv::KvStore;
    use crate::cache::{Kind, Manager};
    use crate::inference::run::prepare;
    use crate::models::file::ModelFile;
    use crate::models::generate::SlotConfig;
    use crate::models::pool::LoadedModel;
    use crate::warm::WarmError;

    /// Runs every prefix through the GGUF model at `model_path` with `max_tokens: 0` and `manager`'s KV store
    /// attached to its slots; `on_prompt` sees each line number once it is done. Returns once every state
    /// the slots saved is written.
    pub fn warm_prefixes(
        manager: &Arc<Manager>,
        model_path: &Path,
        prefixes_file: &Path,
        prefixes: &[PrefixLine],
        mut on_prompt: impl FnMut(usize),
    ) -> Result<PrefixWarmReport, WarmError> {
        let started = Instant::now();
        let Some(store) = KvStore::for_manager(manager) else {
            return Err(WarmError::KvDisabled);
        };
        let kv = &manager.config().kv;
        let counters = manager.counters();
        let puts = || counters.kind(Kind::Kv).puts.load(Ordering::Relaxed);
        let dropped = || counters.kv_writes_dropped.load(Ordering::Relaxed);
        let (puts_before, dropped_before) = (puts(), dropped());
        let file = ModelFile::open(model_path)?;
        let slots = SlotConfig { parallel: 1, prefix: Some(store.prefix_config()), ..SlotConfig::default() };
        let loaded = LoadedModel::load_with(&file, &slots)?;
        let Some(model) = loaded.gguf() else {
            return Err(WarmError::NotTextModel { path: file.path.clone() });
        };
        let mut report = PrefixWarmReport {
            model: file.stem(),
            prefixes_file: prefixes_file.to_path_buf(),
            ..PrefixWarmReport::default()
        };
        for prefix in prefixes {
            report.prompts += 1;
            let outcome = prepare(model, &prefix.request).and_then(|mut prepared| {
                prepared.params.max_tokens = 0;
                model
                    .generate(&prepared.prompt, &prepared.params)
                    .map_err(crate::inference::run::llama_error)
                    .map(|generation| generation.prompt_tokens)
            });
            match outcome {
                Ok(tokens) => {
                    report.prompt_tokens += tokens as u64;
                    if tokens < kv.min_prefix_tokens as usize {
                        report.too_short += 1;
                    }
                }
                Err(e) => report.failed.push((prefix.line, e.to_string())),
            }
            on_prompt(prefix.line);
        }
        // The slots' decode thread stops with the model; then every state it saved is written.
        drop(loaded);
        store.flush();
        report.states_stored = puts() - puts_before;
        report.states_dropped = dropped() - dropped_before;
        report.elapsed_s = started.elapsed().as_secs_f64();
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_prompts_or_messages_and_bad_ones_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prefixes.jsonl");
        let good =
            "\"You are a helpful assistant.\"\n\n[{\"role\": \"system\", \"content\": \"Be terse.\"}]\n";
        std::fs::write(&path, good).unwrap();
        let prefixes = read_prefixes(&path).unwrap();
        assert_eq!(prefixes.iter().map(|p| p.line).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(prefixes[0].request.endpoint, Endpoint::Completion);
        assert_eq!(prefixes[1].request.endpoint, Endpoint::Chat);

        for (text, line, says) in [
            ("\"ok\"\n{\"prompt\": \"x\"}\n", 2, "a JSON string (a prompt) or a JSON array"),
            ("\"ok\"\n\n\"unterminated\n", 3, "not JSON"),
            ("[]\n", 1, "at least one message"),
            ("[{\"role\": \"wizard\", \"content\": \"x\"}]\n", 1, "messages[0].role"),
            ("42\n", 1, "a JSON string (a prompt)"),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = read_prefixes(&path).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{}:{line}: ", path.display())), "{err}");
            assert!(err.contains(says), "{err}");
        }
        std::fs::write(&path, "\n  \n").unwrap();
        assert!(read_prefixes(&path).unwrap_err().to_string().contains("holds no prefixes"));
        let missing = read_prefixes(&dir.path().join("nope")).unwrap_err().to_string();
        assert!(missing.contains("cannot read the prefixes file"), "{missing}");
    }
}
