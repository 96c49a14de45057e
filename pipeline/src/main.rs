//! The `devloom` command.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use devloom::config::{self, Config};
use devloom::demo::{Recorder, write_summary};
use devloom::embedded::{Pipeline, RunSummary, run_batch, run_stream};
use devloom::input::{RawRecord, read_file, stdin_records};
use devloom::output::{DeadLetterFile, ImpactSink, JsonLines, open_output};
use devloom::render::TerminalSink;
use devloom::simulator::scenario::SCENARIOS;
use devloom::simulator::{SimConfig, Simulator};

/// Devloom: incident context from your traces, alerts and deploys, within a second of
/// the alert. Impact maps (blast radius: red, amber, gray services) as JSON lines.
#[derive(Parser)]
#[command(name = "devloom", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Play a simulated incident through the pipeline and show each impact-map version.
    Demo(DemoArgs),
    /// Run the pipeline over files, stdin or the simulator; write impact maps as JSON lines.
    Run(RunArgs),
    /// Write a simulated scenario as NDJSON (OTLP JSON traces, Alertmanager alerts, deploys).
    Simulate(SimulateArgs),
    /// Check a configuration file (and DEVLOOM_* overrides) without running anything.
    Validate {
        /// The TOML file (default: $DEVLOOM_CONFIG, else built-in defaults).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(Args)]
struct SimArgs {
    /// Scenario: regression (contained), db-latency (spreading), async-consumer, steady.
    #[arg(long, short, default_value = "regression", value_parser = clap::builder::PossibleValuesParser::new(SCENARIOS))]
    scenario: String,
    /// RNG seed: the same seed gives the same events.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Requests per second at the gateway (each touches ~10–20 spans).
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
}

#[derive(Args)]
struct DemoArgs {
    #[command(flatten)]
    sim: SimArgs,
    /// Print the ImpactMap JSON lines instead of pictures (summary goes to stderr).
    #[arg(long)]
    json: bool,
    /// Write the scenario to the Kafka input topics instead of running it here; then
    /// `devloom run --brokers …` turns it into impact maps on devloom.impact.
    #[arg(long, requires = "brokers")]
    to_kafka: bool,
    /// Kafka bootstrap servers for --to-kafka (or [kafka] brokers / DEVLOOM_KAFKA__BROKERS).
    #[arg(long)]
    brokers: Option<String>,
    /// With --to-kafka: pace trace batches to this many spans per second (a fixed
    /// offered load); default as fast as possible.
    #[arg(long, requires = "to_kafka")]
    spans_per_s: Option<f64>,
}

#[derive(Args)]
struct RunArgs {
    /// Configuration file (default: $DEVLOOM_CONFIG, else built-in defaults).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Input files: NDJSON / JSON (any supported format, mixed) or OTLP protobuf; `-` for
    /// stdin. Files are merged in event time. Default: [input] paths, else stdin.
    #[arg(long, short, num_args = 1..)]
    input: Vec<String>,
    /// Run the simulator with this scenario instead of reading inputs.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(SCENARIOS), conflicts_with = "input")]
    simulate: Option<String>,
    /// Where impact maps go: a file, or `-` for stdout.
    #[arg(long, short)]
    output: Option<String>,
    /// Where undecodable input goes (JSON lines with the reason) in embedded mode.
    #[arg(long)]
    dead_letter: Option<PathBuf>,
    /// Kafka bootstrap servers: consume the input topics and publish devloom.impact and
    /// devloom.deadletter instead of reading files (see [kafka] in devloom.example.toml).
    #[arg(long)]
    brokers: Option<String>,
    /// Do not create missing topics at start.
    #[arg(long)]
    no_create_topics: bool,
    /// Where the Kafka runtime keeps its checkpoint.
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

#[derive(Args)]
struct SimulateArgs {
    #[command(flatten)]
    sim: SimArgs,
    /// Where to write the NDJSON (`-` for stdout).
    #[arg(long, short, default_value = "-")]
    output: String,
}

fn main() -> ExitCode {
    let filter = std::env::var("DEVLOOM_LOG").unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .init();
    match dispatch(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Demo(args) => demo(args),
        Command::Run(args) => run(args),
        Command::Simulate(args) => simulate(args),
        Command::Validate { config } => {
            let path = config_path(config);
            let config = config::load(path.as_deref(), std::env::vars())?;
            let shown = path.map_or_else(|| "defaults".to_string(), |p| p.display().to_string());
            println!("{shown}: ok");
            println!("{}", toml::to_string(&config).context("rendering the effective config")?);
            Ok(())
        }
    }
}

fn config_path(flag: Option<PathBuf>) -> Option<PathBuf> {
    flag.or_else(|| std::env::var_os("DEVLOOM_CONFIG").map(PathBuf::from))
}

fn simulator(args: &SimArgs) -> anyhow::Result<Simulator> {
    if !(args.rate > 0.0 && args.rate.is_finite()) {
        bail!("--rate must be a positive number of requests per second, got {}", args.rate);
    }
    let config = SimConfig { seed: args.seed, rate_per_s: args.rate, ..SimConfig::default() };
    Simulator::shop(&args.scenario, config).with_context(|| format!("unknown scenario {}", args.scenario))
}

fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let sim = simulator(&args.sim)?;
    let mut config = config::load(config_path(None).as_deref(), std::env::vars())?;
    if args.to_kafka {
        if let Some(b) = args.brokers {
            config.kafka.brokers = b;
        }
        let count = devloom::kafka::publish_records(&config.kafka, sim, args.spans_per_s)?;
        let t = &config.kafka.topics;
        eprintln!(
            "devloom: wrote {count} records of scenario {} to {}, {}, {} at {}",
            args.sim.scenario, t.traces, t.alerts, t.deploys, config.kafka.brokers
        );
        return Ok(());
    }
    let stdout = std::io::stdout();
    let color = !args.json && stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let dead = DeadLetterFile::new(&config.output.dead_letter);
    let opts = config.decode.options();
    let records = sim.map(|r| Ok(RawRecord::from(r)));
    if args.json {
        let (recorder, summary) =
            play(records, Recorder::new(JsonLines(stdout.lock())), config, dead, &opts)?;
        write_summary(&mut std::io::stderr(), &recorder, &summary)?;
    } else {
        let scenario = devloom::simulator::Scenario::named(&args.sim.scenario).context("unknown scenario")?;
        println!("Devloom demo · scenario {} · {}", scenario.name, scenario.description);
        println!(
            "Simulating {} minutes of event time on a 20-service shop at {} req/s, seed {}…\n",
            scenario.duration_s / 60,
            args.sim.rate,
            args.sim.seed
        );
        let sink = Recorder::new(TerminalSink::new(stdout.lock(), color));
        let (recorder, summary) = play(records, sink, config, dead, &opts)?;
        write_summary(&mut std::io::stdout(), &recorder, &summary)?;
    }
    Ok(())
}

fn play<S: ImpactSink>(
    records: impl Iterator<Item = std::io::Result<RawRecord>> + Send,
    sink: Recorder<S>,
    config: Config,
    dead: DeadLetterFile,
    opts: &devloom_schemas::codec::DecodeOptions,
) -> anyhow::Result<(Recorder<S>, RunSummary)> {
    let mut pipeline = Pipeline::new(config.engine, sink, dead);
    run_stream(records, opts, &mut pipeline)?;
    Ok(pipeline.finish()?)
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut config = config::load(config_path(args.config).as_deref(), std::env::vars())?;
    if !args.input.is_empty() {
        config.input.paths = args.input;
    }
    if args.simulate.is_some() {
        config.input.simulate = args.simulate;
    }
    if let Some(o) = args.output {
        config.output.path = o;
    }
    if let Some(d) = args.dead_letter {
        config.output.dead_letter = d;
    }
    if let Some(b) = args.brokers {
        config.kafka.brokers = b;
    }
    if args.no_create_topics {
        config.kafka.create_topics = false;
    }
    if let Some(s) = args.state_dir {
        config.checkpoint.state_dir = s;
    }
    if !config.kafka.brokers.is_empty() {
        return run_kafka(&config);
    }
    let opts = config.decode.options();
    let sink = JsonLines(open_output(&config.output.path)?);
    let dead = DeadLetterFile::new(&config.output.dead_letter);
    let dead_path = dead.path().display().to_string();
    let input = config.input.clone();
    let mut pipeline = Pipeline::new(config.engine, sink, dead);
    if let Some(scenario) = &input.simulate {
        let sim = simulator(&SimArgs { scenario: scenario.clone(), seed: 42, rate: 50.0 })?;
        run_stream(sim.map(|r| Ok(RawRecord::from(r))), &opts, &mut pipeline)?;
    } else if input.paths.is_empty() || input.paths == ["-"] {
        if std::io::stdin().is_terminal() {
            eprintln!("reading NDJSON from stdin (Ctrl-D ends); pass --input PATH to read files");
        }
        run_stream(stdin_records(), &opts, &mut pipeline)?;
    } else {
        let mut records = Vec::new();
        for path in &input.paths {
            if path == "-" {
                bail!("`-` (stdin) cannot be mixed with files; run it separately");
            }
            records.extend(read_file(std::path::Path::new(path))?);
        }
        run_batch(records, &opts, &mut pipeline)?;
    }
    let (_, summary) = pipeline.finish()?;
    let e = &summary.engine;
    eprintln!(
        "devloom: {} records, {} spans, {} alerts, {} deploys → {} impact-map versions; {} dead letters{}",
        summary.records,
        e.spans,
        e.alerts,
        e.deploys,
        e.impact_maps,
        summary.dead_letters,
        if summary.dead_letters > 0 { format!(" (in {dead_path})") } else { String::new() }
    );
    if let Some(l) = summary.latency {
        eprintln!(
            "devloom: alert → map latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            l.p50_ms, l.p99_ms, l.max_ms
        );
    }
    Ok(())
}

fn run_kafka(config: &Config) -> anyhow::Result<()> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone()).context("installing signal handlers")?;
    }
    eprintln!(
        "devloom: consuming {} from {} (group {}), publishing {}; Ctrl-C or SIGTERM stops after a checkpoint",
        devloom::kafka::input_topics(&config.kafka)
            .iter()
            .map(|(t, _)| t.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        config.kafka.brokers,
        config.kafka.group_id,
        config.kafka.topics.impact
    );
    let summary = devloom::kafka::run(config, &stop)?;
    let e = &summary.engine;
    eprintln!(
        "devloom: stopped after {} messages, {} spans, {} alerts, {} deploys → {} impact-map versions; {} dead letters",
        summary.records, e.spans, e.alerts, e.deploys, e.impact_maps, summary.dead_letters
    );
    if let Some(l) = summary.latency {
        eprintln!(
            "devloom: alert → map latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            l.p50_ms, l.p99_ms, l.max_ms
        );
    }
    Ok(())
}

fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    let sim = simulator(&args.sim)?;
    let mut out = open_output(&args.output)?;
    for record in sim {
        let line = devloom::simulator::to_ndjson_line(&record)?;
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}
