//! `devloom history …`: SQL over the archive, import of files, simulated labelled
//! incidents for training, and confirming a real incident's cause.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, Subcommand};
use devloom_schemas::Event;

use super::{archive_to_write, history_dir, parse_time};
use crate::config::Overrides;
use crate::core::{Output, OutputKind, Sink, wall_clock_ns};
use crate::history::ArchiveWriter;
use crate::history::query::QueryFormat;
use crate::simulator::history::HistorySimConfig;
use crate::sinks::JsonLines;
use crate::sinks::json_lines::OpenOnFirstWrite;

/// The `history` subcommands.
#[derive(Subcommand)]
pub enum HistoryCommand {
    /// Run SQL over the archive: tables spans, alerts, deploys, impact, candidates,
    /// remediations, causes (each with seq, time, date and the record's fields).
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
    /// Check every archive file: its SHA-256 against the one written when it was
    /// committed, and every row group decodes. Exit code 1 names the damaged files.
    Verify(VerifyArgs),
}

/// Flags of `devloom history verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// The history archive (default: [history] dir).
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// Configuration file (for [history] dir).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

/// Flags of `devloom history query`.
#[derive(Args)]
pub struct QueryArgs {
    /// The SQL, e.g. "SELECT service, count(*) FROM spans GROUP BY service ORDER BY 2 DESC".
    pub sql: String,
    /// The history archive (default: [history] dir).
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "table")]
    pub format: QueryFormat,
    /// Configuration file (for [history] dir).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

/// Flags of `devloom history import`.
#[derive(Args)]
pub struct ImportArgs {
    /// Files to import.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The history archive to write (created if missing; default: [history] dir).
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// Where undecodable records go (JSON lines with the reason).
    #[arg(long)]
    pub dead_letter: Option<PathBuf>,
    /// Configuration file ([history], [decode]).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

/// Flags of `devloom history simulate`.
#[derive(Args)]
pub struct HistorySimulateArgs {
    /// The history archive to write (created if missing).
    #[arg(long)]
    pub history: PathBuf,
    /// Incidents to simulate.
    #[arg(long, default_value_t = 5000)]
    pub incidents: usize,
    /// RNG seed: the same seed gives the same history.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// Flags of `devloom history confirm`.
#[derive(Args)]
pub struct ConfirmArgs {
    /// The incident id (`incident_id` of its impact maps and candidate lists).
    pub incident: String,
    /// The key of the candidate that caused it, as in its candidate list (for example
    /// `deploy:checkout@v42` or `dependency:postgres`).
    pub cause: String,
    /// Record a cause that is not among the incident's candidates (counted as a miss).
    #[arg(long)]
    pub unlisted: bool,
    /// When the cause was confirmed, RFC 3339 (default: now).
    #[arg(long)]
    pub at: Option<String>,
    /// Who confirmed it (default: $USER).
    #[arg(long, env = "USER", hide_env_values = true)]
    pub by: Option<String>,
    /// Print the confirmation as Devloom cause JSON instead of writing the archive: the
    /// line a running Devloom reads on its causes input (the `devloom.causes` topic, or
    /// an input file), which archives it and writes the incident's post-mortem again.
    #[arg(long)]
    pub print: bool,
    /// The history archive (default: [history] dir). Not while a run is writing it.
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// Configuration file ([history]).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

/// Runs a `history` subcommand.
pub fn run(command: HistoryCommand) -> anyhow::Result<()> {
    match command {
        HistoryCommand::Query(args) => query(args),
        HistoryCommand::Import(args) => import(args),
        HistoryCommand::Simulate(args) => simulate(args),
        HistoryCommand::Confirm(args) => confirm(args),
        HistoryCommand::Verify(args) => verify(args),
    }
}

fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    use crate::history::integrity::{Verdict, describe, verify};
    let config = Overrides { config: args.config, ..Overrides::default() }.load()?;
    let dir = history_dir(args.history, &config)?;
    let files = verify(&dir)?;
    let damaged: Vec<_> = files.iter().filter(|(_, v)| !v.is_sound()).collect();
    for (path, verdict) in &files {
        println!("{}  {}", describe(verdict), path.display());
    }
    let unchecked = files.iter().filter(|(_, v)| *v == Verdict::NoChecksum).count();
    eprintln!(
        "devloom: {} files, {} damaged, {unchecked} without a checksum (written before checksums; every row group decodes)",
        files.len(),
        damaged.len()
    );
    if !damaged.is_empty() {
        anyhow::bail!(
            "{} damaged archive file(s), first {}: restore them from a backup or delete them (replay and query refuse a damaged archive)",
            damaged.len(),
            damaged[0].0.display()
        );
    }
    Ok(())
}

fn query(args: QueryArgs) -> anyhow::Result<()> {
    let config = Overrides { config: args.config, ..Overrides::default() }.load()?;
    let dir = history_dir(args.history, &config)?;
    let stdout = std::io::stdout();
    let rows = crate::history::query::query(&dir, &args.sql, args.format, &mut stdout.lock())?;
    if args.format == QueryFormat::Table {
        eprintln!("({rows} rows)");
    }
    Ok(())
}

fn import(args: ImportArgs) -> anyhow::Result<()> {
    let overrides = Overrides {
        config: args.config,
        history: args.history,
        dead_letter: args.dead_letter,
        ..Overrides::default()
    };
    let (config, archive) = archive_to_write(overrides)?;
    let dir = archive.dir.clone();
    let progress = std::io::stderr().is_terminal();
    let stats = crate::history::import::import(&args.paths, archive, &config.decode.options(), progress)?;
    let dead_path = config.output.dead_letter;
    let mut dead = JsonLines::new()
        .with(OutputKind::DeadLetter, Box::new(OpenOnFirstWrite::new(&dead_path, config.output.append)?));
    for d in stats.dead_letters.iter().cloned() {
        dead.publish(&Output::DeadLetter(d))?;
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
    let time_ns = parse_time("--at", args.at.as_deref())?.unwrap_or_else(wall_clock_ns);
    let cause = devloom_schemas::ConfirmedCause {
        incident_id: args.incident,
        candidate: args.cause,
        time_ns,
        confirmed_by: args.by.filter(|by| !by.is_empty()),
    };
    if args.print {
        println!("{}", devloom_schemas::codec::encode_cause(&cause));
        return Ok(());
    }
    let (_, archive) =
        archive_to_write(Overrides { config: args.config, history: args.history, ..Overrides::default() })?;
    let dir = archive.dir.clone();
    match crate::history::labels::confirm(archive, &cause, args.unlisted) {
        Err(busy @ crate::history::HistoryError::Busy { .. }) => anyhow::bail!(
            "{busy}\nwhile a run owns the archive, give the confirmation to the run: add --print and send the line to its causes topic (devloom.causes) or an input file"
        ),
        result => result?,
    }
    eprintln!(
        "devloom: confirmed {:?} as the cause of incident {:?} in {}",
        cause.candidate,
        cause.incident_id,
        dir.display()
    );
    Ok(())
}

fn simulate(args: HistorySimulateArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let (_, archive) =
        archive_to_write(Overrides { history: Some(args.history.clone()), ..Overrides::default() })?;
    if archive.dir.exists() {
        let files = crate::history::scan(&archive.dir)?;
        if !files.is_empty() {
            anyhow::bail!(
                "{} already holds an archive ({} files): simulate into a new directory (a second run would add \
                 the same incidents again)",
                archive.dir.display(),
                files.len()
            );
        }
    }
    let config =
        HistorySimConfig { incidents: args.incidents, seed: args.seed, ..HistorySimConfig::default() };
    let incidents = crate::simulator::history::generate(&config);
    let mut writer = ArchiveWriter::open(archive, None, false)?;
    for incident in &incidents {
        for change in &incident.changes {
            writer.append_event(&Event::Deploy(change.clone()))?;
        }
        writer.append_event(&Event::Alert(incident.alerts[0].clone()))?;
        writer.append_candidates(&incident.candidates)?;
        writer.append_event(&Event::Alert(incident.alerts[1].clone()))?;
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
