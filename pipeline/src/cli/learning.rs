//! `devloom train` and `devloom evaluate`: the root-cause scorer fitted on a history
//! archive with confirmed causes, and measured on held-out incidents.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::learning::training::FeatureSet;

/// Flags of `devloom train`.
#[derive(Args)]
pub struct TrainArgs {
    /// History archive with candidate lists and confirmed causes.
    #[arg(long)]
    pub history: PathBuf,
    /// Where to write the model (JSON).
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of the train / calibration / test split.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Leave out the time-of-day and day-of-week features (the ablation).
    #[arg(long)]
    pub without_time: bool,
}

/// Flags of `devloom evaluate`.
#[derive(Args)]
pub struct EvaluateArgs {
    /// The model file.
    #[arg(long)]
    pub model: PathBuf,
    /// History archive with candidate lists and confirmed causes.
    #[arg(long)]
    pub history: PathBuf,
    /// Where to write the reliability diagram.
    #[arg(long, default_value = "reliability.svg")]
    pub svg: PathBuf,
}

/// Runs `devloom train`.
pub fn train(args: TrainArgs) -> anyhow::Result<()> {
    let samples = crate::learning::training::load(&args.history)?;
    let features = if args.without_time { FeatureSet::WithoutTime } else { FeatureSet::Full };
    let model = crate::learning::training::train(&samples, args.seed, features)?;
    let text = serde_json::to_string_pretty(&model)? + "\n";
    std::fs::write(&args.out, text).with_context(|| format!("writing {}", args.out.display()))?;
    let m = &model.provenance.test_metrics;
    eprintln!(
        "devloom: trained on {} incidents ({} calibration, {} held out) → {}; held out: AC@1 {:.3}, AC@3 {:.3}, ECE {:.3}",
        model.provenance.train_incidents,
        model.provenance.calibration_incidents,
        model.provenance.test_incidents,
        args.out.display(),
        m.ac_at_1.value,
        m.ac_at_3.value,
        m.ece.value
    );
    Ok(())
}

/// Runs `devloom evaluate`.
pub fn evaluate(args: EvaluateArgs) -> anyhow::Result<()> {
    let model = crate::learning::model::read_model(&args.model)?;
    let samples = crate::learning::training::load(&args.history)?;
    let evaluation = crate::learning::evaluation::evaluate(&model, &samples)?;
    std::fs::write(&args.svg, crate::learning::evaluation::reliability_svg(&evaluation))
        .with_context(|| format!("writing {}", args.svg.display()))?;
    let mut out = std::io::stdout().lock();
    write!(out, "{}", crate::learning::evaluation::report(&evaluation))?;
    writeln!(out, "\nreliability diagram: {}", args.svg.display())?;
    Ok(())
}
