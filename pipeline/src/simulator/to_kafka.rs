//! The simulator as a producer: scenario records published to the Kafka input topics
//! (traces, alerts, deploys by kind) with the record's event time as the Kafka
//! timestamp and its `content-type` header, as the Collector, Alertmanager and deploy
//! tooling would. With a rate, a fixed offered load for latency measurements. Split by
//! trace id, as the Collector's Kafka exporter with `partition_traces_by_id`: one
//! message per trace, keyed by its hex trace id, partitioned by Java's murmur2 of the key.

use std::time::{Duration, Instant};

use devloom_schemas::codec::{Expect, otlp_fast};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use prost::Message;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;

use super::SimRecord;
use crate::config::KafkaConfig;
use crate::kafka::client::flush;
use crate::kafka::{KafkaRunError, check_brokers, create_topics, input_topics, producer, send};

/// Publishes `records`; returns how many messages. With `spans_per_s`, trace batches
/// are paced to that many spans per wall-clock second; with `by_trace_id`, each batch is
/// published as one message per trace.
pub fn publish_records(
    k: &KafkaConfig,
    records: impl Iterator<Item = SimRecord>,
    spans_per_s: Option<f64>,
    by_trace_id: bool,
) -> Result<u64, KafkaRunError> {
    check_brokers(k, &k.topics.traces)?;
    if k.create_topics {
        let topics = input_topics(k);
        let names: Vec<&str> = topics.iter().map(|(t, _)| t.as_str()).collect();
        create_topics(k, &names)?;
    }
    let mut k = k.clone();
    if by_trace_id {
        k.properties.insert("partitioner".into(), "murmur2_random".into());
    }
    let producer = producer(&k)?;
    let k = &k;
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
        if by_trace_id && r.expect == Expect::Traces {
            for (trace, payload) in split_by_trace(&r.payload) {
                let record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic)
                    .key(trace.as_bytes())
                    .payload(payload.as_slice())
                    .timestamp(timestamp)
                    .headers(headers.clone());
                send(&producer, record)?;
                count += 1;
            }
            continue;
        }
        let record: BaseRecord<'_, [u8], [u8]> =
            BaseRecord::to(topic).payload(r.payload.as_slice()).timestamp(timestamp).headers(headers);
        send(&producer, record)?;
        count += 1;
    }
    flush(&producer)?;
    Ok(count)
}

/// An OTLP protobuf batch as one batch per trace (resource and scope kept), with its hex
/// trace id, in the order each trace first appears.
pub fn split_by_trace(payload: &[u8]) -> Vec<(String, Vec<u8>)> {
    let Ok(request) = ExportTraceServiceRequest::decode(payload) else { return Vec::new() };
    let mut traces: Vec<(Vec<u8>, ExportTraceServiceRequest)> = Vec::new();
    for mut rs in request.resource_spans {
        for mut ss in std::mem::take(&mut rs.scope_spans) {
            for span in std::mem::take(&mut ss.spans) {
                let at = match traces.iter().position(|(id, _)| *id == span.trace_id) {
                    Some(at) => at,
                    None => {
                        traces.push((span.trace_id.clone(), ExportTraceServiceRequest::default()));
                        traces.len() - 1
                    }
                };
                let batch = &mut traces[at].1.resource_spans;
                if batch
                    .last()
                    .is_none_or(|last| last.resource != rs.resource || last.schema_url != rs.schema_url)
                {
                    batch.push(ResourceSpans { scope_spans: Vec::new(), ..rs.clone() });
                }
                let scopes = &mut batch.last_mut().expect("pushed").scope_spans;
                if scopes.last().is_none_or(|last| last.scope != ss.scope) {
                    scopes.push(ScopeSpans { spans: Vec::new(), ..ss.clone() });
                }
                scopes.last_mut().expect("pushed").spans.push(span);
            }
        }
    }
    traces.into_iter().map(|(id, batch)| (hex(&id), batch.encode_to_vec())).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use devloom_schemas::codec::otlp_fast;

    use super::*;
    use crate::simulator::{SimConfig, Simulator};

    #[test]
    fn a_batch_split_by_trace_keeps_every_span_under_its_own_trace_id() {
        let sim =
            Simulator::shop("regression", SimConfig { rate_per_s: 20.0, ..SimConfig::default() }).unwrap();
        let batch = sim.filter(|r| r.expect == Expect::Traces).nth(3).unwrap();
        let spans = |payload: &[u8]| {
            let mut events = Vec::new();
            otlp_fast::decode(payload, &mut events).unwrap();
            events
                .into_iter()
                .filter_map(|e| match e {
                    devloom_schemas::Event::Span(s) => Some(s),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        let all = spans(&batch.payload);
        let split = split_by_trace(&batch.payload);
        assert!(split.len() > 1, "several traces in a batch");
        let mut total = 0;
        for (trace, payload) in &split {
            let spans = spans(payload);
            assert!(spans.iter().all(|s| s.trace_id.to_string() == *trace), "{trace}");
            total += spans.len();
        }
        assert_eq!(total, all.len());
    }
}
