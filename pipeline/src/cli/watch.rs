//! `devloom watch`: the demo's terminal picture for outputs Devloom published elsewhere:
//! impact maps, candidate lists, remediation plans, post-mortem headlines and rollout
//! decisions on their Kafka topics, or JSON lines in a file (or stdin), drawn as they
//! arrive.

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use devloom_schemas::{CandidateList, ImpactMap, PostmortemDraft, RemediationPlan, RolloutDecision};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;

use crate::config::Overrides;
use crate::core::{Output, Sink};
use crate::kafka::client::client_config;
use crate::sinks::terminal::TerminalSink;

/// Flags of `devloom watch`.
#[derive(Args)]
pub struct WatchArgs {
    /// Read the impact, candidates, remediations, postmortems and rollouts topics at these
    /// brokers (or [kafka] brokers).
    #[arg(long, conflicts_with = "input")]
    pub brokers: Option<String>,
    /// Read JSON lines of impact maps, candidate lists, remediation plans and post-mortem
    /// drafts from this file (`-`: stdin).
    #[arg(long, short)]
    pub input: Option<String>,
    /// With --input: keep reading as the file grows, like `tail -f`.
    #[arg(long, requires = "input")]
    pub follow: bool,
    /// With Kafka: start from the oldest message on the topics, not from now.
    #[arg(long)]
    pub from_beginning: bool,
    /// Configuration file ([kafka] brokers, topics and properties).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

/// Runs the command until the input ends (or Ctrl-C on a topic / followed file).
pub fn run(args: WatchArgs) -> anyhow::Result<()> {
    let config = Overrides { config: args.config, brokers: args.brokers, ..Overrides::default() }.load()?;
    let stdout = std::io::stdout();
    let color = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut view = TerminalSink::new(stdout.lock(), color);
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone()).context("installing signal handlers")?;
    }
    if let Some(input) = &args.input {
        let reader: Box<dyn BufRead> = if input == "-" {
            Box::new(BufReader::new(std::io::stdin()))
        } else {
            Box::new(BufReader::new(
                std::fs::File::open(input).with_context(|| format!("cannot open {input}"))?,
            ))
        };
        return watch_lines(reader, args.follow, &stop, &mut view);
    }
    let k = &config.kafka;
    if k.brokers.is_empty() {
        bail!("nothing to watch: pass --brokers HOST:PORT (or set [kafka] brokers), or --input FILE");
    }
    crate::kafka::check_brokers(k, &k.topics.impact)?;
    let mut c = client_config(k)?;
    let group = format!("devloom-watch-{}", std::process::id());
    let reset = if args.from_beginning { "earliest" } else { "latest" };
    c.set("group.id", &group).set("enable.auto.commit", "false").set("auto.offset.reset", reset);
    let consumer: BaseConsumer = c.create().context("creating the Kafka consumer")?;
    let topics = [
        k.topics.impact.as_str(),
        k.topics.candidates.as_str(),
        k.topics.remediations.as_str(),
        k.topics.postmortems.as_str(),
        k.topics.rollouts.as_str(),
    ];
    consumer.subscribe(&topics).context("subscribing to the output topics")?;
    eprintln!("devloom: watching {} at {} (Ctrl-C stops)", topics.join(", "), k.brokers);
    while !stop.load(Ordering::SeqCst) {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(msg)) => show(msg.payload().unwrap_or_default(), &mut view)?,
            Some(Err(e)) => tracing::warn!(error = %e, "kafka consumer"),
            None => {}
        }
    }
    Ok(())
}

fn watch_lines(
    mut reader: Box<dyn BufRead>,
    follow: bool,
    stop: &AtomicBool,
    view: &mut impl Sink,
) -> anyhow::Result<()> {
    let mut line = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        if reader.read_until(b'\n', &mut line)? == 0 || !line.ends_with(b"\n") && follow {
            if !follow {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        show(&line, view)?;
        line.clear();
    }
    if !line.is_empty() {
        show(&line, view)?;
    }
    Ok(())
}

/// Draws one published document: an impact map, a candidate list, a remediation plan, a
/// post-mortem draft's headline or a rollout decision (others skipped).
fn show(json: &[u8], view: &mut impl Sink) -> anyhow::Result<()> {
    if json.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let value: serde_json::Value = match serde_json::from_slice(json) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "not JSON; skipped");
            return Ok(());
        }
    };
    let output = if value.get("nodes").is_some() {
        Output::Impact(serde_json::from_value::<ImpactMap>(value).context("reading an impact map")?)
    } else if value.get("candidates").is_some() {
        Output::Candidates(
            serde_json::from_value::<CandidateList>(value).context("reading a candidate list")?,
        )
    } else if value.get("remediations").is_some() {
        Output::Remediation(
            serde_json::from_value::<RemediationPlan>(value).context("reading a remediation plan")?,
        )
    } else if value.get("timeline").is_some() {
        Output::Postmortem(Box::new(
            serde_json::from_value::<PostmortemDraft>(value).context("reading a post-mortem draft")?,
        ))
    } else if value.get("canary").is_some() {
        Output::Rollout(Box::new(
            serde_json::from_value::<RolloutDecision>(value).context("reading a rollout decision")?,
        ))
    } else {
        return Ok(());
    };
    view.publish(&output)?;
    std::io::stdout().flush()?;
    Ok(())
}
