//! Remediation plans as a user meets them: the regression scenario plus a config change
//! whose bundle carries a Secret, run by `devloom run` with an archive; the plan on its
//! output file and from `devloom remediation show`; and the Secret's values nowhere — not
//! in any output, dead letter, archive table or checkpoint.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use devloom::core::decode_record;
use devloom::simulator::{SimConfig, Simulator, to_ndjson_line};
use devloom::sinks::Collected;
use devloom::sources::file::Files;
use devloom_schemas::codec::DecodeOptions;
use devloom_schemas::{DeadLetter, ImpactMap, RemediationAction, RemediationPlan};

/// The Secret's value before the change (plain `stringData`) and after (base64 `data`).
const OLD_SECRET: &str = "correct-horse-9";
const NEW_SECRET: &str = "stapled-secret-7";

fn devloom(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_devloom")).args(args).env_remove("DEVLOOM_CONFIG").output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn bundle(timeout: &str, secret: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: payments\n  namespace: production\nspec:\n  template:\n    spec:\n      containers:\n      - name: payments\n        image: registry.internal/payments:v1.8.2\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: payments-config\n  namespace: production\ndata:\n  capture.timeout_ms: \"{timeout}\"\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: payments-db\n  namespace: production\ntype: Opaque\n{secret}"
    )
}

/// A config change two minutes before the onset, and a deploy whose time is invalid:
/// both carry the Secret.
fn changes_with_a_secret(dir: &Path) -> std::path::PathBuf {
    let before = bundle("2000", &format!("stringData:\n  password: {OLD_SECRET}\n"));
    let after = bundle("800", &format!("data:\n  password: {}\n", BASE64_STANDARD.encode(NEW_SECRET)));
    let change = serde_json::json!({
        "service": "payments", "revision": "cfg-3", "previous_revision": "cfg-2", "kind": "config_change",
        "time": "2026-11-27T09:04:00Z", "author": "lee", "tool": "kubectl",
        "spec_before": before, "spec_after": after,
    });
    let broken = serde_json::json!({
        "service": "payments", "revision": "cfg-4", "time": "yesterday-ish", "spec_after": after,
    });
    let path = dir.join("changes.ndjson");
    std::fs::write(&path, format!("{change}\n{broken}\n")).unwrap();
    path
}

fn regression(dir: &Path) -> std::path::PathBuf {
    let sim = Simulator::shop("regression", SimConfig { rate_per_s: 10.0, ..SimConfig::default() }).unwrap();
    let lines: Vec<String> = sim.map(|r| to_ndjson_line(&r).unwrap()).collect();
    let path = dir.join("regression.ndjson");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn assert_no_secret(what: &str, haystack: &str) {
    for secret in [OLD_SECRET.to_string(), NEW_SECRET.to_string(), BASE64_STANDARD.encode(NEW_SECRET)] {
        assert!(!haystack.contains(&secret), "{what} holds a Secret value ({secret})");
    }
}

#[test]
fn remediations_are_written_archived_shown_and_never_carry_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (sim, changes) = (regression(d), changes_with_a_secret(d));
    let file = |name: &str| d.join(name).display().to_string();
    let history = file("history");
    let out = devloom(&[
        "run",
        "--input",
        sim.to_str().unwrap(),
        "--input",
        changes.to_str().unwrap(),
        "--output",
        &file("maps.ndjson"),
        "--candidates",
        &file("candidates.ndjson"),
        "--remediations",
        &file("remediations.ndjson"),
        "--dead-letter",
        &file("dead.ndjson"),
        "--history",
        &history,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_no_secret("the run's stdout and stderr", &(text(&out.stdout) + &text(&out.stderr)));

    // The plan: the deploy's rollback with its diff, and the config change's revert.
    let read = |name: &str| std::fs::read_to_string(d.join(name)).unwrap();
    let plans: Vec<RemediationPlan> =
        read("remediations.ndjson").lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let last = plans.last().unwrap();
    let maps: Vec<ImpactMap> =
        read("maps.ndjson").lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(last.incident_id, maps[0].incident_id);
    let rollback = last.remediations.iter().find(|r| r.candidate == "deploy:payments@v1.9.0").unwrap();
    assert_eq!(rollback.action, RemediationAction::Rollback);
    assert_eq!(
        rollback.commands,
        ["kubectl rollout undo deployment/payments --namespace production --to-revision=41"]
    );
    assert_eq!(
        rollback.not_reverted[0].note,
        "ConfigMap payments-config changed in this deploy (2 keys) and will NOT be reverted by the rollback"
    );
    let revert = last.remediations.iter().find(|r| r.candidate == "config_change:payments@cfg-3").unwrap();
    assert_eq!(revert.action, RemediationAction::RevertConfig);
    assert_eq!(revert.commands, ["kubectl apply --namespace production -f configmap-payments-config.yaml"]);
    assert!(
        revert.gaps.iter().any(|g| g.starts_with("Secret payments-db changed: Devloom keeps only digests"))
    );
    let secret_diff = revert.files.iter().find(|f| f.path == "Secret/payments-db").unwrap();
    assert!(
        secret_diff.keys.iter().any(|k| k.key == "data.password"),
        "the key is named: {:?}",
        secret_diff.keys
    );
    let ranks: Vec<u32> = last.remediations.iter().map(|r| r.rank).collect();
    assert!(ranks.windows(2).all(|w| w[0] < w[1]), "ordered like the candidates: {ranks:?}");

    // Nowhere: outputs, the dead letter (its payload decoded), the archive's tables.
    for name in ["maps.ndjson", "candidates.ndjson", "remediations.ndjson"] {
        assert_no_secret(name, &read(name));
    }
    let dead: Vec<DeadLetter> =
        read("dead.ndjson").lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(dead.len(), 1, "the deploy with a bad time");
    assert!(dead[0].reason.contains("time"), "{}", dead[0].reason);
    let payload = text(&BASE64_STANDARD.decode(&dead[0].payload_base64).unwrap());
    assert!(payload.contains("yesterday-ish"), "the rest of the record is kept: {payload}");
    assert_no_secret("the dead letter's payload", &payload);
    for table in ["deploys", "remediations", "candidates", "impact"] {
        let out = devloom(&[
            "history",
            "query",
            &format!("SELECT * FROM {table}"),
            "--history",
            &history,
            "-f",
            "json",
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(!out.stdout.is_empty(), "{table} has rows");
        assert_no_secret(&format!("archive table {table}"), &text(&out.stdout));
    }

    // `devloom remediation show` draws the latest plan of the archived incident.
    let out = devloom(&["remediation", "show", &last.incident_id, "--history", &history]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("$ kubectl rollout undo deployment/payments --namespace production --to-revision=41")
    );
    assert!(
        shown
            .contains("⚠ ConfigMap payments-config changed in this deploy (2 keys) and will NOT be reverted")
    );
    assert!(shown.contains("-    image: registry.internal/payments:v1.9.0"), "{shown}");
    assert!(shown.contains("+    image: registry.internal/payments:v1.8.2"), "{shown}");
    let json = devloom(&["remediation", "show", &last.incident_id, "--history", &history, "--json"]);
    let archived: RemediationPlan = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(archived.without_wall_clock(), last.without_wall_clock());
    // `devloom watch` draws the plans of a JSON-lines file as the demo does.
    let watched = devloom(&["watch", "--input", &file("remediations.ndjson")]);
    assert!(watched.status.success(), "{}", text(&watched.stderr));
    assert!(
        text(&watched.stdout).contains("$ kubectl rollout undo deployment/payments"),
        "{}",
        text(&watched.stdout)
    );
    let missing = devloom(&["remediation", "show", "inc-nope", "--history", &history]);
    assert!(!missing.status.success());
    assert!(
        text(&missing.stderr).contains("no remediation plan for incident \"inc-nope\""),
        "{}",
        text(&missing.stderr)
    );

    // The operators' state, as a checkpoint stores it.
    let mut pipeline = devloom::build::pipeline(
        &devloom::config::Config::default(),
        Collected::default(),
        devloom::build::ArchiveCommits::OnRoll,
    )
    .unwrap();
    let mut files = Files::open(&[&sim, &changes], &DecodeOptions::default()).unwrap();
    pipeline.run(&mut files).unwrap();
    assert_no_secret("the engine snapshot", &serde_json::to_string(&pipeline.snapshot()).unwrap());
    let (collected, _) = pipeline.finish().unwrap();
    let again: Vec<RemediationPlan> =
        collected.remediations.iter().map(RemediationPlan::without_wall_clock).collect();
    let first: Vec<RemediationPlan> = plans.iter().map(RemediationPlan::without_wall_clock).collect();
    assert_eq!(again, first, "same input, same plans");
}

#[test]
fn the_secret_is_redacted_however_the_change_arrives() {
    let after = bundle("800", &format!("stringData:\n  password: {NEW_SECRET}\n"));
    let deploy = |time: &str| serde_json::json!({"service": "payments", "revision": "cfg-3", "time": time, "spec_after": after});
    let envelope = |data: serde_json::Value| {
        serde_json::json!({
            "specversion": "1.0", "type": "dev.devloom.deploy", "source": "/ci", "id": "1",
            "datacontenttype": "application/json", "data": data,
        })
    };
    let based = |data: serde_json::Value| {
        let mut e = envelope(serde_json::Value::Null);
        e.as_object_mut().unwrap().remove("data");
        e["data_base64"] = BASE64_STANDARD.encode(data.to_string()).into();
        e
    };
    let good = deploy("2026-11-27T09:04:00Z");
    let bad = deploy("yesterday-ish");
    for (what, payload, decodes) in [
        ("Devloom deploy JSON", good.clone(), true),
        ("a structured CloudEvent", envelope(good.clone()), true),
        ("a CloudEvent with data_base64", based(good), true),
        ("a bad deploy", bad.clone(), false),
        ("a bad CloudEvent", envelope(bad.clone()), false),
        ("a bad CloudEvent with data_base64", based(bad), false),
    ] {
        let record = devloom::core::RawRecord::new(
            payload.to_string().into_bytes(),
            devloom_schemas::codec::Expect::Deploys,
            devloom::core::Origin::Simulator,
        );
        match decode_record(record, &DecodeOptions::default()) {
            Ok(events) => {
                assert!(decodes, "{what} decoded");
                assert_eq!(events.len(), 1, "{what}");
                assert_no_secret(what, &format!("{events:?}"));
            }
            Err(rejected) => {
                assert!(!decodes, "{what}: {}", rejected.reason);
                let letter = rejected.dead_letter();
                let payload = text(&BASE64_STANDARD.decode(&letter.payload_base64).unwrap());
                assert_no_secret(what, &payload);
                assert_no_secret(what, &serde_json::to_string(&letter).unwrap());
                // What is left still says what it was.
                assert!(
                    payload.contains("yesterday-ish") || payload.contains("data_base64"),
                    "{what}: {payload}"
                );
            }
        }
    }
}
