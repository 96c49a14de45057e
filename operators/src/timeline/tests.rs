use devloom_schemas::{CauseStatus, Direction, NowVsBaseline};

use super::*;

const T0: TimestampNs = 1_795_770_000_000_000_000;
const S: TimestampNs = 1_000_000_000;

fn node(service: &str, state: HealthState, error_rate: f64) -> devloom_schemas::ImpactNode {
    devloom_schemas::ImpactNode {
        service: service.into(),
        region: None,
        virtual_node: false,
        state,
        hops: 0,
        direction: Direction::Root,
        path: vec![service.into()],
        error_rate: NowVsBaseline { now: error_rate, baseline: 0.01 },
        p99_ms: NowVsBaseline { now: 80.0, baseline: 50.0 },
        requests_per_s: NowVsBaseline { now: 10.0, baseline: 10.0 },
        covered_s: None,
        self_time_ms: None,
        self_time_p90_ms: None,
        catalog: None,
    }
}

fn map(version: u32, at_s: u64, status: IncidentStatus, nodes: &[(&str, HealthState)]) -> TimelineInput {
    let spreading = nodes.len() > 2;
    TimelineInput::Map(ImpactMap {
        schema_version: 1,
        incident_id: "inc-1".into(),
        version,
        status,
        root_services: vec!["payments".into()],
        verdict: if spreading { Verdict::Spreading } else { Verdict::Contained },
        nodes: nodes.iter().map(|(s, st)| node(s, *st, 0.1 * version as f64)).collect(),
        edges: Vec::new(),
        omitted_nodes: None,
        data_quality: None,
        event_time_ns: T0 + at_s * S,
        event_time: format_rfc3339(T0 + at_s * S),
        alert_received_at: None,
        published_at: None,
        latency_ms: None,
    })
}

fn alert(status: AlertStatus, at_s: u64) -> TimelineInput {
    TimelineInput::Alert {
        incident_id: "inc-1".into(),
        alert: Alert {
            fingerprint: "fp-1".into(),
            service: "payments".into(),
            severity: devloom_schemas::Severity::Critical,
            status,
            starts_at_ns: T0 + 10 * S,
            ends_at_ns: (status == AlertStatus::Resolved).then_some(T0 + at_s * S),
            labels: [("alertname".to_string(), "HighErrorRate".to_string())].into(),
            summary: "5xx over SLO".into(),
            source: devloom_schemas::AlertSource::Alertmanager,
        },
    }
}

fn change(service: &str, kind: ChangeKind, revision: &str, at_s: u64) -> TimelineInput {
    TimelineInput::Change(Deploy {
        service: service.into(),
        revision: revision.into(),
        previous_revision: Some("v1".into()),
        author: Some("ana".into()),
        kind,
        time_ns: T0 + at_s * S,
        ..Deploy::default()
    })
}

fn cause(at_s: u64) -> TimelineInput {
    TimelineInput::Cause(ConfirmedCause {
        incident_id: "inc-1".into(),
        candidate: "deploy:payments@v2".into(),
        time_ns: T0 + at_s * S,
        confirmed_by: Some("lee".into()),
    })
}

fn feed(t: &mut IncidentTimeline, inputs: &[TimelineInput]) -> Vec<PostmortemDraft> {
    let mut out = Vec::new();
    for input in inputs {
        t.on_event(&(), input, &mut out);
        t.on_watermark(&(), T0, &mut out);
    }
    out
}

/// An incident: a deploy before it, payments red from 20 s, checkout amber 20–50 s and
/// red 50–80 s, a rollback at 70 s, resolved at 100 s.
fn incident() -> Vec<TimelineInput> {
    use HealthState::*;
    vec![
        change("payments", ChangeKind::Deploy, "v2", 5),
        change("search", ChangeKind::Deploy, "v9", 6),
        alert(AlertStatus::Firing, 10),
        map(1, 20, IncidentStatus::Open, &[("payments", Red), ("checkout", Amber)]),
        map(2, 50, IncidentStatus::Open, &[("payments", Red), ("checkout", Red), ("gateway", Amber)]),
        change("payments", ChangeKind::Rollback, "v1", 70),
        map(3, 80, IncidentStatus::Open, &[("payments", Amber), ("checkout", Gray)]),
        alert(AlertStatus::Resolved, 95),
        map(4, 100, IncidentStatus::Resolved, &[("payments", Gray), ("checkout", Gray)]),
    ]
}

#[test]
fn durations_are_the_time_between_map_versions_in_each_state() {
    let mut t = IncidentTimeline::new(TimelineConfig::default());
    let drafts = feed(&mut t, &incident());
    assert_eq!(drafts.len(), 1, "one draft, when the incident resolves");
    let d = &drafts[0];
    let by = |s: &str| d.impact.services.iter().find(|x| x.service == s).unwrap();
    assert_eq!((by("payments").red_ms, by("payments").amber_ms), (60_000, 20_000));
    assert_eq!((by("checkout").red_ms, by("checkout").amber_ms), (30_000, 30_000));
    assert_eq!((by("gateway").red_ms, by("gateway").amber_ms), (0, 30_000));
    let order: Vec<&str> = d.impact.services.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(order, ["payments", "checkout", "gateway"], "in the order they first degraded");
    assert_eq!(d.impact.duration_ms, 90_000, "first alert at 10 s to the closing map at 100 s");
    assert_eq!((d.impact.peak_degraded, d.impact.map_versions), (3, 4));
    assert_eq!((d.impact.verdict, d.impact.final_verdict), (Verdict::Spreading, Verdict::Contained));
    assert_eq!(by("checkout").worst, HealthState::Red);
}

#[test]
fn the_rollback_of_an_alerted_service_is_the_mitigation_and_unrelated_changes_stay_out() {
    let mut t = IncidentTimeline::new(TimelineConfig::default());
    let d = feed(&mut t, &incident()).remove(0);
    let applied = d.remediation.applied.as_ref().expect("the rollback");
    assert_eq!((applied.kind, applied.revision.as_str()), (ChangeKind::Rollback, "v1"));
    assert_eq!(d.remediation.time_to_mitigate_ms, Some(60_000));
    let texts: Vec<&str> = d.timeline.iter().map(|e| e.text.as_str()).collect();
    assert!(texts[0].starts_with("deploy of payments v1 → v2 by ana"), "{texts:#?}");
    assert!(!texts.iter().any(|t| t.contains("search")), "search is not in the blast radius: {texts:#?}");
    assert!(d.timeline.windows(2).all(|w| w[0].time_ns <= w[1].time_ns), "in event time");
    assert!(
        d.summary.contains("A rollback of payments to v1 by ana landed 1m 0s after the first alert."),
        "{}",
        d.summary
    );
    assert_eq!(d.root_cause.status, CauseStatus::Unknown, "no candidate list, no confirmation");
}

#[test]
fn a_confirmation_after_the_close_writes_the_next_version_naming_the_cause() {
    let mut t = IncidentTimeline::new(TimelineConfig::default());
    let mut inputs = incident();
    inputs.push(cause(4000));
    let drafts = feed(&mut t, &inputs);
    assert_eq!(drafts.len(), 2);
    assert_eq!(drafts[0].root_cause.status, CauseStatus::Unknown);
    let d = &drafts[1];
    assert_eq!((d.version, d.root_cause.status), (2, CauseStatus::Confirmed));
    assert_eq!(d.root_cause.key.as_deref(), Some("deploy:payments@v2"));
    assert_eq!(d.root_cause.service.as_deref(), Some("payments"));
    assert_eq!(d.root_cause.confirmed_by.as_deref(), Some("lee"));
    assert_eq!(d.event_time_ns, T0 + 4000 * S);
    assert_eq!(d.impact, drafts[0].impact, "the numbers do not move");
}

#[test]
fn a_confirmation_while_open_is_in_the_first_draft_and_an_unknown_incident_is_ignored() {
    let mut t = IncidentTimeline::new(TimelineConfig::default());
    let mut inputs = incident();
    inputs.insert(5, cause(60));
    inputs.push(TimelineInput::Cause(ConfirmedCause {
        incident_id: "inc-nope".into(),
        candidate: "service:search".into(),
        time_ns: T0 + 200 * S,
        confirmed_by: None,
    }));
    let drafts = feed(&mut t, &inputs);
    assert_eq!(drafts.len(), 1);
    assert_eq!(drafts[0].root_cause.status, CauseStatus::Confirmed);
}

#[test]
fn state_survives_a_snapshot_mid_incident() {
    let inputs = incident();
    let mut whole = IncidentTimeline::new(TimelineConfig::default());
    let expected = feed(&mut whole, &inputs);
    let mut first = IncidentTimeline::new(TimelineConfig::default());
    feed(&mut first, &inputs[..5]);
    let json = serde_json::to_string(&first.snapshot()).unwrap();
    let mut restored = IncidentTimeline::new(TimelineConfig::default());
    restored.restore(serde_json::from_str(&json).unwrap());
    assert_eq!(feed(&mut restored, &inputs[5..]), expected);
}

#[test]
fn entries_are_bounded_and_closed_incidents_are_forgotten_after_their_keep() {
    let config = TimelineConfig { max_entries: 10, keep_closed_ms: 60_000, ..TimelineConfig::default() };
    let mut t = IncidentTimeline::new(config);
    let mut inputs = vec![alert(AlertStatus::Firing, 10)];
    for v in 0..20u32 {
        let state = if v % 2 == 0 { HealthState::Red } else { HealthState::Amber };
        inputs.push(map(v + 1, 20 + u64::from(v), IncidentStatus::Open, &[("payments", state)]));
    }
    inputs.push(map(21, 50, IncidentStatus::Resolved, &[("payments", HealthState::Gray)]));
    let d = feed(&mut t, &inputs).remove(0);
    assert!(d.timeline.len() <= 12, "{}", d.timeline.len());
    assert!(d.timeline_dropped > 0);
    assert_eq!(d.timeline.last().unwrap().kind, TimelineKind::Closed, "the close is always kept");
    let mut out = Vec::new();
    t.on_watermark(&(), T0 + 200 * S, &mut out);
    t.on_event(&(), &cause(300), &mut out);
    t.on_watermark(&(), T0 + 300 * S, &mut out);
    assert!(out.is_empty(), "forgotten: a confirmation this late writes nothing");
}
