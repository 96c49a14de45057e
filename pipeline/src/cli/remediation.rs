//! `devloom remediation show`: the latest remediation plan of an archived incident —
//! commands, what they do not revert, and the diffs — as the demo draws it, or as JSON.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use devloom_schemas::RemediationPlan;

use super::history_dir;
use crate::config::Overrides;
use crate::history::query::records_where;
use crate::history::tables::Kind;
use crate::sinks::remediation_view::render_remediation;

/// The `remediation` subcommands.
#[derive(Subcommand)]
pub enum RemediationCommand {
    /// Print the latest remediation plan of an incident in the history archive.
    Show(ShowArgs),
}

/// Flags of `devloom remediation show`.
#[derive(Args)]
pub struct ShowArgs {
    /// The incident id (as in its impact maps).
    pub incident: String,
    /// The history archive (default: [history] dir).
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// This version instead of the latest.
    #[arg(long)]
    pub version: Option<u32>,
    /// Print the plan's JSON document instead of drawing it.
    #[arg(long)]
    pub json: bool,
    /// Also write the manifests the commands apply (`kubectl apply -f FILE`) into DIR.
    #[arg(long, value_name = "DIR")]
    pub write_manifests: Option<PathBuf>,
    /// Configuration file (for [history] dir).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

/// Runs a `remediation` subcommand.
pub fn run(command: RemediationCommand) -> anyhow::Result<()> {
    let RemediationCommand::Show(args) = command;
    let config = Overrides { config: args.config, ..Overrides::default() }.load()?;
    let dir = history_dir(args.history, &config)?;
    let incident = args.incident.replace('\'', "''");
    let plans: Vec<RemediationPlan> =
        records_where(&dir, Kind::Remediations, &format!("incident_id = '{incident}'"))?;
    let plan = match args.version {
        Some(v) => plans.iter().rfind(|p| p.version == v),
        None => plans.last(),
    };
    let Some(plan) = plan else {
        let which = args.version.map(|v| format!(" version {v}")).unwrap_or_default();
        anyhow::bail!(
            "{}: no remediation plan{which} for incident {:?} (incidents with plans: devloom history query \"SELECT DISTINCT incident_id FROM remediations\" --history {})",
            dir.display(),
            args.incident,
            dir.display()
        );
    };
    if let Some(out) = &args.write_manifests {
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        for m in plan.remediations.iter().flat_map(|r| &r.manifests) {
            let path = out.join(&m.file);
            std::fs::write(&path, &m.content).with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("devloom: wrote {}", path.display());
        }
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, plan)?;
        writeln!(out)?;
    } else {
        let color = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none();
        write!(
            out,
            "── {} remediation plan v{}\n{}",
            plan.incident_id,
            plan.version,
            render_remediation(plan, color)
        )?;
    }
    Ok(())
}
