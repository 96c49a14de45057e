//! Which graph instance is active: a lease kept on a one-partition topic
//! (`[kafka.topics] graph_leader`). The active instance publishes a beat every
//! [`BEAT_EVERY`]; every instance reads the topic. When no beat has come for [`LEASE`],
//! a standby publishes a claim for the next term, and the first claim of a term in the
//! log wins: every instance reads the same order, so exactly one becomes active. An
//! active instance that reads a claim of a later term by another stops.
//!
//! A lease on the log rather than a consumer group's assignment: the group protocol
//! needs the dead member evicted before anyone else is given the partition, and the
//! broker the tests run against (tansu 0.6) did not hand a two-member group's partition
//! over after one member was killed; the log decides the same way on every broker.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::BaseRecord;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::client::{DevloomProducer, client_config, create_sized_topics, flush, kafka_err};
use super::{KafkaRunError, check_brokers, producer, send};
use crate::config::KafkaConfig;

/// How often the active instance says it is alive.
pub const BEAT_EVERY: Duration = Duration::from_millis(500);

/// How long without a beat before a standby claims the next term.
pub const LEASE: Duration = Duration::from_secs(3);

/// Records older than this many are not read at start (the topic grows by a beat per
/// [`BEAT_EVERY`]; its retention can be short).
const LOOK_BACK: i64 = 1000;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Lease {
    /// The instance (host, process, start time).
    instance: String,
    term: u64,
    /// A claim of `term`, else a beat of it.
    claim: bool,
}

/// The lease after reading `lease`: the first record of a newer term takes it — a claim,
/// or a beat when the claim was before what this instance read (it read from the end
/// less [`LOOK_BACK`]); a second claim of the same term, or any record of an older one,
/// changes nothing.
fn observe(holder: Option<(u64, String)>, lease: &Lease) -> Option<(u64, String)> {
    match holder {
        Some((term, _)) if lease.term > term => Some((lease.term, lease.instance.clone())),
        None => Some((lease.term, lease.instance.clone())),
        kept => kept,
    }
}

/// This instance's view of the lease.
pub struct Leadership {
    topic: String,
    me: String,
    consumer: BaseConsumer,
    producer: DevloomProducer,
    /// The current term and its holder ([`observe`]).
    holder: Option<(u64, String)>,
    /// When the holder was last heard from (a claim or a beat read).
    heard: Instant,
    beat_at: Instant,
}

impl Leadership {
    /// Reads the lease topic and waits until this instance holds the lease; `None` when
    /// told to stop first.
    pub fn acquire(k: &KafkaConfig, stop: &AtomicBool) -> Result<Option<Self>, KafkaRunError> {
        let topic = k.topics.graph_leader.clone();
        check_brokers(k, &topic)?;
        if k.create_topics {
            create_sized_topics(k, &[(&topic, 1)])?;
        }
        // Assigned, never joined: librdkafka wants a group id to assign.
        let mut c = client_config(k)?;
        c.set("group.id", format!("{}.graph-lease", k.group_id)).set("enable.auto.commit", "false");
        let consumer: BaseConsumer = c.create().map_err(kafka_err("creating the lease reader"))?;
        let (_, high) = consumer
            .fetch_watermarks(&topic, 0, Duration::from_secs(30))
            .map_err(kafka_err(format!("reading the end of {topic}")))?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Offset((high - LOOK_BACK).max(0)))
            .map_err(kafka_err("building the lease assignment"))?;
        consumer.assign(&tpl).map_err(kafka_err(format!("reading {topic}")))?;
        let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
        let me = format!("{host}/{}/{}", std::process::id(), started.as_nanos());
        let mut lease = Self {
            topic,
            me,
            consumer,
            producer: producer(k)?,
            holder: None,
            heard: Instant::now(),
            beat_at: Instant::now(),
        };
        // Catch up with what the log says before judging the lease.
        while lease.read(Duration::from_millis(200))? {}
        let mut said = false;
        let mut claimed = None;
        while !stop.load(Ordering::SeqCst) {
            lease.read(Duration::from_millis(100))?;
            if lease.held() {
                return Ok(Some(lease));
            }
            if let Some((term, holder)) = &lease.holder
                && !said
            {
                eprintln!(
                    "devloom: graph standby (term {term} is held by {holder}; waiting for it to lapse)"
                );
                said = true;
            }
            let term = lease.holder.as_ref().map_or(1, |(t, _)| t + 1);
            let lapsed = lease.holder.is_none() || lease.heard.elapsed() >= LEASE;
            if lapsed && claimed != Some(term) {
                lease.publish(term, true)?;
                claimed = Some(term);
            }
        }
        Ok(None)
    }

    /// Reads what arrived on the lease topic; `true` if anything did.
    fn read(&mut self, wait: Duration) -> Result<bool, KafkaRunError> {
        let msg = match self.consumer.poll(wait) {
            None => return Ok(false),
            Some(Ok(msg)) => msg,
            // Events of the client (a fetch error, a reconnect); it goes on by itself.
            Some(Err(e)) => {
                tracing::debug!(error = %e, topic = %self.topic, "lease topic");
                return Ok(false);
            }
        };
        let Ok(lease) = serde_json::from_slice::<Lease>(msg.payload().unwrap_or_default()) else {
            return Ok(true);
        };
        self.holder = observe(self.holder.take(), &lease);
        if self.holder.as_ref().is_some_and(|(term, holder)| *term == lease.term && *holder == lease.instance)
        {
            self.heard = Instant::now();
        }
        Ok(true)
    }

    fn publish(&self, term: u64, claim: bool) -> Result<(), KafkaRunError> {
        let record = Lease { instance: self.me.clone(), term, claim };
        let payload = serde_json::to_vec(&record).map_err(std::io::Error::other)?;
        send(
            &self.producer,
            BaseRecord::to(&self.topic).key(self.me.as_bytes()).payload(payload.as_slice()),
        )?;
        flush(&self.producer)
    }

    fn held(&self) -> bool {
        self.holder.as_ref().is_some_and(|(_, holder)| *holder == self.me)
    }

    /// Still the active instance: reads the lease topic and, when due, beats. Call it at
    /// least every [`BEAT_EVERY`].
    pub fn keep(&mut self) -> Result<bool, KafkaRunError> {
        while self.read(Duration::ZERO)? {}
        if !self.held() {
            return Ok(false);
        }
        if self.beat_at.elapsed() >= BEAT_EVERY {
            let term = self.holder.as_ref().map_or(0, |(t, _)| *t);
            self.publish(term, false)?;
            self.beat_at = Instant::now();
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(instance: &str, term: u64, claim: bool) -> Lease {
        Lease { instance: instance.into(), term, claim }
    }

    #[test]
    fn the_first_record_of_a_newer_term_holds_the_lease() {
        let mut holder = None;
        for lease in [
            record("a", 1, true),
            record("b", 1, true), // too late for term 1
            record("a", 1, false),
            record("b", 2, true), // a's beats stopped: b takes term 2
            record("c", 2, true),
            record("a", 1, false), // a stale beat
        ] {
            holder = observe(holder, &lease);
        }
        assert_eq!(holder, Some((2, "b".to_string())));
        // Reading from the middle of the log: a beat names the holder of its term.
        assert_eq!(observe(None, &record("c", 5, false)), Some((5, "c".to_string())));
        assert_eq!(observe(Some((5, "c".into())), &record("d", 1, true)), Some((5, "c".to_string())));
    }
}
