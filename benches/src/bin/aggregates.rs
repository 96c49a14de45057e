//! How much pairing reduces what the graph stage reads: the shop's steady traffic at
//! several rates, spans partitioned by trace id over `--partitions` pairing engines
//! (each aggregating the traces it pairs, as a pairing instance does per partition);
//! prints spans, call aggregates, the reduction factor, and the aggregates' size as JSON
//! against the spans' as OTLP protobuf.
//!
//! `cargo run --release -p devloom-benches --bin aggregates -- --rates 10,50,200 --partitions 1,6`

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

use clap::Parser;
use devloom_benches::{otlp_batches, spans};
use devloom_operators::{Engine, EngineConfig, Outputs, Role};
use devloom_schemas::Event;

#[derive(Parser)]
struct Args {
    /// Requests per second at the shop's gateway (each touches ~10–20 spans).
    #[arg(long, value_delimiter = ',', default_value = "10,50,200")]
    rates: Vec<f64>,
    /// Pairing engines (traces partitions).
    #[arg(long, value_delimiter = ',', default_value = "1,6")]
    partitions: Vec<usize>,
    /// Seconds of event time.
    #[arg(long, default_value_t = 300)]
    seconds: u64,
}

fn main() {
    let args = Args::parse();
    println!(
        "rate/s  partitions  spans  aggregates  spans per aggregate  aggregates per s  OTLP bytes  aggregate JSON bytes"
    );
    for &rate in &args.rates {
        let batches = otlp_batches(rate, args.seconds);
        let otlp_bytes: usize = batches.iter().map(Vec::len).sum();
        let spans = spans(&batches);
        for &partitions in &args.partitions {
            let hasher = BuildHasherDefault::<DefaultHasher>::default();
            let mut engines: Vec<Engine> = (0..partitions)
                .map(|_| Engine::new(EngineConfig::default()).with_role(Role::Pairing))
                .collect();
            let mut out = Outputs::default();
            let (mut aggregates, mut json_bytes) = (0usize, 0usize);
            let mut count = |out: &mut Outputs| {
                aggregates += out.calls.len();
                json_bytes +=
                    out.calls.iter().map(|a| serde_json::to_vec(a).map_or(0, |v| v.len())).sum::<usize>();
                out.calls.clear();
            };
            for span in &spans {
                let p = hasher.hash_one(span.trace_id) as usize % partitions;
                engines[p].on_event(&Event::Span(span.clone()), &mut out);
                count(&mut out);
            }
            for e in &mut engines {
                e.flush(&mut out);
                count(&mut out);
            }
            println!(
                "{rate:>6}  {partitions:>10}  {:>5}  {aggregates:>10}  {:>19.1}  {:>16.1}  {otlp_bytes:>10}  {json_bytes:>20}",
                spans.len(),
                spans.len() as f64 / aggregates.max(1) as f64,
                aggregates as f64 / args.seconds as f64,
            );
        }
    }
}
