//! Offered-load producer for measuring the Kafka runtime: simulated OTLP batches paced to
//! a fixed number of spans per wall-clock second on the traces topic, with an alert
//! (alternately firing and resolving) every N batches on the alerts topic, each message
//! stamped with its event time. Run `devloom run --brokers …` beside it; on SIGTERM it
//! prints the alert → map latency it saw.
//!
//! `cargo run --release -p devloom-benches --bin kafka_e2e -- --brokers 127.0.0.1:9092 --topic-prefix bench`

use std::time::{Duration, Instant};

use clap::Parser;
use devloom::config::KafkaConfig;
use devloom::kafka::{create_topics, input_topics, producer, send};
use devloom::simulator::Scenario;
use devloom::simulator::to_kafka::split_by_trace;
use devloom_benches::{injected_alert, records};
use devloom_schemas::codec::{Expect, otlp_fast};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer};

/// Paced producer for the Kafka runtime.
#[derive(Parser)]
struct Args {
    /// Bootstrap servers.
    #[arg(long)]
    brokers: String,
    /// Topic names are `<prefix>.traces`, `<prefix>.alerts`, `<prefix>.deploys`.
    #[arg(long, default_value = "devloom")]
    topic_prefix: String,
    /// Offered load, spans per wall-clock second.
    #[arg(long, default_value_t = 200_000.0)]
    spans_per_s: f64,
    /// Event-time seconds of shop traffic.
    #[arg(long, default_value_t = 120)]
    seconds: u64,
    /// Simulated requests per event-time second. The shop makes ~17 spans a request:
    /// when `--spans-per-s` is more than that many spans, event time runs faster than
    /// the wall clock (12× at the defaults) and the pipeline's stores hold that much less
    /// than real traffic of the same rate would. For real-time pacing give spans-per-s /
    /// 17 here (and a `--tick-ms` that keeps a batch under the broker's message size).
    #[arg(long, default_value_t = 1000.0)]
    requests_per_s: f64,
    /// One OTLP batch per this many event-time milliseconds.
    #[arg(long, default_value_t = 100)]
    tick_ms: u64,
    /// An alert every this many trace batches.
    #[arg(long, default_value_t = 20)]
    alert_every: usize,
    /// Offer the load this many seconds before injecting alerts, so the latency measured
    /// is the sustained one, not the pipeline's start from idle (0: alerts from the start).
    #[arg(long, default_value_t = 0.0)]
    warmup_s: f64,
    /// Partitions of topics it creates.
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// One message per trace, keyed by its hex trace id and partitioned by murmur2, as
    /// the Collector's Kafka exporter with `partition_traces_by_id` (what `devloom run
    /// --role pairing` expects).
    #[arg(long)]
    partition_traces_by_id: bool,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut k =
        KafkaConfig { brokers: args.brokers.clone(), partitions: args.partitions, ..KafkaConfig::default() };
    if args.partition_traces_by_id {
        k.properties.insert("partitioner".into(), "murmur2_random".into());
    }
    k.topics.traces = format!("{}.traces", args.topic_prefix);
    k.topics.alerts = format!("{}.alerts", args.topic_prefix);
    k.topics.deploys = format!("{}.deploys", args.topic_prefix);
    let topics = input_topics(&k);
    create_topics(&k, &topics.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>())?;
    let traces: Vec<_> = records(Scenario::steady(args.seconds), args.requests_per_s, 11, args.tick_ms)
        .into_iter()
        .filter(|r| r.expect == Expect::Traces)
        .collect();
    let p = producer(&k)?;
    let mut start = Instant::now();
    let (mut offered, mut alerts) = (0u64, 0u64);
    for (i, r) in traces.iter().enumerate() {
        let mut out = Vec::new();
        otlp_fast::decode(&r.payload, &mut out)?;
        offered += out.len() as u64;
        let due = start + Duration::from_secs_f64(offered as f64 / args.spans_per_s);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let ts = (r.time_ns / 1_000_000) as i64;
        let headers = OwnedHeaders::new().insert(Header { key: "content-type", value: Some(r.content_type) });
        if args.partition_traces_by_id {
            for (trace, payload) in split_by_trace(&r.payload) {
                let record =
                    BaseRecord::to(&k.topics.traces).key(trace.as_bytes()).payload(payload.as_slice());
                send(&p, record.timestamp(ts).headers(headers.clone()))?;
            }
        } else {
            send(
                &p,
                BaseRecord::to(&k.topics.traces).payload(r.payload.as_slice()).timestamp(ts).headers(headers),
            )?;
        }
        if i == 0 {
            // An idempotent producer's first delivery waits for its producer id (a second
            // against tansu): paced from before that, the first second of traffic would
            // reach Devloom at once, a backlog rather than a cold start.
            p.flush(Duration::from_secs(30))?;
            start = Instant::now() - Duration::from_secs_f64(offered as f64 / args.spans_per_s);
        }
        let warm = offered as f64 / args.spans_per_s >= args.warmup_s;
        if let Some(payload) = injected_alert(i, args.alert_every, r.time_ns).filter(|_| warm) {
            send(
                &p,
                BaseRecord::<[u8], [u8]>::to(&k.topics.alerts).payload(payload.as_slice()).timestamp(ts),
            )?;
            alerts += 1;
        }
    }
    p.flush(Duration::from_secs(60))?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "offered {offered} spans in {secs:.2} s ({:.0} spans/s) and {alerts} alerts; event time ran {:.1}× the wall clock",
        offered as f64 / secs,
        args.seconds as f64 / secs
    );
    Ok(())
}
