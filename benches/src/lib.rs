//! Shared inputs of Devloom's benchmarks: realistic OTLP batches and service graphs from
//! the simulator, so every bench measures what production sees.

use std::sync::Arc;

use devloom::simulator::{Scenario, SimConfig, SimRecord, Simulator, Topology};
use devloom_operators::{AggregateBuckets, CallAggregator, Observation, Operator, ServiceGraph, ServiceId};
use devloom_schemas::codec::{Expect, encode_alert, otlp_fast};
use devloom_schemas::{Alert, AlertSource, AlertStatus, Event, Severity, Span, TimestampNs};

/// OTLP protobuf batches (one per simulated second, ~10 attributes a span) of steady
/// traffic on the shop at `rate` requests/s, for `seconds`.
pub fn otlp_batches(rate: f64, seconds: u64) -> Vec<Vec<u8>> {
    let sim = Simulator::new(
        Topology::shop(),
        Scenario::steady(seconds),
        SimConfig { rate_per_s: rate, ..SimConfig::default() },
    );
    sim.filter(|r| r.expect == Expect::Traces).map(|r| r.payload).collect()
}

/// The simulator's records for a whole scenario, one OTLP batch per `tick_ms`.
pub fn records(scenario: Scenario, rate: f64, seed: u64, tick_ms: u64) -> Vec<SimRecord> {
    let config = SimConfig { rate_per_s: rate, seed, tick_ms, ..SimConfig::default() };
    Simulator::new(Topology::shop(), scenario, config).collect()
}

/// Spans decoded from `batches`, in order.
pub fn spans(batches: &[Vec<u8>]) -> Vec<Span> {
    let mut events = Vec::new();
    for b in batches {
        otlp_fast::decode(b, &mut events).expect("the simulator writes valid OTLP");
    }
    events.into_iter().filter_map(|e| if let Event::Span(s) = e { Some(s) } else { None }).collect()
}

/// A service graph with every edge of a generated `services`-service topology, with
/// `buckets` 10 s buckets of traffic on each (watermarked as they pass, so all but the
/// last minute is baseline); its watermark is at the end of the last bucket plus 10 s.
pub fn graph_of(services: usize, buckets: u64) -> (ServiceGraph, Vec<String>) {
    let topo = Topology::generated(services, 1);
    let mut g = ServiceGraph::default();
    let id = |i: usize| {
        let n = &topo.nodes[i];
        ServiceId { name: Arc::from(n.name.as_str()), region: None, virtual_node: n.db_system.is_some() }
    };
    let mut out = Vec::new();
    let mut calls = CallAggregator::new(AggregateBuckets::default());
    let mut handed = Vec::new();
    for t in 0..buckets {
        let time_ns = 1_000_000_000 + t * 10_000_000_000;
        for (i, n) in topo.nodes.iter().enumerate() {
            for d in &n.calls {
                let obs = [
                    Observation::Request {
                        service: id(d.callee),
                        time_ns,
                        latency_ns: 5_000_000,
                        failed: false,
                        release: None,
                    },
                    Observation::Call {
                        caller: id(i),
                        callee: id(d.callee),
                        time_ns,
                        latency_ns: 5_000_000,
                        server_ns: 5_000_000,
                        failed: false,
                        asynchronous: false,
                    },
                    Observation::Gap {
                        caller: id(i),
                        callee: id(d.callee),
                        time_ns,
                        gap_ns: 600_000,
                        failed_after: false,
                    },
                ];
                for o in &obs {
                    calls.on_event(&(), o, &mut handed);
                }
            }
        }
        let watermark = (t + 1) * 10_000_000_000;
        calls.on_watermark(&(), watermark, &mut handed);
        for a in handed.drain(..) {
            g.on_event(&(), &a, &mut out);
        }
        g.on_watermark(&(), watermark, &mut out);
    }
    g.on_watermark(&(), (buckets + 1) * 10_000_000_000, &mut out);
    let names = topo.service_names().into_iter().map(String::from).collect();
    (g, names)
}

/// The alert the load harnesses inject with trace batch `batch`, if one is due: every
/// `every` batches, alternately firing and resolving, cycling through the shop's
/// services. Devloom alert JSON, stamped `time_ns`.
pub fn injected_alert(batch: usize, every: usize, time_ns: TimestampNs) -> Option<Vec<u8>> {
    if !batch.is_multiple_of(every.max(1)) {
        return None;
    }
    let n = batch / every.max(1);
    let services = Topology::shop().service_names().into_iter().map(String::from).collect::<Vec<_>>();
    let service = services[(n / 2) % services.len()].clone();
    let firing = n.is_multiple_of(2);
    let alert = Alert {
        fingerprint: format!("bench-{service}"),
        service,
        severity: Severity::Critical,
        status: if firing { AlertStatus::Firing } else { AlertStatus::Resolved },
        starts_at_ns: time_ns,
        ends_at_ns: (!firing).then_some(time_ns),
        labels: Default::default(),
        summary: "injected by a load harness".into(),
        source: AlertSource::Devloom,
    };
    Some(encode_alert(&alert).into_bytes())
}
