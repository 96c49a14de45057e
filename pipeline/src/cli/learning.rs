//! `devloom train` and `devloom evaluate`: the root-cause scorer fitted on a history
//! archive with confirmed causes (and labelled cases), and measured on held-out
//! incidents or on labelled cases run through the whole pipeline.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::config::Config;
use crate::learning::cases::{self, CaseOutcome};
use crate::learning::training::FeatureSet;

/// Flags of `devloom train`.
#[derive(Args)]
pub struct TrainArgs {
    /// History archive with candidate lists and confirmed causes.
    #[arg(long)]
    pub history: PathBuf,
    /// Also train on labelled cases (folders with `truth.json`, e.g. from `devloom
    /// fault-cases`): each runs through the pipeline, and the candidate list at its alert
    /// is a training incident.
    #[arg(long)]
    pub cases: Option<PathBuf>,
    /// Also train on this many simulated fault-injection cases (as `devloom fault-cases
    /// --seed 1` writes them), generated and run through the pipeline in memory.
    #[arg(long, default_value_t = 0)]
    pub fault_cases: u64,
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
#[command(group = clap::ArgGroup::new("data").required(true).args(["history", "cases", "fault_cases", "canaries"]))]
pub struct EvaluateArgs {
    /// The model file (default: the built-in model).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// History archive with candidate lists and confirmed causes: the model on its
    /// held-out incidents, beside the same model without time features.
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// A directory of labelled cases (sub-folders of input files `devloom run` reads plus
    /// `truth.json` with `faulty_service` and `fault`): each runs through the pipeline;
    /// reports detection (faulty service red or amber on the last map), AC@1 and AC@3 of
    /// the last candidate list, and ECE, per fault and trace style.
    #[arg(long)]
    pub cases: Option<PathBuf>,
    /// Simulated fault-injection cases to generate and run in memory instead of a
    /// directory (seeded by --fault-seed; the default model trained on seed 1).
    #[arg(long)]
    pub fault_cases: Option<u64>,
    /// Seed of the --fault-cases.
    #[arg(long, default_value_t = 2, requires = "fault_cases")]
    pub fault_seed: u64,
    /// Seeded staged rollouts to run through the pipeline instead: this many healthy
    /// canaries (same failure rate as stable, 2–30% of one service's traffic) and a
    /// quarter as many failing ones (10% of frontend, 8% more failures); reports the
    /// false-halt rate and the time to halt.
    #[arg(long)]
    pub canaries: Option<u64>,
    /// Seed of the --canaries.
    #[arg(long, default_value_t = 1, requires = "canaries")]
    pub canary_seed: u64,
    /// With --cases, --fault-cases or --canaries: also write the report (and every case's outcome)
    /// as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// With --history: where to write the reliability diagram.
    #[arg(long, default_value = "reliability.svg")]
    pub svg: PathBuf,
}

/// Runs `devloom train`.
pub fn train(args: TrainArgs) -> anyhow::Result<()> {
    let mut samples = crate::learning::training::load(&args.history)?;
    let history_hash = crate::learning::training::data_hash(&samples);
    if let Some(dir) = &args.cases {
        let outcomes = run_cases(&Config::default(), dir)?;
        samples.extend(outcomes.into_iter().filter_map(|o| o.first));
    }
    if args.fault_cases > 0 {
        let outcomes = run_fault_cases(&Config::default(), TRAINING_FAULT_SEED, args.fault_cases)?;
        samples.extend(outcomes.into_iter().filter_map(|o| o.first));
    }
    let features = if args.without_time { FeatureSet::WithoutTime } else { FeatureSet::Full };
    let mut model = crate::learning::training::train(&samples, args.seed, features)?;
    if model.provenance.data_hash != history_hash {
        model.provenance.history_hash = Some(history_hash);
    }
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

/// Every case under `dir` through the pipeline `config` describes, with progress on
/// stderr.
fn run_cases(config: &Config, dir: &std::path::Path) -> anyhow::Result<Vec<CaseOutcome>> {
    let folders = cases::case_folders(dir)?;
    let mut outcomes = Vec::with_capacity(folders.len());
    for (i, folder) in folders.iter().enumerate() {
        outcomes.push(cases::run_case(config, folder)?);
        if std::io::stderr().is_terminal() {
            eprint!("\rdevloom: {}/{} cases", i + 1, folders.len());
        }
    }
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    Ok(outcomes)
}

/// The seed of the fault cases `train --fault-cases` generates (evaluation defaults to
/// another).
pub const TRAINING_FAULT_SEED: u64 = 1;

/// `count` simulated fault cases of `seed`, run in memory, with progress on stderr.
fn run_fault_cases(config: &Config, seed: u64, count: u64) -> anyhow::Result<Vec<CaseOutcome>> {
    let mut outcomes = Vec::with_capacity(count as usize);
    for index in 0..count {
        outcomes.push(cases::run_fault_case(config, seed, index)?);
        if std::io::stderr().is_terminal() {
            eprint!("\rdevloom: {}/{count} fault cases", index + 1);
        }
    }
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    Ok(outcomes)
}

/// Runs `devloom evaluate`.
pub fn evaluate(args: EvaluateArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if let Some(count) = args.canaries {
        let report = crate::simulator::canaries::evaluate(count, count.div_ceil(4), args.canary_seed)?;
        write!(out, "{}", report.render())?;
        if let Some(path) = &args.json {
            std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
                .with_context(|| format!("writing {}", path.display()))?;
        }
        return Ok(());
    }
    let mut config = Config::default();
    config.scorer.model = args.model.clone();
    let outcomes = match (&args.cases, args.fault_cases) {
        (Some(dir), _) => Some(run_cases(&config, dir)?),
        (None, Some(count)) => Some(run_fault_cases(&config, args.fault_seed, count)?),
        (None, None) => None,
    };
    if let Some(outcomes) = outcomes {
        let report = cases::report(outcomes);
        write!(out, "{}", cases::render(&report))?;
        if let Some(path) = &args.json {
            std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
                .with_context(|| format!("writing {}", path.display()))?;
            writeln!(out, "\nreport: {}", path.display())?;
        }
        return Ok(());
    }
    let history = args.history.as_ref().context("--history or --cases is required")?;
    let model = match &args.model {
        Some(path) => crate::learning::model::read_model(path)?,
        None => serde_json::from_str(crate::learning::model::DEFAULT_MODEL)?,
    };
    let samples = crate::learning::training::load(history)?;
    let evaluation = crate::learning::evaluation::evaluate(&model, &samples)?;
    std::fs::write(&args.svg, crate::learning::evaluation::reliability_svg(&evaluation))
        .with_context(|| format!("writing {}", args.svg.display()))?;
    write!(out, "{}", crate::learning::evaluation::report(&evaluation))?;
    writeln!(out, "\nreliability diagram: {}", args.svg.display())?;
    Ok(())
}
