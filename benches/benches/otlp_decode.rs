//! OTLP bytes → normalized spans, protobuf and JSON: each selective decoder against the
//! naive path (full decode into the `opentelemetry-proto` types, then normalization).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use devloom_benches::otlp_batches;
use devloom_schemas::codec::{otlp, otlp_fast, otlp_json};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;

fn decode(c: &mut Criterion) {
    // 30 s of shop traffic at 50 req/s: 30 batches, ~26k spans, ~10 attributes each.
    let batches = otlp_batches(50.0, 30);
    let spans: usize = batches
        .iter()
        .map(|b| {
            let mut out = Vec::new();
            otlp_fast::decode(b, &mut out).unwrap();
            out.len()
        })
        .sum();
    let bytes: usize = batches.iter().map(Vec::len).sum();
    eprintln!("input: {} batches, {spans} spans, {bytes} bytes", batches.len());

    let mut group = c.benchmark_group("otlp_decode");
    group.throughput(Throughput::Elements(spans as u64));
    group.sample_size(20);
    let mut out = Vec::with_capacity(spans);
    group.bench_function("selective (devloom)", |b| {
        b.iter(|| {
            out.clear();
            for batch in &batches {
                otlp_fast::decode(batch, &mut out).unwrap();
            }
            out.len()
        })
    });
    group.bench_function("generated types + normalize (naive)", |b| {
        b.iter(|| {
            out.clear();
            for batch in &batches {
                otlp::decode_reference(batch, &mut out).unwrap();
            }
            out.len()
        })
    });
    group.bench_function("generated types only (prost decode)", |b| {
        b.iter(|| {
            batches
                .iter()
                .map(|batch| {
                    ExportTraceServiceRequest::decode(batch.as_slice()).unwrap().resource_spans.len()
                })
                .sum::<usize>()
        })
    });
    group.finish();

    // The same batches as OTLP JSON, as the Collector's Kafka and file exporters write it.
    let json: Vec<Vec<u8>> = batches
        .iter()
        .map(|b| serde_json::to_vec(&ExportTraceServiceRequest::decode(b.as_slice()).unwrap()).unwrap())
        .collect();
    eprintln!("as JSON: {} bytes", json.iter().map(Vec::len).sum::<usize>());
    let mut group = c.benchmark_group("otlp_json_decode");
    group.throughput(Throughput::Elements(spans as u64));
    group.sample_size(10);
    group.bench_function("selective (devloom)", |b| {
        b.iter(|| {
            out.clear();
            for doc in &json {
                otlp_json::decode(doc, &mut out).unwrap();
            }
            out.len()
        })
    });
    group.bench_function("generated types + normalize (naive)", |b| {
        b.iter(|| {
            out.clear();
            for doc in &json {
                otlp::decode_json_reference(doc, &mut out).unwrap();
            }
            out.len()
        })
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
