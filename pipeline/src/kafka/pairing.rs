//! `devloom run --role pairing`: instances in one consumer group (`<group_id>.pairing`,
//! cooperative-sticky assignment) share the traces partitions. The group only says who
//! owns which partition; each owned partition gets a pairing engine and its own
//! [`KafkaSource`] over that partition and the calls topic ([`Scope::Pairing`]).
//!
//! After each traces message the engine may publish a [`HandOn`] record (always when it
//! handed aggregates on or read a span linking into another partition's trace, else at
//! most every [`PROGRESS_EVERY_MS`] of the partition's Kafka time; a frontier or an idle
//! record when it waits, again every [`REANNOUNCE`] while it does). Spans linking into
//! traces of other partitions travel in those records; each engine takes the ones meant
//! for it in the merge with its own messages, so it pairs them wherever it runs and
//! however far apart the instances are.
//!
//! Each partition's engine checkpoints on its own (`<state_dir>/pairing/<partition>`, a
//! directory every instance can read) every `[checkpoint] interval_ms`: the loop flushes
//! the producer and copies each engine's state, and each partition's checkpoint
//! [`Writer`] serializes and syncs it while the loop reads on. An instance given a
//! partition, by a rebalance or after another instance died, restores that checkpoint
//! and reads on; what it publishes again carries the same offsets, and readers drop it.

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use devloom_operators::{CallAggregate, Engine, Outputs, Role};
use devloom_schemas::{Event, TraceId};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::producer::BaseRecord;
use rdkafka::{ClientContext, TopicPartitionList};

use super::checkpoint::{
    Checkpoint, CheckpointStore, Writer, copied_state, duration_histogram, partition_key,
};
use super::client::{DevloomProducer, client_config, create_sized_topics, flush, kafka_err};
use super::hand_on::{HandOn, Linked};
use super::source::Scope;
use super::{KafkaRunError, KafkaSink, KafkaSource, check_brokers, producer, send};
use crate::config::Config;
use crate::core::{Input, Output, Sink, Source, held_aside};

/// A partition with spans but nothing to hand on still tells the others how far it has
/// come at least this often (of its own Kafka time).
pub const PROGRESS_EVERY_MS: i64 = 100;

/// A waiting partition says again where it stands this often (wall clock). Readers keep
/// what a lane last said in memory only: one that restored a checkpoint taken after a
/// partition's idle or frontier record would otherwise wait for that partition until its
/// next message, which on a quiet partition may be hours away.
const REANNOUNCE: Duration = Duration::from_secs(1);

/// Inputs one partition's engine takes before the loop turns to the next partition.
const TURN: usize = 512;

/// What a pairing instance did.
#[derive(Clone, Copy, Debug, Default)]
pub struct PairingSummary {
    /// Traces messages read.
    pub messages: u64,
    /// Spans read.
    pub spans: u64,
    /// Hand-on records published.
    pub hand_ons: u64,
    /// Call aggregates in them.
    pub aggregates: u64,
    /// Spans sent to the partition of a trace they link into.
    pub links: u64,
    /// Spans on a partition their trace id does not hash to: their trace shows up on
    /// two partitions, so its calls may go unpaired.
    pub misplaced_spans: u64,
    /// Dead letters.
    pub dead_letters: u64,
}

/// Which partitions the group gave or took since the loop last looked. A partition is
/// paused as soon as it is assigned: the group consumer only holds membership, each
/// partition's source reads it.
#[derive(Default)]
struct Membership {
    changes: Mutex<Vec<(bool, Vec<i32>)>>,
}

impl ClientContext for Membership {}

impl ConsumerContext for Membership {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            self.note(false, tpl);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            if let Err(e) = consumer.pause(tpl) {
                tracing::warn!(error = %e, "pausing the group consumer's partitions");
            }
            self.note(true, tpl);
        }
    }
}

impl Membership {
    fn note(&self, assigned: bool, tpl: &TopicPartitionList) {
        let partitions = tpl.elements().iter().map(|e| e.partition()).collect();
        self.changes.lock().unwrap_or_else(PoisonError::into_inner).push((assigned, partitions));
    }

    fn take(&self) -> Vec<(bool, Vec<i32>)> {
        std::mem::take(&mut *self.changes.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// What every partition's engine publishes through.
struct Outlet {
    config: Config,
    /// Partitions of the traces topic.
    partitions: i32,
    producer: DevloomProducer,
    sink: KafkaSink,
    out: Outputs,
    summary: PairingSummary,
}

/// One owned traces partition.
struct Lane<'a> {
    partition: i32,
    key: String,
    source: KafkaSource<'a>,
    engine: Engine,
    /// Writes this partition's checkpoints on a thread of its own.
    writer: Writer,
    /// (Kafka time, offset) of the last own message processed.
    last: Option<(i64, i64)>,
    /// Kafka time of the last regular record published.
    sent_ms: Option<i64>,
    /// Messages processed since the last record.
    unsent: bool,
    idle_sent: bool,
    frontier_sent: Option<(i64, i64)>,
    /// When the last idle or frontier record went out.
    announced: Option<Instant>,
}

impl<'a> Lane<'a> {
    /// The partition's engine and source, from its checkpoint if there is one.
    fn open(o: &Outlet, partition: i32, stop: &'a AtomicBool) -> Result<Self, KafkaRunError> {
        let k = &o.config.kafka;
        let store =
            CheckpointStore::new(&o.config.checkpoint.state_dir.join("pairing").join(partition.to_string()));
        let mut engine = Engine::new(o.config.engine.clone()).with_role(Role::Pairing);
        let mut offsets = BTreeMap::new();
        if let Some(c) = store.load()? {
            tracing::info!(partition, "restored checkpoint");
            engine.restore(c.engine);
            offsets = c.offsets;
        }
        let source =
            KafkaSource::open(k, o.config.decode.options(), offsets, stop, Scope::Pairing(partition))?;
        Ok(Self {
            partition,
            key: partition_key(&k.topics.traces, partition),
            source,
            engine,
            writer: Writer::start(store)?,
            last: None,
            sent_ms: None,
            unsent: false,
            idle_sent: false,
            frontier_sent: None,
            announced: None,
        })
    }

    /// Takes up to [`TURN`] inputs, stopping early when nothing is ready.
    fn turn(&mut self, o: &mut Outlet) -> Result<(), KafkaRunError> {
        for _ in 0..TURN {
            let Some(input) = self.source.next_input() else { return Ok(()) };
            match input? {
                Input::Idle => return self.waiting(o),
                Input::Calls { links, .. } => {
                    for l in links {
                        self.engine.on_linked(&l.span, l.trace_id);
                    }
                }
                input @ (Input::Record(..) | Input::Rejected(..)) => self.process(o, input)?,
                Input::Event(..) | Input::Read(_) => {}
            }
        }
        Ok(())
    }

    /// One traces message.
    fn process(&mut self, o: &mut Outlet, input: Input) -> Result<(), KafkaRunError> {
        let (events, dead) = match input {
            Input::Record(events, _) => (events, None),
            Input::Rejected(mut rejected, _) => {
                (std::mem::take(&mut rejected.salvaged), Some(Output::DeadLetter(rejected)))
            }
            _ => return Ok(()),
        };
        if let Some(dead) = dead {
            o.sink.publish(&dead)?;
            o.summary.dead_letters += 1;
        }
        let mut links = Vec::new();
        // A message usually holds one trace: its partition is hashed once.
        let mut home: Option<(TraceId, i32)> = None;
        for event in &events {
            if let Event::Span(span) = event {
                o.summary.spans += 1;
                let p = match home {
                    Some((trace, p)) if trace == span.trace_id => p,
                    _ => partition_of(span.trace_id, o.partitions),
                };
                home = Some((span.trace_id, p));
                o.summary.misplaced_spans += u64::from(p != self.partition);
            }
            self.engine.on_event(event, &mut o.out);
            for (trace_id, span) in std::mem::take(&mut o.out.links) {
                match partition_of(trace_id, o.partitions) {
                    p if p == self.partition => self.engine.on_linked(&span, trace_id),
                    p => links.push(Linked { partition: p, trace_id, span }),
                }
            }
        }
        for (event, reason) in std::mem::take(&mut o.out.rejected) {
            o.sink.publish(&held_aside(&event, reason)?)?;
            o.summary.dead_letters += 1;
        }
        o.summary.messages += 1;
        let (timestamp_ms, _) = self.source.last_handed().unwrap_or_default();
        self.last = self.source.last_handed();
        self.unsent = true;
        self.idle_sent = false;
        let aggregates = std::mem::take(&mut o.out.calls);
        let due = self.sent_ms.is_none_or(|sent| timestamp_ms - sent >= PROGRESS_EVERY_MS);
        if !aggregates.is_empty() || !links.is_empty() || due {
            self.send(o, aggregates, links, None, false)?;
        }
        Ok(())
    }

    /// Nothing is ready: the partition is at its end, or its next message waits for the
    /// other partitions. Says which when it changes, and again every [`REANNOUNCE`].
    fn waiting(&mut self, o: &mut Outlet) -> Result<(), KafkaRunError> {
        if self.unsent {
            self.send(o, Vec::new(), Vec::new(), None, false)?;
        }
        let again = self.announced.is_none_or(|at| at.elapsed() >= REANNOUNCE);
        if self.source.at_end(&self.key) {
            if !self.idle_sent || again {
                self.send(o, Vec::new(), Vec::new(), None, true)?;
                self.idle_sent = true;
                self.announced = Some(Instant::now());
            }
        } else if let Some(frontier) = self.source.next_waiting(&self.key)
            && (self.frontier_sent != Some(frontier) || again)
        {
            self.send(o, Vec::new(), Vec::new(), Some(frontier), false)?;
            self.frontier_sent = Some(frontier);
            self.announced = Some(Instant::now());
        }
        Ok(())
    }

    fn send(
        &mut self,
        o: &mut Outlet,
        aggregates: Vec<CallAggregate>,
        links: Vec<Linked>,
        frontier: Option<(i64, i64)>,
        idle: bool,
    ) -> Result<(), KafkaRunError> {
        let next = self.source.positions().get(&self.key).copied().unwrap_or(0);
        let (timestamp_ms, offset) = self.last.unwrap_or((0, next - 1));
        o.summary.hand_ons += 1;
        o.summary.aggregates += aggregates.len() as u64;
        o.summary.links += links.len() as u64;
        let record = HandOn {
            partition: self.partition,
            offset,
            timestamp_ms,
            watermark_ns: self.engine.watermark_ns(),
            newest_ns: self.engine.newest_ns(),
            idle,
            frontier,
            aggregates,
            links,
            losses: self.engine.losses(),
        };
        if frontier.is_none() && !idle {
            self.sent_ms = Some(timestamp_ms);
            self.unsent = false;
        }
        let payload = serde_json::to_vec(&record).map_err(std::io::Error::other)?;
        let key = self.partition.to_string();
        let topic = &o.config.kafka.topics.calls;
        send(&o.producer, BaseRecord::to(topic).key(key.as_bytes()).payload(payload.as_slice()))
    }

    /// Hands the engine's state at its source's positions to the writer (after the
    /// outlet was flushed: a checkpoint never covers input whose records are not durable).
    fn checkpoint(&mut self) -> Result<(), KafkaRunError> {
        let offsets = self.source.positions().clone();
        let state = copied_state(|| self.engine.snapshot());
        Ok(self.writer.save(Checkpoint::new(offsets, state, None))?)
    }

    /// Commits the offsets of the checkpoint being written once it is durable; with
    /// `wait` (stopping), waits for both. Whether one was.
    fn commit_durable(&mut self, wait: bool) -> Result<bool, KafkaRunError> {
        let (durable, mode) = match wait {
            true => (self.writer.wait()?, CommitMode::Sync),
            false => (self.writer.finished()?, CommitMode::Async),
        };
        match durable {
            Some(offsets) => self.source.commit_offsets(&offsets, mode).map(|()| true),
            None => Ok(false),
        }
    }
}

/// The traces partition a trace id's key lands on: librdkafka's murmur2 partitioner,
/// the one Java clients and the Collector's Kafka exporter (franz-go) use for keyed
/// messages, on the hex trace id `partition_traces_by_id` keys messages by.
fn partition_of(trace: TraceId, partitions: i32) -> i32 {
    let key = trace.to_string();
    // SAFETY: the murmur2 partitioner reads `keylen` bytes of `key` and nothing else (the
    // topic and opaque pointers are unused); `key` outlives the call.
    unsafe {
        rdkafka_sys::rd_kafka_msg_partitioner_murmur2(
            std::ptr::null(),
            key.as_ptr().cast::<c_void>(),
            key.len(),
            partitions,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    }
}

/// Runs a pairing instance until `stop` is set; then checkpoints every partition it
/// holds and leaves the group.
pub fn run(config: &Config, stop: &AtomicBool) -> Result<PairingSummary, KafkaRunError> {
    let k = &config.kafka;
    let t = &k.topics;
    check_brokers(k, &t.traces)?;
    if k.create_topics {
        create_sized_topics(k, &[(&t.traces, k.partitions), (&t.calls, 1)])?;
    }
    let client: BaseConsumer = client_config(k)?.create().map_err(kafka_err("creating a client"))?;
    let metadata = client
        .fetch_metadata(Some(&t.traces), Duration::from_secs(30))
        .map_err(kafka_err(format!("reading the metadata of {}", t.traces)))?;
    let partitions = metadata.topics().first().map_or(0, |m| m.partitions().len()) as i32;
    if partitions == 0 {
        return Err(KafkaRunError::Role(format!("{} has no partitions (does it exist?)", t.traces)));
    }
    let mut o = Outlet {
        config: config.clone(),
        partitions,
        producer: producer(k)?,
        sink: KafkaSink::open(config)?,
        out: Outputs::default(),
        summary: PairingSummary::default(),
    };
    let mut c = client_config(k)?;
    c.set("group.id", format!("{}.pairing", k.group_id))
        .set("enable.auto.commit", "false")
        .set("partition.assignment.strategy", "cooperative-sticky");
    let group: BaseConsumer<Membership> =
        c.create_with_context(Membership::default()).map_err(kafka_err("creating the group consumer"))?;
    group.subscribe(&[&t.traces]).map_err(kafka_err(format!("subscribing to {}", t.traces)))?;
    eprintln!(
        "devloom: pairing {} ({partitions} partitions) in group {}.pairing, publishing {}",
        t.traces, k.group_id, t.calls
    );
    let mut lanes: BTreeMap<i32, Lane<'_>> = BTreeMap::new();
    let interval = Duration::from_millis(config.checkpoint.interval_ms);
    let checkpoint_duration = duration_histogram();
    let mut last_checkpoint = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        let wait = if lanes.is_empty() { 100 } else { 0 };
        if let Some(Err(e)) = group.poll(Duration::from_millis(wait)) {
            tracing::warn!(error = %e, "pairing group");
        }
        for (assigned, changed) in group.context().take() {
            for p in changed {
                if assigned {
                    lanes.insert(p, Lane::open(&o, p, stop)?);
                } else if lanes.remove(&p).is_some() {
                    // No new checkpoint (dropping the lane lets one being written finish):
                    // the next owner resumes from the last one and repeats what it must.
                    tracing::info!(partition = p, "partition moved to another instance");
                }
            }
        }
        for lane in lanes.values_mut() {
            lane.turn(&mut o)?;
            if lane.commit_durable(false)? {
                checkpoint_duration.record(last_checkpoint.elapsed().as_secs_f64(), &[]);
            }
        }
        // One checkpoint per partition in flight: one due while the last is still being
        // written waits for it.
        if last_checkpoint.elapsed() >= interval && !lanes.values().any(|l| l.writer.busy()) {
            last_checkpoint = Instant::now();
            checkpoint(&mut o, &mut lanes)?;
        }
    }
    // Stopping: the checkpoints in flight, then the last ones, each committed once durable.
    for lane in lanes.values_mut() {
        lane.commit_durable(true)?;
    }
    checkpoint(&mut o, &mut lanes)?;
    for lane in lanes.values_mut() {
        lane.commit_durable(true)?;
    }
    Ok(o.summary)
}

/// Makes everything published durable, then hands every lane's state to its writer.
fn checkpoint(o: &mut Outlet, lanes: &mut BTreeMap<i32, Lane<'_>>) -> Result<(), KafkaRunError> {
    flush(&o.producer)?;
    o.sink.commit()?;
    lanes.values_mut().try_for_each(Lane::checkpoint)
}
