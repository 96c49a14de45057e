//! `devloom replay`: the history archive through the same operators, in the order the
//! live run saw it; a replay of a live run's archive reproduces its outputs exactly
//! (wall-clock stamps aside). Outputs to JSON lines or, with `--brokers`, to Kafka.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;

use super::{history_dir, parse_time};
use crate::build;
use crate::config::{Config, Overrides};
use crate::core::{Pipeline, Sink};
use crate::history::replay::{Replay, Selection};
use crate::http;
use crate::kafka::KafkaSink;
use crate::sinks::{JsonLines, routes};

/// Flags of `devloom replay`.
#[derive(Args)]
pub struct ReplayArgs {
    /// Configuration file (engine settings; [kafka] for --brokers).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// The history archive (default: [history] dir).
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// Only events at or after this event time (RFC 3339, e.g. 2026-11-27T09:00:00Z).
    #[arg(long)]
    pub from: Option<String>,
    /// Only events before this event time (RFC 3339).
    #[arg(long)]
    pub to: Option<String>,
    /// Only these services: their alerts and deploys, and the traces that touch them.
    #[arg(long, value_delimiter = ',')]
    pub services: Vec<String>,
    /// An SQL predicate applied to the spans, alerts and deploys tables; columns all
    /// three have: seq, time, date, service. Example: "service <> 'load-generator'".
    #[arg(long = "where")]
    pub filter: Option<String>,
    /// Where impact maps go: a file, or `-` for stdout (default: [output] path).
    #[arg(long, short)]
    pub output: Option<String>,
    /// Where candidate lists go (JSON lines).
    #[arg(long, conflicts_with = "brokers")]
    pub candidates: Option<String>,
    /// Where remediation plans go (JSON lines).
    #[arg(long, conflicts_with = "brokers")]
    pub remediations: Option<String>,
    /// Where post-mortem drafts go (JSON lines, Markdown inside) in embedded mode: one
    /// when an incident closes, another when its cause is confirmed afterwards.
    #[arg(long, conflicts_with = "brokers")]
    pub postmortems: Option<String>,
    /// Where rollout decisions go (JSON lines).
    #[arg(long, conflicts_with = "brokers")]
    pub rollouts: Option<String>,
    /// Score candidates with this model file (default: [scorer] model, else built in).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Publish impact maps and candidate lists to the Kafka topics at these brokers.
    #[arg(long, conflicts_with = "output")]
    pub brokers: Option<String>,
    /// Serve the HTTP API during the replay and after it, until Ctrl-C or SIGTERM
    /// (on [http] listen, or --listen).
    #[arg(long)]
    pub serve: bool,
    /// With --serve: where the HTTP API listens (port 0 picks a free one).
    #[arg(long, value_name = "ADDR", requires = "serve")]
    pub listen: Option<String>,
}

/// Runs the command.
pub fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let to_kafka = args.brokers.is_some();
    let config = Overrides {
        config: args.config,
        output: args.output,
        candidates: args.candidates,
        remediations: args.remediations,
        postmortems: args.postmortems,
        rollouts: args.rollouts,
        brokers: args.brokers,
        model: args.model,
        listen: args.listen,
        no_http: !args.serve,
        ..Overrides::default()
    }
    .load()?;
    let dir = history_dir(args.history, &config)?;
    let selection = Selection {
        from_ns: parse_time("--from", args.from.as_deref())?,
        to_ns: parse_time("--to", args.to.as_deref())?,
        services: args.services,
        filter: args.filter,
    };
    let mut source = Replay::open(&dir, &selection, std::io::stderr().is_terminal())?;
    let server = http::Server::start(&config, None)?;
    if let Some(server) = &server {
        eprintln!("devloom: HTTP API on http://{}", server.addr());
    }
    let maps = if to_kafka {
        replay_into(&config, KafkaSink::open(&config)?, &mut source, server.as_ref())?
    } else {
        replay_into(&config, JsonLines::from_routes(&routes(&config))?, &mut source, server.as_ref())?
    };
    let stats = source.finish();
    eprintln!(
        "devloom: replayed {} events ({} spans) from {} in {:.2} s ({:.0} events/s) → {maps} impact-map versions",
        stats.events,
        stats.spans,
        dir.display(),
        stats.elapsed.as_secs_f64(),
        stats.events_per_s()
    );
    if let Some(server) = &server {
        server.serve_until_signalled()?;
    }
    Ok(())
}

/// Runs the replay into `sink`; returns the impact-map versions published.
fn replay_into<S: Sink>(
    config: &Config,
    sink: S,
    source: &mut Replay,
    server: Option<&http::Server>,
) -> anyhow::Result<u64> {
    let mut pipeline =
        Pipeline::new(build::engine(config)?, sink).postmortem_template(build::postmortem_template(config)?);
    if let Some(server) = server {
        pipeline = server.attach(pipeline);
    }
    pipeline.run(source)?;
    Ok(pipeline.finish()?.1.engine.impact_maps)
}
