//! `devloom simulate`: a simulated scenario as NDJSON (OTLP JSON traces, Alertmanager
//! alerts, deploys), the input `devloom run --input` reads.

use std::io::Write;

use clap::Args;

use super::SimArgs;
use crate::sinks::open_output;

/// Flags of `devloom simulate`.
#[derive(Args)]
pub struct SimulateArgs {
    #[command(flatten)]
    pub sim: SimArgs,
    /// Where to write the NDJSON (`-` for stdout).
    #[arg(long, short, default_value = "-")]
    pub output: String,
}

/// Runs the command.
pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let sim = args.sim.simulator()?;
    let mut out = open_output(&args.output)?;
    for record in sim {
        let line = crate::simulator::to_ndjson_line(&record)?;
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}
