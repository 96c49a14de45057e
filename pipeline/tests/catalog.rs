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
    quiet_path_alerted(dir, "ledger")
}

/// The same, the alert naming the service `service`.
fn quiet_path_alerted(dir: &Path, service: &str) -> Vec<PathBuf> {
    let sim = Simulator::new(
        Topology::shop(),
        Scenario::steady(6 * 60),
        SimConfig { rate_per_s: 10.0, ..SimConfig::default() },
    );
    let start = SimConfig::default().start_ns;
    let traffic = write_ndjson(dir, "steady", sim);
    let alert = Alert {
        fingerprint: "ledger-backlog".into(),
        service: service.into(),
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
    // Drawn distinctly: dashed in the picture, marked in the terminal.
    let svg = devloom::http::picture::map_svg(map, None);
    let line =
        svg.split("<line ").find(|l| l.contains(r#"data-caller="payments" data-callee="ledger""#)).unwrap();
    assert!(line.starts_with(r#"class="edge declared""#) && line.contains("stroke-dasharray"), "{line}");
    let text = devloom::sinks::terminal::render_map(map, false);
    let payments_line = text.lines().find(|l| l.contains("payments gray")).unwrap();
    assert!(payments_line.ends_with("⇢ declared, not seen in traces"), "{text}");
    assert!(text.contains("ledger RED  no traffic  [owner team-finance, page Finance On-Call]"), "{text}");
}

#[test]
fn an_alert_named_as_pagerduty_names_the_service_is_about_the_traced_one() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = quiet_path_alerted(dir.path(), "Ledger Service");
    assert_eq!(run(&inputs, &[]).last().unwrap().root_services, ["Ledger Service"]);
    let map = run(&inputs, &examples()).last().unwrap().clone();
    assert_eq!(map.root_services, ["ledger"], "PagerDuty's Ledger Service is the traced ledger");
    assert_eq!(map.nodes[1].service, "payments");
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

fn devloom(args: &[&str]) -> std::process::Output {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_devloom"))
        .args(args)
        .env_remove("DEVLOOM_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "devloom {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn maps_in(path: &Path) -> Vec<ImpactMap> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines().map(|l| serde_json::from_str::<ImpactMap>(l).unwrap().without_wall_clock()).collect()
}

#[test]
fn catalogs_are_archived_and_replay_equals_live_and_check_and_drift_read_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = quiet_path_inputs(dir.path());
    let (history, live, replayed) =
        (dir.path().join("history"), dir.path().join("live.ndjson"), dir.path().join("replay.ndjson"));
    let mut args: Vec<String> =
        ["run", "--no-http", "--history", history.to_str().unwrap(), "-o", live.to_str().unwrap(), "--input"]
            .map(String::from)
            .to_vec();
    args.extend(inputs.iter().map(|p| p.display().to_string()));
    for c in examples() {
        args.extend(["--catalog".to_string(), c]);
    }
    devloom(&args.iter().map(String::as_str).collect::<Vec<_>>());
    devloom(&["replay", "--history", history.to_str().unwrap(), "-o", replayed.to_str().unwrap()]);
    let live = maps_in(&live);
    assert!(live[0].nodes.iter().any(|n| n.service == "payments"), "the live run used the catalog");
    assert_eq!(
        maps_in(&replayed),
        live,
        "the archive holds the catalogs; replay puts them in force as live did"
    );

    let check = devloom(&["catalog", "check", "--history", history.to_str().unwrap()]);
    let text = String::from_utf8(check.stdout).unwrap();
    assert!(text.contains("  component:payments/payments-service → payments\n"), "{text}");
    assert!(
        text.contains(
            "  component:default/ledger [Component] from backstage: no traced service.name \"ledger\"\n"
        ),
        "{text}"
    );
    assert!(text.contains("traced services no catalog lists (13):\n  ads\n"), "{text}");
    let drift = devloom(&["catalog", "drift", "--history", history.to_str().unwrap(), "--format", "json"]);
    let report: devloom_schemas::CatalogReport = serde_json::from_slice(&drift.stdout).unwrap();
    let declared: Vec<(&str, &str)> =
        report.declared_not_observed.iter().map(|e| (e.caller.as_str(), e.callee.as_str())).collect();
    assert_eq!(declared, [("gateway", "checkout"), ("payments", "ledger")]);
    let undeclared =
        report.observed_not_declared.iter().find(|e| e.caller == "auth" && e.callee == "redis").unwrap();
    assert!(undeclared.calls > 1000 && undeclared.calls_per_s > 1.0, "with its traffic: {undeclared:?}");
}

#[test]
fn import_prints_a_devloom_catalog_and_a_bad_file_is_named_with_document_and_path() {
    let path = format!("{EXAMPLES}/catalog-info.yaml");
    let out = devloom(&["catalog", "import", "backstage", &path]);
    let catalog: devloom_schemas::Catalog = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(catalog.services.len(), 6);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("catalog \"backstage\": 6 services, 8 dependencies")
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {name: a}\n---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {name: b}\nspec: {owner: 'group:'}\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_devloom"))
        .args(["catalog", "import", "backstage", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains(&format!("{}: Backstage entity YAML: invalid at document 2, spec.owner: \"group:\" is not an entity reference", bad.display())),
        "{err}"
    );
}

#[test]
fn a_catalog_change_mid_incident_survives_a_checkpoint() {
    use devloom_operators::{EngineSnapshot, Outputs};
    use devloom_schemas::Event;
    let dir = tempfile::tempdir().unwrap();
    let inputs = optional_dependency_inputs(dir.path());
    let mut events: Vec<Event> = snapshots(&examples()).unwrap().into_iter().map(Event::Catalog).collect();
    let mut files = Files::open(&inputs, &DecodeOptions::default()).unwrap();
    while let Some(input) = files.next_input() {
        match input.unwrap() {
            devloom::core::Input::Record(e, _) => events.extend(e),
            devloom::core::Input::Event(e, _) => events.push(e),
            _ => {}
        }
    }
    // Seven minutes in, the Devloom catalog is replaced by one without the optional mark.
    let seven = SimConfig::default().start_ns + 7 * MIN_NS;
    let at =
        events.iter().position(|e| !matches!(e, Event::Catalog(_)) && e.event_time_ns() >= seven).unwrap();
    let text = "apiVersion: devloom.dev/v1\nkind: Catalog\ndependencies: [{caller: frontend, callee: recommendations, criticality: critical}]\n";
    let replaced = devloom_schemas::CatalogSnapshot {
        source: "devloom".into(),
        format: devloom_schemas::CatalogFormat::Devloom,
        time_ns: u64::MAX,
        catalog: devloom_schemas::codec::catalog::read_catalog(devloom_schemas::CatalogFormat::Devloom, text)
            .unwrap(),
    };
    events.insert(at, Event::Catalog(replaced));
    let mut whole = Engine::new(EngineConfig::default());
    let mut expected = Outputs::default();
    for e in &events {
        whole.on_event(e, &mut expected);
    }
    whole.flush(&mut expected);
    assert!(
        expected.maps.iter().any(|m| m.verdict == Verdict::Spreading),
        "after the change frontend is critical again"
    );
    let mut before = Outputs::default();
    let mut engine = Engine::new(EngineConfig::default());
    for e in &events[..at] {
        engine.on_event(e, &mut before);
    }
    let verdicts: Vec<_> = before.maps.iter().map(|m| (m.event_time.clone(), m.verdict)).collect();
    assert!(
        !before.maps.is_empty() && before.maps.iter().all(|m| m.verdict == Verdict::Contained),
        "before the change: {verdicts:?}"
    );
    for cut in [at - 1, at + 1, (at + events.len()) / 2] {
        let mut first = Engine::new(EngineConfig::default());
        let mut got = Outputs::default();
        for e in &events[..cut] {
            first.on_event(e, &mut got);
        }
        let saved = serde_json::to_vec(&first.snapshot()).unwrap();
        let mut second = Engine::new(EngineConfig::default());
        second.restore(serde_json::from_slice::<EngineSnapshot>(&saved).unwrap());
        for e in &events[cut..] {
            second.on_event(e, &mut got);
        }
        second.flush(&mut got);
        assert_eq!(got, expected, "cut at {cut}");
        assert_eq!(second.catalog_report(), whole.catalog_report());
    }
}

#[test]
fn catalog_paths_in_the_config_file_are_put_in_force_and_checked_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = quiet_path_inputs(dir.path());
    let config = dir.path().join("devloom.toml");
    let paths: Vec<String> = examples().iter().map(|e| format!("{e:?}")).collect();
    std::fs::write(&config, format!("[catalog]\npaths = [{}]\n", paths.join(", "))).unwrap();
    let maps = dir.path().join("maps.ndjson");
    let (c, m) = (config.to_str().unwrap(), maps.to_str().unwrap());
    let (a, b) = (inputs[0].to_str().unwrap(), inputs[1].to_str().unwrap());
    devloom(&["run", "--no-http", "--config", c, "-o", m, "--input", a, b]);
    let services: Vec<String> = maps_in(&maps)[0].nodes.iter().map(|n| n.service.clone()).collect();
    assert!(services.contains(&"payments".to_string()), "{services:?}");

    std::fs::write(&config, "[catalog]\npaths = [\"backstage:catalog-info.yaml\"]\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_devloom"))
        .args(["validate", "--config", c])
        .env_remove("DEVLOOM_CONFIG")
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success());
    assert!(err.contains("catalog.paths[0]: \"backstage:catalog-info.yaml\": give FORMAT=PATH"), "{err}");
}

#[test]
fn check_and_drift_ask_a_running_devloom() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let inputs = quiet_path_inputs(dir.path());
    let mut args: Vec<String> = ["run", "--listen", "127.0.0.1:0", "--serve", "-o", "/dev/null", "--input"]
        .map(String::from)
        .to_vec();
    args.extend(inputs.iter().map(|p| p.display().to_string()));
    for c in examples() {
        args.extend(["--catalog".to_string(), c]);
    }
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_devloom"))
        .args(&args)
        .env_remove("DEVLOOM_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let base = lines
        .by_ref()
        .find_map(|l| l.unwrap().strip_prefix("devloom: HTTP API on ").map(String::from))
        .expect("the API address");
    // `--serve` keeps answering once the input has run out; wait for that.
    lines.find(|l| l.as_ref().unwrap().contains("records,")).expect("the run's summary line").unwrap();
    let drift = devloom(&["catalog", "drift", "--server", &base, "--format", "json"]);
    let check = devloom(&["catalog", "check", "--server", &base]);
    let _ = child.kill();
    let _ = child.wait();
    let report: devloom_schemas::CatalogReport = serde_json::from_slice(&drift.stdout).unwrap();
    let declared: Vec<(&str, &str)> =
        report.declared_not_observed.iter().map(|e| (e.caller.as_str(), e.callee.as_str())).collect();
    assert_eq!(declared, [("gateway", "checkout"), ("payments", "ledger")], "as the archive replay says");
    let text = String::from_utf8(check.stdout).unwrap();
    assert!(text.contains("  component:payments/payments-service → payments\n"), "{text}");
}
