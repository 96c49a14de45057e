//! The incident timeline: every event that matters to an incident, in event time —
//! its alerts, the changes before and during it, each service of the blast radius
//! turning red or amber (with the numbers), verdict changes, candidate versions,
//! remediations suggested, the change that landed, the confirmed cause. When the
//! incident closes, and again when its cause is confirmed afterwards, it writes a
//! post-mortem draft from it ([`crate::postmortem`]).
//!
//! It reads what the other operators published (maps, candidate lists, plans) plus the
//! alerts, changes and confirmations, so the draft says exactly what the outputs said.
//! State is bounded: entries per incident, closed incidents kept, recent changes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use devloom_schemas::time::format_rfc3339;
use devloom_schemas::{
    Alert, AlertFact, AlertStatus, AppliedChange, Candidate, CandidateList, ChangeKind, ConfirmedCause,
    Deploy, HealthState, ImpactMap, IncidentStatus, PostmortemDraft, RemediationPlan, SuggestedRemediation,
    TimelineEntry, TimelineKind, TimestampNs, Verdict,
};
use serde::{Deserialize, Serialize};

use crate::operator::Operator;
use crate::postmortem;

/// Timeline settings; `[engine.timeline]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimelineConfig {
    /// Changes this long before an incident's first alert join its timeline,
    /// milliseconds.
    pub change_lookback_ms: u64,
    /// Entries kept per incident; later state changes and candidate versions are
    /// counted, not kept (the first alert, the mitigation, confirmations and the close
    /// always are). Also the most alerts and changes one incident keeps.
    pub max_entries: u32,
    /// A closed incident's timeline is kept this long (event time) for confirmations
    /// that come later, milliseconds.
    pub keep_closed_ms: u64,
    /// At most this many closed incidents are kept; the oldest go first.
    pub max_closed: u32,
    /// Recent changes remembered for incidents that have not opened yet.
    pub max_recent_changes: u32,
}

impl Default for TimelineConfig {
    fn default() -> Self {
        Self {
            change_lookback_ms: 2 * 3_600_000,
            max_entries: 1_000,
            keep_closed_ms: 7 * 24 * 3_600_000,
            max_closed: 256,
            max_recent_changes: 1_024,
        }
    }
}

impl TimelineConfig {
    /// Rejects settings that parse but cannot work (the message names the key).
    pub fn validate(&self) -> Result<(), String> {
        if self.max_entries < 10 {
            return Err("max_entries must be at least 10".into());
        }
        Ok(())
    }
}

/// What the timeline reads.
#[derive(Clone, Debug, PartialEq)]
pub enum TimelineInput {
    /// An alert, with the incident the tracker put it in.
    Alert {
        /// The incident.
        incident_id: String,
        /// The alert as received.
        alert: Alert,
    },
    /// A deploy or other change.
    Change(Deploy),
    /// A person confirmed a cause.
    Cause(ConfirmedCause),
    /// An impact-map version.
    Map(ImpactMap),
    /// A candidate-list version.
    Candidates(CandidateList),
    /// A remediation-plan version.
    Remediation(RemediationPlan),
}

/// A change as the timeline remembers it (without its specs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChangeFact {
    pub service: String,
    pub kind: ChangeKind,
    pub revision: String,
    pub previous_revision: Option<String>,
    pub author: Option<String>,
    pub time_ns: TimestampNs,
}

impl ChangeFact {
    fn of(d: &Deploy) -> Self {
        Self {
            service: d.service.clone(),
            kind: d.kind,
            revision: d.revision.clone(),
            previous_revision: d.previous_revision.clone().filter(|p| !p.is_empty()),
            author: d.author.clone(),
            time_ns: d.time_ns,
        }
    }

    /// `deploy of payments v1.8.2 → v1.9.0 by ana`.
    pub fn describe(&self) -> String {
        let what = postmortem::change_name(self.kind);
        let mut text = match (&self.previous_revision, self.kind) {
            (_, ChangeKind::ScheduledJob) => format!("{what} {} on {}", self.revision, self.service),
            (Some(prev), _) => format!("{what} of {} {prev} → {}", self.service, self.revision),
            (None, _) => format!("{what} of {} to {}", self.service, self.revision),
        };
        if let Some(author) = &self.author {
            text.push_str(&format!(" by {author}"));
        }
        text
    }
}

/// One service's running totals over the map versions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ServiceTotals {
    pub worst: HealthState,
    pub first_degraded_ns: TimestampNs,
    pub red_ns: u64,
    pub amber_ns: u64,
    pub peak_error_rate: f64,
    pub peak_p99_ms: f64,
}

/// Everything the timeline keeps about one incident.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Record {
    pub onset_ns: TimestampNs,
    pub entries: Vec<TimelineEntry>,
    pub dropped: u32,
    pub alerts: Vec<(String, AlertFact)>,
    pub changes: Vec<ChangeFact>,
    pub maps: u32,
    pub first_map_ns: TimestampNs,
    pub first_map_degraded: u32,
    pub last_map_ns: TimestampNs,
    /// Node states of the latest version.
    pub states: BTreeMap<String, HealthState>,
    /// Every service that was degraded, with its totals, and the order they first were.
    pub totals: BTreeMap<String, ServiceTotals>,
    pub degraded_order: Vec<String>,
    /// Every service any version showed.
    pub seen: BTreeSet<String>,
    pub root_services: Vec<String>,
    pub ever_spreading: bool,
    pub last_verdict: Option<Verdict>,
    pub peak_degraded: u32,
    pub peak_at_ns: TimestampNs,
    pub peak_nodes: u32,
    pub status: Option<IncidentStatus>,
    pub closed_ns: Option<TimestampNs>,
    pub candidates: Vec<Candidate>,
    pub low_confidence: bool,
    pub last_top: Vec<(String, i64)>,
    pub suggested: Vec<SuggestedRemediation>,
    pub applied: Option<(AppliedChange, TimestampNs)>,
    pub cause: Option<ConfirmedCause>,
    pub drafts: u32,
}

impl Record {
    fn push(
        &mut self,
        max: u32,
        time_ns: TimestampNs,
        kind: TimelineKind,
        service: Option<&str>,
        text: String,
    ) {
        self.push_state(max, time_ns, kind, service, None, text);
    }

    fn push_state(
        &mut self,
        max: u32,
        time_ns: TimestampNs,
        kind: TimelineKind,
        service: Option<&str>,
        state: Option<HealthState>,
        text: String,
    ) {
        let always = matches!(
            kind,
            TimelineKind::AlertFiring
                | TimelineKind::AlertResolved
                | TimelineKind::Mitigation
                | TimelineKind::CauseConfirmed
                | TimelineKind::Closed
                | TimelineKind::FirstMap
        );
        if !always && self.entries.len() >= max as usize {
            self.dropped += 1;
            return;
        }
        self.entries.push(TimelineEntry {
            time_ns,
            time: format_rfc3339(time_ns),
            kind,
            service: service.map(str::to_string),
            state,
            text,
        });
    }

    /// Open: its first alert fired and it has not closed.
    fn is_open(&self) -> bool {
        self.onset_ns > 0 && self.closed_ns.is_none()
    }

    /// A service this incident points at: alerted, degraded now, or the top candidate's.
    fn suspects(&self, service: &str) -> bool {
        self.root_services.iter().any(|s| s == service)
            || matches!(self.states.get(service), Some(HealthState::Red | HealthState::Amber))
            || self.candidates.first().is_some_and(|c| c.service == service)
    }
}

/// The timeline's whole state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TimelineSnapshot {
    records: BTreeMap<String, Record>,
    recent: VecDeque<ChangeFact>,
    pending: BTreeSet<String>,
}

/// Incident timelines and the post-mortem drafts written from them.
#[derive(Debug)]
pub struct IncidentTimeline {
    config: TimelineConfig,
    records: BTreeMap<String, Record>,
    /// Recent changes, oldest first, for incidents that open later.
    recent: VecDeque<ChangeFact>,
    /// Closed incidents by close time, for eviction.
    closed: BTreeSet<(TimestampNs, String)>,
    /// Incidents with a draft to write.
    pending: BTreeSet<String>,
}

impl IncidentTimeline {
    /// An empty timeline.
    pub fn new(config: TimelineConfig) -> Self {
        Self {
            config,
            records: BTreeMap::new(),
            recent: VecDeque::new(),
            closed: BTreeSet::new(),
            pending: BTreeSet::new(),
        }
    }

    fn on_alert(&mut self, incident_id: &str, alert: &Alert) {
        let max = self.config.max_entries;
        let lookback = self.config.change_lookback_ms.saturating_mul(1_000_000);
        let rec = self.records.entry(incident_id.to_string()).or_default();
        let time = alert.event_time_ns();
        if rec.onset_ns == 0 && alert.status.is_active() {
            rec.onset_ns = alert.starts_at_ns.max(1);
            let from = rec.onset_ns.saturating_sub(lookback);
            rec.changes.extend(self.recent.iter().filter(|c| c.time_ns >= from).cloned());
        }
        let name = alert.labels.get("alertname").cloned().unwrap_or_else(|| alert.fingerprint.clone());
        let known = rec.alerts.iter().position(|(fp, _)| *fp == alert.fingerprint);
        match (alert.status, known) {
            (AlertStatus::Resolved, Some(i)) => {
                rec.alerts[i].1.resolved_at = Some(format_rfc3339(time));
                let text = format!("{name} resolved on {}", alert.service);
                rec.push(max, time, TimelineKind::AlertResolved, Some(&alert.service), text);
            }
            (AlertStatus::Acknowledged, Some(_)) => {
                let text = format!("{name} on {} acknowledged", alert.service);
                rec.push(max, time, TimelineKind::AlertAcknowledged, Some(&alert.service), text);
            }
            (AlertStatus::Resolved, None) | (_, Some(_)) => {}
            (_, None) if rec.alerts.len() >= max as usize => rec.dropped += 1,
            (status, None) => {
                let fact = AlertFact {
                    name: name.clone(),
                    service: alert.service.clone(),
                    severity: postmortem::variant_name(&alert.severity),
                    source: postmortem::variant_name(&alert.source),
                    fired_at: format_rfc3339(alert.starts_at_ns),
                    resolved_at: None,
                };
                let mut text =
                    format!("{name} fired on {} ({}, {})", alert.service, fact.severity, fact.source);
                if !alert.summary.is_empty() {
                    text.push_str(&format!(": {}", alert.summary));
                }
                rec.alerts.push((alert.fingerprint.clone(), fact));
                rec.push(max, alert.starts_at_ns, TimelineKind::AlertFiring, Some(&alert.service), text);
                if status == AlertStatus::Acknowledged {
                    let text = format!("{name} on {} acknowledged", alert.service);
                    rec.push(max, time, TimelineKind::AlertAcknowledged, Some(&alert.service), text);
                }
            }
        }
    }

    /// Whether `deploy` is a change already taken: the same service, kind, revisions,
    /// author and time among the recent ones (`change_lookback_ms`, `max_recent_changes`).
    pub fn has_seen(&self, deploy: &Deploy) -> bool {
        let fact = ChangeFact::of(deploy);
        self.recent.iter().rev().any(|c| *c == fact)
    }

    fn on_change(&mut self, deploy: &Deploy) {
        let fact = ChangeFact::of(deploy);
        let max = self.config.max_entries;
        for rec in self.records.values_mut().filter(|r| r.is_open()) {
            if rec.changes.len() < max as usize {
                rec.changes.push(fact.clone());
            } else {
                rec.dropped += 1;
            }
            if rec.applied.is_none() && fact.time_ns >= rec.onset_ns && rec.suspects(&fact.service) {
                let matches_suggestion = rec.suggested.iter().any(|s| {
                    s.service == fact.service && s.target_revision.as_deref() == Some(fact.revision.as_str())
                });
                let applied = AppliedChange {
                    service: fact.service.clone(),
                    kind: fact.kind,
                    revision: fact.revision.clone(),
                    previous_revision: fact.previous_revision.clone(),
                    author: fact.author.clone(),
                    at: format_rfc3339(fact.time_ns),
                    matches_suggestion,
                };
                let mut text = format!("mitigation landed: {}", fact.describe());
                if matches_suggestion {
                    text.push_str(" (the suggested remediation)");
                }
                rec.push(max, fact.time_ns, TimelineKind::Mitigation, Some(&fact.service), text);
                rec.applied = Some((applied, fact.time_ns));
            }
        }
        self.recent.push_back(fact);
        let lookback = self.config.change_lookback_ms.saturating_mul(1_000_000);
        let newest = self.recent.back().map_or(0, |c| c.time_ns);
        while self.recent.len() > self.config.max_recent_changes as usize
            || self.recent.front().is_some_and(|c| c.time_ns.saturating_add(lookback) < newest)
        {
            self.recent.pop_front();
        }
    }

    fn on_cause(&mut self, cause: &ConfirmedCause) {
        let max = self.config.max_entries;
        let Some(rec) = self.records.get_mut(&cause.incident_id) else { return };
        let by = cause.confirmed_by.as_deref().map_or(String::new(), |by| format!(" by {by}"));
        let text = format!("{} confirmed as the cause{by}", cause.candidate);
        rec.push(max, cause.time_ns, TimelineKind::CauseConfirmed, None, text);
        rec.cause = Some(cause.clone());
        if rec.closed_ns.is_some() {
            self.pending.insert(cause.incident_id.clone());
        }
    }

    fn on_map(&mut self, map: &ImpactMap) {
        let max = self.config.max_entries;
        let rec = self.records.entry(map.incident_id.clone()).or_default();
        if rec.closed_ns.is_some() {
            return;
        }
        let t = map.event_time_ns;
        // The previous version's states held until now.
        let held = t.saturating_sub(rec.last_map_ns);
        for (service, state) in &rec.states {
            if let Some(totals) = rec.totals.get_mut(service) {
                match state {
                    HealthState::Red => totals.red_ns += held,
                    HealthState::Amber => totals.amber_ns += held,
                    HealthState::Gray | HealthState::Unknown => {}
                }
            }
        }
        let degraded = map.nodes.iter().filter(|n| is_degraded(n.state)).count() as u32;
        if rec.maps == 0 {
            rec.first_map_ns = t;
            rec.first_map_degraded = degraded;
            let text = format!(
                "first impact map: {} services in the blast radius, {degraded} red or amber, {}",
                map.nodes.len(),
                postmortem::variant_name(&map.verdict)
            );
            rec.push(max, t, TimelineKind::FirstMap, None, text);
        }
        rec.maps += 1;
        rec.last_map_ns = t;
        rec.root_services = map.root_services.clone();
        let mut states = BTreeMap::new();
        for node in &map.nodes {
            rec.seen.insert(node.service.clone());
            states.insert(node.service.clone(), node.state);
            let before = rec.states.get(&node.service).copied().unwrap_or(HealthState::Unknown);
            if is_degraded(node.state) {
                let totals = rec.totals.entry(node.service.clone()).or_insert_with(|| ServiceTotals {
                    worst: node.state,
                    first_degraded_ns: t,
                    red_ns: 0,
                    amber_ns: 0,
                    peak_error_rate: 0.0,
                    peak_p99_ms: 0.0,
                });
                if totals.first_degraded_ns == t && !rec.degraded_order.contains(&node.service) {
                    rec.degraded_order.push(node.service.clone());
                }
                totals.worst = totals.worst.min(node.state);
                totals.peak_error_rate = totals.peak_error_rate.max(node.error_rate.now);
                totals.peak_p99_ms = totals.peak_p99_ms.max(node.p99_ms.now);
            }
            if before != node.state && (is_degraded(before) || is_degraded(node.state)) {
                let text = format!(
                    "{} {}: error rate {:.1}% (baseline {:.1}%), p99 {:.0} ms (baseline {:.0} ms), {:.1} req/s",
                    node.service,
                    match node.state {
                        HealthState::Red => "turned red",
                        HealthState::Amber => "turned amber",
                        HealthState::Gray => "recovered (gray)",
                        HealthState::Unknown => "went quiet (no traffic)",
                    },
                    node.error_rate.now * 100.0,
                    node.error_rate.baseline * 100.0,
                    node.p99_ms.now,
                    node.p99_ms.baseline,
                    node.requests_per_s.now,
                );
                rec.push_state(
                    max,
                    t,
                    TimelineKind::StateChange,
                    Some(&node.service),
                    Some(node.state),
                    text,
                );
            }
        }
        let before = std::mem::replace(&mut rec.states, states);
        for (service, state) in before {
            if is_degraded(state) && !rec.states.contains_key(&service) {
                let text = format!("{service} left the blast radius");
                rec.push_state(
                    max,
                    t,
                    TimelineKind::StateChange,
                    Some(&service),
                    Some(HealthState::Unknown),
                    text,
                );
            }
        }
        if degraded > rec.peak_degraded {
            rec.peak_degraded = degraded;
            rec.peak_at_ns = t;
        }
        rec.peak_nodes = rec.peak_nodes.max(map.nodes.len() as u32);
        if rec.last_verdict.is_some_and(|v| v != map.verdict) {
            let text = format!("verdict: {}", postmortem::variant_name(&map.verdict));
            rec.push(max, t, TimelineKind::VerdictChange, None, text);
        }
        rec.ever_spreading |= map.verdict == Verdict::Spreading;
        rec.last_verdict = Some(map.verdict);
        rec.status = Some(map.status);
        if map.status.is_closed() {
            rec.closed_ns = Some(t);
            let text = match map.status {
                IncidentStatus::Stale => {
                    "closed as stale: no alert fired or changed for too long".to_string()
                }
                _ => "resolved: every alert of the incident resolved".to_string(),
            };
            rec.push(max, t, TimelineKind::Closed, None, text);
            self.closed.insert((t, map.incident_id.clone()));
            self.pending.insert(map.incident_id.clone());
        }
    }

    fn on_candidates(&mut self, list: &CandidateList) {
        let max = self.config.max_entries;
        let Some(rec) = self.records.get_mut(&list.incident_id) else { return };
        rec.candidates = list.candidates.clone();
        rec.low_confidence = list.low_confidence;
        let top: Vec<(String, i64)> =
            list.candidates.iter().take(3).map(|c| (c.key.clone(), c.confidence.round() as i64)).collect();
        if top != rec.last_top && !top.is_empty() {
            let shown: Vec<String> = top.iter().map(|(k, c)| format!("{k} ({c}%)")).collect();
            let text = format!("candidates v{}: {}", list.version, shown.join(", "));
            rec.push(max, list.event_time_ns, TimelineKind::Candidates, None, text);
            rec.last_top = top;
        }
    }

    fn on_plan(&mut self, plan: &RemediationPlan) {
        let max = self.config.max_entries;
        let Some(rec) = self.records.get_mut(&plan.incident_id) else { return };
        for r in &plan.remediations {
            if rec.suggested.iter().any(|s| s.candidate == r.candidate) {
                continue;
            }
            let text = format!("remediation suggested: {}", r.summary);
            rec.push(max, plan.event_time_ns, TimelineKind::Remediation, Some(&r.service), text);
            rec.suggested.push(SuggestedRemediation {
                candidate: r.candidate.clone(),
                action: r.action,
                service: r.service.clone(),
                summary: r.summary.clone(),
                target_revision: r.target_revision.clone(),
                suggested_at: format_rfc3339(plan.event_time_ns),
            });
        }
    }

    /// Drops closed incidents past `keep_closed_ms` or beyond `max_closed`.
    fn evict(&mut self, watermark: TimestampNs) {
        let keep = self.config.keep_closed_ms.saturating_mul(1_000_000);
        while let Some((closed, id)) = self.closed.first().cloned() {
            let expired = closed.saturating_add(keep) < watermark;
            if !expired && self.closed.len() <= self.config.max_closed as usize {
                break;
            }
            self.closed.pop_first();
            if !self.pending.contains(&id) {
                self.records.remove(&id);
            }
        }
    }
}

fn is_degraded(state: HealthState) -> bool {
    matches!(state, HealthState::Red | HealthState::Amber)
}

impl Operator for IncidentTimeline {
    type In = TimelineInput;
    type Out = PostmortemDraft;
    type Ctx = ();
    type Snapshot = TimelineSnapshot;

    fn on_event(&mut self, _: &(), input: &TimelineInput, _: &mut Vec<PostmortemDraft>) {
        match input {
            TimelineInput::Alert { incident_id, alert } => self.on_alert(incident_id, alert),
            TimelineInput::Change(deploy) => self.on_change(deploy),
            TimelineInput::Cause(cause) => self.on_cause(cause),
            TimelineInput::Map(map) => self.on_map(map),
            TimelineInput::Candidates(list) => self.on_candidates(list),
            TimelineInput::Remediation(plan) => self.on_plan(plan),
        }
    }

    /// Writes the drafts of incidents that closed or had their cause confirmed since
    /// the last call (after every input, so a draft follows the closing map, candidate
    /// list and plan of its step), then forgets closed incidents past their keep.
    fn on_watermark(&mut self, _: &(), watermark: TimestampNs, out: &mut Vec<PostmortemDraft>) {
        for id in std::mem::take(&mut self.pending) {
            let Some(rec) = self.records.get_mut(&id) else { continue };
            rec.drafts += 1;
            out.push(postmortem::draft(&id, rec));
        }
        self.evict(watermark);
    }

    fn snapshot(&self) -> TimelineSnapshot {
        TimelineSnapshot {
            records: self.records.clone(),
            recent: self.recent.clone(),
            pending: self.pending.clone(),
        }
    }

    fn restore(&mut self, snapshot: TimelineSnapshot) {
        self.closed =
            snapshot.records.iter().filter_map(|(id, r)| r.closed_ns.map(|t| (t, id.clone()))).collect();
        self.records = snapshot.records;
        self.recent = snapshot.recent;
        self.pending = snapshot.pending;
    }
}

#[cfg(test)]
#[path = "timeline/tests.rs"]
mod tests;
