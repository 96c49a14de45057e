//! The simulator as a producer: scenario records published to the Kafka input topics
//! (traces, alerts, deploys by kind) with the record's event time as the Kafka
//! timestamp and its `content-type` header, as the Collector, Alertmanager and deploy
//! tooling would. With a rate, a fixed offered load for latency measurements.

use std::time::{Duration, Instant};

use devloom_schemas::codec::{Expect, otlp_fast};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;

use super::SimRecord;
use crate::config::KafkaConfig;
use crate::kafka::client::flush;
use crate::kafka::{KafkaRunError, check_brokers, create_topics, input_topics, producer, send};

/// Publishes `records`; returns how many. With `spans_per_s`, trace batches are paced to
/// that many spans per wall-clock second.
pub fn publish_records(
    k: &KafkaConfig,
    records: impl Iterator<Item = SimRecord>,
    spans_per_s: Option<f64>,
) -> Result<u64, KafkaRunError> {
    check_brokers(k, &k.topics.traces)?;
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
            let _ = otlp_fast::decode(&r.payload, &mut spans);
            offered += spans.len() as u64;
            let due = started + Duration::from_secs_f64(offered as f64 / rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let topic = match r.expect {
            Expect::Traces => &k.topics.traces,
            Expect::Alerts => &k.topics.alerts,
            Expect::Causes => &k.topics.causes,
            Expect::Catalog => &k.topics.catalog,
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
