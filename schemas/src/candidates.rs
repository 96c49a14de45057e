//! Root-cause candidates: what may have caused an incident, each with a calibrated
//! confidence and the features behind it.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::impact::IncidentStatus;
use crate::time::TimestampNs;

/// Version of the [`CandidateList`] JSON contract.
pub const CANDIDATES_SCHEMA_VERSION: u32 = 1;

/// What kind of cause a candidate is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CandidateKind {
    /// A deploy (or rollback) of an affected service or one of its dependencies.
    Deploy,
    /// A configuration change.
    ConfigChange,
    /// A scheduled job (cron, batch) running near the onset.
    ScheduledJob,
    /// An uninstrumented database, queue or peer, known only from its callers.
    Dependency,
    /// A traffic spike at an entry point.
    TrafficSpike,
    /// An instrumented service's own code, resources or network: every alerted service
    /// and every red or amber service in the blast radius.
    Service,
}

/// One candidate cause.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Candidate {
    /// Stable identity within the incident, e.g. `deploy:payments@v2.4.0`,
    /// `dependency:postgres`, `service:checkout`, `scheduled_job:reports-nightly`.
    pub key: String,
    /// What kind of cause.
    pub kind: CandidateKind,
    /// The service it concerns.
    pub service: String,
    /// One line a human reads.
    pub summary: String,
    /// Calibrated confidence, 0–100: of candidates given confidence c, about c% were
    /// the cause (measured on held-out history), never above the precision the
    /// model's calibration incidents support.
    pub confidence: f64,
    /// Share of the incident's candidates (0–1, sums to 1 within the list).
    pub share: f64,
    /// Some feature lies outside what the model was trained on: the confidence is a
    /// guess. (Absent in archives written before the flag existed.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unfamiliar: Option<bool>,
    /// The model's inputs for this candidate, by feature name.
    pub features: BTreeMap<String, f64>,
}

/// A versioned, scored candidate list for one incident.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CandidateList {
    /// [`CANDIDATES_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The incident (same id as its impact maps).
    pub incident_id: String,
    /// 1, 2, … per incident; re-scored when evidence changes.
    pub version: u32,
    /// Open, resolved or stale.
    pub status: IncidentStatus,
    /// Alerted services, sorted.
    pub root_services: Vec<String>,
    /// Event time the incident began (its first alert), ns since epoch.
    pub onset_ns: TimestampNs,
    /// Event time of this version, ns since epoch.
    pub event_time_ns: TimestampNs,
    /// Set when the top confidence is low, the top two are close, or the top candidate
    /// is unfamiliar to the model: investigate before acting.
    pub low_confidence: bool,
    /// Identifies the model that scored the list (hash of its training data).
    pub model: String,
    /// Candidates, most likely first.
    pub candidates: Vec<Candidate>,
    /// Wall clock when the runtime published this version (RFC 3339).
    #[serde(default)]
    pub published_at: Option<String>,
}

impl CandidateList {
    /// The list with the wall-clock stamp removed: what determinism is defined on.
    pub fn without_wall_clock(&self) -> Self {
        Self { published_at: None, ..self.clone() }
    }
}

/// A confirmed root cause of a past incident: the label the scorer learns from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ConfirmedCause {
    /// The incident.
    pub incident_id: String,
    /// The key of the candidate that was the cause.
    pub candidate: String,
    /// When it was confirmed (event time), ns since epoch.
    pub time_ns: TimestampNs,
    /// Who confirmed it. (Absent in archives written before it was recorded.)
    #[serde(default)]
    pub confirmed_by: Option<String>,
}
