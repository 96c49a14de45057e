//! `devloom gate`: the deployment gate for CI. Asks a running Devloom (`--server`), or
//! works it out from a history archive (`--history`), and prints the decision as
//! Markdown for a pull-request comment (appended to `$GITHUB_STEP_SUMMARY` when set) or
//! as JSON. Exit status: 0 pass or warn, 1 block, 2 the gate could not be asked.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

use super::{api_get, history_dir, report};
use crate::build;
use crate::config::Overrides;
use crate::core::Pipeline;
use crate::gate::{GateDecision, GateVerdict, markdown};
use crate::history::replay::{Replay, Selection};
use crate::http::state::{ApiState, ApiTap, ApiWatcher};
use crate::sinks::Collected;

/// Flags of `devloom gate`.
#[derive(Args)]
#[command(group = clap::ArgGroup::new("from").required(true).args(["server", "history"]))]
pub struct GateArgs {
    /// The service about to ship (`service.name`).
    #[arg(long)]
    pub service: String,
    /// The revision about to ship: a rollback of it, or a halted rollout of it, blocks.
    #[arg(long)]
    pub revision: Option<String>,
    /// A running Devloom's HTTP API, e.g. http://devloom:9464.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Decide offline from this history archive, replayed through the operators.
    #[arg(long, value_name = "DIR")]
    pub history: Option<PathBuf>,
    /// Configuration file (`[gate]` thresholds; default: $DEVLOOM_CONFIG, else built in).
    /// With --server the server's own `[gate]` applies.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "markdown")]
    pub format: GateFormat,
}

/// How the decision is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum GateFormat {
    /// A Markdown summary: the verdict, the reasons, the blast radius as a table.
    Markdown,
    /// The decision JSON, as `GET /v1/gate` answers it.
    Json,
}

/// Runs the command; the exit status is the decision.
pub fn run(args: GateArgs) -> ExitCode {
    match decide(&args).and_then(|d| print(&args, &d).map(|()| d)) {
        Ok(d) if d.decision == GateVerdict::Block => ExitCode::from(1),
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", report(&e));
            ExitCode::from(2)
        }
    }
}

fn decide(args: &GateArgs) -> anyhow::Result<GateDecision> {
    if args.service.trim().is_empty() {
        bail!("--service must name a service");
    }
    match (&args.server, &args.history) {
        (Some(url), _) => ask(url, &args.service, args.revision.as_deref()),
        (None, history) => offline(args, history.clone()),
    }
}

/// `GET {url}/v1/gate?mode=metric`: the body whatever the decision.
fn ask(url: &str, service: &str, revision: Option<&str>) -> anyhow::Result<GateDecision> {
    let mut query = vec![("service", service), ("mode", "metric")];
    query.extend(revision.map(|r| ("revision", r)));
    api_get(url, "/v1/gate", &query, "a gate decision")
}

/// Replays the archive through the operators into the API's state, then asks it.
fn offline(args: &GateArgs, history: Option<PathBuf>) -> anyhow::Result<GateDecision> {
    let config = Overrides { config: args.config.clone(), ..Overrides::default() }.load()?;
    let dir = history_dir(history, &config)?;
    let mut source = Replay::open(&dir, &Selection::default(), std::io::stderr().is_terminal())?;
    let state = Arc::new(ApiState::new(config.http.clone(), config.gate.clone()));
    let mut pipeline = Pipeline::new(build::engine(&config)?, Collected::default())
        .tap(Box::new(ApiTap(state.clone())))
        .watch(Box::new(ApiWatcher(state.clone())));
    pipeline.run(&mut source)?;
    pipeline.finish()?;
    Ok(state.gate(&args.service, args.revision.as_deref()))
}

fn print(args: &GateArgs, d: &GateDecision) -> anyhow::Result<()> {
    let text = markdown(d);
    let mut out = std::io::stdout().lock();
    match args.format {
        GateFormat::Markdown => out.write_all(text.as_bytes())?,
        GateFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(d)?)?,
    }
    out.flush()?;
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) {
        let mut file =
            std::fs::OpenOptions::new().create(true).append(true).open(&path).with_context(|| {
                format!("cannot append to $GITHUB_STEP_SUMMARY ({})", path.to_string_lossy())
            })?;
        writeln!(file, "{text}")?;
    }
    Ok(())
}
