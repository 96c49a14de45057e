//! The `devloom` command.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use devloom::config::{self, Config};
use devloom::demo::{Recorder, write_summary};
use devloom::embedded::{Pipeline, RunSummary, run_batch, run_stream};
use devloom::history::query::QueryFormat;
use devloom::history::replay::Selection;
use devloom::history::{ArchiveConfig, ArchiveWriter};
use devloom::input::{RawRecord, read_file, stdin_records};
use devloom::output::{DeadLetterFile, JsonLines, OutputSink, open_output};
use devloom::render::TerminalSink;
use devloom::scoring::attach;
use devloom::simulator::history::HistorySimConfig;
use devloom::simulator::scenario::SCENARIOS;
use devloom::simulator::{SimConfig, Simulator};
use devloom::training::FeatureSet;
use devloom_schemas::time::parse_rfc3339;

// glibc's allocator spends a third of replay time on spans allocated on the reader
// thread and freed on the operator thread; mimalloc handles that pattern well.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Replay the history archive through the same operators: a replay of a live run's
    /// archive reproduces its impact maps exactly (wall-clock stamps aside).
    Replay(ReplayArgs),
    /// Query the history archive with SQL, import files into one, or simulate labelled
    /// incident history.
    #[command(subcommand)]
    History(HistoryCommand),
    /// Train the root-cause scorer on a history archive with confirmed causes.
    Train(TrainArgs),
    /// Measure a model on held-out incidents beside the same model without time features.
    Evaluate(EvaluateArgs),
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
    /// Archive every input event and output to this Parquet history directory.
    #[arg(long)]
    history: Option<PathBuf>,
    /// Where root-cause candidate lists go (JSON lines) in embedded mode.
    #[arg(long)]
    candidates: Option<String>,
    /// Score candidates with this model file (default: [scorer] model, else built in).
    #[arg(long)]
    model: Option<PathBuf>,
}

#[derive(Args)]
struct ReplayArgs {
    /// Configuration file (engine settings; [kafka] for --brokers).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// The history archive (default: [history] dir).
    #[arg(long)]
    history: Option<PathBuf>,
    /// Only events at or after this event time (RFC 3339, e.g. 2026-11-27T09:00:00Z).
    #[arg(long)]
    from: Option<String>,
    /// Only events before this event time (RFC 3339).
    #[arg(long)]
    to: Option<String>,
    /// Only these services: their alerts and deploys, and the traces that touch them.
    #[arg(long, value_delimiter = ',')]
    services: Vec<String>,
    /// An SQL predicate applied to the spans, alerts and deploys tables; columns all
    /// three have: seq, time, date, service. Example: "service <> 'load-generator'".
    #[arg(long = "where")]
    filter: Option<String>,
    /// Where impact maps go: a file, or `-` for stdout (default: [output] path).
    #[arg(long, short)]
    output: Option<String>,
    /// Where candidate lists go (JSON lines).
    #[arg(long, conflicts_with = "brokers")]
    candidates: Option<String>,
    /// Score candidates with this model file (default: [scorer] model, else built in).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Publish impact maps and candidate lists to the Kafka topics at these brokers.
    #[arg(long, conflicts_with = "output")]
    brokers: Option<String>,
}

#[derive(Subcommand)]
enum HistoryCommand {
    /// Run SQL over the archive: tables spans, alerts, deploys, impact, candidates,
    /// causes (each with seq, time, date and the record's fields).
    Query(QueryArgs),
    /// Turn NDJSON / JSON / OTLP protobuf files into an archive (merged in event time as
    /// `devloom run --input` would read them).
    Import(ImportArgs),
    /// Write simulated incidents with known root causes (alerts, changes, candidate
    /// lists with features, confirmed causes) into an archive, for training.
    Simulate(HistorySimulateArgs),
    /// Record which candidate caused a resolved incident: the label `devloom train`
    /// learns from. Confirming again replaces the earlier label.
    Confirm(ConfirmArgs),
}

#[derive(Args)]
struct ConfirmArgs {
    /// The incident id (`incident_id` of its impact maps and candidate lists).
    incident: String,
    /// The key of the candidate that caused it, as in its candidate list (for example
    /// `deploy:checkout@v42` or `dependency:postgres`).
    cause: String,
    /// Record a cause that is not among the incident's candidates (counted as a miss).
    #[arg(long)]
    unlisted: bool,
    /// When the cause was confirmed, RFC 3339 (default: now).
    #[arg(long)]
    at: Option<String>,
    /// The history archive (default: [history] dir). Not while a run is writing it.
    #[arg(long)]
    history: Option<PathBuf>,
    /// Configuration file ([history]).
    #[arg(long, short)]
    config: Option<PathBuf>,
}

#[derive(Args)]
struct HistorySimulateArgs {
    /// The history archive to write (created if missing).
    #[arg(long)]
    history: PathBuf,
    /// Incidents to simulate.
    #[arg(long, default_value_t = 5000)]
    incidents: usize,
    /// RNG seed: the same seed gives the same history.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

#[derive(Args)]
struct TrainArgs {
    /// History archive with candidate lists and confirmed causes.
    #[arg(long)]
    history: PathBuf,
    /// Where to write the model (JSON).
    #[arg(long)]
    out: PathBuf,
    /// Seed of the train / calibration / test split.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Leave out the time-of-day and day-of-week features (the ablation).
    #[arg(long)]
    without_time: bool,
}

#[derive(Args)]
struct EvaluateArgs {
    /// The model file.
    #[arg(long)]
    model: PathBuf,
    /// History archive with candidate lists and confirmed causes.
    #[arg(long)]
    history: PathBuf,
    /// Where to write the reliability diagram.
    #[arg(long, default_value = "reliability.svg")]
    svg: PathBuf,
}

#[derive(Args)]
struct QueryArgs {
    /// The SQL, e.g. "SELECT service, count(*) FROM spans GROUP BY service ORDER BY 2 DESC".
    sql: String,
    /// The history archive (default: [history] dir).
    #[arg(long)]
    history: Option<PathBuf>,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "table")]
    format: QueryFormat,
    /// Configuration file (for [history] dir).
    #[arg(long, short)]
    config: Option<PathBuf>,
}

#[derive(Args)]
struct ImportArgs {
    /// Files to import.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// The history archive to write (created if missing; default: [history] dir).
    #[arg(long)]
    history: Option<PathBuf>,
    /// Where undecodable records go (JSON lines with the reason).
    #[arg(long)]
    dead_letter: Option<PathBuf>,
    /// Configuration file ([history], [decode]).
    #[arg(long, short)]
    config: Option<PathBuf>,
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
        Command::Replay(args) => replay(args),
        Command::History(HistoryCommand::Query(args)) => query(args),
        Command::History(HistoryCommand::Import(args)) => import(args),
        Command::History(HistoryCommand::Simulate(args)) => simulate_history(args),
        Command::History(HistoryCommand::Confirm(args)) => confirm(args),
        Command::Train(args) => train(args),
        Command::Evaluate(args) => evaluate(args),
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
            play(records, Recorder::new(JsonLines::new(stdout.lock())), config, dead, &opts)?;
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

fn play<S: OutputSink>(
    records: impl Iterator<Item = std::io::Result<RawRecord>> + Send,
    sink: Recorder<S>,
    config: Config,
    dead: DeadLetterFile,
    opts: &devloom_schemas::codec::DecodeOptions,
) -> anyhow::Result<(Recorder<S>, RunSummary)> {
    let mut pipeline = attach(Pipeline::new(config.engine.clone(), sink, dead), &config)?;
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
    if args.history.is_some() {
        config.history.dir = args.history;
    }
    if args.model.is_some() {
        config.scorer.model = args.model;
    }
    if !config.kafka.brokers.is_empty() {
        return run_kafka(&config);
    }
    let opts = config.decode.options();
    let mut sink = JsonLines::new(open_output(&config.output.path)?);
    if let Some(path) = &args.candidates {
        sink = sink.with_candidates(open_output(path)?);
    }
    let dead = DeadLetterFile::new(&config.output.dead_letter);
    let dead_path = dead.path().display().to_string();
    let input = config.input.clone();
    let mut pipeline = attach(Pipeline::new(config.engine.clone(), sink, dead), &config)?;
    if let Some(archive) = config.history.archive() {
        pipeline = pipeline.with_archive(ArchiveWriter::open(archive, None, true)?);
    }
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
        "devloom: {} records, {} spans, {} alerts, {} deploys → {} impact-map versions, {} candidate lists; {} dead letters{}",
        summary.records,
        e.spans,
        e.alerts,
        e.deploys,
        e.impact_maps,
        e.candidate_lists,
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

/// The archive directory: the flag, else `[history] dir`.
fn history_dir(flag: Option<PathBuf>, config: &Config) -> anyhow::Result<PathBuf> {
    flag.or_else(|| config.history.dir.clone())
        .context("no history archive given: pass --history DIR (or set [history] dir)")
}

/// The configuration and the archive a command writes: `--history` or `[history] dir`.
fn archive_to_write(
    config: Option<PathBuf>,
    history: Option<PathBuf>,
) -> anyhow::Result<(Config, ArchiveConfig)> {
    let mut config = config::load(config_path(config).as_deref(), std::env::vars())?;
    config.history.dir = Some(history_dir(history, &config)?);
    let archive = config.history.archive().context("history dir set above")?;
    Ok((config, archive))
}

fn parse_time(flag: &str, text: Option<&str>) -> anyhow::Result<Option<u64>> {
    text.map(|t| {
        parse_rfc3339(t)
            .map_err(|e| anyhow::anyhow!("{flag} {t:?}: {e} (expected RFC 3339, e.g. 2026-11-27T09:00:00Z)"))
    })
    .transpose()
}

fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let mut config = config::load(config_path(args.config).as_deref(), std::env::vars())?;
    let dir = history_dir(args.history, &config)?;
    if args.model.is_some() {
        config.scorer.model = args.model;
    }
    let selection = Selection {
        from_ns: parse_time("--from", args.from.as_deref())?,
        to_ns: parse_time("--to", args.to.as_deref())?,
        services: args.services,
        filter: args.filter,
    };
    let progress = std::io::stderr().is_terminal();
    let dead = DeadLetterFile::new(&config.output.dead_letter);
    let (stats, maps) = if let Some(brokers) = args.brokers {
        config.kafka.brokers = brokers;
        let sink = devloom::kafka::OutputTopics::open(&config.kafka)?;
        let mut pipeline = attach(Pipeline::new(config.engine.clone(), sink, dead), &config)?;
        let stats = devloom::history::replay::replay(&dir, &selection, &mut pipeline, progress)?;
        let (sink, summary) = pipeline.finish()?;
        sink.flush()?;
        (stats, summary.engine.impact_maps)
    } else {
        let output = args.output.clone().unwrap_or(config.output.path.clone());
        let mut sink = JsonLines::new(open_output(&output)?);
        if let Some(path) = &args.candidates {
            sink = sink.with_candidates(open_output(path)?);
        }
        let mut pipeline = attach(Pipeline::new(config.engine.clone(), sink, dead), &config)?;
        let stats = devloom::history::replay::replay(&dir, &selection, &mut pipeline, progress)?;
        (stats, pipeline.finish()?.1.engine.impact_maps)
    };
    eprintln!(
        "devloom: replayed {} events ({} spans) from {} in {:.2} s ({:.0} events/s) → {maps} impact-map versions",
        stats.events,
        stats.spans,
        dir.display(),
        stats.elapsed.as_secs_f64(),
        stats.events_per_s()
    );
    Ok(())
}

fn query(args: QueryArgs) -> anyhow::Result<()> {
    let config = config::load(config_path(args.config).as_deref(), std::env::vars())?;
    let dir = history_dir(args.history, &config)?;
    let stdout = std::io::stdout();
    let rows = devloom::history::query::query(&dir, &args.sql, args.format, &mut stdout.lock())?;
    if args.format == QueryFormat::Table {
        eprintln!("({rows} rows)");
    }
    Ok(())
}

fn import(args: ImportArgs) -> anyhow::Result<()> {
    let (config, archive) = archive_to_write(args.config, args.history)?;
    let dir = archive.dir.clone();
    let progress = std::io::stderr().is_terminal();
    let stats = devloom::history::import::import(&args.paths, archive, &config.decode.options(), progress)?;
    let dead_path = args.dead_letter.unwrap_or(config.output.dead_letter);
    let mut dead = DeadLetterFile::new(&dead_path);
    for d in &stats.dead_letters {
        dead.write(d)?;
    }
    eprintln!(
        "devloom: imported {} events from {} files into {} in {:.2} s ({:.0} events/s); {} dead letters{}",
        stats.events,
        args.paths.len(),
        dir.display(),
        stats.elapsed.as_secs_f64(),
        stats.events as f64 / stats.elapsed.as_secs_f64().max(1e-9),
        stats.dead_letters.len(),
        if stats.dead_letters.is_empty() { String::new() } else { format!(" (in {})", dead_path.display()) }
    );
    Ok(())
}

fn confirm(args: ConfirmArgs) -> anyhow::Result<()> {
    let (_, archive) = archive_to_write(args.config, args.history)?;
    let dir = archive.dir.clone();
    let time_ns = parse_time("--at", args.at.as_deref())?.unwrap_or_else(devloom::latency::wall_clock_ns);
    let cause =
        devloom_schemas::ConfirmedCause { incident_id: args.incident, candidate: args.cause, time_ns };
    devloom::history::labels::confirm(archive, &cause, args.unlisted)?;
    eprintln!(
        "devloom: confirmed {:?} as the cause of incident {:?} in {}",
        cause.candidate,
        cause.incident_id,
        dir.display()
    );
    Ok(())
}

fn simulate_history(args: HistorySimulateArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let config =
        HistorySimConfig { incidents: args.incidents, seed: args.seed, ..HistorySimConfig::default() };
    let incidents = devloom::simulator::history::generate(&config);
    let archive = ArchiveConfig {
        dir: args.history.clone(),
        max_file_bytes: 128 << 20,
        max_file_age: std::time::Duration::from_secs(3600),
    };
    let mut writer = ArchiveWriter::open(archive, None, false)?;
    for incident in &incidents {
        for change in &incident.changes {
            writer.append_event(&devloom_schemas::Event::Deploy(change.clone()))?;
        }
        writer.append_event(&devloom_schemas::Event::Alert(incident.alerts[0].clone()))?;
        writer.append_candidates(&incident.candidates)?;
        writer.append_event(&devloom_schemas::Event::Alert(incident.alerts[1].clone()))?;
        writer.append_cause(&incident.cause)?;
    }
    writer.checkpoint()?;
    eprintln!(
        "devloom: simulated {} labelled incidents (seed {}) into {} in {:.2} s",
        incidents.len(),
        args.seed,
        args.history.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn train(args: TrainArgs) -> anyhow::Result<()> {
    let samples = devloom::training::load(&args.history)?;
    let features = if args.without_time { FeatureSet::WithoutTime } else { FeatureSet::Full };
    let model = devloom::training::train(&samples, args.seed, features)?;
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

fn evaluate(args: EvaluateArgs) -> anyhow::Result<()> {
    let model = devloom::scoring::read_model(&args.model)?;
    let samples = devloom::training::load(&args.history)?;
    let evaluation = devloom::evaluation::evaluate(&model, &samples)?;
    std::fs::write(&args.svg, devloom::evaluation::reliability_svg(&evaluation))
        .with_context(|| format!("writing {}", args.svg.display()))?;
    let mut out = std::io::stdout().lock();
    write!(out, "{}", devloom::evaluation::report(&evaluation))?;
    writeln!(out, "\nreliability diagram: {}", args.svg.display())?;
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
