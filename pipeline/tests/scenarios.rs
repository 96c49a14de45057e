//! Scenario tests: simulated incidents written as NDJSON, run through the pipeline, and
//! the impact maps a user would read checked by service, state, verdict and version.

use std::path::{Path, PathBuf};

use devloom::core::{OutputKind, Pipeline, RawRecord, RunSummary};
use devloom::simulator::{SimConfig, Simulator, to_ndjson_line};
use devloom::sinks::Collected;
use devloom::sinks::JsonLines;
use devloom::sinks::json_lines::OpenOnFirstWrite;
use devloom::sources::file::Files;
use devloom::sources::simulated;
use devloom_operators::{Engine, EngineConfig, PairingConfig};
use devloom_schemas::codec::DecodeOptions;
use devloom_schemas::{DeadLetter, Direction, HealthState, ImpactMap, ImpactNode, IncidentStatus, Verdict};

const RATE: f64 = 10.0;

fn sim(scenario: &str) -> Simulator {
    Simulator::shop(scenario, SimConfig { rate_per_s: RATE, ..SimConfig::default() }).unwrap()
}

/// Writes the scenario as one NDJSON file, as `devloom simulate` does.
fn ndjson(dir: &Path, scenario: &str) -> PathBuf {
    let path = dir.join(format!("{scenario}.ndjson"));
    let lines: Vec<String> = sim(scenario).map(|r| to_ndjson_line(&r).unwrap()).collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn run_files(dir: &Path, paths: &[PathBuf]) -> (Vec<ImpactMap>, RunSummary) {
    run_files_with(dir, paths, EngineConfig::default())
}

fn run_files_with(dir: &Path, paths: &[PathBuf], config: EngineConfig) -> (Vec<ImpactMap>, RunSummary) {
    let dead = JsonLines::new().with(
        OutputKind::DeadLetter,
        Box::new(OpenOnFirstWrite::new(&dir.join("dead.ndjson"), false).unwrap()),
    );
    let mut pipeline = Pipeline::new(Engine::new(config), (Collected::default(), dead));
    pipeline.run(&mut Files::open(paths, &DecodeOptions::default()).unwrap()).unwrap();
    let ((out, _), summary) = pipeline.finish().unwrap();
    (out.maps, summary)
}

fn node<'a>(map: &'a ImpactMap, service: &str) -> &'a ImpactNode {
    map.nodes.iter().find(|n| n.service == service).unwrap_or_else(|| panic!("{service} not in map"))
}

fn states(map: &ImpactMap, services: &[&str]) -> Vec<HealthState> {
    services.iter().map(|s| node(map, s).state).collect()
}

fn stripped(maps: &[ImpactMap]) -> Vec<ImpactMap> {
    maps.iter().map(ImpactMap::without_wall_clock).collect()
}

#[test]
fn regression_is_contained_to_payments_and_its_callers() {
    let dir = tempfile::tempdir().unwrap();
    let (maps, summary) = run_files(dir.path(), &[ndjson(dir.path(), "regression")]);
    assert_eq!(summary.engine.alerts, 2, "firing and resolved");
    assert_eq!(summary.engine.deploys, 2, "deploy and rollback");
    assert!(maps.iter().all(|m| m.incident_id == maps[0].incident_id), "one incident");
    let first = &maps[0];
    assert_eq!((first.version, first.status), (1, IncidentStatus::Open));
    assert_eq!(first.root_services, vec!["payments"]);
    assert_eq!(states(first, &["payments", "checkout"]), vec![HealthState::Red, HealthState::Amber]);
    assert_eq!(node(first, "checkout").direction, Direction::Upstream);
    assert_eq!(node(first, "postgres").state, HealthState::Gray, "the database is fine");
    assert!(node(first, "postgres").virtual_node);
    assert!(maps.iter().all(|m| m.verdict == Verdict::Contained), "nothing else breaks");
    let last = maps.last().unwrap();
    assert_eq!(last.status, IncidentStatus::Resolved);
    assert_eq!(node(last, "payments").state, HealthState::Gray, "recovered after the rollback");
    assert_eq!(maps.len(), 3, "versions: open, payments recovering, resolve");
    assert!(maps.windows(2).all(|w| w[0].version + 1 == w[1].version));
    assert!(first.latency_ms.is_some() && first.alert_received_at.is_some());
}

#[test]
fn database_latency_turns_callers_amber_before_they_alert_then_spreads() {
    let dir = tempfile::tempdir().unwrap();
    let (maps, _) = run_files(dir.path(), &[ndjson(dir.path(), "db-latency")]);
    let first = &maps[0];
    assert_eq!(first.root_services, vec!["checkout"], "only checkout alerts");
    assert_eq!(
        states(first, &["payments", "inventory", "postgres"]),
        vec![HealthState::Amber, HealthState::Amber, HealthState::Amber],
        "the database's callers are amber from latency alone, with no alert on them"
    );
    assert!(node(first, "postgres").p99_ms.now > 10.0 * node(first, "postgres").p99_ms.baseline);
    assert_eq!(node(first, "cart").state, HealthState::Gray, "cart uses redis, not postgres");
    assert_eq!(first.verdict, Verdict::Contained);
    let timeouts = maps.iter().find(|m| node(m, "payments").state == HealthState::Red).expect("timeouts");
    assert_eq!(node(timeouts, "postgres").state, HealthState::Red);
    assert_eq!(timeouts.verdict, Verdict::Spreading);
    assert_eq!(maps.last().unwrap().status, IncidentStatus::Resolved);
}

#[test]
fn async_consumer_failure_is_found_through_span_links() {
    let dir = tempfile::tempdir().unwrap();
    let (maps, summary) = run_files(dir.path(), &[ndjson(dir.path(), "async-consumer")]);
    let first = &maps[0];
    assert_eq!(first.root_services, vec!["checkout"]);
    let fulfillment = node(first, "fulfillment");
    assert_eq!(
        (fulfillment.state, fulfillment.direction, fulfillment.hops),
        (HealthState::Red, Direction::Downstream, 1)
    );
    let edge = first.edges.iter().find(|e| e.caller == "checkout" && e.callee == "fulfillment").unwrap();
    assert!(edge.asynchronous, "producer → consumer, paired through the consumer's span link");
    assert_eq!(node(first, "notifications").state, HealthState::Gray, "the other consumer is fine");
    assert_eq!(first.verdict, Verdict::Spreading);
    assert!(summary.pairing.paired > 0);
}

#[test]
fn same_input_same_output_and_stream_equals_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = ndjson(dir.path(), "async-consumer");
    let (a, _) = run_files(dir.path(), std::slice::from_ref(&path));
    let (b, _) = run_files(dir.path(), &[path]);
    assert_eq!(stripped(&a), stripped(&b));
    assert_ne!(a[0].published_at, None);

    // The live path: protobuf straight from the simulator, decoded on its own thread.
    let mut pipeline = Pipeline::new(Engine::new(EngineConfig::default()), Collected::default());
    pipeline.run(&mut simulated(sim("async-consumer"), DecodeOptions::default())).unwrap();
    let live = pipeline.finish().unwrap().0.maps;
    assert_eq!(stripped(&live), stripped(&a), "OTLP protobuf live = OTLP JSON from a file");
}

#[test]
fn malformed_lines_become_dead_letters_and_the_rest_still_runs() {
    let dir = tempfile::tempdir().unwrap();
    let good = ndjson(dir.path(), "regression");
    let bad = dir.path().join("bad.ndjson");
    std::fs::write(
        &bad,
        "{\"service\":\"x\",\"status\":\"firing\"}\nnot json at all\n{\"version\":\"4\",\"alerts\":[{\"status\":\"maybe\"}]}\n",
    )
    .unwrap();
    let (maps, summary) = run_files(dir.path(), &[bad.clone(), good]);
    assert_eq!(summary.dead_letters, 3);
    assert!(!maps.is_empty(), "good input still produces impact maps");
    let text = std::fs::read_to_string(dir.path().join("dead.ndjson")).unwrap();
    let dead: Vec<DeadLetter> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let reasons: Vec<(Option<u64>, &str)> = dead.iter().map(|d| (d.line, d.reason.as_str())).collect();
    assert_eq!(reasons[0], (Some(1), "Devloom alert JSON: invalid at .: missing field `starts_at`"));
    assert_eq!(reasons[1].0, Some(2));
    assert_eq!(
        reasons[1].1,
        "unrecognized payload for any input: 15 bytes of content-type \"application/json\" starting \"not json at all\" \
         (accepted: OTLP protobuf, OTLP JSON, Alertmanager webhook v4, PagerDuty Events v2, PagerDuty webhook v3, \
         Devloom alert JSON, Devloom deploy JSON, Argo CD Application, GitHub deployment_status, Devloom cause JSON, CloudEvents structured JSON, \
         Backstage entity YAML, PagerDuty services export, Devloom catalog)"
    );
    assert_eq!(reasons[2].0, Some(3));
    assert!(reasons[2].1.starts_with("Alertmanager webhook v4: invalid at alerts[0]"), "{}", reasons[2].1);
    assert_eq!(dead[0].source, bad.display().to_string());
    use base64::Engine as _;
    let original = base64::prelude::BASE64_STANDARD.decode(&dead[1].payload_base64).unwrap();
    assert_eq!(original, b"not json at all", "the original bytes are kept");
}

/// One OTLP JSON request with one span of `service` ending at `end` (RFC 3339 nanos).
fn otlp_span_line(service: &str, end_unix_nano: u128) -> String {
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{service}"}}}}]}},"scopeSpans":[{{"spans":[{{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","name":"GET /","kind":2,"startTimeUnixNano":"{}","endTimeUnixNano":"{end_unix_nano}"}}]}}]}}]}}"#,
        end_unix_nano - 1_000_000
    )
}

#[test]
fn one_span_from_the_future_is_held_aside_and_the_maps_stay_as_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let clean = ndjson(dir.path(), "regression");
    let (expected, _) = run_files(dir.path(), std::slice::from_ref(&clean));
    // The same stream with a span stamped in 2100 a third of the way in.
    let text = std::fs::read_to_string(&clean).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let year_2100 = 4_102_444_800_000_000_000u128;
    let future = otlp_span_line("checkout", year_2100);
    lines.insert(lines.len() / 3, &future);
    let dirty = dir.path().join("dirty.ndjson");
    std::fs::write(&dirty, lines.join("\n") + "\n").unwrap();
    let (maps, summary) = run_files(dir.path(), &[dirty]);
    assert_eq!(stripped(&maps), stripped(&expected), "the future span changes no map");
    assert_eq!((summary.engine.held_aside, summary.engine.future_rejected), (1, 1));
    assert_eq!(summary.dead_letters, 1);
    let dead: DeadLetter =
        serde_json::from_str(std::fs::read_to_string(dir.path().join("dead.ndjson")).unwrap().trim())
            .unwrap();
    assert_eq!(dead.source, "<event-time guard>");
    assert!(
        dead.reason.starts_with("event time 2100-01-01T00:00:00.000Z is ")
            && dead.reason.contains("held aside"),
        "{}",
        dead.reason
    );
    assert!(
        summary.losses_line().unwrap().contains("1 events from too far ahead held aside (1 of them rejected")
    );
}

#[test]
fn a_late_span_before_the_alert_is_noted_on_the_map_and_gone_from_later_ones() {
    let dir = tempfile::tempdir().unwrap();
    let clean = ndjson(dir.path(), "regression");
    let text = std::fs::read_to_string(&clean).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let alert = lines.iter().position(|l| l.contains("\"alerts\"")).unwrap();
    let end_of = |line: &str| -> u128 {
        let key = "\"endTimeUnixNano\":\"";
        let at = line.find(key).unwrap() + key.len();
        line[at..].split('"').next().unwrap().parse().unwrap()
    };
    let traces_before = lines[..alert].iter().rfind(|l| l.contains("resourceSpans")).unwrap();
    let late = otlp_span_line("checkout", end_of(traces_before) - 30_000_000_000);
    lines.insert(alert, late);
    let dirty = dir.path().join("late.ndjson");
    std::fs::write(&dirty, lines.join("\n") + "\n").unwrap();
    let (maps, summary) = run_files(dir.path(), &[dirty]);
    assert_eq!(summary.engine.late_spans, 1);
    let first = maps[0].data_quality.as_deref().unwrap_or_default();
    assert_eq!(
        first,
        [
            "1 spans arrived behind the watermark in the last 60 s: counted in a later window than they belong to"
        ]
    );
    let last = maps.last().unwrap();
    assert!(last.event_time_ns > maps[0].event_time_ns + 70_000_000_000);
    assert_eq!(last.data_quality, None, "a minute later the map is clean again");
    let json = serde_json::to_string(&maps[0]).unwrap();
    assert!(json.contains("\"data_quality\":[\"1 spans arrived behind the watermark"), "{json}");
    assert!(!serde_json::to_string(last).unwrap().contains("data_quality"), "absent when nothing was lost");
}

/// A store too small for the traffic (here: 150 spans, under a second of it, where each
/// stays 7 s) closes self-time entries early; the run summary and the maps say so.
#[test]
fn a_full_self_time_store_is_reported_in_the_summary_and_on_the_maps() {
    let dir = tempfile::tempdir().unwrap();
    let input = ndjson(dir.path(), "regression");
    let (_, roomy) = run_files(dir.path(), std::slice::from_ref(&input));
    assert_eq!(roomy.engine.self_time_evicted, 0);
    let pairing = PairingConfig { max_pending: 150, ..PairingConfig::default() };
    let (maps, summary) =
        run_files_with(dir.path(), &[input], EngineConfig { pairing, ..EngineConfig::default() });
    let evicted = summary.engine.self_time_evicted;
    assert!(evicted > 0);
    let line = summary.losses_line().unwrap();
    assert!(
        line.contains(&format!(
            "{evicted} spans measured early to make room in a full self-time store (children \
             arriving after that not counted; engine.pairing.max_pending)"
        )),
        "{line}"
    );
    let notes = maps[0].data_quality.as_deref().unwrap_or_default();
    assert!(
        notes.iter().any(|n| n.ends_with(
            "spans measured early to make room in the full self-time store in the last 60 s: their \
             children arriving after that are not counted (engine.pairing.max_pending)"
        )),
        "{notes:?}"
    );
}

#[test]
fn engine_snapshot_mid_incident_restores_to_the_same_outputs() {
    // db-latency: maps and candidates; regression: also the deploy's remediation plans.
    for scenario in ["db-latency", "regression"] {
        snapshot_mid_incident_restores(scenario);
    }
}

fn snapshot_mid_incident_restores(scenario: &str) {
    use devloom_operators::{Engine, EngineSnapshot, Outputs};
    let mut events = Vec::new();
    for record in sim(scenario) {
        events.extend(
            devloom::core::decode_record(RawRecord::from(record), &DecodeOptions::default()).unwrap(),
        );
    }
    let scorer = || devloom::learning::model::scorer(&Default::default()).unwrap().unwrap();
    let engine = || {
        let (scorer, past) = scorer();
        Engine::new(EngineConfig::default()).with_candidates(scorer, past)
    };
    let mut whole = engine();
    let mut expected = Outputs::default();
    let mut first_map_at = None;
    for (i, e) in events.iter().enumerate() {
        whole.on_event(e, &mut expected);
        if !expected.maps.is_empty() {
            first_map_at.get_or_insert(i);
        }
    }
    whole.flush(&mut expected);
    // Inside the incident: after the first map, before the end.
    let cut = (first_map_at.unwrap() + events.len()) / 2;

    let mut first = engine();
    let mut got = Outputs::default();
    for e in &events[..cut] {
        first.on_event(e, &mut got);
    }
    assert!(!got.maps.is_empty() && !got.candidates.is_empty(), "{scenario}: the cut is after the first map");
    let saved = serde_json::to_vec(&first.snapshot()).unwrap();
    drop(first);
    let mut second = engine();
    second.restore(serde_json::from_slice::<EngineSnapshot>(&saved).unwrap());
    for e in &events[cut..] {
        second.on_event(e, &mut got);
    }
    second.flush(&mut got);
    if scenario == "regression" {
        assert!(expected.remediations.len() >= 2, "{scenario}: plans before and after the cut");
    }
    assert_eq!(got, expected, "{scenario}");
    assert_eq!(second.counters(), whole.counters());
}

/// The scenario's records with every span's kind (and, with `status`, its status) removed,
/// as Jaeger/Zipkin-era instrumentation and trace converters deliver them.
fn stripped_records(scenario: &str, status: bool) -> Vec<RawRecord> {
    restyled(scenario, |span| {
        span.kind = 0;
        if status {
            span.status = None;
        }
    })
}

/// The scenario's records with every span's `span.kind` and error as OpenTracing tags
/// instead of the kind field and the status, as many Jaeger conversions leave them.
fn tagged_records(scenario: &str) -> Vec<RawRecord> {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
    let tag = |key: &str, value: Value| KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    };
    restyled(scenario, |span| {
        let kind = ["", "internal", "server", "client", "producer", "consumer"][span.kind as usize];
        span.attributes.push(tag("span.kind", Value::StringValue(kind.into())));
        if span.status.take().is_some_and(|s| s.code == 2) {
            span.attributes.push(tag("error", Value::BoolValue(true)));
        }
        span.kind = 0;
    })
}

/// The scenario's records with `restyle` applied to every span.
fn restyled(
    scenario: &str,
    restyle: impl Fn(&mut opentelemetry_proto::tonic::trace::v1::Span),
) -> Vec<RawRecord> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message as _;
    sim(scenario)
        .map(|mut r| {
            if r.expect == devloom_schemas::codec::Expect::Traces {
                let mut request = ExportTraceServiceRequest::decode(r.payload.as_slice()).unwrap();
                request
                    .resource_spans
                    .iter_mut()
                    .flat_map(|rs| &mut rs.scope_spans)
                    .flat_map(|ss| &mut ss.spans)
                    .for_each(&restyle);
                r.payload = request.encode_to_vec();
            }
            RawRecord::from(r)
        })
        .collect()
}

/// Red and amber services of each map version.
fn degraded(maps: &[ImpactMap]) -> Vec<Vec<(String, HealthState)>> {
    maps.iter()
        .map(|m| {
            m.nodes
                .iter()
                .filter(|n| matches!(n.state, HealthState::Red | HealthState::Amber))
                .map(|n| (n.service.clone(), n.state))
                .collect()
        })
        .collect()
}

fn run_records(records: Vec<RawRecord>) -> Vec<ImpactMap> {
    let mut pipeline = Pipeline::new(Engine::new(EngineConfig::default()), Collected::default());
    let opts = DecodeOptions::default();
    pipeline.run(&mut devloom::sources::Decoding::start(records.into_iter().map(Ok), opts)).unwrap();
    pipeline.finish().unwrap().0.maps
}

#[test]
fn kind_less_traces_give_the_same_red_and_amber_services() {
    for scenario in ["regression", "db-latency", "async-consumer"] {
        let with_kinds = run_records(sim(scenario).map(RawRecord::from).collect());
        assert!(!with_kinds.is_empty());
        let without = run_records(stripped_records(scenario, false));
        assert_eq!(degraded(&without), degraded(&with_kinds), "{scenario}: kinds stripped");
        // Kinds and errors as OpenTracing tags read as the fields: the very same maps.
        let tagged = run_records(tagged_records(scenario));
        assert_eq!(stripped(&tagged), stripped(&with_kinds), "{scenario}: span.kind and error tags");
        // Without a status too, a failure shows only through HTTP codes and legacy
        // markers (a timeout has neither): the first map names the same degraded services,
        // red or amber. (The failing consumer of async-consumer has nothing but a status.)
        if scenario == "async-consumer" {
            continue;
        }
        let bare = run_records(stripped_records(scenario, true));
        let names = |maps: &[ImpactMap]| -> Vec<String> {
            degraded(maps)[0].iter().map(|(s, _)| s.clone()).collect()
        };
        assert_eq!(names(&bare), names(&with_kinds), "{scenario}: kinds and status stripped");
    }
}

#[test]
fn a_run_that_starts_a_minute_before_the_fault_still_sees_it() {
    use devloom::simulator::scenario::{AlertRule, Condition, Fault, Scenario};
    use devloom::simulator::topology::Topology;
    // Inventory slows 8× sixty seconds after the capture starts; only checkout alerts.
    let scenario = Scenario {
        name: "short-history",
        description: "inventory slows a minute into the capture",
        duration_s: 240,
        faults: vec![Fault {
            target: "inventory".into(),
            from_s: 60,
            until_s: 240,
            error_rate: None,
            latency_factor: 8.0,
            ..Fault::default()
        }],
        rules: vec![AlertRule {
            name: "HighLatency",
            service: "checkout",
            watch: "checkout",
            condition: Condition::P99AboveMs(150.0),
            labels: &[],
            severity: "critical",
            summary: "checkout p99 above 150 ms",
        }],
        changes: vec![],
        canary: None,
    };
    let config = SimConfig { rate_per_s: 20.0, ..SimConfig::default() };
    let records = Simulator::new(Topology::shop(), scenario, config).map(RawRecord::from).collect();
    let maps = run_records(records);
    let first = maps.first().expect("the alert opens an incident");
    assert_eq!(first.root_services, ["checkout"]);
    let inventory = node(first, "inventory");
    assert_eq!(inventory.state, HealthState::Amber, "a minute of baseline is enough: {inventory:?}");
    assert!(
        first.nodes.iter().all(|n| n.state != HealthState::Unknown),
        "every node with traffic has a state"
    );
}

#[test]
fn a_service_whose_own_time_jumped_is_amber_though_its_callees_dominate_its_latency() {
    use devloom::simulator::scenario::{AlertRule, Condition, Fault, Scenario};
    use devloom::simulator::topology::Topology;
    // Checkout's own work takes 2.5× as long from minute two (CPU starved); its requests,
    // mostly waiting on five callees, get slower by far less than the latency threshold.
    let scenario = Scenario {
        name: "cpu-starved",
        description: "checkout's own time ×2.5",
        duration_s: 300,
        faults: vec![Fault {
            target: "checkout".into(),
            from_s: 120,
            until_s: 300,
            error_rate: None,
            latency_factor: 2.5,
            ..Fault::default()
        }],
        rules: vec![AlertRule {
            name: "GatewaySlow",
            service: "gateway",
            watch: "gateway",
            condition: Condition::P99AboveMs(1.0),
            labels: &[],
            severity: "warning",
            summary: "always firing: the map of the whole shop",
        }],
        changes: vec![],
        canary: None,
    };
    let config = SimConfig { rate_per_s: 40.0, ..SimConfig::default() };
    let records = Simulator::new(Topology::shop(), scenario, config).map(RawRecord::from).collect();
    let maps = run_records(records);
    let amber =
        maps.iter().find(|m| node(m, "checkout").state == HealthState::Amber).expect("checkout turns amber");
    let checkout = node(amber, "checkout");
    assert!(checkout.p99_ms.now < 1.5 * checkout.p99_ms.baseline, "not by its total latency: {checkout:?}");
    let own = checkout.self_time_ms.expect("self time on the map");
    assert!(own.now >= 1.5 * own.baseline && own.baseline > 5.0, "self time up by the ratio: {own:?}");
    for caller in ["frontend", "gateway"] {
        let n = node(amber, caller);
        let own = n.self_time_ms.expect("self time on the map");
        assert!(own.now < 1.3 * own.baseline, "{caller} does its own work as fast: {n:?}");
    }
}
