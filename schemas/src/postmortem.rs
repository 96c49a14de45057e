//! Post-incident summary drafts: the mechanical part of a post-mortem, from what Devloom
//! saw. Every number is computed from the incident's timeline (its alerts, map versions,
//! candidate lists, remediation plans, changes and confirmations); the judgement parts
//! (contributing factors, action items) are left to people.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::candidates::CandidateKind;
use crate::deploy::ChangeKind;
use crate::impact::{HealthState, IncidentStatus, Verdict};
use crate::remediation::RemediationAction;
use crate::time::TimestampNs;

/// Version of the [`PostmortemDraft`] JSON contract.
pub const POSTMORTEM_SCHEMA_VERSION: u32 = 1;

/// A draft post-mortem for one closed incident. Version 1 is published when the
/// incident resolves (or goes stale); each later confirmation of its cause publishes the
/// next version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PostmortemDraft {
    /// [`POSTMORTEM_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The incident (same id as its impact maps).
    pub incident_id: String,
    /// 1, 2, … per incident.
    pub version: u32,
    /// One line: what broke and where.
    pub title: String,
    /// One paragraph assembled from the facts below; no invented prose.
    pub summary: String,
    /// How long, how far, how bad.
    pub impact: Impact,
    /// Who alerted, and when Devloom's first map came.
    pub detection: Detection,
    /// Everything that happened, in event time.
    pub timeline: Vec<TimelineEntry>,
    /// Entries beyond `[engine.timeline] max_entries` that were counted, not kept.
    pub timeline_dropped: u32,
    /// The confirmed cause, or the top candidate marked unconfirmed.
    pub root_cause: RootCause,
    /// What was suggested and what was applied.
    pub remediation: RemediationSummary,
    /// Left for the incident owner: Devloom does not guess why.
    pub contributing_factors: Vec<String>,
    /// Left for the incident owner.
    pub action_items: Vec<String>,
    /// Event time of this version, ns since epoch.
    pub event_time_ns: TimestampNs,
    /// Event time as RFC 3339.
    pub event_time: String,
    /// The draft rendered as Markdown with the configured template (the runtime fills
    /// it in; absent when read back without rendering).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub markdown: Option<String>,
    /// Wall clock when the runtime published this version (RFC 3339).
    #[serde(default)]
    pub published_at: Option<String>,
}

impl PostmortemDraft {
    /// The draft with the wall-clock stamp removed: what determinism is defined on.
    pub fn without_wall_clock(&self) -> Self {
        Self { published_at: None, ..self.clone() }
    }
}

/// How long, how far, how bad.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Impact {
    /// Resolved, or stale (closed without a resolve).
    pub status: IncidentStatus,
    /// When the first alert started firing (RFC 3339).
    pub started: String,
    /// Event time of the closing map (RFC 3339).
    pub ended: String,
    /// `ended − started`, milliseconds.
    pub duration_ms: u64,
    /// Alerted services, sorted.
    pub root_services: Vec<String>,
    /// `spreading` if any map version said so, else `contained`.
    pub verdict: Verdict,
    /// The verdict of the last map version.
    pub final_verdict: Verdict,
    /// Most services red or amber in one map version.
    pub peak_degraded: u32,
    /// Event time of the first version with that many (RFC 3339).
    pub peak_at: String,
    /// Most services in one map version's blast radius.
    pub peak_blast_radius: u32,
    /// Impact-map versions published.
    pub map_versions: u32,
    /// Every service that was red or amber in some version, in the order they first
    /// were.
    pub services: Vec<ServiceImpact>,
}

/// One service's part in the incident. A state holds from the map version that shows
/// it until the next version (or the closing one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceImpact {
    /// The service.
    pub service: String,
    /// The worst state it reached (red before amber).
    pub worst: HealthState,
    /// When it first was red or amber (RFC 3339).
    pub first_degraded: String,
    /// Time spent red, milliseconds.
    pub red_ms: u64,
    /// Time spent amber, milliseconds.
    pub amber_ms: u64,
    /// Highest error rate (failed / served) any version showed.
    pub peak_error_rate: f64,
    /// Highest p99 latency any version showed, milliseconds.
    pub peak_p99_ms: f64,
}

/// Who alerted and what Devloom said first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Detection {
    /// The incident's alerts, in the order they first fired.
    pub alerts: Vec<AlertFact>,
    /// Event time of the first impact-map version (RFC 3339).
    pub first_map_at: String,
    /// Services red or amber in that first version.
    pub first_map_degraded: u32,
}

/// One alert of the incident.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AlertFact {
    /// `alertname` label when there is one, else the fingerprint.
    pub name: String,
    /// The service it is about.
    pub service: String,
    /// Normalized severity (`critical`, `error`, `warning`, `info`).
    pub severity: String,
    /// What raised it (`alertmanager`, `pagerduty`, `devloom`).
    pub source: String,
    /// When it started firing (RFC 3339).
    pub fired_at: String,
    /// When it resolved (RFC 3339), if it did.
    pub resolved_at: Option<String>,
}

/// What one timeline entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimelineKind {
    /// A deploy, config change, job or rollback on a service of the blast radius, in
    /// the lookback window or during the incident.
    Change,
    /// An alert started firing.
    AlertFiring,
    /// A person acknowledged an alert.
    AlertAcknowledged,
    /// An alert resolved.
    AlertResolved,
    /// The first impact map.
    FirstMap,
    /// A service of the blast radius changed state.
    StateChange,
    /// The verdict changed.
    VerdictChange,
    /// A candidate-list version moved the top three.
    Candidates,
    /// A remediation was first suggested.
    Remediation,
    /// The change that landed on a suspected service during the incident.
    Mitigation,
    /// Someone confirmed the cause.
    CauseConfirmed,
    /// The incident resolved or went stale.
    Closed,
}

/// One thing that happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TimelineEntry {
    /// Event time, ns since epoch.
    pub time_ns: TimestampNs,
    /// Event time as RFC 3339.
    pub time: String,
    /// What kind of entry.
    pub kind: TimelineKind,
    /// The service it concerns, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// For a state change: the new state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<HealthState>,
    /// One line, from the facts.
    pub text: String,
}

/// Whether a person confirmed the cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CauseStatus {
    /// Confirmed (on the causes input or with `devloom history confirm`).
    Confirmed,
    /// Devloom's top candidate, not confirmed by anyone.
    Unconfirmed,
    /// No candidate list and no confirmation.
    Unknown,
}

/// The root cause as far as it is known.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RootCause {
    /// Confirmed, unconfirmed (top candidate) or unknown.
    pub status: CauseStatus,
    /// Candidate key (`deploy:payments@v1.9.0`, `service:checkout`).
    pub key: Option<String>,
    /// Kind of cause, when it was a candidate.
    pub kind: Option<CandidateKind>,
    /// The service it concerns.
    pub service: Option<String>,
    /// The candidate's one-line summary.
    pub summary: Option<String>,
    /// Its confidence in the last candidate list, 0–100.
    pub confidence: Option<f64>,
    /// Its rank in the last candidate list (1 = top); absent when not listed.
    pub rank: Option<u32>,
    /// The last candidate list was flagged low-confidence.
    pub low_confidence: bool,
    /// Who confirmed it.
    pub confirmed_by: Option<String>,
    /// When it was confirmed (RFC 3339).
    pub confirmed_at: Option<String>,
}

/// A remediation Devloom suggested.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SuggestedRemediation {
    /// The candidate it undoes.
    pub candidate: String,
    /// Rollback, config revert or roll-forward.
    pub action: RemediationAction,
    /// The service.
    pub service: String,
    /// The plan's one-line summary.
    pub summary: String,
    /// The revision it returns to.
    pub target_revision: Option<String>,
    /// When it was first suggested (RFC 3339).
    pub suggested_at: String,
}

/// A change that landed on a suspected service while the incident was open.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AppliedChange {
    /// The service.
    pub service: String,
    /// Deploy, rollback, config change or job.
    pub kind: ChangeKind,
    /// Revision after.
    pub revision: String,
    /// Revision before.
    pub previous_revision: Option<String>,
    /// Who.
    pub author: Option<String>,
    /// When (RFC 3339).
    pub at: String,
    /// It returned the service to the revision a suggested remediation named.
    pub matches_suggestion: bool,
}

/// What was suggested and what was applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RemediationSummary {
    /// Every remediation suggested, in the order first suggested.
    pub suggested: Vec<SuggestedRemediation>,
    /// The first change that landed on a suspected service during the incident.
    pub applied: Option<AppliedChange>,
    /// From the first alert to that change, milliseconds.
    pub time_to_mitigate_ms: Option<u64>,
}
