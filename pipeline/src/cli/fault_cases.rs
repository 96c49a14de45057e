//! `devloom fault-cases`: labelled fault-injection cases for `devloom evaluate --cases`
//! and `devloom train --cases`.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;

use crate::simulator::faults::{DEFAULT_RATE_PER_S, fault_case, write_case};

/// Flags of `devloom fault-cases`.
#[derive(Args)]
pub struct FaultCasesArgs {
    /// Directory to write the case folders into (created; must not hold cases yet).
    #[arg(long)]
    pub out: PathBuf,
    /// Cases to write; kinds cycle fastest, then trace styles, so 32 cover each fault in
    /// each style once.
    #[arg(long, default_value_t = 64)]
    pub count: u64,
    /// RNG seed: same seed and count, same cases. The default model trained on seed 1;
    /// the default, 2, gives cases it has never seen.
    #[arg(long, default_value_t = 2)]
    pub seed: u64,
    /// Requests per second arriving at the entry service (the default model trained on
    /// cases at 20; fewer make smaller cases).
    #[arg(long, default_value_t = DEFAULT_RATE_PER_S)]
    pub rate: f64,
}

/// Runs the command.
pub fn run(args: FaultCasesArgs) -> anyhow::Result<()> {
    if !(args.rate > 0.0 && args.rate.is_finite()) {
        bail!("--rate must be a positive number of requests per second, got {}", args.rate);
    }
    if args.out.is_dir() && std::fs::read_dir(&args.out)?.next().is_some() {
        bail!("{} is not empty: write the cases into a new directory", args.out.display());
    }
    let started = std::time::Instant::now();
    for index in 0..args.count {
        write_case(&args.out, &fault_case(args.seed, index, args.rate))?;
    }
    eprintln!(
        "devloom: {} fault-injection cases (seed {}) in {} in {:.1} s; measure with `devloom evaluate --cases {}`",
        args.count,
        args.seed,
        args.out.display(),
        started.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}
