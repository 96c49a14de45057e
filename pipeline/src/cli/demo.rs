//! `devloom demo`: plays a simulated incident through the embedded pipeline and shows
//! each impact-map version as it is published (or its JSON), then a summary; or, with
//! `--to-kafka`, writes the scenario to the Kafka input topics.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::SimArgs;
use crate::build::{self, ArchiveCommits};
use crate::config::{Config, Overrides};
use crate::core::{OutputKind, Sink};
use crate::simulator::Scenario;
use crate::sinks::JsonLines;
use crate::sinks::json_lines::OpenOnFirstWrite;
use crate::sinks::recorder::{Recorder, write_summary};
use crate::sinks::terminal::TerminalSink;
use crate::sources::simulated;

/// Flags of `devloom demo`.
#[derive(Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub sim: SimArgs,
    /// Print the ImpactMap JSON lines instead of pictures (summary goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Write the scenario to the Kafka input topics instead of running it here; then
    /// `devloom run --brokers …` turns it into impact maps on devloom.impact.
    #[arg(long)]
    pub to_kafka: bool,
    /// Kafka bootstrap servers for --to-kafka (or [kafka] brokers / DEVLOOM_KAFKA__BROKERS).
    #[arg(long)]
    pub brokers: Option<String>,
    /// Configuration file (default: $DEVLOOM_CONFIG, else built-in defaults).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// With --to-kafka: pace trace batches to this many spans per second (a fixed
    /// offered load); default as fast as possible.
    #[arg(long, requires = "to_kafka")]
    pub spans_per_s: Option<f64>,
    /// With --to-kafka: one message per trace, keyed by its trace id and partitioned by
    /// murmur2 of the key, as the Collector's Kafka exporter with
    /// `partition_traces_by_id` (what `devloom run --role pairing` needs).
    #[arg(long, requires = "to_kafka")]
    pub partition_traces_by_id: bool,
}

/// Runs the command.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let sim = args.sim.simulator()?;
    let config =
        Overrides { config: args.config.clone(), brokers: args.brokers.clone(), ..Overrides::default() }
            .load()?;
    if args.to_kafka {
        if config.kafka.brokers.is_empty() {
            anyhow::bail!("--to-kafka needs brokers: pass --brokers HOST:PORT or set [kafka] brokers");
        }
        let count = crate::simulator::to_kafka::publish_records(
            &config.kafka,
            sim,
            args.spans_per_s,
            args.partition_traces_by_id,
        )?;
        let t = &config.kafka.topics;
        eprintln!(
            "devloom: wrote {count} records of scenario {} to {}, {}, {} at {}",
            args.sim.scenario, t.traces, t.alerts, t.deploys, config.kafka.brokers
        );
        return Ok(());
    }
    let stdout = std::io::stdout();
    let dead = OpenOnFirstWrite::new(&config.output.dead_letter, config.output.append)?;
    if args.json {
        let sink = JsonLines::new()
            .with(OutputKind::Impact, Box::new(stdout))
            .with(OutputKind::DeadLetter, Box::new(dead));
        let recorder = play(&config, sim, Recorder::new(sink))?;
        write_summary(&mut std::io::stderr(), &recorder.0, &recorder.1)?;
    } else {
        let color = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none();
        let scenario = Scenario::named(&args.sim.scenario).context("unknown scenario")?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "Devloom demo · scenario {} · {}", scenario.name, scenario.description)?;
        writeln!(
            out,
            "Simulating {} minutes of event time on a 20-service shop at {} req/s, seed {}…\n",
            scenario.duration_s / 60,
            args.sim.rate,
            args.sim.seed
        )?;
        drop(out);
        let sink = (
            TerminalSink::new(stdout.lock(), color),
            JsonLines::new().with(OutputKind::DeadLetter, Box::new(dead)),
        );
        let recorder = play(&config, sim, Recorder::new(sink))?;
        write_summary(&mut std::io::stdout(), &recorder.0, &recorder.1)?;
    }
    Ok(())
}

fn play<S: Sink>(
    config: &Config,
    sim: crate::simulator::Simulator,
    sink: Recorder<S>,
) -> anyhow::Result<(Recorder<S>, crate::core::RunSummary)> {
    let mut pipeline = build::pipeline(config, sink, ArchiveCommits::OnRoll)?;
    pipeline.run(&mut simulated(sim, config.decode.options()))?;
    Ok(pipeline.finish()?)
}
