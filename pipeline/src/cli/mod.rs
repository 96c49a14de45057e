//! The `devloom` commands, one file each; `main.rs` parses and dispatches. What the
//! commands share: reading the simulator flags, the archive a command uses, RFC 3339
//! flags, and the run summary line.

pub mod catalog;
pub mod demo;
pub mod docs;
pub mod fault_cases;
pub mod gate;
pub mod history;
pub mod learning;
pub mod postmortem;
pub mod remediation;
pub mod replay;
pub mod run;
pub mod simulate;
pub mod validate;
pub mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use std::io::IsTerminal;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use devloom_schemas::time::parse_rfc3339;

use crate::config::{Config, Overrides};
use crate::core::RunSummary;
use crate::history::ArchiveConfig;
use crate::simulator::scenario::SCENARIOS;
use crate::simulator::{SimConfig, Simulator};

/// Devloom: incident context from your traces, alerts and deploys, within a second of
/// the alert. Impact maps (blast radius: red, amber, gray services) as JSON lines.
#[derive(Parser)]
#[command(name = "devloom", version, about, long_about = None)]
pub struct Cli {
    /// How log lines on stderr look (the level comes from DEVLOOM_LOG, e.g. `info`).
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// Log line formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable; coloured on a terminal.
    Text,
    /// One JSON object per line (for log shippers).
    Json,
}

/// The commands.
#[derive(Subcommand)]
pub enum Command {
    /// Play a simulated incident through the pipeline and show each impact-map version.
    Demo(demo::DemoArgs),
    /// Run the pipeline over files, stdin or the simulator; write impact maps as JSON lines.
    Run(run::RunArgs),
    /// Write a simulated scenario as NDJSON (OTLP JSON traces, Alertmanager alerts, deploys).
    Simulate(simulate::SimulateArgs),
    /// Replay the history archive through the same operators: a replay of a live run's
    /// archive reproduces its impact maps exactly (wall-clock stamps aside).
    Replay(replay::ReplayArgs),
    /// Query the history archive with SQL, import files into one, or simulate labelled
    /// incident history.
    #[command(subcommand)]
    History(history::HistoryCommand),
    /// Show the remediation plan of an archived incident: rollback commands and the
    /// diff of what they would change.
    #[command(subcommand)]
    Remediation(remediation::RemediationCommand),
    /// The post-mortem draft of an archived incident (Markdown or JSON), the closed
    /// incidents (`list`), or the built-in template (`template`).
    Postmortem(postmortem::PostmortemArgs),
    /// Train the root-cause scorer on a history archive with confirmed causes.
    Train(learning::TrainArgs),
    /// Measure a model on held-out incidents beside the same model without time features,
    /// or the whole pipeline on labelled cases (detection, AC@1, AC@3 per fault and style).
    Evaluate(learning::EvaluateArgs),
    /// Write labelled fault-injection cases (CPU, memory, network, exception, wrong
    /// return, dependency down; four trace styles) for `evaluate --cases` and
    /// `train --cases`.
    FaultCases(fault_cases::FaultCasesArgs),
    /// Deployment gate for CI: pass / warn / block for shipping a service now (exit 0,
    /// 0, 1; 2 when it cannot be asked), from a running Devloom or a history archive.
    Gate(gate::GateArgs),
    /// Service catalogs: import Backstage, PagerDuty or Devloom catalogs (declared
    /// dependencies, critical or optional, owners), check their names against traced
    /// services, and list drift between declared and observed edges.
    #[command(subcommand)]
    Catalog(catalog::CatalogCommand),
    /// Check a configuration file (and DEVLOOM_* overrides) without running anything.
    Validate(validate::ValidateArgs),
    /// Draw impact maps, candidate lists, remediation plans and rollout decisions from
    /// their Kafka topics or a JSON-lines file as they arrive, as the demo does.
    Watch(watch::WatchArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(docs::CompletionsArgs),
    /// Print the man page (roff), e.g. `devloom man > devloom.1`.
    Man,
}

/// Runs a command; its exit status (`gate`'s is its decision).
pub fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    let done = |r: anyhow::Result<()>| r.map(|()| ExitCode::SUCCESS);
    match command {
        Command::Demo(args) => done(demo::run(args)),
        Command::Run(args) => done(run::run(args)),
        Command::Simulate(args) => done(simulate::run(args)),
        Command::Replay(args) => done(replay::run(args)),
        Command::History(command) => done(history::run(command)),
        Command::Remediation(command) => done(remediation::run(command)),
        Command::Postmortem(args) => done(postmortem::run(args)),
        Command::Train(args) => done(learning::train(args)),
        Command::Evaluate(args) => done(learning::evaluate(args)),
        Command::FaultCases(args) => done(fault_cases::run(args)),
        Command::Validate(args) => done(validate::run(args)),
        Command::Gate(args) => Ok(gate::run(args)),
        Command::Catalog(command) => done(catalog::run(command)),
        Command::Watch(args) => done(watch::run(args)),
        Command::Completions(args) => done(docs::completions(args)),
        Command::Man => done(docs::man()),
    }
}

/// Logs to stderr at the level of `DEVLOOM_LOG` (default `warn`): text, coloured only on
/// a terminal without `NO_COLOR`, or JSON lines.
pub fn init_logging(format: LogFormat) {
    let filter = std::env::var("DEVLOOM_LOG").unwrap_or_else(|_| "warn".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The simulator's flags.
#[derive(Args, Clone, Debug)]
pub struct SimArgs {
    /// Scenario: regression (contained), db-latency (spreading), async-consumer, canary
    /// (a staged rollout that halts), steady.
    #[arg(long, short, default_value = "regression", value_parser = clap::builder::PossibleValuesParser::new(SCENARIOS))]
    pub scenario: String,
    /// RNG seed: the same seed gives the same events.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Requests per second at the gateway (each touches ~10–20 spans).
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
}

impl SimArgs {
    /// The simulator these flags describe.
    pub fn simulator(&self) -> anyhow::Result<Simulator> {
        if !(self.rate > 0.0 && self.rate.is_finite()) {
            anyhow::bail!("--rate must be a positive number of requests per second, got {}", self.rate);
        }
        let config = SimConfig { seed: self.seed, rate_per_s: self.rate, ..SimConfig::default() };
        Simulator::shop(&self.scenario, config).with_context(|| format!("unknown scenario {}", self.scenario))
    }
}

/// The archive directory: the flag, else `[history] dir`.
pub fn history_dir(flag: Option<PathBuf>, config: &Config) -> anyhow::Result<PathBuf> {
    flag.or_else(|| config.history.dir.clone())
        .context("no history archive given: pass --history DIR (or set [history] dir)")
}

/// The configuration and the archive a command writes: `--history` or `[history] dir`.
pub fn archive_to_write(overrides: Overrides) -> anyhow::Result<(Config, ArchiveConfig)> {
    let flag = overrides.history.clone();
    let mut config = overrides.load()?;
    config.history.dir = Some(history_dir(flag, &config)?);
    let archive = config.history.archive().context("history dir set above")?;
    Ok((config, archive))
}

/// An optional RFC 3339 flag as nanoseconds since the epoch.
pub fn parse_time(flag: &str, text: Option<&str>) -> anyhow::Result<Option<u64>> {
    text.map(|t| {
        parse_rfc3339(t)
            .map_err(|e| anyhow::anyhow!("{flag} {t:?}: {e} (expected RFC 3339, e.g. 2026-11-27T09:00:00Z)"))
    })
    .transpose()
}

/// Prints the latency line of a run, when an alert produced a map, and what it (and, for
/// a graph instance, the pairing instances) may have missed, when anything.
pub fn print_run_notes(summary: &RunSummary) {
    let lines = [summary.latency_line(), summary.losses_line(), summary.reported_losses_line()];
    for line in lines.into_iter().flatten() {
        eprintln!("devloom: {line}");
    }
}

/// Whether `error` is, at its root, a write to a closed pipe.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// An error and its causes on one line, each said once: many errors already quote their
/// cause (`cannot read input x: No such file…`), which `{:#}` would print again.
/// `GET {server}{path}?{query}` of a running Devloom's API, its JSON body read as `T`
/// (`what` names it in errors); any non-2xx answer is an error with its body.
pub fn api_get<T: serde::de::DeserializeOwned>(
    server: &str,
    path: &str,
    query: &[(&str, &str)],
    what: &str,
) -> anyhow::Result<T> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .build()
        .into();
    let endpoint = format!("{}{path}", server.trim_end_matches('/'));
    let request = query.iter().fold(agent.get(&endpoint), |r, (k, v)| r.query(*k, *v));
    let mut response =
        request.call().with_context(|| format!("cannot reach the Devloom API at {endpoint}"))?;
    let status = response.status();
    let body =
        response.body_mut().read_to_string().with_context(|| format!("reading the answer of {endpoint}"))?;
    if !status.is_success() {
        anyhow::bail!("{endpoint} answered {status}: {body}");
    }
    serde_json::from_str(&body).with_context(|| format!("{endpoint} did not answer {what}: {body}"))
}

pub fn report(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let said = cause.to_string();
        if !text.contains(&said) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&said);
        }
    }
    text
}
