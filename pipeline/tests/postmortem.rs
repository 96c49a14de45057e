//! Post-mortem drafts as a user reads them: simulated incidents through the whole
//! pipeline (scorer on), every number of a draft recomputed from the published map
//! versions, confirmations on the causes input, and the `devloom postmortem` command.

use std::path::Path;
use std::process::Command;

use devloom::build;
use devloom::config::Config;
use devloom::core::Pipeline;
use devloom::simulator::{SimConfig, Simulator, to_ndjson_line};
use devloom::sinks::Collected;
use devloom::sources::simulated;
use devloom_schemas::codec::DecodeOptions;
use devloom_schemas::time::parse_rfc3339;
use devloom_schemas::{
    CauseStatus, ChangeKind, HealthState, ImpactMap, PostmortemDraft, TimelineKind, Verdict,
};

/// Runs a scenario at the simulator's default rate through the default pipeline.
fn run(scenario: &str) -> Collected {
    let sim = Simulator::shop(scenario, SimConfig::default()).unwrap();
    let engine = build::engine(&Config::default()).unwrap();
    let mut pipeline = Pipeline::new(engine, Collected::default());
    pipeline.run(&mut simulated(sim, DecodeOptions::default())).unwrap();
    pipeline.finish().unwrap().0
}

/// Milliseconds each service spent in `state`, recomputed from the map versions: a
/// version's state holds until the next version.
fn time_in(maps: &[ImpactMap], service: &str, state: HealthState) -> u64 {
    maps.windows(2)
        .filter(|w| w[0].nodes.iter().any(|n| n.service == service && n.state == state))
        .map(|w| w[1].event_time_ns - w[0].event_time_ns)
        .sum::<u64>()
        / 1_000_000
}

/// Every number of the impact section against the maps the run published.
fn check_numbers_against_maps(draft: &PostmortemDraft, maps: &[ImpactMap]) {
    assert!(!draft.impact.services.is_empty());
    for s in &draft.impact.services {
        assert_eq!(s.red_ms, time_in(maps, &s.service, HealthState::Red), "{} red", s.service);
        assert_eq!(s.amber_ms, time_in(maps, &s.service, HealthState::Amber), "{} amber", s.service);
        let first = maps
            .iter()
            .find(|m| {
                m.nodes.iter().any(|n| {
                    n.service == s.service && matches!(n.state, HealthState::Red | HealthState::Amber)
                })
            })
            .unwrap();
        assert_eq!(s.first_degraded, first.event_time, "{}", s.service);
    }
    let last = maps.last().unwrap();
    assert_eq!(draft.impact.ended, last.event_time);
    let started = parse_rfc3339(&draft.detection.alerts[0].fired_at).unwrap();
    assert_eq!(draft.impact.started, draft.detection.alerts[0].fired_at);
    assert_eq!(draft.impact.duration_ms, (last.event_time_ns - started) / 1_000_000);
    let degraded = |m: &ImpactMap| {
        m.nodes.iter().filter(|n| matches!(n.state, HealthState::Red | HealthState::Amber)).count() as u32
    };
    assert_eq!(draft.impact.peak_degraded, maps.iter().map(degraded).max().unwrap());
    assert_eq!(draft.impact.map_versions, maps.len() as u32);
    assert_eq!(draft.detection.first_map_at, maps[0].event_time);
}

#[test]
fn the_regression_draft_names_the_deploy_the_rollback_that_mitigated_it_and_the_maps_durations() {
    let out = run("regression");
    assert_eq!(out.postmortems.len(), 1, "one draft, when the incident resolves");
    let draft = &out.postmortems[0];
    check_numbers_against_maps(draft, &out.maps);
    assert_eq!(draft.impact.verdict, Verdict::Contained);
    assert_eq!(draft.impact.services[0].service, "payments");
    assert_eq!(draft.impact.services[0].worst, HealthState::Red);

    let deploy = draft.timeline.iter().find(|e| e.kind == TimelineKind::Change).expect("the deploy");
    assert_eq!(deploy.text, "deploy of payments v1.8.2 → v1.9.0 by ana");
    assert_eq!(draft.root_cause.status, CauseStatus::Unconfirmed);
    assert_eq!(draft.root_cause.key.as_deref(), Some("deploy:payments@v1.9.0"));
    assert_eq!(draft.root_cause.rank, Some(1));

    let applied = draft.remediation.applied.as_ref().expect("the rollback");
    assert_eq!((applied.kind, applied.revision.as_str()), (ChangeKind::Rollback, "v1.8.2"));
    assert_eq!(applied.author.as_deref(), Some("oncall-bot"));
    assert!(applied.matches_suggestion, "the suggested remediation was the one applied");
    assert_eq!(draft.remediation.suggested[0].target_revision.as_deref(), Some("v1.8.2"));
    let rollback_at = parse_rfc3339(&applied.at).unwrap();
    let started = parse_rfc3339(&draft.impact.started).unwrap();
    assert_eq!(draft.remediation.time_to_mitigate_ms, Some((rollback_at - started) / 1_000_000));

    let md = draft.markdown.as_deref().expect("rendered with the built-in template");
    for line in [
        "# HighErrorRate on payments (contained,",
        "| payments | red |",
        "mitigation landed: rollback of payments v1.9.0 → v1.8.2 by oncall-bot (the suggested remediation)",
        "**Unconfirmed.** Devloom's top candidate: `deploy:payments@v1.9.0`",
        "- TODO (incident owner): what made this possible",
        "- TODO (incident owner): owner, action, due date.",
    ] {
        assert!(md.contains(line), "{line:?} not in:\n{md}");
    }
}

#[test]
fn the_db_latency_draft_shows_the_spread_service_by_service() {
    let out = run("db-latency");
    assert_eq!(out.postmortems.len(), 1);
    let draft = &out.postmortems[0];
    check_numbers_against_maps(draft, &out.maps);
    assert_eq!(draft.impact.verdict, Verdict::Spreading);
    let red: Vec<&str> = draft
        .impact
        .services
        .iter()
        .filter(|s| s.worst == HealthState::Red)
        .map(|s| s.service.as_str())
        .collect();
    assert!(red.len() >= 2, "the spread: {red:?}");
    let turned_red: Vec<&str> = draft
        .timeline
        .iter()
        .filter(|e| e.kind == TimelineKind::StateChange && e.state == Some(HealthState::Red))
        .filter_map(|e| e.service.as_deref())
        .collect();
    for service in &red {
        assert!(turned_red.contains(service), "{service} turning red is in the timeline: {turned_red:?}");
    }
    let firsts: Vec<&str> = draft.impact.services.iter().map(|s| s.first_degraded.as_str()).collect();
    assert!(firsts.is_sorted(), "services in the order they degraded: {firsts:?}");
    assert!(draft.timeline.iter().any(|e| e.text == "scheduled job reindex-2026-11-27 on postgres by cron"));
    assert!(draft.summary.contains("the verdict was spreading"), "{}", draft.summary);
    assert!(draft.markdown.as_deref().unwrap().contains("| Verdict | spreading"));
}

fn devloom(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_devloom")).args(args).env_remove("DEVLOOM_CONFIG").output().unwrap()
}

fn lines<T: serde::de::DeserializeOwned>(path: &Path) -> Vec<T> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn stripped(drafts: &[PostmortemDraft]) -> Vec<PostmortemDraft> {
    drafts.iter().map(PostmortemDraft::without_wall_clock).collect()
}

#[test]
fn a_confirmation_on_the_causes_input_writes_the_next_draft_and_replay_and_the_command_agree() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    let sim = Simulator::shop("regression", SimConfig { rate_per_s: 10.0, ..SimConfig::default() }).unwrap();
    let records: Vec<String> = sim.map(|r| to_ndjson_line(&r).unwrap()).collect();
    std::fs::write(p("sim.ndjson"), records.join("\n") + "\n").unwrap();

    // Without a confirmation: one draft, the cause unconfirmed.
    let out = devloom(&[
        "run",
        "--input",
        p("sim.ndjson").to_str().unwrap(),
        "-o",
        "-",
        "--postmortems",
        p("first.ndjson").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let first: Vec<PostmortemDraft> = lines(&p("first.ndjson"));
    assert_eq!(first.len(), 1);
    assert_ne!(first[0].root_cause.status, CauseStatus::Confirmed);
    let incident = first[0].incident_id.clone();

    // The same input plus a confirmation an hour later, as `history confirm --print` writes it.
    let out = devloom(&[
        "history",
        "confirm",
        &incident,
        "deploy:payments@v1.9.0",
        "--print",
        "--by",
        "ana",
        "--at",
        "2026-11-27T10:30:00Z",
    ]);
    assert!(out.status.success());
    std::fs::write(p("causes.ndjson"), &out.stdout).unwrap();
    let history = p("history");
    let out = devloom(&[
        "run",
        "--input",
        p("sim.ndjson").to_str().unwrap(),
        p("causes.ndjson").to_str().unwrap(),
        "-o",
        "-",
        "--history",
        history.to_str().unwrap(),
        "--postmortems",
        p("drafts.ndjson").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let drafts: Vec<PostmortemDraft> = lines(&p("drafts.ndjson"));
    assert_eq!(drafts.len(), 2, "on resolve, then on the confirmation");
    assert_eq!(
        stripped(&drafts[..1]),
        stripped(&first),
        "the first draft does not depend on what comes later"
    );
    let confirmed = &drafts[1];
    assert_eq!((confirmed.version, confirmed.root_cause.status), (2, CauseStatus::Confirmed));
    assert_eq!(confirmed.root_cause.key.as_deref(), Some("deploy:payments@v1.9.0"));
    assert_eq!(confirmed.root_cause.confirmed_by.as_deref(), Some("ana"));
    assert_eq!(confirmed.root_cause.confirmed_at.as_deref(), Some("2026-11-27T10:30:00.000Z"));
    assert_eq!(confirmed.impact, drafts[0].impact);
    assert!(
        confirmed.markdown.as_deref().unwrap().contains("**Confirmed** by ana at 2026-11-27T10:30:00.000Z")
    );

    // The confirmation is archived for training, and the drafts with it.
    let out = devloom(&[
        "history",
        "query",
        "SELECT incident_id, candidate, confirmed_by FROM causes",
        "--history",
        history.to_str().unwrap(),
        "--format",
        "csv",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("incident_id,candidate,confirmed_by\n{incident},deploy:payments@v1.9.0,ana\n")
    );

    // Replay reproduces both drafts.
    let out = devloom(&[
        "replay",
        "--history",
        history.to_str().unwrap(),
        "-o",
        "/dev/null",
        "--postmortems",
        p("replayed.ndjson").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stripped(&lines(&p("replayed.ndjson"))), stripped(&drafts), "replay = live");

    // `devloom postmortem` prints the latest, archived or rebuilt, the same.
    for extra in [&[][..], &["--rebuild"][..]] {
        let mut args =
            vec!["postmortem", incident.as_str(), "--history", history.to_str().unwrap(), "--format", "json"];
        args.extend_from_slice(extra);
        let out = devloom(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let shown: PostmortemDraft = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(shown.without_wall_clock().markdown, confirmed.markdown, "{extra:?}");
        assert_eq!(
            PostmortemDraft { published_at: None, ..shown },
            confirmed.without_wall_clock(),
            "{extra:?}"
        );
    }
    let out = devloom(&["postmortem", "list", "--history", history.to_str().unwrap()]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains(&incident) && listed.contains("v2, cause confirmed"), "{listed}");
}

#[test]
fn a_team_template_renders_the_draft_and_a_broken_one_is_refused_naming_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history");
    let out = devloom(&[
        "run",
        "--simulate",
        "regression",
        "--rate",
        "10",
        "-o",
        "/dev/null",
        "--history",
        history.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed = devloom(&["postmortem", "list", "--history", history.to_str().unwrap()]);
    let incident = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();

    let ours = dir.path().join("ours.md.j2");
    std::fs::write(&ours, "## {{ incident_id }}\nlasted {{ impact.duration_ms | duration }}; peak {{ impact.services[0].peak_error_rate | percent }}\n").unwrap();
    let with_template = |template: &Path| {
        devloom(&[
            "postmortem",
            &incident,
            "--history",
            history.to_str().unwrap(),
            "--template",
            template.to_str().unwrap(),
        ])
    };
    let out = with_template(&ours);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with(&format!("## {incident}\nlasted ")), "{text}");
    assert!(text.contains("m ") && text.contains("%"), "{text}");

    let broken = dir.path().join("broken.md.j2");
    std::fs::write(&broken, "# {{ title }}\n\n{% for e in timeline %}\n").unwrap();
    let out = with_template(&broken);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("(in {}:3)", broken.display())), "{err}");

    let builtin = devloom(&["postmortem", "template"]);
    assert!(String::from_utf8_lossy(&builtin.stdout).starts_with("# {{ title }}"));
}
