//! The post-mortem draft, composed from an incident's timeline. Every number comes from
//! the timeline's record of the published outputs (durations from the map versions, the
//! cause from the candidate lists and confirmations, the mitigation from the changes);
//! the summary paragraph is assembled from those facts, not written.

use devloom_schemas::time::format_rfc3339;
use devloom_schemas::{
    CauseStatus, ChangeKind, Detection, HealthState, Impact, IncidentStatus, POSTMORTEM_SCHEMA_VERSION,
    PostmortemDraft, RemediationSummary, RootCause, ServiceImpact, TimelineEntry, TimelineKind, TimestampNs,
    Verdict,
};

use crate::timeline::Record;

/// Version `rec.drafts` of incident `id`'s draft.
pub(crate) fn draft(id: &str, rec: &Record) -> PostmortemDraft {
    let ended_ns = rec.closed_ns.unwrap_or(rec.last_map_ns);
    let started_ns = if rec.onset_ns > 0 { rec.onset_ns } else { rec.first_map_ns };
    let event_time_ns = rec.cause.as_ref().map_or(ended_ns, |c| c.time_ns.max(ended_ns));
    let impact = impact(rec, started_ns, ended_ns);
    let root_cause = root_cause(rec);
    let remediation = RemediationSummary {
        suggested: rec.suggested.clone(),
        applied: rec.applied.as_ref().map(|(a, _)| a.clone()),
        time_to_mitigate_ms: rec.applied.as_ref().map(|(_, t)| t.saturating_sub(started_ns) / 1_000_000),
    };
    let detection = Detection {
        alerts: rec.alerts.iter().map(|(_, a)| a.clone()).collect(),
        first_map_at: format_rfc3339(rec.first_map_ns),
        first_map_degraded: rec.first_map_degraded,
    };
    let title = title(rec, &impact);
    let summary = summary(rec, &impact, &root_cause, &remediation);
    PostmortemDraft {
        schema_version: POSTMORTEM_SCHEMA_VERSION,
        incident_id: id.to_string(),
        version: rec.drafts,
        title,
        summary,
        impact,
        detection,
        timeline: timeline(rec),
        timeline_dropped: rec.dropped,
        root_cause,
        remediation,
        contributing_factors: Vec::new(),
        action_items: Vec::new(),
        event_time_ns,
        event_time: format_rfc3339(event_time_ns),
        markdown: None,
        published_at: None,
    }
}

/// The entries plus the changes on services of the blast radius, in event time (entries
/// of the same time keep the order they happened in).
fn timeline(rec: &Record) -> Vec<TimelineEntry> {
    let mut entries: Vec<TimelineEntry> = rec
        .changes
        .iter()
        .filter(|c| rec.seen.contains(&c.service) || rec.root_services.contains(&c.service))
        .filter(|c| rec.applied.as_ref().is_none_or(|(a, t)| !(a.service == c.service && *t == c.time_ns)))
        .map(|c| TimelineEntry {
            time_ns: c.time_ns,
            time: format_rfc3339(c.time_ns),
            kind: TimelineKind::Change,
            service: Some(c.service.clone()),
            state: None,
            text: c.describe(),
        })
        .collect();
    entries.extend(rec.entries.iter().cloned());
    entries.sort_by_key(|e| e.time_ns);
    entries
}

fn impact(rec: &Record, started_ns: TimestampNs, ended_ns: TimestampNs) -> Impact {
    let services = rec
        .degraded_order
        .iter()
        .filter_map(|service| {
            let t = rec.totals.get(service)?;
            Some(ServiceImpact {
                service: service.clone(),
                worst: t.worst,
                first_degraded: format_rfc3339(t.first_degraded_ns),
                red_ms: t.red_ns / 1_000_000,
                amber_ms: t.amber_ns / 1_000_000,
                peak_error_rate: t.peak_error_rate,
                peak_p99_ms: t.peak_p99_ms,
            })
        })
        .collect();
    let final_verdict = rec.last_verdict.unwrap_or(Verdict::Contained);
    Impact {
        status: rec.status.unwrap_or(IncidentStatus::Resolved),
        started: format_rfc3339(started_ns),
        ended: format_rfc3339(ended_ns),
        duration_ms: ended_ns.saturating_sub(started_ns) / 1_000_000,
        root_services: rec.root_services.clone(),
        verdict: if rec.ever_spreading { Verdict::Spreading } else { final_verdict },
        final_verdict,
        peak_degraded: rec.peak_degraded,
        peak_at: format_rfc3339(if rec.peak_degraded > 0 { rec.peak_at_ns } else { rec.first_map_ns }),
        peak_blast_radius: rec.peak_nodes,
        map_versions: rec.maps,
        services,
    }
}

fn root_cause(rec: &Record) -> RootCause {
    let rank_of = |key: &str| rec.candidates.iter().position(|c| c.key == key);
    let (status, key) = match (&rec.cause, rec.candidates.first()) {
        (Some(cause), _) => (CauseStatus::Confirmed, Some(cause.candidate.clone())),
        (None, Some(top)) => (CauseStatus::Unconfirmed, Some(top.key.clone())),
        (None, None) => (CauseStatus::Unknown, None),
    };
    let listed = key.as_deref().and_then(rank_of).map(|i| (i, &rec.candidates[i]));
    RootCause {
        status,
        kind: listed.map(|(_, c)| c.kind),
        service: listed.map(|(_, c)| c.service.clone()).or_else(|| {
            key.as_deref()
                .and_then(|k| k.split_once(':'))
                .map(|(_, rest)| rest.split_once('@').map_or(rest, |(service, _)| service).to_string())
        }),
        summary: listed.map(|(_, c)| c.summary.clone()),
        confidence: listed.map(|(_, c)| c.confidence),
        rank: listed.map(|(i, _)| i as u32 + 1),
        key,
        low_confidence: rec.low_confidence,
        confirmed_by: rec.cause.as_ref().and_then(|c| c.confirmed_by.clone()),
        confirmed_at: rec.cause.as_ref().map(|c| format_rfc3339(c.time_ns)),
    }
}

fn title(rec: &Record, impact: &Impact) -> String {
    let first = rec.alerts.first().map(|(_, a)| a.name.as_str()).unwrap_or("incident");
    format!(
        "{} on {} ({}, {})",
        first,
        impact.root_services.join(", "),
        verdict_name(impact.verdict),
        duration(impact.duration_ms)
    )
}

fn summary(rec: &Record, impact: &Impact, cause: &RootCause, remediation: &RemediationSummary) -> String {
    let mut parts = Vec::new();
    match rec.alerts.first() {
        Some((_, a)) => parts.push(format!(
            "{} fired on {} at {} ({}, from {}).",
            a.name, a.service, a.fired_at, a.severity, a.source
        )),
        None => parts.push(format!("The incident opened at {}.", impact.started)),
    }
    let degraded: Vec<String> = impact
        .services
        .iter()
        .map(|s| {
            let mut part = format!("{} {}", s.service, state_name(s.worst));
            let time = match s.worst {
                HealthState::Red => s.red_ms,
                _ => s.amber_ms,
            };
            part.push_str(&format!(" for {}", duration(time)));
            part
        })
        .collect();
    parts.push(format!(
        "Over {}, {} of the {} services in the blast radius were red or amber{}; the verdict was {}.",
        duration(impact.duration_ms),
        impact.services.len(),
        impact.peak_blast_radius,
        if degraded.is_empty() { String::new() } else { format!(" ({})", degraded.join(", ")) },
        verdict_name(impact.verdict),
    ));
    let confidence = cause.confidence.map_or(String::new(), |c| format!(", confidence {c:.0}%"));
    parts.push(match (cause.status, &cause.key) {
        (CauseStatus::Confirmed, Some(key)) => format!(
            "The cause, confirmed{}, was {key}{confidence}.",
            cause.confirmed_by.as_deref().map_or(String::new(), |by| format!(" by {by}"))
        ),
        (CauseStatus::Unconfirmed, Some(key)) => {
            format!("Top candidate cause (unconfirmed): {key}{confidence}.")
        }
        _ => "No cause was identified.".to_string(),
    });
    parts.push(match (&remediation.applied, remediation.time_to_mitigate_ms) {
        (Some(a), Some(ms)) => format!(
            "A {} of {} to {}{} landed {} after the first alert.",
            change_name(a.kind),
            a.service,
            a.revision,
            a.author.as_deref().map_or(String::new(), |by| format!(" by {by}")),
            duration(ms)
        ),
        _ => "No change to a suspected service was seen while it was open.".to_string(),
    });
    parts.push(format!(
        "It {} at {}.",
        match impact.status {
            IncidentStatus::Stale => "went stale",
            _ => "resolved",
        },
        impact.ended
    ));
    parts.join(" ")
}

fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Contained => "contained",
        Verdict::Spreading => "spreading",
    }
}

fn state_name(s: HealthState) -> &'static str {
    match s {
        HealthState::Red => "red",
        HealthState::Amber => "amber",
        HealthState::Gray => "gray",
        HealthState::Unknown => "unknown",
    }
}

/// `deploy`, `config change`, `scheduled job`, `rollback`.
pub(crate) fn change_name(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Deploy => "deploy",
        ChangeKind::ConfigChange => "config change",
        ChangeKind::ScheduledJob => "scheduled job",
        ChangeKind::Rollback => "rollback",
    }
}

/// `4m 30s`, `1h 2m`, `850 ms`, `0s`.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0 if ms == 0 => "0s".to_string(),
        0 => format!("{ms} ms"),
        1..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

/// The snake_case name serde gives a unit enum variant (`critical`, `spreading`).
pub fn variant_name<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}
