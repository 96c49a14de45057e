//! `devloom catalog`: import a service catalog (Backstage, PagerDuty, Devloom) and hold
//! it against live traffic — `check` (names that met nothing) and `drift` (declared
//! edges never observed, observed edges never declared).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use devloom_schemas::catalog::CatalogFormat;
use devloom_schemas::{Catalog, CatalogReport};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;

use super::{api_get, history_dir};
use crate::build;
use crate::config::Overrides;
use crate::core::Pipeline;
use crate::history::replay::{Replay, Selection};
use crate::kafka::client::flush;
use crate::kafka::{check_brokers, create_topics, producer, send};
use crate::sinks::Collected;
use crate::sources::catalogs::{WithCatalogs, read_files, snapshots};

/// `devloom catalog …`.
#[derive(Subcommand)]
pub enum CatalogCommand {
    /// Read a catalog, report what it declares and publish it to the catalog topic
    /// (with --brokers, keyed by --source: the newest snapshot per source is in force),
    /// else print it as a Devloom catalog (JSON) for `devloom run --catalog devloom=FILE`.
    Import(ImportArgs),
    /// Catalog names that met no traced service, and traced services no catalog lists.
    Check(ReportArgs),
    /// Declared edges with no call in the baseline window, and observed edges no catalog
    /// declares (with their traffic).
    Drift(ReportArgs),
}

/// The catalog formats, as the command line names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Backstage entity YAML (`catalog-info.yaml`, multi-document).
    Backstage,
    /// PagerDuty REST API export (`services`, `business_services`, `relationships`).
    Pagerduty,
    /// Devloom catalog (criticality, name mappings, extra edges).
    Devloom,
}

impl From<FormatArg> for CatalogFormat {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Backstage => Self::Backstage,
            FormatArg::Pagerduty => Self::Pagerduty,
            FormatArg::Devloom => Self::Devloom,
        }
    }
}

/// Flags of `devloom catalog import`.
#[derive(Args)]
pub struct ImportArgs {
    /// What the files are.
    #[arg(value_enum)]
    pub format: FormatArg,
    /// The files (Backstage references resolve across them).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The source it replaces on the topic (the Kafka key); default: the format's name.
    #[arg(long)]
    pub source: Option<String>,
    /// Kafka bootstrap servers: publish to the catalog topic ([kafka.topics] catalog).
    #[arg(long)]
    pub brokers: Option<String>,
    /// Configuration file (default: $DEVLOOM_CONFIG, else built in).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

/// Flags of `devloom catalog check` and `drift`.
#[derive(Args)]
#[command(group = clap::ArgGroup::new("from").required(true).args(["server", "history"]))]
pub struct ReportArgs {
    /// A running Devloom's HTTP API, e.g. http://devloom:9464.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Work it out offline from this history archive, replayed through the operators.
    #[arg(long, value_name = "DIR")]
    pub history: Option<PathBuf>,
    /// With --history: catalog files put in force before the replay (FORMAT=PATH;
    /// default: [catalog] paths).
    #[arg(long, value_name = "FORMAT=PATH", requires = "history")]
    pub catalog: Vec<String>,
    /// Configuration file (default: $DEVLOOM_CONFIG, else built in).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: ReportFormat,
}

/// How a report is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// Lines a person reads.
    Text,
    /// The report JSON, as `GET /v1/catalog` answers it.
    Json,
}

/// Runs the command.
pub fn run(command: CatalogCommand) -> anyhow::Result<()> {
    match command {
        CatalogCommand::Import(args) => import(args),
        CatalogCommand::Check(args) => {
            let r = report(&args)?;
            print(&args, &r, check_text)
        }
        CatalogCommand::Drift(args) => {
            let r = report(&args)?;
            print(&args, &r, drift_text)
        }
    }
}

fn import(args: ImportArgs) -> anyhow::Result<()> {
    let format = CatalogFormat::from(args.format);
    let (catalog, texts) = read_files(format, &args.paths)?;
    let source = args.source.clone().unwrap_or_else(|| format.name().to_string());
    if source.trim().is_empty() {
        bail!("--source must name the source");
    }
    eprintln!("{}", summary(&catalog, &source));
    let Some(brokers) = args.brokers else {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", serde_json::to_string(&catalog).context("writing the catalog")?)?;
        return Ok(());
    };
    let config = Overrides { config: args.config, brokers: Some(brokers), ..Overrides::default() }.load()?;
    let k = &config.kafka;
    let topic = &k.topics.catalog;
    check_brokers(k, topic)?;
    if k.create_topics {
        create_topics(k, &[topic.as_str()])?;
    }
    // The files as written, one YAML stream: the pipeline reads them as the file did.
    let payload = texts.join("\n---\n");
    let producer = producer(k)?;
    let headers = OwnedHeaders::new().insert(Header { key: "content-type", value: Some("application/yaml") });
    let record: BaseRecord<'_, [u8], [u8]> =
        BaseRecord::to(topic).key(source.as_bytes()).payload(payload.as_bytes()).headers(headers);
    send(&producer, record)?;
    flush(&producer)?;
    eprintln!("published to {topic} with key {source:?}: it replaces that source's catalog");
    Ok(())
}

fn summary(c: &Catalog, source: &str) -> String {
    let optional =
        c.dependencies.iter().filter(|d| d.criticality == Some(devloom_schemas::Criticality::Optional));
    format!(
        "catalog {source:?}: {} services, {} dependencies ({} optional), {} name mappings, {} rules",
        c.services.len(),
        c.dependencies.len(),
        optional.count(),
        c.names.len(),
        c.rules.len()
    )
}

fn report(args: &ReportArgs) -> anyhow::Result<CatalogReport> {
    if let Some(url) = &args.server {
        return ask(url);
    }
    let overrides =
        Overrides { config: args.config.clone(), catalogs: args.catalog.clone(), ..Overrides::default() };
    let config = overrides.load()?;
    let dir = history_dir(args.history.clone(), &config)?;
    let first = snapshots(&config.catalog.paths)?;
    let replay = Replay::open(&dir, &Selection::default(), std::io::stderr().is_terminal())?;
    let mut source = WithCatalogs::new(first, replay);
    let mut pipeline = Pipeline::new(build::engine(&config)?, Collected::default());
    pipeline.run(&mut source)?;
    Ok(pipeline.engine().catalog_report())
}

fn ask(url: &str) -> anyhow::Result<CatalogReport> {
    api_get(url, "/v1/catalog", &[], "a catalog report")
}

fn print(args: &ReportArgs, r: &CatalogReport, text: fn(&CatalogReport) -> String) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match args.format {
        ReportFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(r)?)?,
        ReportFormat::Text => write!(out, "{}", text(r))?,
    }
    Ok(())
}

fn header(r: &CatalogReport) -> String {
    let sources: Vec<String> = r.sources.iter().map(|(s, t)| format!("{s} (as of {t})")).collect();
    let sources = if sources.is_empty() { "none".to_string() } else { sources.join(", ") };
    format!("catalogs in force: {sources}; graph as of {}\n", r.as_of.as_deref().unwrap_or("(no events)"))
}

fn check_text(r: &CatalogReport) -> String {
    let mut s = header(r);
    s.push_str(&format!("\nmatched ({}):\n", r.matched.len()));
    for (entity, service) in &r.matched {
        s.push_str(&format!("  {entity} → {service}\n"));
    }
    s.push_str(&format!("\ncatalog entities matching no traced service ({}):\n", r.unmatched_entities.len()));
    for u in &r.unmatched_entities {
        let kind = u.kind.as_deref().map(|k| format!(" [{k}]")).unwrap_or_default();
        s.push_str(&format!(
            "  {}{kind} from {}: no traced service.name {:?}\n",
            u.entity, u.source, u.looked_for
        ));
    }
    s.push_str(&format!("\ntraced services no catalog lists ({}):\n", r.untracked_services.len()));
    for name in &r.untracked_services {
        s.push_str(&format!("  {name}\n"));
    }
    s
}

fn drift_text(r: &CatalogReport) -> String {
    let mut s = header(r);
    s.push_str(&format!(
        "\ndeclared, never observed in the baseline window ({}):\n",
        r.declared_not_observed.len()
    ));
    for e in &r.declared_not_observed {
        let c = e
            .criticality
            .map(|c| format!(" [{}]", serde_json::to_value(c).unwrap_or_default().as_str().unwrap_or("")))
            .unwrap_or_default();
        s.push_str(&format!("  {} → {}{c}\n", e.caller, e.callee));
    }
    s.push_str(&format!("\nobserved, never declared ({}):\n", r.observed_not_declared.len()));
    for e in &r.observed_not_declared {
        s.push_str(&format!("  {} → {}: {} calls, {:.2}/s\n", e.caller, e.callee, e.calls, e.calls_per_s));
    }
    s
}
