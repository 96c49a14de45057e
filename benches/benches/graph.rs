//! The operator hot paths: span pairing + service graph (spans/s) with light and loaded
//! stores, what per-version tracking for rollout analysis adds to it, the health tick
//! and blast radius on 1k- and 10k-service graphs, the pairing and graph roles of a
//! sharded deployment, and what a loaded pairing engine's checkpoint costs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use devloom::kafka::checkpoint::{Checkpoint, CheckpointStore, partition_key};
use devloom::simulator::Scenario;
use devloom_benches::{graph_of, otlp_batches, records, spans};
use devloom_operators::incidents::UpdateKind;
use devloom_operators::{
    AggregateBuckets, BlastInput, BlastRadius, CallAggregate, CallAggregator, Engine, EngineConfig,
    HealthChange, IncidentUpdate, Observation, Operator, Outputs, Role, RolloutAnalyzer, SelfTimeCounters,
    SelfTimer, ServiceGraph, SpanPairer,
};
use devloom_schemas::{Event, Span};

/// Observations into the aggregator; at `watermark` (the engine's, every thousand spans)
/// the buckets it passed into the graph, as the engine does.
struct Aggregation {
    calls: CallAggregator,
    handed: Vec<CallAggregate>,
    changes: Vec<HealthChange>,
}

impl Aggregation {
    fn new() -> Self {
        Self {
            calls: CallAggregator::new(AggregateBuckets::default()),
            handed: Vec::new(),
            changes: Vec::new(),
        }
    }

    fn add(&mut self, obs: &mut Vec<Observation>) {
        for o in obs.drain(..) {
            self.calls.on_event(&(), &o, &mut self.handed);
        }
    }

    fn hand_on(&mut self, watermark: u64, graph: &mut ServiceGraph, analyzer: Option<&mut RolloutAnalyzer>) {
        self.calls.on_watermark(&(), watermark, &mut self.handed);
        let mut decisions = Vec::new();
        let analyzer = analyzer.map(|a| (a, &mut decisions));
        if let Some((a, decisions)) = analyzer {
            for h in &self.handed {
                a.on_event(&(), h, decisions);
            }
            a.on_watermark(&(), watermark, decisions);
        }
        for h in self.handed.drain(..) {
            graph.on_event(&(), &h, &mut self.changes);
        }
        graph.on_watermark(&(), watermark, &mut self.changes);
    }
}

fn pairing_and_graph(c: &mut Criterion) {
    let spans = spans(&otlp_batches(50.0, 30));
    let mut group = c.benchmark_group("pairing_graph");
    group.throughput(Throughput::Elements(spans.len() as u64));
    group.sample_size(20);
    let mut obs = Vec::new();
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
            let mut agg = Aggregation::new();
            for (i, s) in spans.iter().enumerate() {
                pairer.on_event(&(), s, &mut obs);
                agg.add(&mut obs);
                if i % 1000 == 999 {
                    agg.hand_on(s.end_ns.saturating_sub(2_000_000_000), &mut graph, None);
                }
            }
            graph.size()
        })
    });
    group.bench_function("span pairing + self time + graph/health update", |b| {
        b.iter(|| operators(&spans, false, || ()))
    });
    group.finish();
}

/// The same operators over twenty seconds of 1,000 requests/s (`kafka_e2e`'s traffic,
/// 17 k spans per event-time second): the pairing and self-time stores hold ~100 k spans
/// waiting out the TTL, as in a loaded run, and the expiry order holds that many deadlines.
/// Then from a cold start at 200 k spans per event-time second, where they fill up.
fn loaded_stores(c: &mut Criterion) {
    let spans = spans(&otlp_batches(1000.0, 20));
    let mut group = c.benchmark_group("loaded_stores");
    group.throughput(Throughput::Elements(spans.len() as u64));
    group.sample_size(10);
    group.bench_function("span pairing + self time + graph/health update", |b| {
        b.iter(|| operators(&spans, false, || ()))
    });
    // Ten seconds of 11,750 requests/s: 200 k spans per event-time second, `kafka_e2e`
    // paced in real time. From a cold start the self-time store grows to its cap
    // (`max_pending`, 1 M: five of the seven seconds each span stays) and then closes
    // the entries due first early, as on a cold start at that rate.
    let spans = devloom_benches::spans(&otlp_batches(11_750.0, 10));
    let counters = self_time(&spans);
    println!(
        "self time at 200 k spans/s from a cold start: {} spans, {} measured, {} of them early at the full store",
        spans.len(),
        counters.measured,
        counters.evicted
    );
    // What an alert waits for at worst: the slowest thousand spans of a cold start (a
    // store's table doubling moves all it holds in one step), five runs.
    let slowest: Vec<String> = (0..5)
        .map(|_| {
            let (mut last, mut slowest) = (Instant::now(), Duration::ZERO);
            operators(&spans, false, || {
                slowest = slowest.max(last.elapsed());
                last = Instant::now();
            });
            format!("{:.1} ms", slowest.as_secs_f64() * 1e3)
        })
        .collect();
    println!(
        "operators from a cold start at 200 k spans/s: slowest step of 1,000 spans {}",
        slowest.join(", ")
    );
    group.throughput(Throughput::Elements(spans.len() as u64));
    group.bench_function("self time alone, cold store at 200 k spans/s", |b| b.iter(|| self_time(&spans)));
    group.bench_function("span pairing + self time + graph/health update, cold at 200 k spans/s", |b| {
        b.iter(|| operators(&spans, false, || ()))
    });
    group.finish();
}

/// The self-time store alone over `spans`, the watermark 2 s behind every thousand
/// spans and at the end.
fn self_time(spans: &[Span]) -> SelfTimeCounters {
    let mut timer = SelfTimer::default();
    let mut obs = Vec::new();
    for (i, s) in spans.iter().enumerate() {
        timer.on_event(&(), s, &mut obs);
        if i % 1000 == 999 {
            timer.on_watermark(&(), s.end_ns.saturating_sub(2_000_000_000), &mut obs);
        }
        obs.clear();
    }
    timer.on_watermark(&(), u64::MAX, &mut obs);
    timer.counters()
}

/// Pairing + self time + aggregation + graph over `spans`, with the rollout stage when
/// `rollouts`; the watermark moves every thousand spans, and `stepped` is called after
/// each such step.
fn operators(spans: &[Span], rollouts: bool, mut stepped: impl FnMut()) -> usize {
    let mut obs = Vec::new();
    let mut pairer = SpanPairer::default();
    let mut timer = SelfTimer::default();
    let mut graph = ServiceGraph::default();
    let mut analyzer = RolloutAnalyzer::default();
    let mut agg = Aggregation::new();
    for (i, s) in spans.iter().enumerate() {
        agg.calls.on_span(s);
        pairer.on_event(&(), s, &mut obs);
        timer.on_event(&(), s, &mut obs);
        if i % 1000 == 999 {
            let watermark = s.end_ns.saturating_sub(2_000_000_000);
            timer.on_watermark(&(), watermark, &mut obs);
            agg.add(&mut obs);
            agg.hand_on(watermark, &mut graph, rollouts.then_some(&mut analyzer));
            stepped();
        }
        agg.add(&mut obs);
    }
    graph.size().0 + agg.changes.len()
}

/// A minute of the canary scenario (frontend 1.0.0 and 1.1.0 both serving), with and
/// without `service.version` / `deployment.environment` on the spans: what tracking
/// health per version costs the hot path.
fn per_version(c: &mut Criterion) {
    let minute: Vec<Vec<u8>> = records(Scenario::canary("frontend", 0.1, 0.08), 50.0, 42, 1000)
        .into_iter()
        .filter(|r| r.expect == devloom_schemas::codec::Expect::Traces)
        .skip(120)
        .take(60)
        .map(|r| r.payload)
        .collect();
    let versioned = spans(&minute);
    let bare: Vec<Span> =
        versioned.iter().cloned().map(|s| Span { version: None, environment: None, ..s }).collect();
    let mut group = c.benchmark_group("per_version");
    group.throughput(Throughput::Elements(versioned.len() as u64));
    group.sample_size(20);
    group.bench_function("pairing + self time + graph, spans without versions", |b| {
        b.iter(|| operators(&bare, false, || ()))
    });
    group.bench_function("pairing + self time + graph + rollout analysis, two versions serving", |b| {
        b.iter(|| operators(&versioned, true, || ()))
    });
    group.finish();
}

fn blast_radius(c: &mut Criterion) {
    let mut group = c.benchmark_group("blast_radius");
    group.sample_size(20);
    for services in [1_000usize, 10_000] {
        let (graph, names) = graph_of(services, 6);
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
        health_tick(&mut group, BenchmarkId::new("health tick", services), &graph, 8);
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

/// Every node and edge of `graph` re-evaluated at the bucket boundary `bucket` × 10 s
/// (one every 10 s of event time), the wire and blame rules looking at each node's
/// neighbours.
fn health_tick(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: BenchmarkId,
    graph: &ServiceGraph,
    bucket: u64,
) {
    let snapshot = graph.snapshot();
    group.bench_with_input(id, &snapshot, |b, snapshot| {
        b.iter_batched(
            || {
                let mut g = ServiceGraph::default();
                g.restore(snapshot.clone());
                g
            },
            // The graph is returned so that criterion drops it outside the timing.
            |mut g| {
                let mut changes = Vec::new();
                g.on_watermark(&(), bucket * 10_000_000_000, &mut changes);
                (changes.len(), g)
            },
            BatchSize::LargeInput,
        )
    });
}

/// The health tick in steady state: a full 30-minute baseline (180 closed buckets a node
/// and edge, each contributing its percentiles to the baseline's medians).
fn health_tick_full_baseline(c: &mut Criterion) {
    let mut group = c.benchmark_group("blast_radius");
    group.sample_size(20);
    let (graph, _) = graph_of(1_000, 186);
    health_tick(&mut group, BenchmarkId::new("health tick, 30 min baseline", 1_000), &graph, 188);
    group.finish();
}

/// The two roles of a sharded deployment: a pairing engine reading spans and handing on
/// call aggregates (spans/s), and a graph engine taking those aggregates
/// (aggregates/s, its health ticks included), over five minutes of the shop at 200
/// requests/s.
fn roles(c: &mut Criterion) {
    let spans: Vec<Event> = spans(&otlp_batches(200.0, 300)).into_iter().map(Event::Span).collect();
    let pairing = || Engine::new(EngineConfig::default()).with_role(Role::Pairing);
    let mut handed = Outputs::default();
    let mut p = pairing();
    let mut marks = Vec::new();
    for e in &spans {
        p.on_event(e, &mut handed);
        handed.links.clear();
        if !handed.calls.is_empty() {
            marks.push((std::mem::take(&mut handed.calls), p.watermark_ns(), p.newest_ns()));
        }
    }
    let aggregates: usize = marks.iter().map(|(a, _, _)| a.len()).sum();
    let mut group = c.benchmark_group("roles");
    group.sample_size(10);
    group.throughput(Throughput::Elements(spans.len() as u64));
    group.bench_function("pairing role: spans to call aggregates", |b| {
        b.iter(|| {
            let mut p = pairing();
            let mut out = Outputs::default();
            for e in &spans {
                p.on_event(e, &mut out);
                out.calls.clear();
                out.links.clear();
            }
            p.counters().0.call_aggregates
        })
    });
    group.throughput(Throughput::Elements(aggregates as u64));
    group.bench_function("graph role: call aggregates into the graph", |b| {
        b.iter(|| {
            let mut g = Engine::new(EngineConfig::default()).with_role(Role::Graph);
            let mut out = Outputs::default();
            for (calls, watermark, newest) in &marks {
                g.on_calls(calls);
                g.advance_to(*watermark, *newest, &mut out);
            }
            g.graph().size()
        })
    });
    group.finish();
}

/// A loaded pairing engine's checkpoint, in its two halves: copying the state, which the
/// run loop does, and serializing, writing and syncing it, which a writer thread does
/// (`pipeline/src/kafka/checkpoint.rs`). The engine has read twenty seconds of 1,000
/// requests/s, so its stores hold the spans a loaded partition's do.
fn pairing_checkpoint(c: &mut Criterion) {
    let mut engine = Engine::new(EngineConfig::default()).with_role(Role::Pairing);
    let mut out = Outputs::default();
    for span in spans(&otlp_batches(1000.0, 20)) {
        engine.on_event(&Event::Span(span), &mut out);
        out.calls.clear();
        out.links.clear();
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = CheckpointStore::new(dir.path());
    let offsets = BTreeMap::from([(partition_key("devloom.traces", 0), 1)]);
    let checkpoint = Checkpoint::new(offsets, engine.snapshot(), None);
    let mut group = c.benchmark_group("pairing_checkpoint");
    group.sample_size(10);
    // The copy is dropped on the writer thread: not timed here either.
    group.bench_function("copy the state (run loop)", |b| b.iter_with_large_drop(|| engine.snapshot()));
    group.bench_function("serialize, write and sync (writer thread)", |b| {
        b.iter(|| store.save(&checkpoint).expect("a writable directory"))
    });
    group.finish();
}

criterion_group!(
    benches,
    pairing_and_graph,
    loaded_stores,
    pairing_checkpoint,
    per_version,
    blast_radius,
    health_tick_full_baseline,
    roles
);
criterion_main!(benches);
