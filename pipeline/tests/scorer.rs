//! The root-cause scorer as a user trains, evaluates and runs it.

use std::path::Path;
use std::process::{Command, Output};

use devloom::learning::training::{FeatureSet, load, train};
use devloom_schemas::CandidateList;

fn devloom(args: &[&str]) -> Output {
    let out =
        Command::new(env!("CARGO_BIN_EXE_devloom")).args(args).env_remove("DEVLOOM_CONFIG").output().unwrap();
    assert!(out.status.success(), "devloom {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The default model's training command (after `devloom history simulate --history H`).
const DEFAULT_TRAINING: &str =
    "devloom train --history H --fault-cases 256 --out pipeline/models/default.json";

#[test]
fn the_shipped_model_is_what_training_on_the_default_simulated_history_gives() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history");
    let model = dir.path().join("model.json");
    devloom(&["history", "simulate", "--history", s(&history)]);
    devloom(&["train", "--history", s(&history), "--fault-cases", "256", "--out", s(&model)]);
    let trained = std::fs::read_to_string(&model).unwrap();
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default.json")).unwrap();
    assert!(
        trained == shipped,
        "pipeline/models/default.json is stale: regenerate with `devloom history simulate --history H && {DEFAULT_TRAINING}`"
    );

    // Reproducible: the same history and seed give the same file.
    let (once, twice) = (dir.path().join("once.json"), dir.path().join("twice.json"));
    devloom(&["train", "--history", s(&history), "--out", s(&once)]);
    devloom(&["train", "--history", s(&history), "--out", s(&twice)]);
    assert_eq!(std::fs::read_to_string(&once).unwrap(), std::fs::read_to_string(&twice).unwrap());

    // The targets, on held-out incidents (about a fifth of the 5,000 simulated and 256
    // fault cases, chosen by a digest of each incident id).
    let m: devloom_operators::Model = serde_json::from_str(&trained).unwrap();
    let t = &m.provenance.test_metrics;
    assert_eq!(t.incidents, 1106);
    assert!(t.ece.value <= 0.05, "ECE {:?}", t.ece);
    assert!(t.ac_at_1.value >= 0.8, "AC@1 {:?}", t.ac_at_1);
    assert!(t.ac_at_3.value >= 0.95, "AC@3 {:?}", t.ac_at_3);
    assert!(t.ac_at_1.low <= t.ac_at_1.value && t.ac_at_1.value <= t.ac_at_1.high);

    // evaluate: both models side by side, weights, a reliability diagram.
    let svg = dir.path().join("reliability.svg");
    let out = devloom(&["evaluate", "--model", s(&model), "--history", s(&history), "--svg", s(&svg)]);
    let report = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "held-out test split",
        "without time features",
        "AC@1",
        "AC@3",
        "Brier",
        "ECE (10 bins)",
        "overnight scheduled-job incidents",
        "job_hour_cos",
    ] {
        assert!(report.contains(needle), "{needle} missing:\n{report}");
    }
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("<polyline") && svg.trim_end().ends_with("</svg>"));
}

#[test]
fn without_time_features_the_model_is_confidently_wrong_overnight() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history");
    devloom(&["history", "simulate", "--history", s(&history), "--incidents", "3000", "--seed", "11"]);
    let samples = load(&history).unwrap();
    let full = train(&samples, 11, FeatureSet::Full).unwrap();
    let evaluation = devloom::learning::evaluation::evaluate(&full, &samples).unwrap();
    let (with, without) = (&evaluation.full.overnight, &evaluation.without_time.overnight);
    assert!(with.incidents >= 50, "{with:?}");
    assert!(with.ac_at_1 >= 0.8, "the full model is right overnight: {with:?}");
    // Without time it is not. The nightly release's service fails because its queries
    // to the saturated database fail, which `out_error_delta` sees, so some of those
    // victims are told apart without the hour; a sixth or more of the nights are still
    // confidently wrong (on this history: 0.76 right, 0.19 confidently wrong; 0.70 and
    // over 0.2 before the history gave bad deploys a degraded callee beside them).
    assert!(without.ac_at_1 <= with.ac_at_1 - 0.1, "without time it is not: {without:?} vs {with:?}");
    assert!(without.confidently_wrong >= 2.0 * with.confidently_wrong, "{without:?} vs {with:?}");
    assert!(without.confidently_wrong >= 0.15, "{without:?}");
    assert!(!evaluation.without_time.overnight.ac_at_1.is_nan());
}

#[test]
fn run_publishes_versioned_candidate_lists_with_their_features() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("regression.ndjson");
    devloom(&["simulate", "--scenario", "regression", "--rate", "10", "-o", s(&input)]);
    let candidates = dir.path().join("candidates.ndjson");
    let out = devloom(&[
        "run",
        "--input",
        s(&input),
        "-o",
        s(&dir.path().join("maps.ndjson")),
        "--candidates",
        s(&candidates),
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("candidate lists"));
    let lists: Vec<CandidateList> = std::fs::read_to_string(&candidates)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!lists.is_empty());
    let first = &lists[0];
    assert_eq!(first.version, 1);
    let top = &first.candidates[0];
    assert_eq!(top.key, "deploy:payments@v1.9.0", "{:#?}", first.candidates);
    assert!(top.confidence >= 80.0 && !first.low_confidence, "{top:?}");
    assert_eq!(top.features.len(), devloom_operators::FEATURES.len());
    assert!(top.features["change_recency"] > 0.9, "{:?}", top.features);
    let shares: f64 = first.candidates.iter().map(|c| c.share).sum();
    assert!((shares - 1.0).abs() < 1e-3, "{shares}");
    // Versions count up per incident; the last one is for the resolved incident.
    for (i, l) in lists.iter().enumerate() {
        assert_eq!(l.version as usize, i + 1);
    }
    assert_eq!(lists.last().unwrap().status, devloom_schemas::IncidentStatus::Resolved);
    // The rollback four minutes after the onset is a response, not a cause.
    assert!(lists.iter().all(|l| l.candidates.iter().all(|c| c.key != "deploy:payments@v1.8.2")));

    // Same input, same lists (wall-clock stamp aside); a replay of the archive too.
    let history = dir.path().join("history");
    let again = dir.path().join("again.ndjson");
    devloom(&["run", "--input", s(&input), "-o", "-", "--candidates", s(&again), "--history", s(&history)]);
    let replayed = dir.path().join("replayed.ndjson");
    devloom(&["replay", "--history", s(&history), "-o", "-", "--candidates", s(&replayed)]);
    let strip = |p: &Path| -> Vec<CandidateList> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<CandidateList>(l).unwrap().without_wall_clock())
            .collect()
    };
    assert_eq!(strip(&again), strip(&candidates));
    assert_eq!(strip(&replayed), strip(&candidates));
}

#[test]
fn a_slow_database_is_blamed_on_its_job_not_on_the_services_whose_queries_fail() {
    // db-latency: a reindex job slows postgres 40x, then its queries time out and the
    // services querying it fail (inventory, which queries it for every request, and
    // everything calling inventory).
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("db-latency.ndjson");
    devloom(&["simulate", "--scenario", "db-latency", "--rate", "10", "-o", s(&input)]);
    let (maps, candidates) = (dir.path().join("maps.ndjson"), dir.path().join("candidates.ndjson"));
    devloom(&["run", "--input", s(&input), "-o", s(&maps), "--candidates", s(&candidates)]);
    let read = |p: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(p).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let (maps, lists) = (read(&maps), read(&candidates));
    let postgres_red = |list: &serde_json::Value| {
        // The map the list was scored on: the one of the same event time.
        let map = maps.iter().find(|m| m["event_time_ns"] == list["event_time_ns"]).expect("its map");
        map["nodes"].as_array().unwrap().iter().any(|n| n["service"] == "postgres" && n["state"] == "red")
    };
    let timeouts: Vec<&serde_json::Value> = lists.iter().filter(|l| postgres_red(l)).collect();
    assert!(!timeouts.is_empty(), "postgres times out");
    for list in timeouts {
        let keys: Vec<&str> =
            list["candidates"].as_array().unwrap().iter().map(|c| c["key"].as_str().unwrap()).collect();
        // The job ran on postgres: it is postgres's candidate, carrying its evidence, as
        // a deploy is its service's.
        assert_eq!(keys[0], "scheduled_job:postgres@reindex-2026-11-27", "{keys:?}");
        assert!(!keys.contains(&"dependency:postgres"), "{keys:?}");
        let inventory =
            list["candidates"].as_array().unwrap().iter().find(|c| c["key"] == "service:inventory");
        let features = &inventory.expect("inventory fails too")["features"];
        let (own, calls) =
            (features["error_delta"].as_f64().unwrap(), features["out_error_delta"].as_f64().unwrap());
        assert!(
            own > 0.1 && calls >= 0.9 * own,
            "its failures are its failed queries to postgres: {features}"
        );
    }
}

#[test]
fn a_bad_model_file_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.json");
    std::fs::write(&model, r#"{"format_version": 1}"#).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_devloom"))
        .args(["run", "--simulate", "regression", "-o", "-", "--model", s(&model)])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("model.json") && err.contains("missing field"), "{err}");
}

#[test]
fn evaluate_runs_labelled_cases_through_the_pipeline_per_fault_and_style() {
    // Shipped cases: `devloom fault-cases --seed 5 --rate 3`, four of them (a folder of
    // inputs `devloom run` reads, and truth.json).
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let out = devloom(&["evaluate", "--cases", s(&cases), "--json", s(&json)]);
    let table = String::from_utf8(out.stdout).unwrap();
    for row in ["all ", "fault exception", "fault cpu_hog", "style sampled", "style no_status"] {
        assert!(table.contains(row), "{row} missing:\n{table}");
    }
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["overall"]["cases"], 4);
    assert_eq!(report["overall"]["detection"][0], 1.0, "{table}");
    assert_eq!(report["overall"]["metrics"]["ac_at_1"]["value"], 1.0, "{table}");
    let cases = report["cases"].as_array().unwrap();
    let exception = cases.iter().find(|c| c["truth"]["fault"] == "exception").unwrap();
    assert_eq!(exception["truth"]["faulty_service"], "svc-00012");
    assert_eq!(exception["rank"], 1);

    // A folder without truth.json is no case; a directory without cases is an error.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_devloom"))
        .args(["evaluate", "--cases", s(&empty)])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no case folders"));
}

#[test]
fn fault_cases_are_folders_run_reads_with_their_truth() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cases");
    devloom(&["fault-cases", "--out", s(&out), "--count", "2", "--rate", "2"]);
    let first = out.join("case-0000-cpu_contention-full");
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(first.join("truth.json")).unwrap()).unwrap();
    assert_eq!(truth["fault"], "cpu_contention");
    assert_eq!(truth["style"], "full");
    assert!(truth["faulty_service"].is_string());
    let maps = dir.path().join("maps.ndjson");
    devloom(&[
        "run",
        "--input",
        s(&first.join("traces.pb")),
        s(&first.join("events.ndjson")),
        "-o",
        s(&maps),
    ]);
    let first_map: devloom_schemas::ImpactMap =
        serde_json::from_str(std::fs::read_to_string(&maps).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(first_map.root_services, ["gateway"], "the alert is on the entry service");
    let again = Command::new(env!("CARGO_BIN_EXE_devloom"))
        .args(["fault-cases", "--out", s(&out), "--count", "1"])
        .output()
        .unwrap();
    assert!(!again.status.success(), "a directory that holds cases is not overwritten");
}
