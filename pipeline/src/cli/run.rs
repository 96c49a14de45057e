//! `devloom run`: the pipeline over files, stdin or the simulator, writing outputs as
//! JSON lines; with brokers configured, the Kafka runtime instead.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, bail};
use clap::Args;

use super::{SimArgs, print_run_notes};
use crate::build::{self, ArchiveCommits};
use crate::config::{Config, Overrides};
use crate::core::{OutputKind, Source};
use crate::http;
use crate::kafka::KafkaRole;
use crate::receivers::Intake;
use crate::receivers::webhooks::Receivers;
use crate::simulator::scenario::SCENARIOS;
use crate::sinks::{JsonLines, routes};
use crate::sources::catalogs::{WithCatalogs, snapshots};
use crate::sources::file::Files;
use crate::sources::paced::Paced;
use crate::sources::received::Received;
use crate::sources::{Decoding, simulated, stdin};

/// Flags of `devloom run`.
#[derive(Args)]
pub struct RunArgs {
    /// Configuration file (default: $DEVLOOM_CONFIG, else built-in defaults).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Input files: NDJSON / JSON (any supported format, mixed) or OTLP protobuf; `-` for
    /// stdin. Files are merged in event time. Default: [input] paths, else stdin.
    #[arg(long, short, num_args = 1..)]
    pub input: Vec<String>,
    /// Run the simulator with this scenario instead of reading inputs.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(SCENARIOS), conflicts_with = "input")]
    pub simulate: Option<String>,
    /// Where impact maps go: a file, or `-` for stdout.
    #[arg(long, short)]
    pub output: Option<String>,
    /// Where undecodable input goes (JSON lines with the reason) in embedded mode.
    #[arg(long)]
    pub dead_letter: Option<PathBuf>,
    /// Append to the output and dead-letter files instead of replacing them.
    #[arg(long)]
    pub append: bool,
    /// With --simulate: the simulator's RNG seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// With --simulate: requests per second at the gateway.
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    /// Kafka bootstrap servers: consume the input topics and publish devloom.impact and
    /// devloom.deadletter instead of reading files (see [kafka] in devloom.example.toml).
    #[arg(long)]
    pub brokers: Option<String>,
    /// Do not create missing topics at start.
    #[arg(long)]
    pub no_create_topics: bool,
    /// Where the Kafka runtime keeps its checkpoint.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Archive every input event and output to this Parquet history directory.
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// Where root-cause candidate lists go (JSON lines) in embedded mode.
    #[arg(long)]
    pub candidates: Option<String>,
    /// Where remediation plans (rollback commands and diffs) go (JSON lines) in
    /// embedded mode.
    #[arg(long)]
    pub remediations: Option<String>,
    /// Where post-mortem drafts go (JSON lines, Markdown inside) in embedded mode: one
    /// when an incident closes, another when its cause is confirmed afterwards.
    #[arg(long)]
    pub postmortems: Option<String>,
    /// Where rollout decisions (canary vs stable: continue / halt / inconclusive) go
    /// (JSON lines) in embedded mode.
    #[arg(long)]
    pub rollouts: Option<String>,
    /// Score candidates with this model file (default: [scorer] model, else built in).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Serve the HTTP API here (default: [http] listen, 127.0.0.1:9464); port 0 picks a
    /// free one. The address is printed at start.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Do not serve the HTTP API.
    #[arg(long, conflicts_with = "listen")]
    pub no_http: bool,
    /// After the input ends, keep serving the HTTP API until Ctrl-C or SIGTERM.
    #[arg(long, conflicts_with_all = ["no_http", "brokers"])]
    pub serve: bool,
    /// Take input over HTTP instead of files: the webhook receivers
    /// (POST /v1/receivers/{alertmanager,pagerduty,github,argocd,cloudevents} on the API
    /// address), OTLP/HTTP (POST /v1/traces on --otlp-listen) and OTLP/gRPC (on
    /// --otlp-grpc-listen). Runs until Ctrl-C or
    /// SIGTERM, then processes everything it accepted. With --brokers, receivers produce
    /// to the input topics instead.
    #[arg(long, conflicts_with_all = ["input", "simulate", "no_http", "serve"])]
    pub receive: bool,
    /// Where OTLP/HTTP listens with --receive (default: [receivers] otlp_http_listen,
    /// 127.0.0.1:4318); port 0 picks a free one, "" turns it off.
    #[arg(long, value_name = "ADDR")]
    pub otlp_listen: Option<String>,
    /// Where OTLP/gRPC listens with --receive (default: [receivers] otlp_grpc_listen,
    /// 127.0.0.1:4317); port 0 picks a free one, "" turns it off.
    #[arg(long, value_name = "ADDR")]
    pub otlp_grpc_listen: Option<String>,
    /// Service catalog files put in force before the first input, FORMAT=PATH
    /// (backstage, pagerduty or devloom), repeatable; files of one format form one
    /// catalog (default: [catalog] paths). With --brokers, publish catalogs with
    /// `devloom catalog import` instead.
    #[arg(long, value_name = "FORMAT=PATH", conflicts_with = "brokers")]
    pub catalog: Vec<String>,
    /// Play files or the simulator in event time, this many times faster than it
    /// happened (1 = real time), instead of as fast as possible.
    #[arg(long, value_name = "FACTOR", conflicts_with = "brokers")]
    pub speed: Option<f64>,
    /// With Kafka: `all` runs everything in this one instance; scaled out, `pairing`
    /// instances share the traces partitions (consumer group <group_id>.pairing) and
    /// publish call aggregates to [kafka.topics] calls, and `graph` instances run
    /// everything after pairing from those, one active and the others standing by
    /// (README: "Scaling out").
    #[arg(long, value_enum, default_value_t = KafkaRole::All)]
    pub role: KafkaRole,
}

/// Runs the command.
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let config = Overrides {
        config: args.config,
        inputs: args.input,
        simulate: args.simulate,
        output: args.output,
        candidates: args.candidates,
        remediations: args.remediations,
        postmortems: args.postmortems,
        rollouts: args.rollouts,
        dead_letter: args.dead_letter,
        append: args.append,
        brokers: args.brokers,
        no_create_topics: args.no_create_topics,
        state_dir: args.state_dir,
        history: args.history,
        model: args.model,
        listen: args.listen,
        no_http: args.no_http,
        receive: args.receive,
        otlp_listen: args.otlp_listen,
        otlp_grpc_listen: args.otlp_grpc_listen,
        catalogs: args.catalog,
    }
    .load()?;
    if !config.kafka.brokers.is_empty() {
        if !config.catalog.paths.is_empty() {
            bail!(
                "[catalog] paths are read by embedded runs; with Kafka, publish each catalog to the catalog topic ({}): devloom catalog import FORMAT PATH --brokers {}",
                config.kafka.topics.catalog,
                config.kafka.brokers
            );
        }
        return run_kafka(&config, args.role);
    }
    if args.role != KafkaRole::All {
        bail!(
            "--role pairing and --role graph share their work through Kafka: set --brokers or [kafka] brokers"
        );
    }
    if let Some(speed) = args.speed
        && !(speed > 0.0 && speed.is_finite())
    {
        bail!("--speed must be a number above 0, got {speed}");
    }
    let sim = |scenario: &str| SimArgs { scenario: scenario.to_string(), seed: args.seed, rate: args.rate };
    let (mut source, receivers) = if config.receivers.enabled {
        if args.speed.is_some() {
            bail!("--speed paces files or the simulator; received input arrives at its own pace");
        }
        let stop = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register(signal, stop.clone()).context("installing signal handlers")?;
        }
        let (intake, queue) = Intake::embedded(&config);
        let source: Box<dyn Source> = Box::new(Received::new(queue, stop));
        (source, Some(Receivers::new(config.receivers.clone(), intake)))
    } else {
        (source(&config, sim)?, None)
    };
    if let Some(speed) = args.speed {
        source = Box::new(Paced::new(source, speed));
    }
    if !config.catalog.paths.is_empty() {
        source = Box::new(WithCatalogs::new(snapshots(&config.catalog.paths)?, source));
    }
    if args.serve && !config.http.enabled {
        bail!("--serve keeps the HTTP API up, but [http] enabled is false");
    }
    let server = http::Server::start(&config, receivers)?;
    let sink = JsonLines::from_routes(&routes(&config))?;
    let mut pipeline = build::pipeline(&config, sink, ArchiveCommits::OnRoll)?;
    if let Some(server) = &server {
        eprintln!("devloom: HTTP API on http://{}", server.addr());
        if config.receivers.enabled {
            crate::receivers::print_addresses(server);
        }
        pipeline = server.attach(pipeline);
    }
    pipeline.run(source.as_mut())?;
    let (_, summary) = pipeline.finish()?;
    let e = &summary.engine;
    let dead_path =
        routes(&config).into_iter().find(|r| r.kind == OutputKind::DeadLetter).and_then(|r| r.file);
    eprintln!(
        "devloom: {} records, {} spans, {} alerts, {} deploys → {} impact-map versions, {} candidate lists, {} remediation plans, {} post-mortem drafts, {} rollout decisions; {} dead letters{}",
        summary.records,
        e.spans,
        e.alerts,
        e.deploys,
        e.impact_maps,
        e.candidate_lists,
        e.remediation_plans,
        e.postmortems,
        e.rollout_decisions,
        summary.dead_letters,
        match dead_path {
            Some(path) if summary.dead_letters > 0 => format!(" (in {path})"),
            _ => String::new(),
        }
    );
    print_run_notes(&summary);
    if let Some(server) = server.as_ref().filter(|_| args.serve) {
        server.serve_until_signalled()?;
    }
    if summary.records > 0 && summary.dead_letters == summary.records {
        bail!(
            "every record ({}) was a dead letter: the input is in no format Devloom reads (OTLP JSON or \
             protobuf, Alertmanager, PagerDuty, Argo CD, GitHub, CloudEvents, Devloom JSON); the reasons are in \
             the dead-letter file",
            summary.records
        );
    }
    Ok(())
}

/// The embedded source `[input]` names: the simulator, stdin, or files.
fn source(config: &Config, sim: impl Fn(&str) -> SimArgs) -> anyhow::Result<Box<dyn Source>> {
    let input = &config.input;
    let opts = config.decode.options();
    if let Some(scenario) = &input.simulate {
        return Ok(Box::new(simulated(sim(scenario).simulator()?, opts)));
    }
    if input.paths.is_empty() || input.paths == ["-"] {
        if std::io::stdin().is_terminal() {
            eprintln!("reading NDJSON from stdin (Ctrl-D ends); pass --input PATH to read files");
        }
        return Ok(Box::new(Decoding::start(stdin::records(opts.max_record_bytes), opts)));
    }
    if input.paths.iter().any(|p| p == "-") {
        bail!("`-` (stdin) cannot be mixed with files; run it separately");
    }
    Ok(Box::new(Files::open(&input.paths, &opts)?))
}

fn run_kafka(config: &Config, role: KafkaRole) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone()).context("installing signal handlers")?;
    }
    if role == KafkaRole::Pairing {
        let s = crate::kafka::pairing::run(config, &stop)?;
        eprintln!(
            "devloom: stopped after {} traces messages, {} spans → {} hand-on records with {} call aggregates; {} spans sent to the partition of the trace they link into; {} dead letters",
            s.messages, s.spans, s.hand_ons, s.aggregates, s.links, s.dead_letters
        );
        if s.misplaced_spans > 0 {
            eprintln!(
                "devloom: {} spans were on a partition their trace id does not hash to: their traces show up on two partitions and may go unpaired (set partition_traces_by_id in the Collector's Kafka exporter)",
                s.misplaced_spans
            );
        }
        return Ok(());
    }
    let k = &config.kafka;
    let mut inputs: Vec<String> = crate::kafka::input_topics(k).into_iter().map(|(t, _)| t).collect();
    if role == KafkaRole::Graph {
        // The traces arrive as the pairing instances' records.
        inputs.retain(|t| *t != k.topics.traces && *t != k.topics.otlp_spans);
        inputs.push(k.topics.calls.clone());
    }
    eprintln!(
        "devloom: consuming {} from {} (group {}), publishing {}; Ctrl-C or SIGTERM stops after a checkpoint",
        inputs.join(", "),
        config.kafka.brokers,
        config.kafka.group_id,
        config.kafka.topics.impact
    );
    let Some(summary) = crate::kafka::run(config, &stop, role)? else {
        eprintln!("devloom: stopped while standing by");
        return Ok(());
    };
    let e = &summary.engine;
    eprintln!(
        "devloom: stopped after {} messages, {} spans, {} alerts, {} deploys → {} impact-map versions; {} dead letters",
        summary.records, e.spans, e.alerts, e.deploys, e.impact_maps, summary.dead_letters
    );
    print_run_notes(&summary);
    Ok(())
}
