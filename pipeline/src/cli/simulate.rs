//! `devloom simulate`: a simulated scenario as files `devloom run --input` reads: NDJSON
//! (OTLP JSON traces, Alertmanager alerts, deploys), or OTLP protobuf traces framed as
//! the Collector file exporter's `format: proto` writes them, with the alerts and deploys
//! beside them as NDJSON.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::{Args, ValueEnum};

use super::SimArgs;
use crate::sinks::open_output;

/// How traces are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TraceFormat {
    /// Everything as NDJSON, traces as OTLP JSON (large: about 1 kB per span).
    Ndjson,
    /// Traces as length-prefixed OTLP protobuf (about 40% of the size) in the output
    /// file; alerts and deploys as NDJSON in `<output stem>.events.ndjson`.
    OtlpProto,
}

/// Flags of `devloom simulate`.
#[derive(Args)]
pub struct SimulateArgs {
    #[command(flatten)]
    pub sim: SimArgs,
    /// Where to write (`-` for stdout with the NDJSON format).
    #[arg(long, short, default_value = "-")]
    pub output: String,
    /// How traces are written.
    #[arg(long, value_enum, default_value = "ndjson")]
    pub format: TraceFormat,
}

/// Runs the command.
pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let sim = args.sim.simulator()?;
    let mut out = open_output(&args.output)?;
    if args.format == TraceFormat::Ndjson {
        for record in sim {
            let line = crate::simulator::to_ndjson_line(&record)?;
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        return Ok(());
    }
    if args.output == "-" {
        bail!("--format otlp-proto writes two files: pass --output PATH (traces), events go beside it");
    }
    let events_path = events_path(Path::new(&args.output));
    let mut events = open_output(&events_path.display().to_string())?;
    crate::simulator::write_otlp_proto(sim, &mut out, &mut events)?;
    out.flush()?;
    events.flush()?;
    eprintln!("devloom: traces in {}, alerts and deploys in {}", args.output, events_path.display());
    Ok(())
}

/// `dir/name.pb` → `dir/name.events.ndjson`.
fn events_path(traces: &Path) -> PathBuf {
    let stem = traces.file_stem().map_or_else(|| "simulated".into(), |s| s.to_string_lossy().into_owned());
    traces.with_file_name(format!("{stem}.events.ndjson"))
}
