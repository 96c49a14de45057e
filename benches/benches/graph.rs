//! The operator hot paths: span pairing + service graph (spans/s), and blast radius on
//! 1k- and 10k-service graphs.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use devloom_benches::{graph_of, otlp_batches, spans};
use devloom_operators::incidents::UpdateKind;
use devloom_operators::{
    BlastInput, BlastRadius, IncidentUpdate, Operator, SelfTimer, ServiceGraph, SpanPairer,
};

fn pairing_and_graph(c: &mut Criterion) {
    let spans = spans(&otlp_batches(50.0, 30));
    let mut group = c.benchmark_group("pairing_graph");
    group.throughput(Throughput::Elements(spans.len() as u64));
    group.sample_size(20);
    let mut obs = Vec::new();
    let mut changes = Vec::new();
    group.bench_function("span pairing", |b| {
        b.iter(|| {
            let mut pairer = SpanPairer::default();
            for s in &spans {
                obs.clear();
                pairer.on_event(&(), s, &mut obs);
            }
            pairer.counters().paired
        })
    });
    group.bench_function("span pairing + graph/health update", |b| {
        b.iter(|| {
            let mut pairer = SpanPairer::default();
            let mut graph = ServiceGraph::default();
            for s in &spans {
                pairer.on_event(&(), s, &mut obs);
                for o in obs.drain(..) {
                    graph.on_event(&(), &o, &mut changes);
                }
            }
            graph.size()
        })
    });
    group.bench_function("span pairing + self time + graph/health update", |b| {
        b.iter(|| {
            let mut pairer = SpanPairer::default();
            let mut timer = SelfTimer::default();
            let mut graph = ServiceGraph::default();
            for (i, s) in spans.iter().enumerate() {
                pairer.on_event(&(), s, &mut obs);
                timer.on_event(&(), s, &mut obs);
                // The engine's watermark, every thousand spans: measured spans leave the store.
                if i % 1000 == 999 {
                    timer.on_watermark(&(), s.end_ns.saturating_sub(2_000_000_000), &mut obs);
                }
                for o in obs.drain(..) {
                    graph.on_event(&(), &o, &mut changes);
                }
            }
            (graph.size(), timer.counters().measured)
        })
    });
    group.finish();
}

fn blast_radius(c: &mut Criterion) {
    let mut group = c.benchmark_group("blast_radius");
    group.sample_size(20);
    for services in [1_000usize, 10_000] {
        let (graph, names) = graph_of(services);
        // A service a third of the way down: callers above it, callees below it.
        let root = names[services / 3].clone();
        let update = BlastInput::Incident(IncidentUpdate {
            incident_id: "inc-bench".into(),
            kind: UpdateKind::Opened,
            root_services: vec![root.clone()],
            firing_services: vec![root],
            time_ns: 70_000_000_000,
        });
        let mut out = Vec::new();
        let mut probe = BlastRadius::default();
        probe.on_event(&graph, &update, &mut out);
        eprintln!(
            "{services} services: graph {:?} (nodes, edges); map of {} nodes, {} edges",
            graph.size(),
            out[0].nodes.len(),
            out[0].edges.len()
        );
        group.bench_with_input(BenchmarkId::new("walk", services), &graph, |b, g| {
            let roots = g.nodes_named(&names[services / 3]);
            b.iter(|| devloom_operators::blast_radius::walk(g, &roots, 0).len())
        });
        group.bench_with_input(BenchmarkId::new("impact map (walk + build)", services), &graph, |b, g| {
            b.iter(|| {
                let mut op = BlastRadius::default();
                out.clear();
                op.on_event(g, &update, &mut out);
                out.len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, pairing_and_graph, blast_radius);
criterion_main!(benches);
