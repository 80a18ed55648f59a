//! `inferno cache warm --prefixes FILE`: the job step that runs a prefixes file through one model with the
//! KV store attached (`warm/prefixes.rs`), with its progress bar and its lines of output.

#[cfg(feature = "llama")]
use std::fmt::Write;
use std::path::Path;

use super::{Job, Target};
use crate::warm::prefixes::PrefixLine;

impl Job<'_> {
    /// Runs the prefixes through one model; each prefix is one step. Only a process that holds the cache can
    /// store states.
    pub(super) fn step_prefixes(&mut self, target: &Target, file: &Path, lines: &[PrefixLine], model: &Path) {
        let name = model.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let steps = lines.len() as u64;
        let instead = "its own slots save the states of the requests it serves";
        let Some(manager) = self.holder_of(target, &format!("prefix states through {name}"), instead, steps)
        else {
            return;
        };
        self.progress.current = Some(format!("{} through {name}", file.display()));
        self.save();
        self.run_prefixes(manager, file, lines, model, &name);
    }

    #[cfg(feature = "llama")]
    fn run_prefixes(
        &mut self,
        manager: &std::sync::Arc<crate::cache::Manager>,
        file: &Path,
        lines: &[PrefixLine],
        model: &Path,
        name: &str,
    ) {
        use crate::warm::prefixes::warm_prefixes;

        let steps = lines.len() as u64;
        let bar = self.step_bar(steps, "prefixes", name);
        let dir = self.dir.clone();
        let progress = &mut self.progress;
        let outcome = warm_prefixes(manager, model, file, lines, |_| {
            super::step_done(progress, &dir, &bar);
        });
        bar.finish_and_clear();
        match outcome {
            Ok(report) => {
                let _ = writeln!(
                    self.text,
                    "Prefixes through {}: {} prefixes ({} tokens), {} KV states stored, {} not stored, {} too \
                     short to save (cache.kv.min_prefix_tokens), {} failed ({:.1} s)",
                    report.model,
                    report.prompts,
                    report.prompt_tokens,
                    report.states_stored,
                    report.states_dropped,
                    report.too_short,
                    report.failed.len(),
                    report.elapsed_s,
                );
                for (line, error) in &report.failed {
                    let _ = writeln!(self.text, "  line {line}: {error}");
                    self.progress.errors.push(format!("{}:{line}: {error}", file.display()));
                }
                self.prefixes.push(serde_json::to_value(&report).unwrap_or_default());
            }
            Err(e) => {
                self.steps_failed(format!("failed prefixes through {name}: {e}"), e.to_string(), steps);
            }
        }
        self.save();
    }

    #[cfg(not(feature = "llama"))]
    fn run_prefixes(
        &mut self,
        _: &std::sync::Arc<crate::cache::Manager>,
        _: &Path,
        lines: &[PrefixLine],
        _: &Path,
        name: &str,
    ) {
        let error = format!(
            "prefixes through {name}: inferno was built without the `llama` feature, so no model can prefill them"
        );
        self.steps_failed(error.clone(), error, lines.len() as u64);
        self.save();
    }
}
