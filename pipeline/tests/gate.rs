//! The deployment gate and staged-rollout analysis as users meet them: simulated
//! scenarios through the whole pipeline, the decisions published, and the HTTP answers
//! Flagger and Argo Rollouts read (status codes and the JSON fields their docs name),
//! and `devloom gate` for CI.

use std::process::Command;

use devloom::config::Config;
use devloom::core::{Pipeline, RawRecord};
use devloom::http::{HttpConfig, Server, TelemetryConfig};
use devloom::simulator::canaries::{self, CanaryCase};
use devloom::simulator::{DEFAULT_START_NS, SimConfig, Simulator, to_ndjson_line};
use devloom::sinks::Collected;
use devloom::sources::Decoding;
use devloom::sources::file::Files;
use devloom_operators::{Engine, EngineConfig};
use devloom_schemas::codec::DecodeOptions;
use devloom_schemas::{RolloutDecision, RolloutVerdict};
use serde_json::{Value, json};

const MIN_NS: u64 = 60_000_000_000;

/// The scenario's records before `until_ns` of event time (all without a limit).
fn records(scenario: &str, until_ns: Option<u64>) -> Vec<RawRecord> {
    let config = SimConfig { rate_per_s: 30.0, ..SimConfig::default() };
    Simulator::shop(scenario, config)
        .unwrap()
        .take_while(|r| until_ns.is_none_or(|t| r.time_ns < DEFAULT_START_NS + t))
        .map(RawRecord::from)
        .collect()
}

/// A server on a free loopback port over the pipeline after `records`; its base URL.
fn serve(records: Vec<RawRecord>) -> (Server, String) {
    let config = Config {
        http: HttpConfig { listen: "127.0.0.1:0".into(), ..HttpConfig::default() },
        telemetry: TelemetryConfig { enabled: false, ..TelemetryConfig::default() },
        ..Config::default()
    };
    let server = Server::start(&config, None).unwrap().unwrap();
    let mut pipeline =
        server.attach(Pipeline::new(Engine::new(EngineConfig::default()), Collected::default()));
    pipeline.run(&mut Decoding::start(records.into_iter().map(Ok), DecodeOptions::default())).unwrap();
    pipeline.finish().unwrap();
    let base = format!("http://{}", server.addr());
    (server, base)
}

#[path = "common/agent.rs"]
mod agent;
use agent::agent;

fn json_of(mut response: ureq::http::Response<ureq::Body>) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}")))
}

fn get(base: &str, path: &str) -> (u16, Value) {
    json_of(agent().get(format!("{base}{path}")).call().unwrap())
}

fn post(base: &str, path: &str, body: &str) -> (u16, Value) {
    json_of(
        agent().post(format!("{base}{path}")).header("content-type", "application/json").send(body).unwrap(),
    )
}

fn checks(decision: &Value) -> Vec<String> {
    decision["reasons"].as_array().unwrap().iter().map(|r| r["check"].as_str().unwrap().to_string()).collect()
}

/// The body Flagger POSTs to its webhooks (`name`, `namespace`, `phase`, `metadata`).
fn flagger(name: &str) -> String {
    json!({"name": name, "namespace": "shop", "phase": "Progressing", "metadata": {"token": "16688eb5e9f289f1991c"}})
        .to_string()
}

#[test]
fn gate_passes_on_a_healthy_graph_blocks_on_a_red_dependency_and_warns_on_an_incident_upstream() {
    // Five minutes of the regression scenario: before payments v1.9.0 ships.
    let (_healthy, base) = serve(records("regression", Some(5 * MIN_NS)));
    let (status, cart) = get(&base, "/v1/gate?service=cart");
    assert_eq!(
        (status, cart["decision"].as_str(), cart["ok"].as_bool()),
        (200, Some("pass"), Some(true)),
        "{cart:#}"
    );
    assert_eq!(cart["blast_radius"]["count"], 3, "checkout, frontend, gateway call cart: {cart:#}");
    assert_eq!(cart["blast_radius"]["entry_points"], json!(["gateway"]));

    // Eight minutes: payments has failed 10% of its requests for two, and its alert fired.
    let (_failing, base) = serve(records("regression", Some(8 * MIN_NS)));
    let (status, checkout) = get(&base, "/v1/gate?service=checkout&revision=4f1c2d");
    assert_eq!(status, 409, "a block answers [gate] block_status: {checkout:#}");
    assert_eq!((checkout["decision"].as_str(), checkout["ok"].as_bool()), (Some("block"), Some(false)));
    assert_eq!(checkout["revision"], "4f1c2d");
    assert!(checks(&checkout).contains(&"red_dependency".into()), "{checkout:#}");
    assert!(checkout["degraded_dependencies"].as_array().unwrap().iter().any(|d| d["service"] == "payments"));

    // fraud is healthy, called by the failing payments, and on the open incident's map.
    let (status, fraud) = get(&base, "/v1/gate?service=fraud");
    assert_eq!((status, fraud["decision"].as_str()), (200, Some("warn")), "{fraud:#}");
    assert!(checks(&fraud).contains(&"open_incident".into()), "{fraud:#}");
    assert!(checks(&fraud).contains(&"degraded_caller".into()), "{fraud:#}");
    assert_eq!(fraud["open_incidents"].as_array().unwrap().len(), 1);

    // Flagger: POSTs its payload to a confirm-rollout / pre-rollout hook; non-2xx halts.
    let (status, hooked) = post(&base, "/v1/gate", &flagger("checkout"));
    assert_eq!((status, hooked["service"].as_str()), (409, Some("checkout")));
    assert_eq!(hooked["flagger"]["namespace"], "shop", "the webhook is echoed back");
    let (status, _) = post(&base, "/v1/gate?service=cart", &flagger("podinfo"));
    assert_eq!(status, 200, "the query names the service over the canary name");
    let (status, bad) = post(&base, "/v1/gate", "{\"name\": 3}");
    assert_eq!(status, 400);
    assert!(bad["error"].as_str().unwrap().contains("not a Flagger webhook payload"), "{bad}");

    // Argo Rollouts `web` metric: non-2xx is an error, so mode=metric answers 200 and
    // the jsonPath reads a boolean ({$.ok}) and a number ({$.blocking}).
    let (status, metric) = get(&base, "/v1/gate?service=checkout&mode=metric");
    assert_eq!(status, 200);
    assert_eq!(metric["ok"], json!(false));
    assert!(metric["blocking"].as_u64().unwrap() >= 1);

    let (status, missing) = get(&base, "/v1/gate");
    assert_eq!(status, 400);
    assert!(missing["error"].as_str().unwrap().contains("service=NAME is required"));
    let (status, _) = get(&base, "/v1/gate?service=cart&mode=loud");
    assert_eq!(status, 400);
}

#[test]
fn devloom_gate_exits_by_its_decision_in_markdown_or_json() {
    // The whole regression scenario: payments v1.9.0 was rolled back at minute 10.
    let (_server, base) = serve(records("regression", None));
    let gate = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_devloom"))
            .args(["gate", "--server", &base])
            .args(args)
            .env_remove("GITHUB_STEP_SUMMARY")
            .output()
            .unwrap()
    };
    let again = gate(&["--service", "payments", "--revision", "v1.9.0"]);
    assert_eq!(again.status.code(), Some(1), "block exits 1");
    let text = String::from_utf8(again.stdout).unwrap();
    assert!(text.starts_with("### ⛔ Devloom deploy gate: **block** for `payments` `v1.9.0`"), "{text}");
    assert!(text.contains("v1.9.0 was rolled back to v1.8.2"), "{text}");
    assert!(text.contains("| service | relation | hops | state |"), "{text}");

    let cart = gate(&["--service", "cart", "--format", "json"]);
    assert_eq!(cart.status.code(), Some(0), "pass exits 0");
    let decision: Value = serde_json::from_slice(&cart.stdout).unwrap();
    assert_eq!(decision["decision"], "pass");

    let summary = tempfile::NamedTempFile::new().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_devloom"))
        .args(["gate", "--server", &base, "--service", "cart"])
        .env("GITHUB_STEP_SUMMARY", summary.path())
        .output()
        .unwrap();
    assert_eq!(status.status.code(), Some(0));
    let written = std::fs::read_to_string(summary.path()).unwrap();
    assert!(written.contains("**pass** for `cart`"), "appended to $GITHUB_STEP_SUMMARY: {written}");

    let unreachable = Command::new(env!("CARGO_BIN_EXE_devloom"))
        .args(["gate", "--server", "http://127.0.0.1:9", "--service", "cart"])
        .output()
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(2), "cannot ask: exit 2");
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("cannot reach the Devloom API"));
}

#[test]
fn devloom_gate_decides_offline_from_a_history_archive() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history");
    let run = Command::new(env!("CARGO_BIN_EXE_devloom"))
        .args(["run", "--simulate", "regression", "--rate", "20", "--no-http", "-o"])
        .arg(dir.path().join("maps.ndjson"))
        .arg("--history")
        .arg(&history)
        .env_remove("DEVLOOM_CONFIG")
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let gate = Command::new(env!("CARGO_BIN_EXE_devloom"))
        .args(["gate", "--service", "payments", "--revision", "v1.9.0", "--format", "json", "--history"])
        .arg(&history)
        .env_remove("DEVLOOM_CONFIG")
        .output()
        .unwrap();
    assert_eq!(gate.status.code(), Some(1), "{}", String::from_utf8_lossy(&gate.stderr));
    let decision: Value = serde_json::from_slice(&gate.stdout).unwrap();
    assert_eq!(checks(&decision), ["failed_deploy"], "{decision:#}");
}

fn halted(decisions: &[RolloutDecision]) -> &RolloutDecision {
    decisions.iter().find(|d| d.verdict == RolloutVerdict::Halt).expect("the canary halts")
}

fn stripped(decisions: Vec<RolloutDecision>) -> Vec<RolloutDecision> {
    decisions.into_iter().map(|d| RolloutDecision { published_at: None, ..d }).collect()
}

#[test]
fn the_canary_halts_within_a_minute_and_file_and_stream_runs_agree() {
    let case = CanaryCase::failing(0, 0);
    let streamed = case.run().unwrap();
    let first = halted(&streamed);
    let after = canaries::seconds_to_halt(&streamed).unwrap();
    assert!(after <= 60.0, "halted {after} s after the canary started: {first:#?}");
    assert_eq!((first.service.as_str(), first.environment.as_deref()), ("frontend", Some("production")));
    assert_eq!((first.stable.version.as_str(), first.canary.version.as_str()), ("1.0.0", "1.1.0"));
    assert!(first.comparison.p_value <= 0.001 && first.comparison.error_rate_delta >= 0.01);
    assert_eq!(streamed[0].verdict, RolloutVerdict::Inconclusive, "no verdict before enough requests");
    assert_eq!(streamed.last().unwrap().verdict, RolloutVerdict::Halt, "it stays halted");

    // The same scenario written as NDJSON and read as a file: the same decisions.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("canary.ndjson");
    let scenario = devloom::simulator::Scenario::canary(case.target, case.share, case.extra_error_rate);
    let config = SimConfig { seed: case.seed, rate_per_s: case.rate_per_s, ..SimConfig::default() };
    let lines: Vec<String> = Simulator::new(devloom::simulator::Topology::shop(), scenario, config)
        .map(|r| to_ndjson_line(&r).unwrap())
        .collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let mut pipeline = Pipeline::new(Engine::new(EngineConfig::default()), Collected::default());
    pipeline.run(&mut Files::open(&[path], &DecodeOptions::default()).unwrap()).unwrap();
    let from_file = pipeline.finish().unwrap().0.rollouts;
    assert_eq!(stripped(from_file), stripped(streamed));
}

#[test]
fn merely_noisier_canaries_never_halt_and_failing_ones_do() {
    let report = canaries::evaluate(12, 3, 99).unwrap();
    assert_eq!(report.false_halts, 0, "{:#?}", report.false_halt_cases);
    assert_eq!(report.halted_within_60s, 3, "{report:#?}");
}

#[test]
fn rollout_routes_answer_flagger_and_argo_rollouts() {
    let (_server, base) = serve(records("canary", None));
    let (status, frontend) = get(&base, "/v1/rollouts/frontend");
    assert_eq!(
        status, 409,
        "halt answers [gate] halt_status, which fails a Flagger rollout hook: {frontend:#}"
    );
    assert_eq!((frontend["verdict"].as_str(), frontend["ok"].as_bool()), (Some("halt"), Some(false)));
    assert_eq!(frontend["decisions"][0]["canary"]["version"], "1.1.0");
    let (status, metric) = get(&base, "/v1/rollouts/frontend?mode=metric");
    assert_eq!((status, metric["ok"].clone()), (200, json!(false)), "Argo Rollouts: jsonPath {{$.ok}}");
    let (status, _) = post(&base, "/v1/rollouts/frontend", &flagger("frontend"));
    assert_eq!(status, 409);
    let (status, env) = get(&base, "/v1/rollouts/frontend?environment=staging");
    assert_eq!((status, env["verdict"].as_str()), (200, Some("inconclusive")), "none in staging: {env}");
    assert_eq!(env["decisions"], json!([]));

    let (status, cart) = get(&base, "/v1/rollouts/cart");
    assert_eq!((status, cart["verdict"].as_str()), (200, Some("inconclusive")), "in the graph, one version");
    let (status, _) = get(&base, "/v1/rollouts/nope");
    assert_eq!(status, 404);
    let (_, all) = get(&base, "/v1/rollouts");
    assert_eq!(all["rollouts"].as_array().unwrap().len(), 1);

    // Per-version health rides on the graph while two versions serve.
    let (_, graph) = get(&base, "/v1/graph?service=frontend&hops=0");
    let versions = graph["services"][0]["versions"].as_array().unwrap();
    let names: Vec<&str> = versions.iter().map(|v| v["version"].as_str().unwrap()).collect();
    assert_eq!(names, ["1.0.0", "1.1.0"], "{graph:#}");

    // The gate knows the halted rollout: shipping 1.1.0 again blocks.
    let (status, gate) = get(&base, "/v1/gate?service=frontend&revision=1.1.0");
    assert_eq!(status, 409, "{gate:#}");
    assert!(checks(&gate).contains(&"halted_rollout".into()));
}
