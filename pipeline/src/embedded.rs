//! The embedded runtime: the operators fed from files, stdin or the simulator through
//! in-process channels, no broker needed. Decoding runs on its own thread; the operator
//! loop is one deterministic sequence. Every map is stamped with the wall-clock time
//! its alert was read and the time it was published.

use std::collections::BTreeMap;
use std::io;
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use devloom_operators::{
    Engine, EngineConfig, EngineCounters, EngineSnapshot, Outputs, PairingCounters, Scorer,
};
use devloom_schemas::codec::DecodeOptions;
use devloom_schemas::time::format_rfc3339;
use devloom_schemas::{DeadLetter, Event};

use crate::decode::decode_record;
use crate::history::ArchiveWriter;
use crate::input::{Origin, RawRecord};
use crate::latency::{LatencyStats, LatencySummary, wall_clock_ns};
use crate::output::{DeadLetterFile, OutputSink};

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
    /// Wall time of the run.
    pub elapsed: Duration,
}

/// When a record was read, for the latency stamps.
#[derive(Clone, Copy, Debug)]
pub struct ReadStamp {
    instant: Instant,
    wall_ns: u64,
}

impl ReadStamp {
    /// Now.
    pub fn now() -> Self {
        Self { instant: Instant::now(), wall_ns: wall_clock_ns() }
    }
}

/// The operator loop with its sinks.
pub struct Pipeline<S: OutputSink> {
    engine: Engine,
    sink: S,
    dead: DeadLetterFile,
    latency: LatencyStats,
    first_map_ms: Option<f64>,
    records: u64,
    outputs: Outputs,
    archive: Option<ArchiveWriter>,
    started: Instant,
}

impl<S: OutputSink> Pipeline<S> {
    /// A pipeline publishing to `sink`, dead letters to `dead`.
    pub fn new(config: EngineConfig, sink: S, dead: DeadLetterFile) -> Self {
        Self {
            engine: Engine::new(config),
            sink,
            dead,
            latency: LatencyStats::default(),
            first_map_ms: None,
            records: 0,
            outputs: Outputs::default(),
            archive: None,
            started: Instant::now(),
        }
    }

    /// Also scores root-cause candidates (published after each map they follow).
    pub fn with_scorer(mut self, scorer: Scorer, past: devloom_operators::PastIncidents) -> Self {
        self.engine = self.engine.with_scorer(scorer, past);
        self
    }

    /// Also archives every event and every published output to `archive`.
    pub fn with_archive(mut self, archive: ArchiveWriter) -> Self {
        self.archive = Some(archive);
        self
    }

    /// Commits the archive up to here (see [`ArchiveWriter::checkpoint`]); returns the
    /// archive's next `seq`, none without an archive.
    pub fn checkpoint_archive(&mut self) -> io::Result<Option<u64>> {
        self.archive.as_mut().map(|a| a.checkpoint().map_err(io::Error::other)).transpose()
    }

    /// Feeds one decoded record (or its dead letter) read at `read`.
    pub fn push(&mut self, decoded: Result<Vec<Event>, Box<DeadLetter>>, read: ReadStamp) -> io::Result<()> {
        self.records += 1;
        match decoded {
            Ok(events) => {
                for event in &events {
                    self.event(event, read)?;
                }
                Ok(())
            }
            Err(dead) => self.dead.write(&dead),
        }
    }

    /// Feeds one event read at `read`.
    pub fn event(&mut self, event: &Event, read: ReadStamp) -> io::Result<()> {
        if let Some(archive) = &mut self.archive {
            archive.append_event(event).map_err(io::Error::other)?;
        }
        self.engine.on_event(event, &mut self.outputs);
        let from_alert = matches!(event, Event::Alert(_));
        self.publish(from_alert.then_some(read))
    }

    fn publish(&mut self, read: Option<ReadStamp>) -> io::Result<()> {
        if self.outputs.is_empty() {
            return Ok(());
        }
        for mut map in std::mem::take(&mut self.outputs.maps) {
            let published = wall_clock_ns();
            map.published_at = Some(format_rfc3339(published));
            if let Some(read) = read {
                let latency = read.instant.elapsed();
                map.alert_received_at = Some(format_rfc3339(read.wall_ns));
                map.latency_ms = Some(latency.as_secs_f64() * 1000.0);
                self.latency.record(latency);
                self.first_map_ms.get_or_insert(latency.as_secs_f64() * 1000.0);
                tracing::debug!(
                    incident = %map.incident_id,
                    version = map.version,
                    latency_ms = latency.as_secs_f64() * 1000.0,
                    "impact map after alert"
                );
            }
            self.sink.publish(&map)?;
            if let Some(archive) = &mut self.archive {
                archive.append_impact(&map).map_err(io::Error::other)?;
            }
        }
        for mut list in std::mem::take(&mut self.outputs.candidates) {
            list.published_at = Some(format_rfc3339(wall_clock_ns()));
            self.sink.publish_candidates(&list)?;
            if let Some(archive) = &mut self.archive {
                archive.append_candidates(&list).map_err(io::Error::other)?;
            }
        }
        Ok(())
    }

    /// End of input: flushes the engine and returns the sink and the summary.
    pub fn finish(mut self) -> io::Result<(S, RunSummary)> {
        self.engine.flush(&mut self.outputs);
        self.publish(None)?;
        self.checkpoint_archive()?;
        let summary = self.summary();
        Ok((self.sink, summary))
    }

    /// What the run has done so far.
    pub fn summary(&self) -> RunSummary {
        let (engine, pairing) = self.engine.counters();
        RunSummary {
            records: self.records,
            dead_letters: self.dead.count(),
            engine,
            pairing,
            latency: self.latency.summary(),
            first_map_ms: self.first_map_ms,
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

/// Runs a live source (stdin, the simulator): records are decoded on a second thread
/// as they arrive and fed in arrival order. Bounded channel: a slow operator loop
/// slows the source instead of growing memory.
pub fn run_stream<S, I>(records: I, opts: &DecodeOptions, pipeline: &mut Pipeline<S>) -> io::Result<()>
where
    S: OutputSink,
    I: Iterator<Item = io::Result<RawRecord>> + Send,
{
    std::thread::scope(|scope| {
        let (tx, rx) = sync_channel(64);
        let decoder = scope.spawn(move || -> io::Result<()> {
            for record in records {
                let record = record?;
                let read = ReadStamp::now();
                if tx.send((decode_record(&record, opts), read)).is_err() {
                    break; // the operator loop stopped; its error is reported there
                }
            }
            Ok(())
        });
        let fed: io::Result<()> = rx.into_iter().try_for_each(|(decoded, read)| pipeline.push(decoded, read));
        let read = decoder.join().unwrap_or_else(|_| Err(io::Error::other("decoder thread panicked")));
        fed.and(read)
    })
}

/// Runs bounded inputs (files): everything is decoded, then merged in event time (see
/// [`merge_in_event_time`]). A record counts as read when the loop takes it.
pub fn run_batch<S: OutputSink>(
    records: Vec<RawRecord>,
    opts: &DecodeOptions,
    pipeline: &mut Pipeline<S>,
) -> io::Result<()> {
    let mut dead = Vec::new();
    let events = merge_in_event_time(&records, opts, &mut dead);
    pipeline.records += (records.len() - dead.len()) as u64;
    for d in dead {
        pipeline.push(Err(d), ReadStamp::now())?;
    }
    for event in &events {
        pipeline.event(event, ReadStamp::now())?;
    }
    Ok(())
}

/// Decodes bounded inputs and merges them in event time; undecodable records go to
/// `dead`. Each file is a stream in its own order (an alert's `startsAt` may precede the
/// spans written before it), so a record's merge key is the newest event time its file
/// has reached; the sort is stable.
pub fn merge_in_event_time(
    records: &[RawRecord],
    opts: &DecodeOptions,
    dead: &mut Vec<Box<DeadLetter>>,
) -> Vec<Event> {
    let mut reached: BTreeMap<String, u64> = BTreeMap::new();
    let mut events: Vec<(u64, Event)> = Vec::new();
    for record in records {
        match decode_record(record, opts) {
            Ok(decoded) => {
                let file = match &record.origin {
                    Origin::File { path, .. } => path.to_string(),
                    other => other.to_string(),
                };
                let newest = reached.entry(file).or_insert(0);
                for event in decoded {
                    *newest = (*newest).max(event.event_time_ns());
                    events.push((*newest, event));
                }
            }
            Err(d) => dead.push(d),
        }
    }
    events.sort_by_key(|(key, _)| *key);
    events.into_iter().map(|(_, e)| e).collect()
}
