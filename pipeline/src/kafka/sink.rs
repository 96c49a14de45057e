//! Outputs to Kafka topics, each kind to its topic from the routing table: impact maps
//! and candidate lists keyed by incident id as CloudEvents in binary mode; dead letters
//! republished with their original bytes, key and headers plus `devloom.*` headers
//! (reason, source topic / partition / offset / timestamp).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;

use super::KafkaRunError;
use super::client::{DevloomProducer, check_brokers, create_topics, flush, producer, send};
use crate::config::Config;
use crate::core::{Origin, Output, OutputKind, Rejected, Sink};
use crate::sinks::json_lines::OpenOnFirstWrite;
use crate::sinks::routes;

/// Publishes every output to its topic.
pub struct KafkaSink {
    producer: DevloomProducer,
    topics: BTreeMap<OutputKind, String>,
    source: String,
    /// Dead letters the dead-letter topic refused, kept in the state directory.
    refused: OpenOnFirstWrite,
}

impl KafkaSink {
    /// A sink with its own producer, creating the output topics unless
    /// `[kafka] create_topics` is off.
    pub fn open(config: &Config) -> Result<Self, KafkaRunError> {
        let k = &config.kafka;
        let topics: BTreeMap<OutputKind, String> =
            routes(config).into_iter().map(|r| (r.kind, r.topic)).collect();
        check_brokers(k, &k.topics.impact)?;
        if k.create_topics {
            create_topics(k, &topics.values().map(String::as_str).collect::<Vec<_>>())?;
        }
        let refused = config.checkpoint.state_dir.join("unpublished-deadletters.ndjson");
        Ok(Self {
            producer: producer(k)?,
            topics,
            source: format!("/devloom/{}", k.group_id),
            refused: OpenOnFirstWrite::new(Path::new(&refused), true)?,
        })
    }

    fn send(&self, record: BaseRecord<'_, [u8], [u8]>) -> io::Result<()> {
        send(&self.producer, record).map_err(|e| io::Error::other(e.to_string()))
    }

    fn cloud_event(&self, topic: &str, output: &Output, ce_type: &str) -> io::Result<()> {
        let (key, version) = output.key_version().unwrap_or_default();
        let incident = key.as_str();
        let id = format!("{incident}/{version}");
        let payload = output.to_json()?;
        let headers = OwnedHeaders::new()
            .insert(Header { key: "ce_specversion", value: Some("1.0") })
            .insert(Header { key: "ce_type", value: Some(ce_type) })
            .insert(Header { key: "ce_source", value: Some(self.source.as_str()) })
            .insert(Header { key: "ce_id", value: Some(id.as_str()) })
            .insert(Header { key: "ce_subject", value: Some(incident) })
            .insert(Header { key: "ce_time", value: Some(output.published_at().unwrap_or_default()) })
            .insert(Header { key: "content-type", value: Some("application/json") });
        self.send(BaseRecord::to(topic).key(incident.as_bytes()).payload(payload.as_slice()).headers(headers))
    }

    fn dead_letter(&mut self, topic: &str, output: &Output, rejected: &Rejected) -> io::Result<()> {
        let headers = dead_letter_headers(rejected);
        let r = &rejected.record;
        let mut record = BaseRecord::to(topic).payload(r.payload.as_slice()).headers(headers);
        if let Some(key) = &r.key {
            record = record.key(key.as_slice());
        }
        if let Err(e) = self.send(record) {
            tracing::error!(error = %e, "dead-letter topic refused a message; keeping it in the state dir");
            let mut line = output.to_json()?;
            line.push(b'\n');
            self.refused.write_all(&line)?;
            self.refused.flush()?;
        }
        Ok(())
    }
}

/// A dead letter's Kafka headers: the record's own, then `devloom.error.reason` and
/// where it came from (`devloom.source.*` for a Kafka message, `devloom.source`
/// otherwise).
pub(crate) fn dead_letter_headers(rejected: &Rejected) -> OwnedHeaders {
    let r = &rejected.record;
    let mut headers = OwnedHeaders::new();
    for (k, v) in &r.headers {
        headers = headers.insert(Header { key: k.as_str(), value: Some(v.as_slice()) });
    }
    let mut provenance = vec![("devloom.error.reason", rejected.reason.clone())];
    match &r.origin {
        Origin::Kafka { topic, partition, offset, timestamp_ms } => provenance.extend([
            ("devloom.source.topic", topic.to_string()),
            ("devloom.source.partition", partition.to_string()),
            ("devloom.source.offset", offset.to_string()),
            ("devloom.source.timestamp", timestamp_ms.to_string()),
        ]),
        other => provenance.push(("devloom.source", other.to_string())),
    }
    for (key, value) in &provenance {
        headers = headers.insert(Header { key, value: Some(value.as_str()) });
    }
    headers
}

impl Sink for KafkaSink {
    fn publish(&mut self, output: &Output) -> io::Result<()> {
        let kind = output.kind();
        let Some(topic) = self.topics.get(&kind).cloned() else { return Ok(()) };
        match (output, kind.ce_type()) {
            (Output::DeadLetter(rejected), _) => self.dead_letter(&topic, output, rejected),
            (_, Some(ce_type)) => self.cloud_event(&topic, output, ce_type),
            (_, None) => Ok(()),
        }
    }

    /// Waits until everything published is acknowledged.
    fn commit(&mut self) -> io::Result<Option<u64>> {
        flush(&self.producer).map_err(|e| io::Error::other(e.to_string()))?;
        Ok(None)
    }
}
