//! The `devloom` command: parses the command line and dispatches to [`devloom::cli`].

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use devloom::cli::demo::DemoArgs;
use devloom::cli::history::HistoryCommand;
use devloom::cli::learning::{EvaluateArgs, TrainArgs};
use devloom::cli::replay::ReplayArgs;
use devloom::cli::run::RunArgs;
use devloom::cli::simulate::SimulateArgs;
use devloom::cli::validate::ValidateArgs;
use devloom::cli::watch::WatchArgs;

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
    Validate(ValidateArgs),
    /// Draw impact maps and candidate lists from their Kafka topics or a JSON-lines file
    /// as they arrive, as the demo does.
    Watch(WatchArgs),
}

fn main() -> ExitCode {
    let filter = std::env::var("DEVLOOM_LOG").unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_writer(std::io::stderr)
        .init();
    let result = match Cli::parse().command {
        Command::Demo(args) => devloom::cli::demo::run(args),
        Command::Run(args) => devloom::cli::run::run(args),
        Command::Simulate(args) => devloom::cli::simulate::run(args),
        Command::Replay(args) => devloom::cli::replay::run(args),
        Command::History(command) => devloom::cli::history::run(command),
        Command::Train(args) => devloom::cli::learning::train(args),
        Command::Evaluate(args) => devloom::cli::learning::evaluate(args),
        Command::Validate(args) => devloom::cli::validate::run(args),
        Command::Watch(args) => devloom::cli::watch::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`devloom demo | head`): a normal end, not an error.
        Err(e) if devloom::cli::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", devloom::cli::report(&e));
            ExitCode::FAILURE
        }
    }
}
