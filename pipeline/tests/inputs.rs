//! Input as users really have it: protobuf files whose bytes look like text, byte-order
//! marks, invalid UTF-8 on stdin, broken pipes, stray environment variables.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use devloom::core::{Input, Pipeline, RunSummary, Source};
use devloom::simulator::{SimConfig, Simulator};
use devloom::sinks::Collected;
use devloom::sources::file::Files;
use devloom_operators::{Engine, EngineConfig};
use devloom_schemas::codec::{DecodeOptions, Expect};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::Message as _;

fn devloom(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_devloom"));
    cmd.args(args).env_remove("DEVLOOM_CONFIG");
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A firing Devloom alert on checkout.
const ALERT: &str =
    r#"{"service":"checkout","status":"firing","starts_at":"2026-11-27T09:00:00Z","fingerprint":"f"}"#;

/// Runs `paths` through the pipeline: its outputs and summary.
fn run_paths(paths: &[&Path]) -> (Collected, RunSummary) {
    let mut pipeline = Pipeline::new(Engine::new(EngineConfig::default()), Collected::default());
    pipeline.run(&mut Files::open(paths, &DecodeOptions::default()).unwrap()).unwrap();
    pipeline.finish().unwrap()
}

/// Spans and dead letters of running `paths` through the pipeline.
fn run_files(paths: &[&Path]) -> (u64, usize) {
    let (out, summary) = run_paths(paths);
    (summary.engine.spans, out.dead_letters.len())
}

#[test]
fn protobuf_files_are_read_as_protobuf_whatever_their_first_length_byte() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::shop("steady", SimConfig { rate_per_s: 1.0, ..SimConfig::default() }).unwrap();
    let batch = sim.filter(|r| r.expect == Expect::Traces).nth(3).unwrap();
    let base = ExportTraceServiceRequest::decode(batch.payload.as_slice()).unwrap();
    let spans: usize = base.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum();
    let mut seen = std::collections::BTreeSet::new();
    for pad in 0..300 {
        // A first ResourceSpans without spans whose length grows with `pad`.
        let mut request = base.clone();
        let value = AnyValue { value: Some(any_value::Value::StringValue("x".repeat(pad))) };
        let attributes = vec![KeyValue { key: "pad".into(), value: Some(value), ..KeyValue::default() }];
        let resource = Resource { attributes, ..Resource::default() };
        request
            .resource_spans
            .insert(0, ResourceSpans { resource: Some(resource), ..ResourceSpans::default() });
        let bytes = request.encode_to_vec();
        seen.insert(bytes[1]);
        let path = dir.path().join("batch.pb");
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(run_files(&[&path]), (spans as u64, 0), "first length byte {:#04x}", bytes[1]);
    }
    assert!(seen.contains(&b'{') && seen.contains(&b'['), "the bytes that look like JSON were tested");
}

#[test]
fn a_byte_order_mark_and_a_stray_first_line_do_not_hide_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.ndjson");
    std::fs::write(&path, format!("\u{feff}{ALERT}\n")).unwrap();
    let mut files = Files::open(&[&path], &DecodeOptions::default()).unwrap();
    assert!(matches!(files.next_input(), Some(Ok(Input::Event(..)))), "the BOM is skipped");

    std::fs::write(&path, format!("# exported by hand\n{ALERT}\n{ALERT}\n")).unwrap();
    let (out, summary) = run_paths(&[&path]);
    assert_eq!(summary.engine.alerts, 2, "the lines after the stray one are read");
    assert_eq!(out.dead_letters.len(), 1);
    assert_eq!(out.dead_letters[0].line, Some(1));
}

#[test]
fn invalid_utf8_on_stdin_is_one_dead_letter_and_the_rest_still_runs() {
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.ndjson");
    let mut input = b"\xff\xfe not text\n".to_vec();
    input.extend_from_slice(ALERT.as_bytes());
    input.push(b'\n');
    let mut child = devloom(&["run", "--dead-letter", dead.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("1 alerts") && stderr.contains("1 dead letters"), "{stderr}");
    let letter: devloom_schemas::DeadLetter =
        serde_json::from_str(std::fs::read_to_string(&dead).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!((letter.source.as_str(), letter.line), ("<stdin>", Some(1)));
    assert!(!stderr.contains('\u{1b}'), "no colour codes in a pipe: {stderr}");
    assert!(!stderr.contains("None"), "{stderr}");
}

#[test]
fn a_closed_pipe_is_a_normal_end() {
    for args in [&["validate"][..], &["demo", "--rate", "5"], &["simulate", "--rate", "5"]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out: Output = devloom(args).stdout(writer).stderr(Stdio::piped()).output().unwrap();
        assert!(out.status.success(), "devloom {args:?}: {:?} {}", out.status, text(&out.stderr));
        assert!(!text(&out.stderr).contains("Broken pipe"), "{}", text(&out.stderr));
    }
}

#[test]
fn devloom_variables_that_are_not_config_keys_are_left_alone() {
    let out = devloom(&["validate"]).env("DEVLOOM_BLESS", "1").output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = devloom(&["validate"]).env("DEVLOOM_OUTPUT__COLOUR", "red").output().unwrap();
    assert!(!out.status.success(), "a misspelt key of a real section is still an error");
    assert!(text(&out.stderr).contains("unknown field `colour`"), "{}", text(&out.stderr));
}

#[test]
fn a_csv_input_fails_loudly_and_dead_letters_are_per_run_unless_appended() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, dead) = (dir.path().join("spans.csv"), dir.path().join("dead.ndjson"));
    std::fs::write(&csv, "trace_id,span_id,service\n1,2,checkout\n").unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--input", csv.to_str().unwrap(), "--dead-letter", dead.to_str().unwrap()];
        args.extend_from_slice(extra);
        devloom(&args).output().unwrap()
    };
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(1), "every record dead is a failure");
    let err = text(&out.stderr);
    assert!(err.contains("every record (2) was a dead letter"), "{err}");
    let lines = || std::fs::read_to_string(&dead).unwrap().lines().count();
    assert_eq!(lines(), 2);
    run(&[]);
    assert_eq!(lines(), 2, "a new run replaces the last run's dead letters");
    run(&["--append"]);
    assert_eq!(lines(), 4, "--append keeps them");
}

#[test]
fn simulated_protobuf_traces_read_back_like_the_ndjson() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let sim = ["simulate", "--scenario", "regression", "--rate", "10"];
    assert!(devloom(&[&sim[..], &["-o", &p("sim.ndjson")]].concat()).status().unwrap().success());
    let out =
        devloom(&[&sim[..], &["--format", "otlp-proto", "-o", &p("sim.pb")]].concat()).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        std::fs::metadata(p("sim.pb")).unwrap().len() * 2 < std::fs::metadata(p("sim.ndjson")).unwrap().len()
    );
    let maps = |inputs: &[String], out: &str| -> Vec<String> {
        let mut args = vec!["run".to_string(), "--input".into()];
        args.extend(inputs.iter().cloned());
        args.extend(["--output".into(), p(out)]);
        let run = devloom(&args.iter().map(String::as_str).collect::<Vec<_>>()).output().unwrap();
        assert!(run.status.success(), "{}", text(&run.stderr));
        std::fs::read_to_string(p(out))
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::to_string(
                    &serde_json::from_str::<devloom_schemas::ImpactMap>(l).unwrap().without_wall_clock(),
                )
                .unwrap()
            })
            .collect()
    };
    // The same split by hand from the NDJSON: traces as OTLP JSON, the rest beside them.
    let all = std::fs::read_to_string(p("sim.ndjson")).unwrap();
    let (traces, events): (Vec<&str>, Vec<&str>) = all.lines().partition(|l| l.contains("\"resourceSpans\""));
    std::fs::write(p("traces.ndjson"), traces.join("\n") + "\n").unwrap();
    std::fs::write(p("events.ndjson"), events.join("\n") + "\n").unwrap();
    assert_eq!(std::fs::read_to_string(p("sim.events.ndjson")).unwrap(), events.join("\n") + "\n");
    let json = maps(&[p("traces.ndjson"), p("events.ndjson")], "a.ndjson");
    assert!(json.len() >= 3, "{} versions", json.len());
    assert_eq!(maps(&[p("sim.pb"), p("sim.events.ndjson")], "b.ndjson"), json, "protobuf frames = OTLP JSON");
}

#[test]
fn what_a_run_may_have_missed_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let alert = |at: &str, f: &str| {
        format!(
            r#"{{"service":"checkout","status":"firing","starts_at":"2026-11-27T{at}Z","fingerprint":"{f}"}}"#
        )
    };
    let path = dir.path().join("alerts.ndjson");
    std::fs::write(&path, format!("{}\n{}\n", alert("09:10:00", "a"), alert("09:00:00", "b"))).unwrap();
    let out = devloom(&["run", "--input", path.to_str().unwrap(), "--output", "/dev/null"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("data quality: 1 events arrived behind the watermark"), "{err}");
    let clean = dir.path().join("clean.ndjson");
    std::fs::write(&clean, alert("09:00:00", "a") + "\n").unwrap();
    let out =
        devloom(&["run", "--input", clean.to_str().unwrap(), "--output", "/dev/null"]).output().unwrap();
    assert!(!text(&out.stderr).contains("data quality"), "nothing said when nothing was missed");
}

#[test]
fn pagerduty_resolves_close_incidents_from_a_file_and_a_bad_alert_spares_its_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.ndjson");
    let trigger = r#"{"routing_key":"R","dedup_key":"k1","event_action":"trigger","payload":{"summary":"db down","source":"orders-db","severity":"critical","timestamp":"2026-11-27T09:00:00Z"}}"#;
    let resolve = r#"{"routing_key":"R","dedup_key":"k1","event_action":"resolve"}"#;
    let webhook = r#"{"version":"4","status":"firing","alerts":[
        {"status":"firing","labels":{"alertname":"A","service":""},"startsAt":"2026-11-27T09:01:00Z"},
        {"status":"firing","labels":{"alertname":"B","service":"checkout"},"startsAt":"2026-11-27T09:01:00Z"}]}"#
        .replace('\n', "");
    std::fs::write(&path, format!("{trigger}\n{webhook}\n{resolve}\n")).unwrap();
    let (out, summary) = run_paths(&[&path]);
    assert_eq!(summary.engine.alerts, 3, "the trigger, the good alert of the webhook, the resolve");
    assert_eq!(out.dead_letters.len(), 1);
    assert!(out.dead_letters[0].reason.contains("1 of 2 items invalid: invalid at alerts[0].labels"));
    let db = out.maps.iter().filter(|m| m.root_services == ["orders-db"]).collect::<Vec<_>>();
    assert_eq!(
        db.last().map(|m| m.status),
        Some(devloom_schemas::IncidentStatus::Resolved),
        "the resolve without a time closed the incident"
    );
}

#[test]
fn an_incident_whose_resolve_never_comes_closes_as_stale() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.ndjson");
    let alert = |day: u32, service: &str| {
        format!(
            r#"{{"service":"{service}","status":"firing","starts_at":"2026-11-{day}T09:00:00Z","fingerprint":"{service}"}}"#
        )
    };
    std::fs::write(&path, format!("{}\n{}\n", alert(27, "payments"), alert(28, "search"))).unwrap();
    let (out, _) = run_paths(&[&path]);
    let payments: Vec<_> = out.maps.iter().filter(|m| m.root_services == ["payments"]).collect();
    assert_eq!(
        payments.last().unwrap().status,
        devloom_schemas::IncidentStatus::Stale,
        "a day without a word"
    );
    let search = out.maps.iter().rfind(|m| m.root_services == ["search"]).unwrap();
    assert_eq!(search.status, devloom_schemas::IncidentStatus::Open, "the new alert's incident is open");
}

#[test]
fn a_line_past_the_record_limit_is_one_dead_letter_with_its_size_and_the_rest_runs() {
    // The default, which the run uses.
    const MAX_RECORD_BYTES: usize = 64 << 20;
    assert_eq!(DecodeOptions::default().max_record_bytes, MAX_RECORD_BYTES);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.ndjson");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    writeln!(file, "{ALERT}").unwrap();
    write!(file, "{{\"service\":\"").unwrap();
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..(MAX_RECORD_BYTES >> 20) + 1 {
        file.write_all(&chunk).unwrap();
    }
    writeln!(file, "\"}}").unwrap();
    writeln!(file, "{}", ALERT.replace("checkout", "payments")).unwrap();
    drop(file);
    let size = "{\"service\":\"".len() + (((MAX_RECORD_BYTES >> 20) + 1) << 20) + "\"}".len();
    let dead = dir.path().join("dead.ndjson");
    let out = devloom(&[
        "run",
        "--input",
        path.to_str().unwrap(),
        "-o",
        "/dev/null",
        "--dead-letter",
        dead.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("2 alerts"), "both alerts around it still run: {}", text(&out.stderr));
    let letters: Vec<devloom_schemas::DeadLetter> =
        std::fs::read_to_string(&dead).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].line, Some(2));
    assert_eq!(
        letters[0].reason,
        format!(
            "a record of {size} bytes is over the {MAX_RECORD_BYTES}-byte limit (decode.max_record_bytes): not decoded (its first 1024 bytes are kept here)"
        )
    );
    assert!(letters[0].payload_base64.len() < 2000, "a prefix, not the line");
}
