//! Devloom's own alert and deploy JSON: the simplest way to feed Devloom by hand, and
//! what the simulator writes.
//!
//! ```json
//! {"service":"checkout","status":"firing","severity":"critical","starts_at":"2026-11-27T09:00:00Z",
//!  "fingerprint":"checkout-5xx","summary":"5xx over SLO","labels":{"team":"payments"}}
//! {"service":"payments","revision":"v42","previous_revision":"v41","time":"2026-11-27T08:58:00Z",
//!  "environment":"production","author":"ana","kind":"deploy","spec_before":"…","spec_after":"…"}
//! ```
//!
//! A confirmed cause (the causes input: `devloom.causes`, or a line of an input file);
//! `service` instead of `candidate` names a service Devloom did not list, and `time`
//! defaults to the transport's (the Kafka message timestamp):
//!
//! ```json
//! {"incident_id":"inc-3f2a…","candidate":"deploy:payments@v1.9.0","confirmed_by":"ana","time":"2026-11-27T10:30:00Z"}
//! ```
//!
//! Optional deploy keys tell how it was rolled out, for the rollback command:
//! `tool` (`kubectl`, `helm`, `argocd`, `git`), `release` (Helm release, Argo CD
//! application, `owner/repo`), `history_id` / `previous_history_id` (Helm revision,
//! Argo CD history id), and `spec_path` (the spec's file name, which gives its format).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{DecodeError, Format, from_json, json_time, stable_digest};
use crate::alert::{Alert, AlertSource, AlertStatus, Severity};
use crate::candidates::ConfirmedCause;
use crate::deploy::{ChangeKind, Deploy, DeploySource, RolloutTool};
use crate::event::Event;
use crate::time::{TimestampNs, format_rfc3339};

/// Devloom alert JSON as written on the wire.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertWire {
    service: String,
    status: AlertStatus,
    starts_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ends_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    severity: Option<Severity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    summary: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
}

/// Devloom deploy JSON as written on the wire.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployWire {
    service: String,
    revision: String,
    time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    environment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    author: Option<String>,
    #[serde(default)]
    kind: ChangeKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    spec_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    spec_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    spec_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tool: Option<RolloutTool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    release: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    history_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_history_id: Option<i64>,
}

/// Devloom cause JSON as written on the wire.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CauseWire {
    incident_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    candidate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    confirmed_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    time: Option<String>,
}

pub(crate) fn decode_alert(value: Value, out: &mut Vec<Event>) -> Result<(), DecodeError> {
    const F: Format = Format::DevloomAlert;
    let w: AlertWire = from_json(F, value)?;
    if w.service.trim().is_empty() {
        return Err(DecodeError::invalid(F, "service", "is empty: an alert must name its service"));
    }
    let starts_at_ns = json_time(F, "starts_at", &w.starts_at)?;
    let ends_at_ns = w.ends_at.as_deref().map(|t| json_time(F, "ends_at", t)).transpose()?;
    if w.status == AlertStatus::Resolved && ends_at_ns.is_none() {
        return Err(DecodeError::invalid(F, "ends_at", "a resolved alert needs ends_at"));
    }
    let fingerprint = w.fingerprint.unwrap_or_else(|| {
        stable_digest(
            std::iter::once(w.service.as_str())
                .chain(w.labels.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()])),
        )
    });
    out.push(Event::Alert(Alert {
        fingerprint,
        service: w.service,
        severity: w.severity.unwrap_or(Severity::Warning),
        status: w.status,
        starts_at_ns,
        ends_at_ns,
        labels: w.labels,
        summary: w.summary.unwrap_or_default(),
        source: AlertSource::Devloom,
    }));
    Ok(())
}

pub(crate) fn decode_deploy(value: Value, out: &mut Vec<Event>) -> Result<(), DecodeError> {
    const F: Format = Format::DevloomDeploy;
    let w: DeployWire = from_json(F, value)?;
    if w.service.trim().is_empty() {
        return Err(DecodeError::invalid(F, "service", "is empty: a change must name its service"));
    }
    out.push(Event::Deploy(Deploy {
        time_ns: json_time(F, "time", &w.time)?,
        service: w.service,
        environment: w.environment,
        revision: w.revision,
        previous_revision: w.previous_revision,
        author: w.author,
        kind: w.kind,
        spec_before: w.spec_before,
        spec_after: w.spec_after,
        source: DeploySource::Devloom,
        tool: w.tool,
        release: w.release,
        history_id: w.history_id,
        previous_history_id: w.previous_history_id,
        spec_path: w.spec_path,
    }));
    Ok(())
}

pub(crate) fn decode_cause(
    value: Value,
    fallback_time_ns: Option<TimestampNs>,
    out: &mut Vec<Event>,
) -> Result<(), DecodeError> {
    const F: Format = Format::DevloomCause;
    let w: CauseWire = from_json(F, value)?;
    if w.incident_id.trim().is_empty() {
        return Err(DecodeError::invalid(F, "incident_id", "is empty"));
    }
    let candidate = match (w.candidate, w.service) {
        (Some(key), None) if !key.trim().is_empty() => key,
        (None, Some(service)) if !service.trim().is_empty() => format!("service:{service}"),
        (Some(_), Some(_)) => {
            return Err(DecodeError::invalid(F, "service", "give candidate or service, not both"));
        }
        (None, None) => {
            return Err(DecodeError::invalid(
                F,
                "candidate",
                "missing: name the candidate key, or the service",
            ));
        }
        (Some(_), None) => return Err(DecodeError::invalid(F, "candidate", "is empty")),
        (None, Some(_)) => return Err(DecodeError::invalid(F, "service", "is empty")),
    };
    let time_ns = match (&w.time, fallback_time_ns) {
        (Some(time), _) => json_time(F, "time", time)?,
        (None, Some(fallback)) => fallback,
        (None, None) => {
            return Err(DecodeError::invalid(F, "time", "missing, and the transport gave no time"));
        }
    };
    out.push(Event::Cause(ConfirmedCause {
        incident_id: w.incident_id,
        candidate,
        time_ns,
        confirmed_by: w.confirmed_by.filter(|by| !by.trim().is_empty()),
    }));
    Ok(())
}

/// Writes a confirmed cause as Devloom cause JSON (one line, no trailing newline): what
/// the causes input reads.
pub fn encode_cause(cause: &ConfirmedCause) -> String {
    let w = CauseWire {
        incident_id: cause.incident_id.clone(),
        candidate: Some(cause.candidate.clone()),
        service: None,
        confirmed_by: cause.confirmed_by.clone(),
        time: Some(format_rfc3339(cause.time_ns)),
    };
    serde_json::to_string(&w).unwrap_or_default()
}

/// Writes an alert as Devloom alert JSON (one line, no trailing newline).
pub fn encode_alert(alert: &Alert) -> String {
    let w = AlertWire {
        service: alert.service.clone(),
        status: alert.status,
        starts_at: format_rfc3339(alert.starts_at_ns),
        ends_at: alert.ends_at_ns.map(format_rfc3339),
        severity: Some(alert.severity),
        fingerprint: Some(alert.fingerprint.clone()),
        summary: (!alert.summary.is_empty()).then(|| alert.summary.clone()),
        labels: alert.labels.clone(),
    };
    serde_json::to_string(&w).unwrap_or_default()
}

/// Writes a change as Devloom deploy JSON (one line, no trailing newline).
pub fn encode_deploy(deploy: &Deploy) -> String {
    let w = DeployWire {
        service: deploy.service.clone(),
        revision: deploy.revision.clone(),
        time: format_rfc3339(deploy.time_ns),
        previous_revision: deploy.previous_revision.clone(),
        environment: deploy.environment.clone(),
        author: deploy.author.clone(),
        kind: deploy.kind,
        spec_before: deploy.spec_before.clone(),
        spec_after: deploy.spec_after.clone(),
        spec_path: deploy.spec_path.clone(),
        tool: deploy.tool,
        release: deploy.release.clone(),
        history_id: deploy.history_id,
        previous_history_id: deploy.previous_history_id,
    };
    serde_json::to_string(&w).unwrap_or_default()
}
