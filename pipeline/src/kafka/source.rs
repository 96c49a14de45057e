//! Kafka input topics as a [`Source`]: every partition assigned to this consumer,
//! each message decoded through the one decode stage on worker threads
//! ([`super::decode_pool`]), merged in event time ([`super::merge`]), with backpressure
//! by pausing partitions whose queue is full.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use devloom_schemas::codec::{DecodeOptions, Expect};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::KafkaRunError;
use super::assignment::{assign_all, cached_high_watermark, split_key};
use super::checkpoint::partition_key;
use super::client::{client_config, input_topics, kafka_err};
use super::decode_pool::DecodePool;
use super::merge::{Merger, Pending};
use crate::config::KafkaConfig;
use crate::core::{Input, Origin, RawRecord, ReadStamp, Source};
use crate::sources::documents::CUT_PREFIX_BYTES;

/// The input topics, read from `next` offsets on.
pub struct KafkaSource<'a> {
    consumer: BaseConsumer,
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
}

impl<'a> KafkaSource<'a> {
    /// Assigns every partition of the input topics, each from `next` (a checkpoint's
    /// offsets), else the group's committed offset, else the start of the log. Returns
    /// no input once `stop` is set.
    pub fn open(
        k: &KafkaConfig,
        opts: DecodeOptions,
        next: BTreeMap<String, i64>,
        stop: &'a AtomicBool,
    ) -> Result<Self, KafkaRunError> {
        let inputs = input_topics(k);
        let mut c = client_config(k)?;
        c.set("group.id", &k.group_id).set("enable.auto.commit", "false");
        // Defaults for large OTLP batches and low latency; [kafka.properties] overrides them.
        for (key, value) in [
            ("auto.offset.reset", "earliest"),
            ("fetch.wait.max.ms", "20"),
            ("max.partition.fetch.bytes", "16777216"),
        ] {
            if c.get(key).is_none() {
                c.set(key, value);
            }
        }
        let consumer: BaseConsumer = c.create().map_err(kafka_err("creating the consumer"))?;
        let names: Vec<&str> = inputs.iter().map(|(t, _)| t.as_str()).collect();
        let start = assign_all(&consumer, &names, &next)?;
        let pool = DecodePool::start(k.decode_threads, opts.clone()).map_err(KafkaRunError::Io)?;
        Ok(Self {
            consumer,
            rank: inputs.iter().enumerate().map(|(i, (t, e))| (t.clone(), (i, *e))).collect(),
            topics: inputs.iter().map(|(t, _)| (t.clone(), Arc::from(t.as_str()))).collect(),
            opts,
            merger: Merger::default(),
            start,
            next,
            paused: BTreeSet::new(),
            max_buffered: k.max_buffered_per_partition,
            pool,
            stop,
        })
    }

    /// The offset after the last message handed on, per partition: what a checkpoint
    /// records.
    pub fn positions(&self) -> &BTreeMap<String, i64> {
        &self.next
    }

    /// Commits `positions()` to the group (for lag tooling; the checkpoint is what a
    /// restart trusts).
    pub fn commit_offsets(&self) -> Result<(), KafkaRunError> {
        let mut tpl = TopicPartitionList::new();
        for (key, offset) in &self.next {
            let (topic, partition) = split_key(key);
            tpl.add_partition_offset(topic, partition, Offset::Offset(*offset))
                .map_err(kafka_err("building the offsets to commit"))?;
        }
        if tpl.count() > 0
            && let Err(e) = self.consumer.commit(&tpl, CommitMode::Sync)
        {
            // Not fatal: on restart the checkpoint's offsets win over the committed ones.
            tracing::warn!(error = %e, "committing offsets");
        }
        Ok(())
    }

    fn poll(&mut self) -> Result<(), KafkaRunError> {
        let Some(polled) = self.consumer.poll(Duration::from_millis(50)) else { return Ok(()) };
        let msg = match polled {
            Ok(msg) => msg,
            Err(e) => {
                tracing::warn!(error = %e, "kafka consumer");
                return Ok(());
            }
        };
        let key = partition_key(msg.topic(), msg.partition());
        // Skip what the checkpointed state already holds.
        if msg.offset() < self.next.get(&key).copied().unwrap_or(0) {
            return Ok(());
        }
        let (rank, expect) = self.rank.get(msg.topic()).copied().unwrap_or((usize::MAX, Expect::Any));
        let topic = self.topics.get(msg.topic()).cloned().unwrap_or_else(|| Arc::from(msg.topic()));
        let read = ReadStamp::now();
        let timestamp_ms = msg.timestamp().to_millis().unwrap_or(0);
        let payload = msg.payload().unwrap_or_default();
        // A message past the record limit is not decoded: its first bytes and size go to
        // the dead letter.
        let cut_from = (payload.len() > self.opts.max_record_bytes).then_some(payload.len() as u64);
        let kept = if cut_from.is_some() { &payload[..CUT_PREFIX_BYTES] } else { payload };
        let record = RawRecord {
            headers: msg
                .headers()
                .map(|h| {
                    h.iter().map(|x| (x.key.to_string(), x.value.unwrap_or_default().to_vec())).collect()
                })
                .unwrap_or_default(),
            key: msg.key().map(<[u8]>::to_vec),
            fallback_time_ns: u64::try_from(timestamp_ms).ok().filter(|&t| t > 0).map(|t| t * 1_000_000),
            cut_from,
            ..RawRecord::new(
                kept.to_vec(),
                expect,
                Origin::Kafka { topic, partition: msg.partition(), offset: msg.offset(), timestamp_ms },
            )
        };
        let order = (timestamp_ms, rank, msg.partition(), msg.offset());
        let input = self.pool.decode(record, read);
        if self.merger.push(key.clone(), Pending { order, input }) > self.max_buffered {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(msg.topic(), msg.partition());
            self.consumer.pause(&tpl).map_err(kafka_err("pausing a partition"))?;
            self.paused.insert(key);
        }
        Ok(())
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
        self.start
            .iter()
            .map(|(key, &start)| {
                let (topic, partition) = split_key(key);
                let at = self.next.get(key).copied().unwrap_or(start);
                let end = self.merger.len(key) == 0
                    && cached_high_watermark(&self.consumer, topic, partition).is_some_and(|high| at >= high);
                (key.clone(), end)
            })
            .collect()
    }

    fn next_ready(&mut self) -> Result<Option<Input>, KafkaRunError> {
        let Some((key, p)) = self.merger.pop(&self.caught_up()) else { return Ok(None) };
        tracing::trace!(%key, offset = p.offset(), "processing");
        self.next.insert(key.clone(), p.offset() + 1);
        if self.paused.contains(&key) && self.merger.len(&key) <= self.max_buffered / 2 {
            let (topic, partition) = split_key(&key);
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(topic, partition);
            self.consumer.resume(&tpl).map_err(kafka_err("resuming a partition"))?;
            self.paused.remove(&key);
        }
        let input = p.input.take().ok_or_else(|| io::Error::other("a decode worker stopped"))?;
        Ok(Some(input))
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
