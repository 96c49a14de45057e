//! The core of the runtime: the operator loop ([`Pipeline`]) between one way in
//! ([`Source`] → [`Input`], decoded in [`decode`]) and one way out ([`Output`] →
//! [`Sink`]). It knows no file, topic or archive: sources and sinks do.
//!
//! Every published output is stamped with its wall-clock publish time; a map caused by
//! an alert also with the time the alert was read and the latency in between.

pub mod decode;
pub mod latency;
pub mod output;
pub mod record;

use std::io;
use std::time::{Duration, Instant};

use devloom_operators::{Engine, EngineCounters, EngineSnapshot, Outputs, PairingCounters};
use devloom_schemas::Event;
use devloom_schemas::codec::Expect;
use devloom_schemas::time::format_rfc3339;

use crate::sinks::postmortem_markdown::Template;

pub use decode::{RejectKind, Rejected, decode_record};
pub use latency::{LatencyStats, LatencySummary, wall_clock_ns};
pub use output::{Output, OutputKind, Sink};
pub use record::{Input, Origin, RawRecord, ReadStamp, Source};

/// What a run did.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSummary {
    /// Records read.
    pub records: u64,
    /// Records that became dead letters.
    pub dead_letters: u64,
    /// Engine counters (spans, alerts, deploys, late events, maps).
    pub engine: EngineCounters,
    /// Span-pairing counters.
    pub pairing: PairingCounters,
    /// Alert → published-map latency.
    pub latency: Option<LatencySummary>,
    /// Latency of the first map after the first alert.
    pub first_map_ms: Option<f64>,
    /// A graph instance's: what the pairing instances reported losing, one line each
    /// (their counts are theirs, not in `engine` or `pairing`).
    pub reported_losses: Option<Vec<String>>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl RunSummary {
    /// What the run may have missed, when anything: events behind the watermark, pairing
    /// entries closed early at a full store, halves that never met.
    pub fn losses_line(&self) -> Option<String> {
        let (e, p) = (&self.engine, &self.pairing);
        let (late, evicted, expired) = (e.late, p.evicted, p.expired);
        let optional = [
            (
                e.held_aside,
                format!(
                    "{} events from too far ahead held aside ({} of them rejected as dead letters)",
                    e.held_aside, e.future_rejected
                ),
            ),
            (
                e.past_rejected,
                format!("{} spans from too far behind rejected as dead letters", e.past_rejected),
            ),
            (
                e.services_evicted,
                format!(
                    "{} least recently seen services evicted at engine.graph.max_services",
                    e.services_evicted
                ),
            ),
            (
                e.self_time_evicted,
                format!(
                    "{} spans measured early to make room in a full self-time store (children \
                     arriving after that not counted; engine.pairing.max_pending)",
                    e.self_time_evicted
                ),
            ),
            (
                p.links_dropped,
                format!("{} span links beyond engine.pairing.max_links_per_span ignored", p.links_dropped),
            ),
            (
                e.rollouts_forgotten,
                format!(
                    "{} least recently seen services' rollouts forgotten at engine.rollouts.max_services",
                    e.rollouts_forgotten
                ),
            ),
            (
                e.deploys_repeated,
                format!("{} changes repeating one already taken (redelivered) ignored", e.deploys_repeated),
            ),
            (
                e.catalogs_stale,
                format!(
                    "{} catalog snapshots ignored (older than their source's in force, or a source beyond the 64 kept)",
                    e.catalogs_stale
                ),
            ),
        ];
        let any_optional = optional.iter().any(|(n, _)| *n > 0);
        (late + evicted + expired > 0 || any_optional).then(|| {
            let mut line = format!(
                "data quality: {late} events arrived behind the watermark (counted late), {evicted} pairing \
                 entries closed early at a full store (calls arriving later missed), {expired} spans never met their \
                 other half"
            );
            for (_, part) in optional.iter().filter(|(n, _)| *n > 0) {
                line.push_str(", ");
                line.push_str(part);
            }
            line
        })
    }

    /// A graph instance's line for what the pairing instances lost, when anything.
    pub fn reported_losses_line(&self) -> Option<String> {
        self.reported_losses
            .as_ref()
            .map(|lines| format!("data quality reported by the pairing instances: {}", lines.join("; ")))
    }

    /// The one-line latency report, when an alert produced a map.
    pub fn latency_line(&self) -> Option<String> {
        self.latency.map(|l| {
            format!(
                "alert → map latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                l.p50_ms, l.p99_ms, l.max_ms
            )
        })
    }
}

/// Where the input stands, as a [`Watcher`] sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    /// Records read so far.
    pub records: u64,
    /// When the source last had nothing more to give (idle, or at its end): the
    /// pipeline was caught up then.
    pub caught_up_at: Option<Instant>,
    /// When outputs were last made durable (a checkpoint, in the Kafka runtime).
    pub committed_at: Option<Instant>,
    /// When the oldest input not yet made durable was read; `None` when everything read
    /// is committed.
    pub uncommitted_since: Option<Instant>,
    /// The input has ended and the operators are flushed.
    pub ended: bool,
}

/// Reads the operators' state between inputs: at most once per [`Watcher::interval`],
/// whenever the source is idle, and at the end. The HTTP API's graph view and the
/// telemetry gauges look at the engine this way, never from inside the hot path.
pub trait Watcher: Send {
    /// The shortest time between two looks.
    fn interval(&self) -> Duration;

    /// One look.
    fn watch(&mut self, engine: &Engine, progress: &Progress);
}

struct Watching {
    watcher: Box<dyn Watcher>,
    last: Option<Instant>,
}

/// Events between two checks of the watchers' clocks: reading the clock per span would
/// cost more than the look it schedules. Counted in events, not inputs: one input can
/// be a whole OTLP request, and 256 of those behind a paced or backlogged source kept
/// `/metrics` and `/readyz` seconds stale.
const WATCH_CHECK_EVERY: u64 = 256;

/// The dead letter of an event the engine's event-time guard held aside and rejected.
pub fn held_aside(event: &Event, reason: String) -> io::Result<Output> {
    let payload = serde_json::to_vec(event).map_err(io::Error::other)?;
    let record = RawRecord::new(payload, Expect::Any, Origin::Guard);
    tracing::warn!(%reason, "event held aside and rejected");
    Ok(Output::DeadLetter(Box::new(Rejected {
        record,
        reason,
        kind: RejectKind::EventTime,
        salvaged: Vec::new(),
    })))
}

/// The operator loop with its sink and taps.
pub struct Pipeline<S: Sink> {
    watchers: Vec<Watching>,
    unwatched: u64,
    caught_up_at: Option<Instant>,
    committed_at: Option<Instant>,
    uncommitted_since: Option<Instant>,
    engine: Engine,
    postmortem_template: Template,
    sink: S,
    taps: Vec<Box<dyn Sink + Send>>,
    latency: LatencyStats,
    first_map_ms: Option<f64>,
    records: u64,
    dead_letters: u64,
    outputs: Outputs,
    started: Instant,
}

impl<S: Sink> Pipeline<S> {
    /// The operators of `engine` publishing to `sink`.
    pub fn new(engine: Engine, sink: S) -> Self {
        Self {
            watchers: Vec::new(),
            unwatched: 0,
            caught_up_at: None,
            committed_at: None,
            uncommitted_since: None,
            engine,
            postmortem_template: Template::default(),
            sink,
            taps: Vec::new(),
            latency: LatencyStats::default(),
            first_map_ms: None,
            records: 0,
            dead_letters: 0,
            outputs: Outputs::default(),
            started: Instant::now(),
        }
    }

    /// Runs `role`'s part of the operators only.
    pub fn with_role(self, role: devloom_operators::Role) -> Self {
        Self { engine: self.engine.with_role(role), ..self }
    }

    /// Renders post-mortem drafts' Markdown with `template` instead of the built-in one.
    pub fn postmortem_template(mut self, template: Template) -> Self {
        self.postmortem_template = template;
        self
    }

    /// Also sends every input event and every output to `tap` (the history archive).
    pub fn tap(mut self, tap: Box<dyn Sink + Send>) -> Self {
        self.taps.push(tap);
        self
    }

    /// Lets `watcher` look at the operators between inputs.
    pub fn watch(mut self, watcher: Box<dyn Watcher>) -> Self {
        self.watchers.push(Watching { watcher, last: None });
        self
    }

    /// Feeds every input of `source` until it ends.
    pub fn run(&mut self, source: &mut dyn Source) -> io::Result<()> {
        while let Some(input) = source.next_input() {
            self.push(input?)?;
        }
        Ok(())
    }

    /// Feeds one input.
    pub fn push(&mut self, input: Input) -> io::Result<()> {
        let idle = matches!(input, Input::Idle);
        let weight = input.weight();
        self.feed(input)?;
        if !self.watchers.is_empty() {
            self.unwatched += weight;
            if idle {
                self.caught_up_at = Some(Instant::now());
            } else if self.uncommitted_since.is_none() {
                self.uncommitted_since = Some(Instant::now());
            }
            if idle || self.unwatched >= WATCH_CHECK_EVERY {
                self.unwatched = 0;
                self.look(false);
            }
        }
        Ok(())
    }

    /// Lets each watcher whose interval has passed (every one, when `all`) look.
    fn look(&mut self, all: bool) {
        let progress = Progress {
            records: self.records,
            caught_up_at: self.caught_up_at,
            committed_at: self.committed_at,
            uncommitted_since: self.uncommitted_since,
            ended: all,
        };
        for w in &mut self.watchers {
            if all || w.last.is_none_or(|last| last.elapsed() >= w.watcher.interval()) {
                w.watcher.watch(&self.engine, &progress);
                w.last = Some(Instant::now());
            }
        }
    }

    fn feed(&mut self, input: Input) -> io::Result<()> {
        match input {
            Input::Record(events, read) => {
                self.records += 1;
                events.iter().try_for_each(|e| self.event(e, read))
            }
            Input::Event(event, read) => self.event(&event, read),
            Input::Read(n) => {
                self.records += n;
                Ok(())
            }
            Input::Rejected(mut rejected, read) => {
                self.records += 1;
                self.dead_letters += 1;
                tracing::warn!(origin = %rejected.record.origin, reason = %rejected.reason, "dead letter");
                let salvaged = std::mem::take(&mut rejected.salvaged);
                self.publish(&Output::DeadLetter(rejected))?;
                salvaged.iter().try_for_each(|e| self.event(e, read))
            }
            // The graph role: linked spans are for pairing engines.
            Input::Calls { aggregates, watermark_ns, newest_ns, losses: (partition, losses), .. } => {
                self.engine.on_losses(partition, losses);
                self.engine.on_calls(&aggregates);
                self.engine.advance_to(watermark_ns, newest_ns, &mut self.outputs);
                self.publish_outputs(None)
            }
            Input::Idle => Ok(()),
        }
    }

    fn event(&mut self, event: &Event, read: ReadStamp) -> io::Result<()> {
        for tap in &mut self.taps {
            tap.input(event)?;
        }
        self.engine.on_event(event, &mut self.outputs);
        let from_alert = matches!(event, Event::Alert(_));
        self.publish_outputs(from_alert.then_some(read))
    }

    fn publish(&mut self, output: &Output) -> io::Result<()> {
        self.sink.publish(output)?;
        self.taps.iter_mut().try_for_each(|tap| tap.publish(output))
    }

    fn publish_outputs(&mut self, read: Option<ReadStamp>) -> io::Result<()> {
        if self.outputs.is_empty() {
            return Ok(());
        }
        for (event, reason) in std::mem::take(&mut self.outputs.rejected) {
            self.dead_letters += 1;
            self.publish(&held_aside(&event, reason)?)?;
        }
        for mut map in std::mem::take(&mut self.outputs.maps) {
            map.published_at = Some(format_rfc3339(wall_clock_ns()));
            if let Some(read) = read {
                let latency = read.instant.elapsed();
                let ms = latency.as_secs_f64() * 1000.0;
                map.alert_received_at = Some(format_rfc3339(read.wall_ns));
                map.latency_ms = Some(ms);
                self.latency.record(latency);
                self.first_map_ms.get_or_insert(ms);
                tracing::debug!(incident = %map.incident_id, version = map.version, latency_ms = ms, "impact map after alert");
            }
            self.publish(&Output::Impact(map))?;
        }
        for mut list in std::mem::take(&mut self.outputs.candidates) {
            list.published_at = Some(format_rfc3339(wall_clock_ns()));
            self.publish(&Output::Candidates(list))?;
        }
        for mut plan in std::mem::take(&mut self.outputs.remediations) {
            plan.published_at = Some(format_rfc3339(wall_clock_ns()));
            self.publish(&Output::Remediation(plan))?;
        }
        for mut draft in std::mem::take(&mut self.outputs.postmortems) {
            // A template that fails on this draft leaves the JSON without Markdown and says why.
            match self.postmortem_template.render(&draft) {
                Ok(markdown) => draft.markdown = Some(markdown),
                Err(e) => tracing::warn!(incident = %draft.incident_id, "{e}"),
            }
            draft.published_at = Some(format_rfc3339(wall_clock_ns()));
            self.publish(&Output::Postmortem(Box::new(draft)))?;
        }
        for mut decision in std::mem::take(&mut self.outputs.rollouts) {
            decision.published_at = Some(format_rfc3339(wall_clock_ns()));
            self.publish(&Output::Rollout(Box::new(decision)))?;
        }
        Ok(())
    }

    /// Makes everything published so far durable in the sink and every tap; returns the
    /// position a tap reported (the archive's next `seq`), for a checkpoint.
    pub fn commit(&mut self) -> io::Result<Option<u64>> {
        let mut position = self.sink.commit()?;
        for tap in &mut self.taps {
            position = position.or(tap.commit()?);
        }
        self.committed_at = Some(Instant::now());
        self.uncommitted_since = None;
        Ok(position)
    }

    /// The operators, as they stand.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// End of input: flushes the engine, commits, and returns the sink and the summary.
    pub fn finish(mut self) -> io::Result<(S, RunSummary)> {
        self.engine.flush(&mut self.outputs);
        self.publish_outputs(None)?;
        self.commit()?;
        self.caught_up_at = Some(Instant::now());
        self.look(true);
        let summary = self.summary();
        Ok((self.sink, summary))
    }

    /// What the run has done so far.
    pub fn summary(&self) -> RunSummary {
        let (engine, pairing) = self.engine.counters();
        RunSummary {
            records: self.records,
            dead_letters: self.dead_letters,
            engine,
            pairing,
            latency: self.latency.summary(),
            first_map_ms: self.first_map_ms,
            reported_losses: self.engine.reported_losses(),
            elapsed: self.started.elapsed(),
        }
    }

    /// The operators' state, for a checkpoint.
    pub fn snapshot(&self) -> EngineSnapshot {
        self.engine.snapshot()
    }

    /// Restores the operators' state from a checkpoint.
    pub fn restore(&mut self, snapshot: EngineSnapshot) {
        self.engine.restore(snapshot);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use devloom_operators::EngineConfig;
    use devloom_schemas::codec::DecodeOptions;

    use super::*;
    use crate::simulator::{SimConfig, Simulator};
    use crate::sinks::Collected;
    use crate::sources::Decoding;

    /// Counts its looks.
    struct Counting(Arc<AtomicU64>);

    impl Watcher for Counting {
        fn interval(&self) -> Duration {
            Duration::ZERO
        }

        fn watch(&mut self, _: &Engine, _: &Progress) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn watchers_look_between_large_records_even_when_the_source_is_never_idle() {
        // Twenty OTLP requests of a few hundred spans each, back to back.
        let sim = Simulator::shop("steady", SimConfig { rate_per_s: 30.0, ..SimConfig::default() }).unwrap();
        let records = sim.filter(|r| r.expect == Expect::Traces).take(20);
        let mut source = Decoding::start(records.map(|r| Ok(RawRecord::from(r))), DecodeOptions::default());
        let looks = Arc::new(AtomicU64::new(0));
        let mut pipeline = Pipeline::new(Engine::new(EngineConfig::default()), Collected::default())
            .watch(Box::new(Counting(looks.clone())));
        let mut spans = 0;
        while let Some(input) = source.next_input() {
            let input = input.unwrap();
            assert!(input.weight() >= WATCH_CHECK_EVERY, "a request of {} spans", input.weight());
            spans += input.weight();
            pipeline.push(input).unwrap();
        }
        assert!(spans > 20 * WATCH_CHECK_EVERY);
        assert_eq!(looks.load(Ordering::Relaxed), 20, "one look after each request");
    }
}
