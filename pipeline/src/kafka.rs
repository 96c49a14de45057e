//! The Kafka runtime: the same operators as the embedded mode, fed from Kafka topics and
//! publishing to Kafka topics, with nothing lost.
//!
//! - Inputs from every partition are merged in event time (Kafka timestamp, then topic,
//!   partition, offset): a message is released only when every assigned partition has
//!   one waiting or has been read to its end. The order, and so the output, depends on
//!   the data, not on fetch timing.
//! - Impact maps go to the impact topic keyed by incident id, as CloudEvents in binary
//!   mode; undecodable messages go to the dead-letter topic with their original bytes and
//!   headers plus `devloom.*` headers (reason, source topic / partition / offset).
//! - At-least-once: every N seconds or M messages the producer is flushed, then operator
//!   state and next offsets are checkpointed atomically, then the offsets are committed.
//!   On restart the checkpoint is restored and messages before its offsets are skipped;
//!   outputs re-emitted after a crash carry the same `(incident_id, version)` and payload.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use devloom_schemas::codec::{DecodeOptions, Expect, Message as DecodeMessage, decode};
use devloom_schemas::{CandidateList, Event, ImpactMap};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::checkpoint::{Checkpoint, CheckpointError, CheckpointStore, partition_key};
use crate::config::{Config, KafkaConfig};
use crate::embedded::{Pipeline, ReadStamp, RunSummary};
use crate::history::{ArchiveWriter, HistoryError};
use crate::output::{DeadLetterFile, OutputSink};

/// Settings Devloom owns because delivery guarantees depend on them.
const RESERVED: [&str; 4] = ["enable.auto.commit", "enable.idempotence", "acks", "group.id"];

/// The Kafka runtime failed.
#[derive(Debug, thiserror::Error)]
pub enum KafkaRunError {
    /// A client could not be created or a call failed.
    #[error("kafka: {context}: {source}")]
    Kafka {
        /// What was being done.
        context: String,
        /// The client error.
        source: KafkaError,
    },
    /// A topic could not be created.
    #[error("kafka: cannot create topic {topic}: {code}")]
    CreateTopic {
        /// The topic.
        topic: String,
        /// The broker's answer.
        code: RDKafkaErrorCode,
    },
    /// Messages could not be delivered; state was not checkpointed past them.
    #[error(
        "kafka: {failed} messages could not be delivered (last error: {last}); stopping without checkpoint"
    )]
    Delivery {
        /// How many.
        failed: u64,
        /// The last error.
        last: String,
    },
    /// A reserved setting was set in `[kafka.properties]`.
    #[error("kafka.properties.{0} is set by Devloom (delivery guarantees depend on it); remove it")]
    Reserved(String),
    /// Checkpoint I/O.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Output I/O.
    #[error("output: {0}")]
    Io(#[from] std::io::Error),
    /// The scorer's model could not be loaded.
    #[error(transparent)]
    Scorer(#[from] crate::scoring::ScorerError),
    /// The history archive could not be opened.
    #[error("history archive: {0}")]
    Archive(#[from] HistoryError),
}

fn kafka_err(context: impl Into<String>) -> impl FnOnce(KafkaError) -> KafkaRunError {
    let context = context.into();
    move |source| KafkaRunError::Kafka { context, source }
}

/// `bootstrap.servers` plus the pass-through properties.
pub fn client_config(k: &KafkaConfig) -> Result<ClientConfig, KafkaRunError> {
    if let Some(key) = k.properties.keys().find(|key| RESERVED.contains(&key.as_str())) {
        return Err(KafkaRunError::Reserved(key.clone()));
    }
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers);
    for (key, value) in &k.properties {
        c.set(key, value);
    }
    Ok(c)
}

/// The input topics with what each accepts, in merge-tiebreak order.
pub fn input_topics(k: &KafkaConfig) -> Vec<(String, Expect)> {
    let t = &k.topics;
    let mut topics = vec![(t.traces.clone(), Expect::Traces)];
    if !t.otlp_spans.is_empty() {
        topics.push((t.otlp_spans.clone(), Expect::Traces));
    }
    topics.push((t.alerts.clone(), Expect::Alerts));
    topics.push((t.deploys.clone(), Expect::Deploys));
    topics
}

/// Creates the topics that do not exist yet.
pub fn create_topics(k: &KafkaConfig, names: &[&str]) -> Result<(), KafkaRunError> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(k)?.create().map_err(kafka_err("creating the admin client"))?;
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| NewTopic::new(n, k.partitions, TopicReplication::Fixed(k.replication)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = futures_executor::block_on(admin.create_topics(&topics, &options))
        .map_err(kafka_err("creating topics"))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(KafkaRunError::CreateTopic { topic, code }),
        }
    }
    Ok(())
}

/// Counts failed deliveries (the producer retries on its own; a failure is final).
#[derive(Default)]
pub struct DeliveryContext {
    failed: AtomicU64,
    last: std::sync::Mutex<String>,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::SeqCst);
            if let Ok(mut last) = self.last.lock() {
                *last = e.to_string();
            }
        }
    }
}

/// An idempotent producer with `acks=all`.
pub type DevloomProducer = ThreadedProducer<DeliveryContext>;

/// Creates the producer.
pub fn producer(k: &KafkaConfig) -> Result<DevloomProducer, KafkaRunError> {
    let mut c = client_config(k)?;
    c.set("enable.idempotence", "true").set("acks", "all");
    c.create_with_context(DeliveryContext::default()).map_err(kafka_err("creating the producer"))
}

/// Sends one record, waiting while the local queue is full.
pub fn send(producer: &DevloomProducer, mut record: BaseRecord<'_, [u8], [u8]>) -> Result<(), KafkaRunError> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err((e, _)) => return Err(kafka_err("producing")(e)),
        }
    }
}

/// Flushes the producer and fails if any message could not be delivered.
fn flush(producer: &DevloomProducer) -> Result<(), KafkaRunError> {
    producer.flush(Duration::from_secs(60)).map_err(kafka_err("flushing the producer"))?;
    let ctx = producer.context();
    let failed = ctx.failed.load(Ordering::SeqCst);
    if failed > 0 {
        let last = ctx.last.lock().map(|l| l.clone()).unwrap_or_default();
        return Err(KafkaRunError::Delivery { failed, last });
    }
    Ok(())
}

/// Publishes impact maps and candidate lists: key = incident id, CloudEvents
/// binary-mode headers.
pub struct OutputTopics {
    producer: Arc<DevloomProducer>,
    impact: String,
    candidates: String,
    source: String,
}

impl OutputTopics {
    fn new(producer: Arc<DevloomProducer>, k: &KafkaConfig) -> Self {
        Self {
            producer,
            impact: k.topics.impact.clone(),
            candidates: k.topics.candidates.clone(),
            source: format!("/devloom/{}", k.group_id),
        }
    }

    /// A sink with its own producer (replay), creating the output topics unless told
    /// not to.
    pub fn open(k: &KafkaConfig) -> Result<Self, KafkaRunError> {
        if k.create_topics {
            create_topics(k, &[k.topics.impact.as_str(), k.topics.candidates.as_str()])?;
        }
        Ok(Self::new(Arc::new(producer(k)?), k))
    }

    /// Waits until everything published is acknowledged.
    pub fn flush(&self) -> Result<(), KafkaRunError> {
        flush(&self.producer)
    }

    fn send_event(
        &self,
        topic: &str,
        ce_type: &str,
        id: &str,
        subject: &str,
        time: &str,
        payload: &[u8],
    ) -> std::io::Result<()> {
        let headers = OwnedHeaders::new()
            .insert(Header { key: "ce_specversion", value: Some("1.0") })
            .insert(Header { key: "ce_type", value: Some(ce_type) })
            .insert(Header { key: "ce_source", value: Some(self.source.as_str()) })
            .insert(Header { key: "ce_id", value: Some(id) })
            .insert(Header { key: "ce_subject", value: Some(subject) })
            .insert(Header { key: "ce_time", value: Some(time) })
            .insert(Header { key: "content-type", value: Some("application/json") });
        let record = BaseRecord::to(topic).key(subject.as_bytes()).payload(payload).headers(headers);
        send(&self.producer, record).map_err(|e| std::io::Error::other(e.to_string()))
    }
}

impl OutputSink for OutputTopics {
    fn publish(&mut self, map: &ImpactMap) -> std::io::Result<()> {
        let id = format!("{}/{}", map.incident_id, map.version);
        let time = map.published_at.clone().unwrap_or_default();
        let payload = serde_json::to_vec(map)?;
        self.send_event(&self.impact, "dev.devloom.impact.v1", &id, &map.incident_id, &time, &payload)
    }

    fn publish_candidates(&mut self, list: &CandidateList) -> std::io::Result<()> {
        let id = format!("{}/{}", list.incident_id, list.version);
        let time = list.published_at.clone().unwrap_or_default();
        let payload = serde_json::to_vec(list)?;
        self.send_event(
            &self.candidates,
            "dev.devloom.candidates.v1",
            &id,
            &list.incident_id,
            &time,
            &payload,
        )
    }
}

/// A polled message waiting for the event-time merge.
struct Pending {
    timestamp_ms: i64,
    rank: usize,
    partition: i32,
    offset: i64,
    topic: String,
    decoded: Result<Vec<Event>, String>,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    read: ReadStamp,
}

/// Merge order: Kafka timestamp, topic rank, partition, offset.
type MergeKey = (i64, usize, i32, i64);

impl Pending {
    fn order(&self) -> MergeKey {
        (self.timestamp_ms, self.rank, self.partition, self.offset)
    }
}

type DevloomConsumer = BaseConsumer;

/// Per-partition queues and the event-time merge over them.
#[derive(Default)]
struct Merger {
    queues: BTreeMap<String, VecDeque<Pending>>,
}

impl Merger {
    fn push(&mut self, key: String, p: Pending) -> usize {
        let q = self.queues.entry(key).or_default();
        q.push_back(p);
        q.len()
    }

    /// The next message in event-time order, once every partition (`caught_up` says
    /// which have been read to their end) has one waiting or is at its end.
    fn pop(&mut self, caught_up: &BTreeMap<String, bool>) -> Option<(String, Pending)> {
        let mut best: Option<(&String, MergeKey)> = None;
        for (key, at_end) in caught_up {
            match self.queues.get(key).and_then(VecDeque::front) {
                Some(p) => {
                    if best.is_none_or(|(_, o)| p.order() < o) {
                        best = Some((key, p.order()));
                    }
                }
                None if *at_end => {}
                None => return None,
            }
        }
        let key = best?.0.clone();
        let p = self.queues.get_mut(&key)?.pop_front()?;
        Some((key, p))
    }

    fn len(&self, key: &str) -> usize {
        self.queues.get(key).map_or(0, VecDeque::len)
    }
}

/// Runs until `stop` is set (SIGTERM / SIGINT), then checkpoints and returns.
pub fn run(config: &Config, stop: &AtomicBool) -> Result<RunSummary, KafkaRunError> {
    let k = &config.kafka;
    let inputs = input_topics(k);
    let rank: HashMap<String, (usize, Expect)> =
        inputs.iter().enumerate().map(|(i, (t, e))| (t.clone(), (i, *e))).collect();
    if k.create_topics {
        let mut names: Vec<&str> = inputs.iter().map(|(t, _)| t.as_str()).collect();
        names.extend([k.topics.impact.as_str(), k.topics.candidates.as_str(), k.topics.deadletter.as_str()]);
        create_topics(k, &names)?;
    }
    let store = CheckpointStore::new(&config.checkpoint.state_dir);
    let checkpoint = store.load()?;
    let producer = Arc::new(producer(k)?);
    let mut consumer_config = client_config(k)?;
    consumer_config.set("group.id", &k.group_id).set("enable.auto.commit", "false");
    // Defaults for large OTLP batches and low latency; [kafka.properties] overrides them.
    for (key, value) in [
        ("auto.offset.reset", "earliest"),
        ("fetch.wait.max.ms", "20"),
        ("max.partition.fetch.bytes", "16777216"),
    ] {
        if consumer_config.get(key).is_none() {
            consumer_config.set(key, value);
        }
    }
    let consumer: DevloomConsumer = consumer_config.create().map_err(kafka_err("creating the consumer"))?;

    let sink = OutputTopics::new(producer.clone(), k);
    // Dead letters go to the dead-letter topic; this file takes those the topic refuses.
    let fallback = DeadLetterFile::new(&config.checkpoint.state_dir.join("unpublished-deadletters.ndjson"));
    let mut pipeline = crate::scoring::attach(Pipeline::new(config.engine.clone(), sink, fallback), config)?;
    if let Some(archive) = config.history.archive() {
        let resume = checkpoint.as_ref().and_then(|c| c.archive_seq);
        pipeline = pipeline.with_archive(ArchiveWriter::open(archive, resume, false)?);
    }
    let mut next: BTreeMap<String, i64> = BTreeMap::new();
    if let Some(c) = checkpoint {
        tracing::info!(offsets = ?c.offsets, "restored checkpoint");
        pipeline.restore(c.engine);
        next = c.offsets;
    }
    let opts = config.decode.options();
    let mut merger = Merger::default();
    let names: Vec<&str> = inputs.iter().map(|(t, _)| t.as_str()).collect();
    let position = assign_all(&consumer, &names, &next)?;
    let mut paused: BTreeSet<String> = BTreeSet::new();
    let mut dead_letters = 0u64;
    let mut since_checkpoint = 0u64;
    let mut last_checkpoint = Instant::now();
    let interval = Duration::from_millis(config.checkpoint.interval_ms);

    while !stop.load(Ordering::SeqCst) {
        if let Some(polled) = consumer.poll(Duration::from_millis(50)) {
            match polled {
                Ok(msg) => {
                    let key = partition_key(msg.topic(), msg.partition());
                    // Skip what the checkpointed state already holds.
                    if msg.offset() >= next.get(&key).copied().unwrap_or(0) {
                        let (r, expect) = rank.get(msg.topic()).copied().unwrap_or((usize::MAX, Expect::Any));
                        let pending = read_message(&msg, r, expect, &opts);
                        if merger.push(key.clone(), pending) > k.max_buffered_per_partition {
                            let mut tpl = TopicPartitionList::new();
                            tpl.add_partition(msg.topic(), msg.partition());
                            consumer.pause(&tpl).map_err(kafka_err("pausing a partition"))?;
                            paused.insert(key);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "kafka consumer"),
            }
        }
        let caught_up: BTreeMap<String, bool> = position
            .iter()
            .map(|(key, &start)| {
                let (topic, partition) = split_key(key);
                let at = next.get(key).copied().unwrap_or(start);
                let end = merger.len(key) == 0
                    && cached_high_watermark(&consumer, topic, partition).is_some_and(|high| at >= high);
                (key.clone(), end)
            })
            .collect();
        while let Some((key, mut p)) = merger.pop(&caught_up) {
            tracing::trace!(%key, offset = p.offset, timestamp_ms = p.timestamp_ms, "processing");
            next.insert(key.clone(), p.offset + 1);
            since_checkpoint += 1;
            match std::mem::replace(&mut p.decoded, Ok(Vec::new())) {
                Ok(events) => pipeline.push(Ok(events), p.read)?,
                Err(reason) => {
                    tracing::warn!(topic = %p.topic, partition = p.partition, offset = p.offset, %reason, "dead letter");
                    match publish_dead_letter(&producer, &k.topics.deadletter, &p, &reason) {
                        Ok(()) => dead_letters += 1,
                        Err(e) => {
                            // Counted by the pipeline's file instead.
                            tracing::error!(error = %e, "dead-letter topic refused a message; keeping it in the state dir");
                            pipeline.push(Err(Box::new(dead_letter_record(&p, reason))), p.read)?;
                        }
                    }
                }
            }
            if paused.contains(&key) && merger.len(&key) <= k.max_buffered_per_partition / 2 {
                let (topic, partition) = split_key(&key);
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition(topic, partition);
                consumer.resume(&tpl).map_err(kafka_err("resuming a partition"))?;
                paused.remove(&key);
            }
        }
        if since_checkpoint > 0
            && (since_checkpoint >= config.checkpoint.max_messages || last_checkpoint.elapsed() >= interval)
        {
            save_checkpoint(&producer, &store, &consumer, &next, &mut pipeline)?;
            since_checkpoint = 0;
            last_checkpoint = Instant::now();
        }
    }
    save_checkpoint(&producer, &store, &consumer, &next, &mut pipeline)?;
    // Stopped, not at the end of input: no final flush of the operators, so a restart
    // continues exactly where this run left off.
    let mut summary = pipeline.summary();
    summary.dead_letters += dead_letters;
    Ok(summary)
}

/// Every partition of `topics`, from the broker's metadata.
fn all_partitions(consumer: &DevloomConsumer, topics: &[&str]) -> Result<BTreeSet<String>, KafkaRunError> {
    let mut keys = BTreeSet::new();
    for topic in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(30))
            .map_err(kafka_err(format!("reading the metadata of {topic}")))?;
        for t in metadata.topics() {
            keys.extend(t.partitions().iter().map(|p| partition_key(t.name(), p.id())));
        }
    }
    Ok(keys)
}

/// The high watermark librdkafka last saw for a partition in a fetch response (no
/// broker round trip), if it has seen one.
fn cached_high_watermark(consumer: &DevloomConsumer, topic: &str, partition: i32) -> Option<i64> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer is valid for the consumer's lifetime, the topic is a
    // NUL-terminated string that outlives the call, and low/high are valid out-pointers.
    let err = unsafe {
        rdkafka_sys::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka_sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some(high)
}

/// Assigns every partition of `topics` to this consumer, each from the checkpoint's
/// offset, else the group's committed offset, else the start of the log. Devloom keeps
/// one global graph, so one instance reads all partitions: explicit assignment, with
/// the group used for committed offsets (visible to the usual lag tooling). Returns the
/// starting offset of every partition.
fn assign_all(
    consumer: &DevloomConsumer,
    topics: &[&str],
    next: &BTreeMap<String, i64>,
) -> Result<BTreeMap<String, i64>, KafkaRunError> {
    let mut all = TopicPartitionList::new();
    for key in all_partitions(consumer, topics)? {
        let (topic, partition) = split_key(&key);
        all.add_partition(topic, partition);
    }
    let committed = consumer
        .committed_offsets(all, Duration::from_secs(30))
        .map_err(kafka_err("reading committed offsets"))?;
    let mut assignment = TopicPartitionList::new();
    let mut start = BTreeMap::new();
    for e in committed.elements() {
        let key = partition_key(e.topic(), e.partition());
        let offset = match (next.get(&key), e.offset()) {
            (Some(&o), _) | (None, Offset::Offset(o)) => o,
            _ => {
                consumer
                    .fetch_watermarks(e.topic(), e.partition(), Duration::from_secs(30))
                    .map_err(kafka_err(format!("reading the start of {key}")))?
                    .0
            }
        };
        assignment
            .add_partition_offset(e.topic(), e.partition(), Offset::Offset(offset))
            .map_err(kafka_err("building the assignment"))?;
        start.insert(key, offset);
    }
    consumer.assign(&assignment).map_err(kafka_err("assigning partitions"))?;
    Ok(start)
}

fn split_key(key: &str) -> (&str, i32) {
    let (topic, partition) = key.rsplit_once('/').unwrap_or((key, "0"));
    (topic, partition.parse().unwrap_or(0))
}

fn read_message(msg: &impl Message, rank: usize, expect: Expect, opts: &DecodeOptions) -> Pending {
    let read = ReadStamp::now();
    let headers: Vec<(String, Vec<u8>)> = msg
        .headers()
        .map(|h| h.iter().map(|x| (x.key.to_string(), x.value.unwrap_or_default().to_vec())).collect())
        .unwrap_or_default();
    let borrowed: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
    let timestamp_ms = msg.timestamp().to_millis().unwrap_or(0);
    let payload = msg.payload().unwrap_or_default();
    let fallback = u64::try_from(timestamp_ms).ok().filter(|&t| t > 0).map(|t| t * 1_000_000);
    let message = DecodeMessage { payload, headers: &borrowed, fallback_time_ns: fallback };
    let mut events = Vec::new();
    let decoded = decode(&message, expect, opts, &mut events).map(|_| events).map_err(|e| e.to_string());
    let failed = decoded.is_err();
    Pending {
        timestamp_ms,
        rank,
        partition: msg.partition(),
        offset: msg.offset(),
        topic: msg.topic().to_string(),
        decoded,
        key: msg.key().filter(|_| failed).map(<[u8]>::to_vec),
        payload: if failed { payload.to_vec() } else { Vec::new() },
        headers: if failed { headers } else { Vec::new() },
        read,
    }
}

fn publish_dead_letter(
    producer: &DevloomProducer,
    topic: &str,
    p: &Pending,
    reason: &str,
) -> Result<(), KafkaRunError> {
    let mut headers = OwnedHeaders::new();
    for (k, v) in &p.headers {
        headers = headers.insert(Header { key: k.as_str(), value: Some(v.as_slice()) });
    }
    let (partition, offset, ts) = (p.partition.to_string(), p.offset.to_string(), p.timestamp_ms.to_string());
    headers = headers
        .insert(Header { key: "devloom.error.reason", value: Some(reason) })
        .insert(Header { key: "devloom.source.topic", value: Some(p.topic.as_str()) })
        .insert(Header { key: "devloom.source.partition", value: Some(partition.as_str()) })
        .insert(Header { key: "devloom.source.offset", value: Some(offset.as_str()) })
        .insert(Header { key: "devloom.source.timestamp", value: Some(ts.as_str()) });
    let mut record = BaseRecord::to(topic).payload(p.payload.as_slice()).headers(headers);
    if let Some(key) = &p.key {
        record = record.key(key.as_slice());
    }
    send(producer, record)
}

/// The dead letter of `p` as a record for the fallback file.
fn dead_letter_record(p: &Pending, reason: String) -> devloom_schemas::DeadLetter {
    use base64::Engine as _;
    devloom_schemas::DeadLetter {
        schema_version: devloom_schemas::dead_letter::DEAD_LETTER_SCHEMA_VERSION,
        reason,
        source: p.topic.clone(),
        partition: Some(p.partition),
        offset: Some(p.offset),
        line: None,
        headers: p
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
            .collect(),
        payload_base64: base64::prelude::BASE64_STANDARD.encode(&p.payload),
    }
}

fn save_checkpoint<S: OutputSink>(
    producer: &DevloomProducer,
    store: &CheckpointStore,
    consumer: &DevloomConsumer,
    next: &BTreeMap<String, i64>,
    pipeline: &mut Pipeline<S>,
) -> Result<(), KafkaRunError> {
    // Outputs first: a checkpoint must never cover input whose outputs are not durable.
    flush(producer)?;
    let archive_seq = pipeline.checkpoint_archive()?;
    store.save(&Checkpoint::new(next.clone(), pipeline.snapshot(), archive_seq))?;
    let mut tpl = TopicPartitionList::new();
    for (key, offset) in next {
        let (topic, partition) = split_key(key);
        tpl.add_partition_offset(topic, partition, Offset::Offset(*offset))
            .map_err(kafka_err("building the offsets to commit"))?;
    }
    if tpl.count() > 0
        && let Err(e) = consumer.commit(&tpl, CommitMode::Sync)
    {
        // Not fatal: on restart the checkpoint's offsets win over the committed ones.
        tracing::warn!(error = %e, "committing offsets");
    }
    Ok(())
}

/// Publishes simulated records to the input topics (traces, alerts, deploys by kind),
/// with the record's event time as the Kafka timestamp and its `content-type` header,
/// as the Collector, Alertmanager and deploy tooling would. Returns the count.
/// With `spans_per_s`, trace batches are paced to that many spans per wall-clock second
/// (a fixed offered load, for latency measurements).
pub fn publish_records(
    k: &KafkaConfig,
    records: impl Iterator<Item = crate::simulator::SimRecord>,
    spans_per_s: Option<f64>,
) -> Result<u64, KafkaRunError> {
    if k.create_topics {
        let topics = input_topics(k);
        let names: Vec<&str> = topics.iter().map(|(t, _)| t.as_str()).collect();
        create_topics(k, &names)?;
    }
    let producer = producer(k)?;
    let mut count = 0;
    let (started, mut offered) = (Instant::now(), 0u64);
    for r in records {
        if let Some(rate) = spans_per_s.filter(|&r| r > 0.0)
            && r.expect == Expect::Traces
        {
            let mut spans = Vec::new();
            let _ =
                crate::decode::decode_record(&r.clone().into(), &DecodeOptions::default()).map(|e| spans = e);
            offered += spans.len() as u64;
            let due = started + Duration::from_secs_f64(offered as f64 / rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let topic = match r.expect {
            Expect::Traces => &k.topics.traces,
            Expect::Alerts => &k.topics.alerts,
            Expect::Deploys | Expect::Any => &k.topics.deploys,
        };
        let headers = OwnedHeaders::new().insert(Header { key: "content-type", value: Some(r.content_type) });
        let timestamp = i64::try_from(r.time_ns / 1_000_000).unwrap_or(i64::MAX);
        let record: BaseRecord<'_, [u8], [u8]> =
            BaseRecord::to(topic).payload(r.payload.as_slice()).timestamp(timestamp).headers(headers);
        send(&producer, record)?;
        count += 1;
    }
    flush(&producer)?;
    Ok(count)
}
