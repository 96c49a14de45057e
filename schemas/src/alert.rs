//! The normalized alert, whatever system raised it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::time::TimestampNs;

/// Whether an alert is firing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// Firing and not yet acknowledged.
    Firing,
    /// Firing; a person acknowledged it (PagerDuty `acknowledge`).
    Acknowledged,
    /// No longer firing.
    Resolved,
}

impl AlertStatus {
    /// Firing or acknowledged.
    pub fn is_active(self) -> bool {
        !matches!(self, Self::Resolved)
    }
}

/// Severity, normalized from the many spellings in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Page someone now.
    Critical,
    /// Broken, not necessarily paging.
    Error,
    /// Degraded.
    Warning,
    /// For information.
    Info,
}

impl Severity {
    /// Reads `critical`/`page`/`p1`, `error`/`high`/`p2`, `warning`/`warn`/`p3`, and
    /// anything else as info. Case-insensitive.
    pub fn parse(text: &str) -> Self {
        match text.to_ascii_lowercase().as_str() {
            "critical" | "crit" | "page" | "p1" | "fatal" | "emergency" => Self::Critical,
            "error" | "err" | "high" | "major" | "p2" => Self::Error,
            "warning" | "warn" | "medium" | "minor" | "p3" => Self::Warning,
            _ => Self::Info,
        }
    }
}

/// Which kind of producer raised the alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertSource {
    /// Prometheus Alertmanager webhook v4.
    Alertmanager,
    /// PagerDuty Events API v2.
    Pagerduty,
    /// Devloom's own alert JSON (also what the simulator writes).
    Devloom,
}

/// One alert state change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable identity across firing / resolved (Alertmanager fingerprint, PagerDuty
    /// dedup key).
    pub fingerprint: String,
    /// The service the alert is about.
    pub service: String,
    /// Normalized severity.
    pub severity: Severity,
    /// Firing, acknowledged or resolved.
    pub status: AlertStatus,
    /// When the alert started firing (for an acknowledge or resolve: when that
    /// happened), ns since epoch; 0 when the producer and the transport gave no time (a
    /// PagerDuty resolve read from a file): the engine then takes the newest event time.
    pub starts_at_ns: TimestampNs,
    /// When it resolved, if it has.
    #[serde(default)]
    pub ends_at_ns: Option<TimestampNs>,
    /// All labels as sent, sorted.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// One-line human summary.
    #[serde(default)]
    pub summary: String,
    /// The producing system.
    pub source: AlertSource,
}

impl Alert {
    /// Event time of this state change: the end for a resolve, else the start.
    pub fn event_time_ns(&self) -> TimestampNs {
        match (self.status, self.ends_at_ns) {
            (AlertStatus::Resolved, Some(end)) => end,
            _ => self.starts_at_ns,
        }
    }
}
