//! `inferno cache semantic calibrate --pairs FILE --model NAME`: how a cosine-similarity threshold would
//! have done on labelled question pairs, with and without the semantic cache's guards; and `inferno cache
//! semantic forget KEY`, the report of a false hit (`crate::cache::semantic`; docs/semantic-cache.md).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::config::LoadOptions;

/// `cache semantic ...` commands.
#[derive(Debug, Subcommand)]
pub enum SemanticCommand {
    /// Precision, recall and false-hit rate per similarity threshold on labelled pairs, with and without the
    /// guards, and the lowest threshold meeting --target-precision.
    Calibrate(CalibrateArgs),
    /// Report a false semantic hit: the vector and the answer stored under KEY (the key a HIT-SEMANTIC
    /// answer named in X-Inferno-Cache-Key) are removed, so it answers nobody again; counted in stats.
    Forget(ForgetArgs),
}

/// Flags of `cache semantic forget`.
#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// The key of the stored request that answered wrongly.
    key: String,
}

/// Flags of `cache semantic calibrate`.
#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// JSON lines of {"a": TEXT, "b": TEXT, "same": true|false}.
    #[arg(long, value_name = "FILE")]
    pairs: PathBuf,
    /// The ONNX text embedding model (a name in models.dir, or a path), with its tokenizer.json beside it.
    #[arg(long, value_name = "MODEL")]
    model: String,
    /// The precision (with guards) the threshold must reach.
    #[arg(long, value_name = "P", default_value_t = 0.99)]
    target_precision: f64,
}

/// Runs a `cache semantic` command.
pub fn run(options: &LoadOptions, command: &SemanticCommand, json: bool) -> anyhow::Result<()> {
    match command {
        SemanticCommand::Calibrate(args) => with_onnx::calibrate(options, args, json),
        SemanticCommand::Forget(args) => forget(options, &args.key, json),
    }
}

/// `cache semantic forget KEY`: through the running server when there is one (its index drops the vector
/// too), else on the cache directly.
fn forget(options: &LoadOptions, key: &str, json: bool) -> anyhow::Result<()> {
    let forgotten = match super::live::LiveServer::for_options(options)? {
        Some(server) => {
            let answer: serde_json::Value =
                server.post("/v1/cache/semantic/forget", &serde_json::json!({"key": key}))?;
            answer["forgotten"].as_bool().unwrap_or(false)
        }
        None => {
            let cache = super::transfer::open_cache(options, crate::cache::Access::ReadWrite)?;
            let forgotten = crate::cache::semantic::forget_stored(&cache, key)?;
            cache.flush()?;
            forgotten
        }
    };
    if json {
        return super::output::print_json(&serde_json::json!({"key": key, "forgotten": forgotten}));
    }
    let text = if forgotten {
        format!("Forgot {key}: its semantic vector and answer are removed; the false hit is counted\n")
    } else {
        format!("Nothing stored under {key}: no semantic vector or answer to remove (check the key)\n")
    };
    Ok(super::output::print(&text)?)
}

#[cfg(not(feature = "onnx"))]
mod with_onnx {
    pub fn calibrate(_: &super::LoadOptions, _: &super::CalibrateArgs, _: bool) -> anyhow::Result<()> {
        anyhow::bail!(
            "this build of inferno has no ONNX support, which embedding needs; rebuild it with the `onnx` cargo feature"
        )
    }
}

#[cfg(feature = "onnx")]
mod with_onnx {
    use std::fmt::Write as _;

    use super::CalibrateArgs;
    use crate::cache::semantic::calibrate::{self, Row, Scored};
    use crate::cache::semantic::embedder::Embedder;
    use crate::cli::UsageError;
    use crate::cli::output;
    use crate::config::{self, LoadOptions};

    pub fn calibrate(options: &LoadOptions, args: &CalibrateArgs, json: bool) -> anyhow::Result<()> {
        if !(args.target_precision > 0.0 && args.target_precision <= 1.0) {
            return Err(UsageError(format!(
                "--target-precision must be in (0, 1], not {}",
                args.target_precision
            ))
            .into());
        }
        let config = config::load(options)?.config;
        let pairs = calibrate::read_pairs(&args.pairs)?;
        let embedder = Embedder::load(&args.model, &config.models.dir)?;
        let texts: Vec<String> = pairs.iter().flat_map(|pair| [pair.a.clone(), pair.b.clone()]).collect();
        let started = std::time::Instant::now();
        let vectors = embedder.embed(&texts)?;
        let embed_ms = started.elapsed().as_secs_f64() * 1000.0;
        let scored: Vec<Scored> =
            pairs.iter().zip(vectors.chunks(2)).map(|(pair, ab)| Scored::new(pair, &ab[0], &ab[1])).collect();
        let rows = calibrate::table(&scored);
        let best = calibrate::lowest_meeting(&rows, args.target_precision);
        let same = pairs.iter().filter(|pair| pair.same).count();
        if json {
            return output::print_json(&serde_json::json!({
                "pairs": pairs.len(),
                "same": same,
                "different": pairs.len() - same,
                "model": args.model,
                "embedding_ms_per_text": embed_ms / texts.len() as f64,
                "target_precision": args.target_precision,
                "threshold": best.map(|row| row.threshold),
                "rows": rows.iter().map(row_json).collect::<Vec<_>>(),
            }));
        }
        print!("{}", text(&pairs.len(), same, &rows, best, args, embed_ms / texts.len() as f64));
        Ok(())
    }

    fn row_json(row: &Row) -> serde_json::Value {
        let side = |counts: &calibrate::Counts| {
            serde_json::json!({
                "precision": counts.precision(),
                "recall": counts.recall(),
                "false_hit_rate": counts.false_hit_rate(),
                "counts": counts,
            })
        };
        serde_json::json!({
            "threshold": row.threshold,
            "similarity_only": side(&row.similarity_only),
            "guarded": side(&row.guarded),
        })
    }

    fn text(
        pairs: &usize,
        same: usize,
        rows: &[Row],
        best: Option<&Row>,
        args: &CalibrateArgs,
        ms: f64,
    ) -> String {
        let percent = |p: Option<f64>| p.map_or("-".to_string(), |p| format!("{:.1}%", p * 100.0));
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{pairs} pairs ({same} same, {} different) embedded with {} ({ms:.1} ms per text)\n",
            pairs - same,
            args.model
        );
        let _ = writeln!(
            out,
            "threshold   similarity only: precision  recall  false hits   with guards: precision  recall  false hits"
        );
        for row in rows {
            let (raw, guarded) = (&row.similarity_only, &row.guarded);
            let _ = writeln!(
                out,
                "{:>9.2}   {:>26} {:>7} {:>11}   {:>22} {:>7} {:>11}",
                row.threshold,
                percent(raw.precision()),
                percent(Some(raw.recall())),
                percent(Some(raw.false_hit_rate())),
                percent(guarded.precision()),
                percent(Some(guarded.recall())),
                percent(Some(guarded.false_hit_rate())),
            );
        }
        let _ = match best {
            Some(row) => writeln!(
                out,
                "\nlowest threshold with guarded precision >= {}: {:.2} (recall {}, false-hit rate {})",
                percent(Some(args.target_precision)),
                row.threshold,
                percent(Some(row.guarded.recall())),
                percent(Some(row.guarded.false_hit_rate())),
            ),
            None => writeln!(
                out,
                "\nno threshold from 0.70 to 0.99 reaches guarded precision {} on these pairs",
                percent(Some(args.target_precision))
            ),
        };
        out
    }
}
