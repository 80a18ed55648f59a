//! Calibrating the semantic cache's threshold on labelled pairs: for each threshold, how often "cosine
//! similarity ≥ threshold" (alone, and with the [`guards`](super::guards)) agrees with the labels.
//!
//! The pairs file is JSON lines, `{"a": TEXT, "b": TEXT, "same": true|false}` each: `same` says whether one
//! cached answer serves both questions. Embedding the texts is the caller's job (an ONNX model, see
//! `cli/semantic.rs`); this file only reads pairs and counts.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::guards::{self, Mismatch};

/// One labelled pair.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pair {
    /// One question.
    pub a: String,
    /// The other.
    pub b: String,
    /// Whether one answer serves both.
    pub same: bool,
}

/// A pairs file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum PairsError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not a pair.
    #[error(
        "{path}:{line}: {message} (each line must be {{\"a\": TEXT, \"b\": TEXT, \"same\": true|false}})"
    )]
    Line {
        /// The file.
        path: String,
        /// The 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// No pair of one of the two labels, so precision or recall cannot be measured.
    #[error("{path} has no pairs labelled \"same\": {label}; calibration needs both kinds")]
    OneSided {
        /// The file.
        path: String,
        /// The missing label.
        label: bool,
    },
}

/// Reads a pairs file; blank lines are skipped.
pub fn read_pairs(path: &Path) -> Result<Vec<Pair>, PairsError> {
    let shown = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|source| PairsError::Read { path: shown.clone(), source })?;
    let mut pairs = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let pair: Pair = serde_json::from_str(line).map_err(|e| PairsError::Line {
            path: shown.clone(),
            line: number + 1,
            message: e.to_string(),
        })?;
        pairs.push(pair);
    }
    for label in [true, false] {
        if !pairs.iter().any(|pair| pair.same == label) {
            return Err(PairsError::OneSided { path: shown, label });
        }
    }
    Ok(pairs)
}

/// A pair measured: its label, the cosine similarity of its embeddings and the guard it breaks, if any.
#[derive(Clone, Debug)]
pub struct Scored {
    /// The label.
    pub same: bool,
    /// Cosine similarity of the two embeddings.
    pub similarity: f32,
    /// The first guard the pair breaks.
    pub mismatch: Option<Mismatch>,
}

impl Scored {
    /// Scores a pair from its two embeddings.
    pub fn new(pair: &Pair, a: &[f32], b: &[f32]) -> Self {
        Scored { same: pair.same, similarity: cosine(a, b), mismatch: guards::mismatch(&pair.a, &pair.b) }
    }
}

/// Cosine similarity; 0 when either vector is all zeros.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut norm_a, mut norm_b) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        norm_a += x * x;
        norm_b += y * y;
    }
    if norm_a == 0.0 || norm_b == 0.0 { 0.0 } else { (dot / (norm_a.sqrt() * norm_b.sqrt())) as f32 }
}

/// Agreement counts at one threshold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Counts {
    /// Labelled same, matched.
    pub true_hits: usize,
    /// Labelled different, matched: a wrong answer served.
    pub false_hits: usize,
    /// Labelled same, not matched.
    pub missed: usize,
    /// Labelled different, not matched.
    pub refused: usize,
}

impl Counts {
    /// Matches that were right, over matches; `None` when nothing matched.
    pub fn precision(&self) -> Option<f64> {
        let matched = self.true_hits + self.false_hits;
        (matched > 0).then(|| self.true_hits as f64 / matched as f64)
    }

    /// Same-labelled pairs matched, over same-labelled pairs.
    pub fn recall(&self) -> f64 {
        ratio(self.true_hits, self.true_hits + self.missed)
    }

    /// Different-labelled pairs matched, over different-labelled pairs.
    pub fn false_hit_rate(&self) -> f64 {
        ratio(self.false_hits, self.false_hits + self.refused)
    }
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

/// One threshold's counts, by similarity alone and with the guards.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Row {
    /// The cosine similarity threshold.
    pub threshold: f32,
    /// Matching on similarity alone.
    pub similarity_only: Counts,
    /// Matching on similarity and the guards.
    pub guarded: Counts,
}

/// The calibration table: thresholds 0.70 to 0.99 in steps of 0.01.
pub fn table(scored: &[Scored]) -> Vec<Row> {
    (70..=99)
        .map(|hundredths| {
            let threshold = hundredths as f32 / 100.0;
            let mut row = Row { threshold, similarity_only: Counts::default(), guarded: Counts::default() };
            for pair in scored {
                let similar = pair.similarity >= threshold;
                count(&mut row.similarity_only, pair.same, similar);
                count(&mut row.guarded, pair.same, similar && pair.mismatch.is_none());
            }
            row
        })
        .collect()
}

fn count(counts: &mut Counts, same: bool, matched: bool) {
    match (same, matched) {
        (true, true) => counts.true_hits += 1,
        (false, true) => counts.false_hits += 1,
        (true, false) => counts.missed += 1,
        (false, false) => counts.refused += 1,
    }
}

/// The lowest threshold of `rows` whose guarded precision reaches `target` (some pair matching).
pub fn lowest_meeting(rows: &[Row], target: f64) -> Option<&Row> {
    rows.iter().find(|row| row.guarded.precision().is_some_and(|p| p >= target))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(same: bool, similarity: f32, guarded: bool) -> Scored {
        Scored { same, similarity, mismatch: guarded.then_some(Mismatch::Numbers) }
    }

    #[test]
    fn counts_follow_threshold_and_guards() {
        let pairs = [
            scored(true, 0.95, false),
            scored(true, 0.80, false),
            scored(false, 0.97, true),
            scored(false, 0.85, false),
        ];
        let rows = table(&pairs);
        let at = |t: f32| rows.iter().find(|row| (row.threshold - t).abs() < 1e-6).unwrap();
        let row = at(0.80);
        assert_eq!(row.similarity_only, Counts { true_hits: 2, false_hits: 2, missed: 0, refused: 0 });
        assert_eq!(row.guarded, Counts { true_hits: 2, false_hits: 1, missed: 0, refused: 1 });
        assert_eq!(at(0.90).guarded.precision(), Some(1.0));
        assert_eq!(at(0.90).similarity_only.precision(), Some(0.5));
        assert_eq!(at(0.99).guarded.precision(), None);
        assert_eq!(lowest_meeting(&rows, 0.99).map(|row| row.threshold), Some(0.86));
    }

    /// The shipped labelled set (tests/data/semantic-pairs.jsonl): the guards alone must keep refusing most
    /// of its adversarial pairs while giving up few of its paraphrases. Pins the guards' trade-off against
    /// regressions; the figures with embeddings are in docs/semantic-cache.md.
    #[test]
    fn on_the_shipped_pairs_the_guards_refuse_near_misses_not_paraphrases() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/semantic-pairs.jsonl");
        let pairs = read_pairs(&path).unwrap();
        let (same, different): (Vec<&Pair>, Vec<&Pair>) = pairs.iter().partition(|pair| pair.same);
        assert!(pairs.len() >= 300 && same.len() >= 150 && different.len() >= 140, "{}", pairs.len());
        let refused = |set: &[&Pair]| set.iter().filter(|p| guards::mismatch(&p.a, &p.b).is_some()).count();
        let (paraphrases_refused, near_misses_refused) = (refused(&same), refused(&different));
        assert!(
            paraphrases_refused <= same.len() / 20,
            "{paraphrases_refused} of {} paraphrases",
            same.len()
        );
        assert!(near_misses_refused >= 105, "{near_misses_refused} of {} near misses", different.len());
    }

    #[test]
    fn cosine_is_scale_free_and_zero_safe() {
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-6);
        assert!(cosine(&[1.0, 0.0], &[0.0, 1.0]).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
    }

    #[test]
    fn a_bad_line_is_named_by_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pairs.jsonl");
        std::fs::write(&path, "{\"a\":\"x\",\"b\":\"y\",\"same\":true}\n\n{\"a\":\"x\",\"same\":false}\n")
            .unwrap();
        let message = read_pairs(&path).unwrap_err().to_string();
        assert!(message.contains("pairs.jsonl:3: missing field `b`"), "{message}");
        std::fs::write(&path, "{\"a\":\"x\",\"b\":\"y\",\"same\":true}\n").unwrap();
        let message = read_pairs(&path).unwrap_err().to_string();
        assert!(message.contains("no pairs labelled \"same\": false"), "{message}");
    }
}
