//! Partition assignment: one Devloom instance reads every partition of its input topics
//! (one global graph), assigned explicitly; the group is used for committed offsets, so
//! the usual lag tooling sees it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};

use super::KafkaRunError;
use super::checkpoint::partition_key;
use super::client::kafka_err;

/// Every partition of `topics`, from the broker's metadata.
fn all_partitions<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topics: &[&str],
) -> Result<BTreeSet<String>, KafkaRunError> {
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
pub fn cached_high_watermark<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
) -> Option<i64> {
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

/// Assigns every partition of `topics` that `keep` keeps to this consumer, each from the
/// checkpoint's offset, else the group's committed offset, else the start of the log.
/// Devloom's event-time merge needs every partition it reads in one place: explicit
/// assignment, with the group used for committed offsets (visible to the usual lag
/// tooling). Returns the starting offset of every partition.
pub fn assign_all<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topics: &[&str],
    next: &BTreeMap<String, i64>,
    keep: impl Fn(&str, i32) -> bool,
) -> Result<BTreeMap<String, i64>, KafkaRunError> {
    let mut all = TopicPartitionList::new();
    for key in all_partitions(consumer, topics)? {
        let (topic, partition) = split_key(&key);
        if keep(topic, partition) {
            all.add_partition(topic, partition);
        }
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

/// `topic/partition` back into its parts.
pub fn split_key(key: &str) -> (&str, i32) {
    let (topic, partition) = key.rsplit_once('/').unwrap_or((key, "0"));
    (topic, partition.parse().unwrap_or(0))
}
