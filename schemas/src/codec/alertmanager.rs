//! Prometheus Alertmanager webhook payload, version 4: one payload, many alerts.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::{DecodeError, Format, JsonContext, from_json, json_time, stable_digest};
use crate::alert::{Alert, AlertSource, AlertStatus, Severity};
use crate::event::Event;

const F: Format = Format::AlertmanagerV4;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Webhook {
    version: String,
    #[serde(default)]
    common_labels: BTreeMap<String, String>,
    alerts: Vec<WebhookAlert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebhookAlert {
    status: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    starts_at: String,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(default)]
    fingerprint: Option<String>,
}

pub(crate) fn decode(value: Value, ctx: &JsonContext<'_>, out: &mut Vec<Event>) -> Result<(), DecodeError> {
    let hook: Webhook = from_json(F, value)?;
    if hook.version != "4" {
        return Err(DecodeError::invalid(F, "version", format!("expected \"4\", got {:?}", hook.version)));
    }
    // Alert by alert: one bad alert is dead-lettered with its index, the rest still count.
    let total = hook.alerts.len();
    let mut rejected = Vec::new();
    for (i, a) in hook.alerts.into_iter().enumerate() {
        match alert(i, a, &hook.common_labels, ctx) {
            Ok(alert) => out.push(Event::Alert(alert)),
            Err(e) => {
                rejected.push(e.to_string().trim_start_matches("Alertmanager webhook v4: ").to_string())
            }
        }
    }
    if rejected.is_empty() { Ok(()) } else { Err(DecodeError::Partial { format: F, total, rejected }) }
}

/// One alert of the webhook, `i` its index.
fn alert(
    i: usize,
    a: WebhookAlert,
    common_labels: &BTreeMap<String, String>,
    ctx: &JsonContext<'_>,
) -> Result<Alert, DecodeError> {
    let status = match a.status.as_str() {
        "firing" => AlertStatus::Firing,
        "resolved" => AlertStatus::Resolved,
        other => {
            let reason = format!("expected \"firing\" or \"resolved\", got {other:?}");
            return Err(DecodeError::invalid(F, format!("alerts[{i}].status"), reason));
        }
    };
    // An empty label names nothing: the next label in the list is tried.
    let service = ctx
        .opts
        .alert_service_labels
        .iter()
        .find_map(|l| a.labels.get(l).or_else(|| common_labels.get(l)).filter(|v| !v.trim().is_empty()))
        .cloned()
        .ok_or_else(|| {
            let tried = ctx.opts.alert_service_labels.join(", ");
            DecodeError::invalid(
                F,
                format!("alerts[{i}].labels"),
                format!("no service label (tried {tried})"),
            )
        })?;
    let starts_at_ns = json_time(F, &format!("alerts[{i}].startsAt"), &a.starts_at)?;
    // A firing alert's endsAt is Alertmanager's resolve timeout, not an end.
    let ends_at_ns = match (status, a.ends_at.as_deref()) {
        (AlertStatus::Resolved, Some(t)) => Some(json_time(F, &format!("alerts[{i}].endsAt"), t)?),
        _ => None,
    };
    let severity = Severity::parse(a.labels.get("severity").map_or("warning", String::as_str));
    let summary = a
        .annotations
        .get("summary")
        .or(a.annotations.get("description"))
        .or(a.labels.get("alertname"))
        .cloned()
        .unwrap_or_default();
    let fingerprint = a
        .fingerprint
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| stable_digest(a.labels.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()])));
    Ok(Alert {
        fingerprint,
        service,
        severity,
        status,
        starts_at_ns,
        ends_at_ns,
        labels: a.labels,
        summary,
        source: AlertSource::Alertmanager,
    })
}
