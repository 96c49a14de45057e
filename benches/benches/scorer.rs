//! Root-cause scoring: an incident with 50 candidates (40 recent deploys on services in
//! the blast radius, 10 degraded dependencies), found, scored and versioned by the
//! candidate operator with the built-in model. Target ≤ 1 ms.

use criterion::{Criterion, criterion_group, criterion_main};
use devloom::learning::model::scorer;
use devloom_operators::{CandidateInput, CandidateScorer, CandidatesConfig, Operator, PastIncidents};
use devloom_schemas::{
    ChangeKind, Criticality, Deploy, DeploySource, Direction, EdgeOrigin, HealthState, ImpactEdge, ImpactMap,
    ImpactNode, IncidentStatus, NowVsBaseline, Verdict,
};

const ONSET: u64 = 1_795_770_000_000_000_000;

fn node(service: &str, hops: u32, direction: Direction, state: HealthState) -> ImpactNode {
    ImpactNode {
        service: service.into(),
        region: None,
        virtual_node: service.starts_with("db-"),
        state,
        hops,
        direction,
        path: vec!["checkout".into(), service.into()],
        error_rate: NowVsBaseline { now: 0.08, baseline: 0.01 },
        p99_ms: NowVsBaseline { now: 300.0, baseline: 80.0 },
        requests_per_s: NowVsBaseline { now: 40.0, baseline: 38.0 },
        covered_s: None,
        self_time_ms: None,
        self_time_p90_ms: None,
        catalog: None,
    }
}

fn incident() -> (ImpactMap, Vec<Deploy>) {
    let mut nodes = vec![node("checkout", 0, Direction::Root, HealthState::Red)];
    let mut edges = Vec::new();
    for i in 0..30 {
        let name = format!("svc-{i:02}");
        nodes.push(node(&name, 1, Direction::Downstream, HealthState::Gray));
        edges.push(edge("checkout", &name));
    }
    for i in 0..10 {
        let name = format!("db-{i:02}");
        nodes.push(node(&name, 2, Direction::Downstream, HealthState::Amber));
        edges.push(edge(&format!("svc-{i:02}"), &name));
    }
    let map = ImpactMap {
        schema_version: 1,
        incident_id: "inc-bench".into(),
        version: 1,
        status: IncidentStatus::Open,
        root_services: vec!["checkout".into()],
        verdict: Verdict::Spreading,
        nodes,
        edges,
        omitted_nodes: None,
        data_quality: None,
        event_time_ns: ONSET,
        event_time: String::new(),
        alert_received_at: None,
        published_at: None,
        latency_ms: None,
    };
    let deploys = (0..40)
        .map(|i| Deploy {
            service: format!("svc-{:02}", i % 30),
            revision: format!("v{i}"),
            time_ns: ONSET - (i as u64 + 1) * 60_000_000_000,
            kind: ChangeKind::Deploy,
            source: DeploySource::Devloom,
            ..Deploy::default()
        })
        .collect();
    (map, deploys)
}

fn edge(caller: &str, callee: &str) -> ImpactEdge {
    ImpactEdge {
        caller: caller.into(),
        callee: callee.into(),
        origin: EdgeOrigin::Observed,
        asynchronous: false,
        criticality: Criticality::Unknown,
        traffic_share: 1.0,
        state: HealthState::Gray,
        error_rate: NowVsBaseline { now: 0.0, baseline: 0.0 },
        calls_per_s: None,
        covered_s: None,
        gap_ms: None,
        caller_error_rate: None,
        gap_p90_ms: None,
        gap_p99_ms: None,
    }
}

fn scoring(c: &mut Criterion) {
    let (scorer, _) = scorer(&Default::default()).unwrap().unwrap();
    let (map, deploys) = incident();
    let mut ready = CandidateScorer::new(CandidatesConfig::default(), scorer, PastIncidents::new());
    let mut out = Vec::new();
    for d in &deploys {
        ready.on_event(&(), &CandidateInput::Change(d.clone()), &mut out);
    }
    let input = CandidateInput::Map(map);
    let mut probe = ready.clone();
    probe.on_event(&(), &input, &mut out);
    assert_eq!(out.last().unwrap().candidates.len(), 50, "the incident has 50 candidates");
    c.bench_function("candidates: find + score + version an incident with 50 candidates", |b| {
        b.iter(|| {
            let mut op = ready.clone();
            out.clear();
            op.on_event(&(), &input, &mut out);
            out.len()
        })
    });
}

criterion_group!(benches, scoring);
criterion_main!(benches);
