//! Service catalogs in the pipeline: declared edges that traffic never showed put the
//! affected service on the map, an optional dependency holds its callers at amber, and
//! the catalog survives checkpoints and replays like the rest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use devloom::core::{Pipeline, Source};
use devloom::simulator::scenario::{AlertRule, Condition, Fault};
use devloom::simulator::{Scenario, SimConfig, Simulator, Topology, to_ndjson_line};
use devloom::sinks::Collected;
use devloom::sources::catalogs::{WithCatalogs, snapshots};
use devloom::sources::file::Files;
use devloom_operators::{Engine, EngineConfig};
use devloom_schemas::codec::{DecodeOptions, encode_alert};
use devloom_schemas::{
    Alert, AlertSource, AlertStatus, Criticality, Direction, EdgeOrigin, HealthState, ImpactMap, Severity,
    Verdict,
};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/catalog");
const MIN_NS: u64 = 60_000_000_000;

fn examples() -> Vec<String> {
    ["backstage=catalog-info.yaml", "pagerduty=pagerduty-export.json", "devloom=devloom-catalog.yaml"]
        .iter()
        .map(|a| {
            let (format, file) = a.split_once('=').unwrap();
            format!("{format}={EXAMPLES}/{file}")
        })
        .collect()
}

fn write_ndjson(dir: &Path, name: &str, sim: Simulator) -> PathBuf {
    let path = dir.join(format!("{name}.ndjson"));
    let lines: Vec<String> = sim.map(|r| to_ndjson_line(&r).unwrap()).collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// Runs `files` (after the catalog files `catalogs`) and returns the maps.
fn run(files: &[PathBuf], catalogs: &[String]) -> Vec<ImpactMap> {
    let mut pipeline = Pipeline::new(Engine::new(EngineConfig::default()), Collected::default());
    let inner = Files::open(files, &DecodeOptions::default()).unwrap();
    let mut source: Box<dyn Source> = Box::new(WithCatalogs::new(snapshots(catalogs).unwrap(), inner));
    pipeline.run(source.as_mut()).unwrap();
    pipeline.finish().unwrap().0.maps
}

/// Steady shop traffic, and an alert on `ledger` at minute 5: a service no request
/// reached in the window (payments calls it only when a payment settles late).
fn quiet_path_inputs(dir: &Path) -> Vec<PathBuf> {
    let sim = Simulator::new(
        Topology::shop(),
        Scenario::steady(6 * 60),
        SimConfig { rate_per_s: 10.0, ..SimConfig::default() },
    );
    let start = SimConfig::default().start_ns;
    let traffic = write_ndjson(dir, "steady", sim);
    let alert = Alert {
        fingerprint: "ledger-backlog".into(),
        service: "ledger".into(),
        severity: Severity::Critical,
        status: AlertStatus::Firing,
        starts_at_ns: start + 5 * MIN_NS,
        ends_at_ns: None,
        labels: BTreeMap::from([("alertname".to_string(), "LedgerBacklog".to_string())]),
        summary: "ledger settlement backlog above 10 minutes".into(),
        source: AlertSource::Devloom,
    };
    let alerts = dir.join("alerts.ndjson");
    std::fs::write(&alerts, encode_alert(&alert) + "\n").unwrap();
    vec![traffic, alerts]
}

#[test]
fn a_failing_path_with_no_traffic_appears_over_the_declared_edge() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = quiet_path_inputs(dir.path());
    let without = run(&inputs, &[]);
    let names = |m: &ImpactMap| m.nodes.iter().map(|n| n.service.clone()).collect::<Vec<_>>();
    assert_eq!(names(&without[0]), ["ledger"], "no trace reaches ledger: the map knows no caller");

    let with = run(&inputs, &examples());
    let map = &with[0];
    let got: Vec<(&str, Direction, u32)> =
        map.nodes.iter().map(|n| (n.service.as_str(), n.direction, n.hops)).take(3).collect();
    assert_eq!(
        got,
        [
            ("ledger", Direction::Root, 0),
            ("payments", Direction::Upstream, 1),
            ("checkout", Direction::Upstream, 2)
        ],
        "payments-service (Backstage, namespace payments) dependsOn ledger; the rule strips -service"
    );
    let edge = map.edges.iter().find(|e| e.callee == "ledger").unwrap();
    assert_eq!((edge.caller.as_str(), edge.origin), ("payments", EdgeOrigin::Declared));
    assert_eq!(
        edge.criticality,
        Criticality::Critical,
        "PagerDuty: Payments Service depends on Ledger Service"
    );
    let observed = map.edges.iter().find(|e| e.caller == "checkout" && e.callee == "payments").unwrap();
    assert_eq!(observed.origin, EdgeOrigin::Both, "declared (consumesApis, PagerDuty) and in traces");
    let ledger = &map.nodes[0];
    let catalog = ledger.catalog.as_ref().expect("the catalogs list ledger");
    assert_eq!(catalog.owner.as_deref(), Some("group:default/team-finance"));
    assert_eq!(catalog.escalation_policy.as_deref(), Some("Finance On-Call"), "PagerDuty's Ledger Service");
    assert_eq!(catalog.pagerduty_service_id.as_deref(), Some("PLEDGER"));
    assert_eq!(catalog.entities, ["pagerduty:PLEDGER", "component:default/ledger"]);
    assert_eq!(ledger.state, HealthState::Red, "alert firing");
    assert_eq!(map.nodes[1].state, HealthState::Gray, "payments itself is clean");
}

/// The shop with frontend failing whenever recommendations fails (its fallback leaks
/// errors), and recommendations failing every request from minute 4.
fn optional_dependency_inputs(dir: &Path) -> Vec<PathBuf> {
    let mut topology = Topology::shop();
    let (frontend, recs) = (topology.index("frontend").unwrap(), topology.index("recommendations").unwrap());
    topology.nodes[frontend].calls.iter_mut().filter(|d| d.callee == recs).for_each(|d| d.critical = true);
    let scenario = Scenario {
        name: "recommendations-down",
        description: "recommendations fails every request; the frontend calls it on 30% of pages",
        duration_s: 8 * 60,
        faults: vec![Fault {
            target: "recommendations".into(),
            from_s: 4 * 60,
            until_s: 8 * 60,
            error_rate: Some(1.0),
            ..Fault::default()
        }],
        rules: vec![AlertRule {
            name: "HighErrorRate",
            service: "recommendations",
            watch: "recommendations",
            condition: Condition::ErrorRateAbove(0.05),
            labels: &[],
            severity: "critical",
            summary: "recommendations 5xx above 5%",
        }],
        changes: vec![],
        canary: None,
    };
    let sim = Simulator::new(topology, scenario, SimConfig { rate_per_s: 10.0, ..SimConfig::default() });
    vec![write_ndjson(dir, "recommendations-down", sim)]
}

fn state_of(map: &ImpactMap, service: &str) -> HealthState {
    map.nodes.iter().find(|n| n.service == service).unwrap_or_else(|| panic!("{service} missing")).state
}

#[test]
fn an_optional_dependency_failing_leaves_its_caller_amber_and_the_incident_contained() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = optional_dependency_inputs(dir.path());
    let without = run(&inputs, &[]);
    let last =
        without.iter().rev().find(|m| m.verdict == Verdict::Spreading).expect("the frontend's errors spread");
    assert_eq!(state_of(last, "frontend"), HealthState::Red, "without the catalog: failing with it");

    let with = run(&inputs, &examples());
    assert!(
        with.iter().all(|m| m.verdict == Verdict::Contained),
        "the catalog says frontend can do without it"
    );
    let worst =
        with.iter().max_by_key(|m| m.nodes.iter().filter(|n| n.state == HealthState::Amber).count()).unwrap();
    assert_eq!(state_of(worst, "frontend"), HealthState::Amber, "degraded, not down");
    assert_eq!(state_of(worst, "gateway"), HealthState::Amber, "and so is the gateway in front of it");
    let edge = worst.edges.iter().find(|e| e.caller == "frontend" && e.callee == "recommendations").unwrap();
    assert_eq!((edge.criticality, edge.origin), (Criticality::Optional, EdgeOrigin::Both));
}
