//! `devloom postmortem`: the post-mortem draft of an archived incident as Markdown or
//! JSON — the archived draft when the run wrote one, else rebuilt by replaying the
//! archive (so incidents archived before drafts existed get one too) — the list of
//! closed incidents, and the built-in template.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use devloom_operators::postmortem::variant_name;
use devloom_schemas::{CauseStatus, ConfirmedCause, ImpactMap, PostmortemDraft};

use super::history_dir;
use crate::build;
use crate::config::{Config, Overrides};
use crate::core::Pipeline;
use crate::history::query::records_where;
use crate::history::replay::{Selection, replay};
use crate::history::tables::Kind;
use crate::sinks::Collected;
use crate::sinks::postmortem_markdown::{BUILTIN, Template};

/// Flags and subcommands of `devloom postmortem`.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct PostmortemArgs {
    /// `list` or `template`; without one, the draft of INCIDENT.
    #[command(subcommand)]
    pub command: Option<PostmortemCommand>,
    /// The draft of one incident.
    #[command(flatten)]
    pub show: ShowArgs,
}

/// The `postmortem` subcommands.
#[derive(Subcommand)]
pub enum PostmortemCommand {
    /// List the archive's closed incidents: when, where, verdict, and the draft if one
    /// was written.
    List(ArchiveArgs),
    /// Print the built-in Markdown template (MiniJinja), to copy and adapt.
    Template,
}

/// Which archive.
#[derive(Args)]
pub struct ArchiveArgs {
    /// The history archive (default: [history] dir).
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// Configuration file ([history] dir, [postmortem] template, [engine]).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

/// Output format of a draft.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DraftFormat {
    /// Markdown, through the template.
    Md,
    /// The draft's JSON document (its `markdown` field rendered with the template).
    Json,
}

/// Flags of `devloom postmortem INCIDENT`.
#[derive(Args)]
pub struct ShowArgs {
    /// The incident id (as in its impact maps; `devloom postmortem list` shows them).
    #[arg(required = true)]
    pub incident: Option<String>,
    /// Markdown or JSON.
    #[arg(long, value_enum, default_value = "md")]
    pub format: DraftFormat,
    /// A MiniJinja template for the Markdown (default: [postmortem] template, else the
    /// built-in one).
    #[arg(long)]
    pub template: Option<PathBuf>,
    /// Rebuild the draft by replaying the archive even when it holds a current one (it
    /// is rebuilt anyway when none was archived, or a confirmation came after it).
    #[arg(long)]
    pub rebuild: bool,
    /// Which archive.
    #[command(flatten)]
    pub archive: ArchiveArgs,
}

/// Runs `devloom postmortem`.
pub fn run(args: PostmortemArgs) -> anyhow::Result<()> {
    match args.command {
        Some(PostmortemCommand::Template) => {
            print!("{BUILTIN}");
            Ok(())
        }
        Some(PostmortemCommand::List(archive)) => list(archive),
        None => show(args.show),
    }
}

fn load(archive: ArchiveArgs) -> anyhow::Result<(Config, PathBuf)> {
    let config = Overrides { config: archive.config, ..Overrides::default() }.load()?;
    let dir = history_dir(archive.history, &config)?;
    Ok((config, dir))
}

fn show(args: ShowArgs) -> anyhow::Result<()> {
    let incident = args.incident.context("an incident id is required")?;
    let (config, dir) = load(args.archive)?;
    let template = match &args.template {
        Some(path) => Template::load(path)?,
        None => build::postmortem_template(&config)?,
    };
    let quoted = incident.replace('\'', "''");
    let archived: Vec<PostmortemDraft> =
        records_where(&dir, Kind::Postmortems, &format!("incident_id = '{quoted}'"))?;
    // A confirmation recorded after the run (`devloom history confirm`) is newer than
    // the archived draft: the replay reads it.
    let causes: Vec<ConfirmedCause> =
        records_where(&dir, Kind::Causes, &format!("incident_id = '{quoted}'"))?;
    let current = |d: &PostmortemDraft| {
        causes.last().is_none_or(|c| {
            d.root_cause.status == CauseStatus::Confirmed
                && d.root_cause.key.as_deref() == Some(c.candidate.as_str())
        })
    };
    let mut draft = match archived.into_iter().max_by_key(|d| d.version) {
        Some(draft) if !args.rebuild && current(&draft) => draft,
        _ => rebuild(&config, &dir, &incident)?,
    };
    draft.markdown = Some(template.render(&draft)?);
    match args.format {
        DraftFormat::Md => print!("{}", draft.markdown.as_deref().unwrap_or_default()),
        DraftFormat::Json => println!("{}", serde_json::to_string_pretty(&draft)?),
    }
    Ok(())
}

/// The incident's latest draft from a replay of the whole archive (its maps depend on
/// the baselines before it, so nothing less would give the same numbers).
fn rebuild(config: &Config, dir: &Path, incident: &str) -> anyhow::Result<PostmortemDraft> {
    let mut pipeline = Pipeline::new(build::engine(config)?, Collected::default());
    replay(dir, &Selection::default(), &mut pipeline, false)?;
    let (collected, _) = pipeline.finish()?;
    collected.postmortems.into_iter().filter(|d| d.incident_id == incident).max_by_key(|d| d.version).with_context(
        || {
            format!(
                "{}: incident {incident:?} has no closed impact map there (closed incidents: devloom postmortem list --history {})",
                dir.display(),
                dir.display()
            )
        },
    )
}

fn list(archive: ArchiveArgs) -> anyhow::Result<()> {
    let (_, dir) = load(archive)?;
    let closed: Vec<ImpactMap> = records_where(&dir, Kind::Impact, "status <> 'open'")?;
    let drafts: Vec<PostmortemDraft> = records_where(&dir, Kind::Postmortems, "TRUE")?;
    if closed.is_empty() {
        eprintln!("devloom: no closed incident in {}", dir.display());
        return Ok(());
    }
    println!(
        "{:<24} {:<26} {:<10} {:<10} {:<24} draft",
        "incident", "closed at", "status", "verdict", "alerted"
    );
    for map in &closed {
        let draft = drafts.iter().filter(|d| d.incident_id == map.incident_id).max_by_key(|d| d.version);
        let draft = draft.map_or("(rebuilt on request)".to_string(), |d| {
            format!("v{}, cause {}", d.version, variant_name(&d.root_cause.status))
        });
        println!(
            "{:<24} {:<26} {:<10} {:<10} {:<24} {draft}",
            map.incident_id,
            map.event_time,
            variant_name(&map.status),
            variant_name(&map.verdict),
            map.root_services.join(",")
        );
    }
    Ok(())
}
