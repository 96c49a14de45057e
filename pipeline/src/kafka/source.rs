//! Kafka input topics as a [`Source`]: every partition assigned to this consumer,
//! each message decoded through the one decode stage on worker threads
//! ([`super::decode_pool`]), merged in event time ([`super::merge`]), with backpressure
//! by pausing partitions whose queue is full.
//!
//! Scaled out ([`Scope`]), the other traces partitions come as lanes of the calls topic,
//! each in the place its messages would have had ([`super::hand_on`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use devloom_schemas::codec::{DecodeOptions, Expect};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaResult;
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

use super::KafkaRunError;
use super::assignment::{assign_all, cached_high_watermark, split_key};
use super::checkpoint::partition_key;
use super::client::{client_config, input_topics, kafka_err};
use super::decode_pool::DecodePool;
use super::hand_on::{HandOn, Lane, merged_progress};
use super::merge::{Merger, Pending, Queued};
use crate::config::KafkaConfig;
use crate::core::{Input, Origin, RawRecord, ReadStamp, Source};
use crate::sources::documents::CUT_PREFIX_BYTES;

/// The input topics, read from `next` offsets on.
pub struct KafkaSource<'a> {
    consumer: BaseConsumer<Committing>,
    rank: HashMap<String, (usize, Expect)>,
    topics: HashMap<String, Arc<str>>,
    opts: DecodeOptions,
    merger: Merger,
    /// Where each partition was assigned from.
    start: BTreeMap<String, i64>,
    /// The offset after the last message handed on, per partition.
    next: BTreeMap<String, i64>,
    paused: BTreeSet<String>,
    max_buffered: usize,
    pool: DecodePool,
    stop: &'a AtomicBool,
    calls: Option<Calls>,
    /// Kafka timestamp and offset of the last message handed on.
    last: Option<(i64, i64)>,
}

/// What a [`KafkaSource`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every partition of every input topic (`--role all`).
    All,
    /// Every input but the traces, whose partitions come as lanes of the calls topic
    /// (`--role graph`).
    Graph,
    /// One traces partition, and the others as lanes of the calls topic, for the spans
    /// linking into this one (`--role pairing`).
    Pairing(i32),
}

/// A scaled-out role's view of the calls topic: one lane per traces partition (but its
/// own, for a pairing engine).
struct Calls {
    /// The calls topic (one partition).
    topic: String,
    /// The traces topic, whose partitions the lanes stand for.
    traces: String,
    /// The traces topic's place in the merge tiebreak.
    rank: usize,
    lanes: BTreeMap<i32, Lane>,
    /// Calls-topic offsets of records waiting in the merge.
    queued: BTreeSet<i64>,
    /// The calls-topic offset after the last one polled.
    polled: i64,
    /// The traces partition this source pairs, whose linked spans it hands on.
    own: Option<i32>,
}

impl<'a> KafkaSource<'a> {
    /// Assigns every partition of the input topics `scope` covers, each from `next` (a
    /// checkpoint's offsets), else the group's committed offset, else the start of the
    /// log. Returns no input once `stop` is set.
    pub fn open(
        k: &KafkaConfig,
        opts: DecodeOptions,
        next: BTreeMap<String, i64>,
        stop: &'a AtomicBool,
        scope: Scope,
    ) -> Result<Self, KafkaRunError> {
        let all = input_topics(k);
        let traces_rank = all.iter().position(|(t, _)| *t == k.topics.traces).unwrap_or(0);
        let inputs: Vec<(String, Expect)> = all
            .iter()
            .filter(|(t, e)| match scope {
                Scope::All => true,
                Scope::Graph => *e != Expect::Traces,
                Scope::Pairing(_) => *t == k.topics.traces,
            })
            .cloned()
            .collect();
        let (group, threads) = match scope {
            // Never joined: the group only holds the offsets, for lag tooling.
            Scope::Pairing(_) => (format!("{}.pairing-lanes", k.group_id), k.decode_threads.max(1)),
            _ => (k.group_id.clone(), k.decode_threads),
        };
        let mut c = client_config(k)?;
        c.set("group.id", &group).set("enable.auto.commit", "false");
        consumer_defaults(&mut c, scope);
        let consumer = c.create_with_context(Committing).map_err(kafka_err("creating the consumer"))?;
        let mut names: Vec<&str> = inputs.iter().map(|(t, _)| t.as_str()).collect();
        if scope != Scope::All {
            names.push(&k.topics.calls);
        }
        let own = match scope {
            Scope::Pairing(p) => Some(p),
            _ => None,
        };
        let keep =
            |topic: &str, partition: i32| own.is_none_or(|p| topic != k.topics.traces || partition == p);
        let start = assign_all(&consumer, &names, &next, keep)?;
        let calls = match scope {
            Scope::All => None,
            _ => Some(Calls::open(&consumer, k, traces_rank, &next, own)?),
        };
        let pool = DecodePool::start(threads, opts.clone()).map_err(KafkaRunError::Io)?;
        Ok(Self {
            consumer,
            rank: all.iter().enumerate().map(|(i, (t, e))| (t.clone(), (i, *e))).collect(),
            topics: inputs.iter().map(|(t, _)| (t.clone(), Arc::from(t.as_str()))).collect(),
            opts,
            merger: Merger::default(),
            start,
            next,
            paused: BTreeSet::new(),
            max_buffered: k.max_buffered_per_partition,
            pool,
            stop,
            calls,
            last: None,
        })
    }

    /// Kafka timestamp and offset of the last message handed on.
    pub fn last_handed(&self) -> Option<(i64, i64)> {
        self.last
    }

    /// Kafka timestamp and offset of the next message waiting on `partition`
    /// (`topic/partition`), if one is.
    pub fn next_waiting(&self, partition: &str) -> Option<(i64, i64)> {
        self.merger.front(partition)
    }

    /// `partition` (`topic/partition`) has been read to its end.
    pub fn at_end(&self, partition: &str) -> bool {
        self.caught_up().get(partition).copied().unwrap_or(false)
    }

    /// The offset after the last message handed on, per partition: what a checkpoint
    /// records.
    pub fn positions(&self) -> &BTreeMap<String, i64> {
        &self.next
    }

    /// Commits `positions` (what a durable checkpoint holds, [`KafkaSource::positions`]
    /// when it was taken) to the group, for lag tooling; the checkpoint is what a restart
    /// trusts. [`CommitMode::Async`] while running (the loop does not wait a broker round
    /// trip; a failure is logged when a poll serves its result), [`CommitMode::Sync`]
    /// when stopping.
    pub fn commit_offsets(
        &self,
        positions: &BTreeMap<String, i64>,
        mode: CommitMode,
    ) -> Result<(), KafkaRunError> {
        let mut tpl = TopicPartitionList::new();
        // Only what this source reads itself. A pairing engine's positions also hold the
        // other traces partitions' lanes (how far it applied their records, behind their
        // owners' own commits) and its calls position: its own partition only.
        let own = |key: &str| match self.calls.as_ref() {
            Some(Calls { own: Some(p), traces, .. }) => key == partition_key(traces, *p),
            _ => self.start.contains_key(key),
        };
        for (key, offset) in positions.iter().filter(|(key, _)| own(key)) {
            let (topic, partition) = split_key(key);
            tpl.add_partition_offset(topic, partition, Offset::Offset(*offset))
                .map_err(kafka_err("building the offsets to commit"))?;
        }
        if tpl.count() > 0
            && let Err(e) = self.consumer.commit(&tpl, mode)
        {
            committed(Err(e));
        }
        Ok(())
    }

    /// Polls a message; scaled out, also whatever else has already arrived (the other
    /// partitions' records come in bursts, and a partition waiting on them should not
    /// read one per turn).
    fn poll(&mut self) -> Result<(), KafkaRunError> {
        // A pairing engine shares its thread with the instance's other partitions.
        let wait = if self.calls.as_ref().is_some_and(|c| c.own.is_some()) { 5 } else { 50 };
        let burst = if self.calls.is_some() { 256 } else { 1 };
        if self.poll_one(Duration::from_millis(wait))? {
            for _ in 1..burst {
                if !self.poll_one(Duration::ZERO)? {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Takes one polled message into the merge; `false` when none came.
    fn poll_one(&mut self, wait: Duration) -> Result<bool, KafkaRunError> {
        let Some(polled) = self.consumer.poll(wait) else { return Ok(false) };
        let msg = match polled {
            Ok(msg) => msg,
            Err(e) => {
                tracing::warn!(error = %e, "kafka consumer");
                return Ok(false);
            }
        };
        let key = partition_key(msg.topic(), msg.partition());
        if let Some(calls) = self.calls.as_mut().filter(|c| c.topic == msg.topic()) {
            if msg.offset() >= calls.polled {
                calls.polled = msg.offset() + 1;
                if let Some((lane, pending)) = calls.take(msg.offset(), msg.payload().unwrap_or_default()) {
                    self.merger.push(lane, pending);
                }
                self.next.insert(key, calls.position());
            }
            return Ok(true);
        }
        // Skip what the checkpointed state already holds.
        if msg.offset() < self.next.get(&key).copied().unwrap_or(0) {
            return Ok(true);
        }
        let (rank, expect) = self.rank.get(msg.topic()).copied().unwrap_or((usize::MAX, Expect::Any));
        let topic = self.topics.get(msg.topic()).cloned().unwrap_or_else(|| Arc::from(msg.topic()));
        let read = ReadStamp::now();
        let record = raw_record(&msg, topic, expect, &self.opts);
        let timestamp_ms = msg.timestamp().to_millis().unwrap_or(0);
        let order = match self.calls.as_ref().and_then(|c| c.own) {
            // A pairing engine's own messages come before the other partitions' steps of
            // the same granule.
            Some(_) => (granule(timestamp_ms), 0, msg.partition(), msg.offset()),
            None => (timestamp_ms, rank, msg.partition(), msg.offset()),
        };
        let input = Queued::Message(self.pool.decode(record, read));
        let at = (timestamp_ms, msg.offset());
        if self.merger.push(key.clone(), Pending { order, at, input }) > self.max_buffered {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(msg.topic(), msg.partition());
            self.consumer.pause(&tpl).map_err(kafka_err("pausing a partition"))?;
            self.paused.insert(key);
        }
        Ok(true)
    }

    /// Per partition (`topic/partition`), the messages after the last one handed on:
    /// the high watermark librdkafka last saw minus Devloom's position. Partitions whose
    /// high watermark is not known yet are left out.
    pub fn lag(&self) -> Vec<(String, i64)> {
        self.start
            .iter()
            .filter_map(|(key, &start)| {
                let (topic, partition) = split_key(key);
                let at = self.next.get(key).copied().unwrap_or(start);
                let high = cached_high_watermark(&self.consumer, topic, partition)?;
                Some((key.clone(), (high - at).max(0)))
            })
            .collect()
    }

    /// Which partitions have been read to their end (nothing waiting, at the high
    /// watermark).
    fn caught_up(&self) -> BTreeMap<String, bool> {
        let calls = self.calls.as_ref();
        let lanes = calls.into_iter().flat_map(|c| {
            c.lanes.iter().map(|(p, lane)| {
                (
                    partition_key(&c.traces, *p),
                    lane.idle && self.merger.len(&partition_key(&c.traces, *p)) == 0,
                )
            })
        });
        self.start
            .iter()
            .filter(|(key, _)| calls.is_none_or(|c| split_key(key).0 != c.topic))
            .map(|(key, &start)| {
                let (topic, partition) = split_key(key);
                let at = self.next.get(key).copied().unwrap_or(start);
                let end = self.merger.len(key) == 0
                    && cached_high_watermark(&self.consumer, topic, partition).is_some_and(|high| at >= high);
                (key.clone(), end)
            })
            .chain(lanes)
            .collect()
    }

    fn next_ready(&mut self) -> Result<Option<Input>, KafkaRunError> {
        let Some((key, p)) = self.merger.pop(&self.caught_up()) else { return Ok(None) };
        tracing::trace!(%key, offset = p.at.1, "processing");
        self.last = Some(p.at);
        let slot = match p.input {
            Queued::Message(slot) => {
                self.next.insert(key.clone(), p.at.1 + 1);
                slot
            }
            Queued::HandOn { record, at } => {
                // The lane's position is what it has applied (a frontier applies nothing).
                self.next.insert(key.clone(), record.offset + 1);
                let calls = self
                    .calls
                    .as_mut()
                    .ok_or_else(|| io::Error::other("a hand-on record read by --role all"))?;
                calls.queued.remove(&at);
                calls.lanes.entry(record.partition).or_default().apply(&record);
                self.next.insert(partition_key(&calls.topic, 0), calls.position());
                let (watermark_ns, newest_ns) = merged_progress(calls.lanes.values());
                let HandOn { partition, aggregates, mut links, losses, .. } = *record;
                links.retain(|l| Some(l.partition) == calls.own);
                let losses = (partition, losses);
                return Ok(Some(Input::Calls { aggregates, links, watermark_ns, newest_ns, losses }));
            }
        };
        if self.paused.contains(&key) && self.merger.len(&key) <= self.max_buffered / 2 {
            let (topic, partition) = split_key(&key);
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(topic, partition);
            self.consumer.resume(&tpl).map_err(kafka_err("resuming a partition"))?;
            self.paused.remove(&key);
        }
        let input = slot.take().ok_or_else(|| io::Error::other("a decode worker stopped"))?;
        Ok(Some(input))
    }
}

/// Devloom's consumer settings for large OTLP batches and low latency, where
/// `[kafka.properties]` did not set them.
fn consumer_defaults(c: &mut ClientConfig, scope: Scope) {
    // A pairing engine waits on the others' steps through the calls topic: fetch them as
    // soon as they are there.
    let fetch_wait = if matches!(scope, Scope::Pairing(_)) { "2" } else { "20" };
    // librdkafka stops fetching for `fetch.queue.backoff.ms` (1 s by default) once its
    // queue holds `queued.max.messages.kbytes` (64 MB): a few hundred OTLP batches, a
    // second's work on a backlog, so a second's wait left the loop idle (BENCHMARKS.md).
    for (key, value) in [
        ("auto.offset.reset", "earliest"),
        ("fetch.wait.max.ms", fetch_wait),
        ("fetch.queue.backoff.ms", "20"),
        ("max.partition.fetch.bytes", "16777216"),
    ] {
        if c.get(key).is_none() {
            c.set(key, value);
        }
    }
}

/// The consumer's context: reports the result of commits made without waiting.
struct Committing;

impl ClientContext for Committing {}

impl ConsumerContext for Committing {
    fn commit_callback(&self, result: KafkaResult<()>, _: &TopicPartitionList) {
        committed(result);
    }
}

fn committed(result: KafkaResult<()>) {
    if let Err(e) = result {
        // Not fatal: on restart the checkpoint's offsets win over the committed ones.
        tracing::warn!(error = %e, "committing offsets");
    }
}

/// How finely a pairing engine interleaves its own messages with the other partitions'
/// steps, in Kafka time: within a granule its own messages go first, then the spans the
/// others read in it that link into its traces. Exact order would make every partition
/// wait for every other one message by message; a granule well inside the allowed
/// lateness (2 s by default) pairs the same hand-offs into the same buckets, and the
/// partitions advance a granule per round trip through the calls topic.
pub const LINK_GRANULE_MS: i64 = 1000;

fn granule(timestamp_ms: i64) -> i64 {
    timestamp_ms - timestamp_ms.rem_euclid(LINK_GRANULE_MS)
}

/// A Kafka message as a record for the decode stage: its headers, key and timestamp
/// (the fallback event time); past the record limit only its first bytes, and its size,
/// for the dead letter.
pub fn raw_record(msg: &impl Message, topic: Arc<str>, expect: Expect, opts: &DecodeOptions) -> RawRecord {
    let timestamp_ms = msg.timestamp().to_millis().unwrap_or(0);
    let payload = msg.payload().unwrap_or_default();
    let cut_from = (payload.len() > opts.max_record_bytes).then_some(payload.len() as u64);
    let kept = if cut_from.is_some() { &payload[..CUT_PREFIX_BYTES] } else { payload };
    RawRecord {
        headers: msg
            .headers()
            .map(|h| h.iter().map(|x| (x.key.to_string(), x.value.unwrap_or_default().to_vec())).collect())
            .unwrap_or_default(),
        key: msg.key().map(<[u8]>::to_vec),
        fallback_time_ns: u64::try_from(timestamp_ms).ok().filter(|&t| t > 0).map(|t| t * 1_000_000),
        cut_from,
        ..RawRecord::new(
            kept.to_vec(),
            expect,
            Origin::Kafka { topic, partition: msg.partition(), offset: msg.offset(), timestamp_ms },
        )
    }
}

impl Calls {
    /// One lane per partition of the traces topic, each resuming after the offset the
    /// checkpoint's state covers.
    fn open(
        consumer: &BaseConsumer<Committing>,
        k: &KafkaConfig,
        rank: usize,
        next: &BTreeMap<String, i64>,
        own: Option<i32>,
    ) -> Result<Self, KafkaRunError> {
        let traces = k.topics.traces.clone();
        let metadata = consumer
            .fetch_metadata(Some(&traces), Duration::from_secs(30))
            .map_err(kafka_err(format!("reading the metadata of {traces}")))?;
        let lanes = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions())
            .filter(|p| Some(p.id()) != own)
            .map(|p| (p.id(), Lane::resumed(next.get(&partition_key(&traces, p.id())).map(|o| o - 1))))
            .collect();
        let polled = next.get(&partition_key(&k.topics.calls, 0)).copied().unwrap_or(0);
        Ok(Self { topic: k.topics.calls.clone(), traces, rank, lanes, queued: BTreeSet::new(), polled, own })
    }

    /// A polled calls record: queued in its lane's place when it is new.
    fn take(&mut self, at: i64, payload: &[u8]) -> Option<(String, Pending)> {
        let record: HandOn = match serde_json::from_slice(payload) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(offset = at, error = %e, topic = %self.topic, "not a hand-on record; skipped");
                return None;
            }
        };
        // A pairing source's own records, or a partition the topic did not have at start.
        let lane = self.lanes.get_mut(&record.partition)?;
        if !lane.poll(&record) {
            return None;
        }
        self.queued.insert(at);
        let (timestamp_ms, offset) = record.position();
        let order = match self.own {
            Some(_) => (granule(timestamp_ms), 1, record.partition, offset),
            None => (timestamp_ms, self.rank, record.partition, offset),
        };
        let key = partition_key(&self.traces, record.partition);
        let input = Queued::HandOn { record: Box::new(record), at };
        Some((key, Pending { order, at: (timestamp_ms, offset), input }))
    }

    /// Where a restart reads the calls topic from: the first record still waiting, else
    /// after the last one polled.
    fn position(&self) -> i64 {
        self.queued.first().copied().unwrap_or(self.polled)
    }
}

impl Source for KafkaSource<'_> {
    /// The next message in event-time order; [`Input::Idle`] when none is ready after a
    /// poll; none once told to stop.
    fn next_input(&mut self) -> Option<std::io::Result<Input>> {
        if self.stop.load(Ordering::SeqCst) {
            return None;
        }
        let ready = match self.next_ready() {
            Ok(None) => self.poll().and_then(|()| self.next_ready()),
            other => other,
        };
        Some(
            ready.map(|input| input.unwrap_or(Input::Idle)).map_err(|e| std::io::Error::other(e.to_string())),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_defaults_fill_in_what_the_properties_leave_out() {
        let k = KafkaConfig {
            properties: [("fetch.queue.backoff.ms".to_string(), "500".to_string())].into(),
            ..KafkaConfig::default()
        };
        let read = |scope| {
            let mut c = client_config(&k).unwrap();
            consumer_defaults(&mut c, scope);
            ["fetch.queue.backoff.ms", "fetch.wait.max.ms", "auto.offset.reset", "max.partition.fetch.bytes"]
                .map(|key| c.get(key).unwrap_or_default().to_string())
        };
        assert_eq!(read(Scope::All), ["500", "20", "earliest", "16777216"], "the property wins");
        assert_eq!(read(Scope::Pairing(0))[1], "2", "a pairing engine fetches without waiting");
        let mut c = ClientConfig::new();
        consumer_defaults(&mut c, Scope::Graph);
        assert_eq!(c.get("fetch.queue.backoff.ms"), Some("20"), "not librdkafka's 1 s");
    }
}
