//! PagerDuty Events API v2: `trigger`, `acknowledge`, `resolve`, keyed by `dedup_key`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::{DecodeError, Format, JsonContext, from_json, json_time, stable_digest};
use crate::alert::{Alert, AlertSource, AlertStatus, Severity};
use crate::event::Event;

const F: Format = Format::PagerDutyV2;

#[derive(Deserialize)]
struct PdEvent {
    #[serde(default)]
    routing_key: String,
    event_action: String,
    #[serde(default)]
    dedup_key: Option<String>,
    #[serde(default)]
    payload: Option<Payload>,
}

#[derive(Deserialize)]
struct Payload {
    summary: String,
    source: String,
    severity: String,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    component: Option<String>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    class: Option<String>,
    #[serde(default)]
    custom_details: Option<Value>,
}

pub(crate) fn decode(value: Value, ctx: &JsonContext<'_>, out: &mut Vec<Event>) -> Result<(), DecodeError> {
    let ev: PdEvent = from_json(F, value)?;
    let status = match ev.event_action.as_str() {
        "trigger" => AlertStatus::Firing,
        "acknowledge" => AlertStatus::Acknowledged,
        "resolve" => AlertStatus::Resolved,
        other => {
            let reason = format!("expected trigger, acknowledge or resolve, got {other:?}");
            return Err(DecodeError::invalid(F, "event_action", reason));
        }
    };
    let payload_time = match ev.payload.as_ref().and_then(|p| p.timestamp.as_deref()) {
        Some(t) => Some(json_time(F, "payload.timestamp", t)?),
        None => None,
    };
    let time = payload_time.or(ctx.fallback_time_ns);
    let Some(payload) = ev.payload else {
        // A resolve or acknowledge as the Events API documents it: the dedup key alone.
        // Without a transport time (a file) it is stamped by the engine with the newest
        // event time it has seen (`starts_at_ns` 0).
        let time = time.unwrap_or(0);
        // acknowledge / resolve carry only the dedup key; the service is the incident's.
        let dedup = ev.dedup_key.filter(|k| !k.is_empty()).ok_or_else(|| {
            DecodeError::invalid(F, "dedup_key", format!("{} needs a dedup_key", ev.event_action))
        })?;
        if status == AlertStatus::Firing {
            return Err(DecodeError::invalid(F, "payload", "trigger needs a payload"));
        }
        out.push(Event::Alert(Alert {
            fingerprint: dedup,
            service: String::new(),
            severity: Severity::Info,
            status,
            starts_at_ns: time,
            ends_at_ns: (status == AlertStatus::Resolved).then_some(time),
            labels: BTreeMap::new(),
            summary: String::new(),
            source: AlertSource::Pagerduty,
        }));
        return Ok(());
    };
    let time = time.ok_or_else(|| {
        DecodeError::invalid(F, "payload.timestamp", "no timestamp in the event and none from the transport")
    })?;
    let mut labels = BTreeMap::new();
    if let Some(Value::Object(details)) = &payload.custom_details {
        for (k, v) in details {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            labels.insert(k.clone(), text);
        }
    }
    for (k, v) in [("component", &payload.component), ("group", &payload.group), ("class", &payload.class)] {
        if let Some(v) = v {
            labels.entry(k.to_string()).or_insert_with(|| v.clone());
        }
    }
    labels.insert("source".to_string(), payload.source.clone());
    let service = ctx
        .opts
        .alert_service_labels
        .iter()
        .find_map(|l| labels.get(l))
        .or(payload.component.as_ref())
        .unwrap_or(&payload.source)
        .clone();
    let fingerprint = ev
        .dedup_key
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| stable_digest([ev.routing_key.as_str(), &payload.source, &payload.summary]));
    out.push(Event::Alert(Alert {
        fingerprint,
        service,
        severity: Severity::parse(&payload.severity),
        status,
        starts_at_ns: time,
        ends_at_ns: (status == AlertStatus::Resolved).then_some(time),
        labels,
        summary: payload.summary,
        source: AlertSource::Pagerduty,
    }));
    Ok(())
}

/// PagerDuty webhooks v3 (webhook subscriptions): one `event` per delivery. Events whose
/// `data.type` is `incident` carry the incident's state and become an alert keyed by its
/// `incident_key` (the Events API `dedup_key` that opened it, so both kinds of message
/// about one incident meet) or else its id; other events (notes, responders, services)
/// decode to nothing.
pub(crate) mod webhook {
    use std::collections::BTreeMap;

    use serde::Deserialize;
    use serde_json::Value;

    use super::super::{DecodeError, Format, JsonContext, from_json, json_time};
    use crate::alert::{Alert, AlertSource, AlertStatus, Severity};
    use crate::event::Event;

    const F: Format = Format::PagerDutyWebhookV3;

    #[derive(Deserialize)]
    struct Delivery {
        event: OutboundEvent,
    }

    #[derive(Deserialize)]
    struct OutboundEvent {
        #[serde(default)]
        id: Option<String>,
        event_type: String,
        occurred_at: String,
        #[serde(default)]
        data: Value,
    }

    #[derive(Deserialize)]
    struct Incident {
        id: String,
        status: String,
        #[serde(default)]
        incident_key: Option<String>,
        #[serde(default)]
        number: Option<u64>,
        #[serde(default)]
        created_at: Option<String>,
        #[serde(default)]
        title: Option<String>,
        service: Reference,
        #[serde(default)]
        html_url: Option<String>,
        #[serde(default)]
        urgency: Option<String>,
        #[serde(default)]
        priority: Option<Reference>,
        #[serde(default)]
        escalation_policy: Option<Reference>,
        #[serde(default)]
        teams: Vec<Reference>,
    }

    #[derive(Deserialize)]
    struct Reference {
        #[serde(default)]
        id: Option<String>,
        #[serde(default)]
        summary: Option<String>,
    }

    pub(crate) fn decode(
        value: Value,
        ctx: &JsonContext<'_>,
        out: &mut Vec<Event>,
    ) -> Result<(), DecodeError> {
        let delivery: Delivery = from_json(F, value)?;
        let event = delivery.event;
        if event.data.get("type").and_then(Value::as_str) != Some("incident") {
            return Ok(()); // a note, a responder, a service: no alert state in it
        }
        let occurred = json_time(F, "event.occurred_at", &event.occurred_at)?;
        let incident: Incident = from_json(F, event.data).map_err(|e| match e {
            DecodeError::Invalid { format, path, reason } => {
                DecodeError::Invalid { format, path: format!("event.data.{path}"), reason }
            }
            other => other,
        })?;
        let status = match incident.status.as_str() {
            "triggered" => AlertStatus::Firing,
            "acknowledged" => AlertStatus::Acknowledged,
            "resolved" => AlertStatus::Resolved,
            other => {
                let reason = format!("expected triggered, acknowledged or resolved, got {other:?}");
                return Err(DecodeError::invalid(F, "event.data.status", reason));
            }
        };
        let created = match incident.created_at.as_deref() {
            Some(t) => Some(json_time(F, "event.data.created_at", t)?),
            None => None,
        };
        let mut labels = BTreeMap::new();
        let mut label = |k: &str, v: Option<String>| {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                labels.insert(k.to_string(), v);
            }
        };
        label("event_type", Some(event.event_type.clone()));
        label("event_id", event.id);
        label("incident_id", Some(incident.id.clone()));
        label("incident_number", incident.number.map(|n| n.to_string()));
        label("html_url", incident.html_url);
        label("urgency", incident.urgency.clone());
        label("priority", incident.priority.as_ref().and_then(|p| p.summary.clone()));
        label("pagerduty_service_id", incident.service.id.clone());
        label("escalation_policy", incident.escalation_policy.and_then(|p| p.summary));
        let teams: Vec<String> = incident.teams.into_iter().filter_map(|t| t.summary).collect();
        label("teams", Some(teams.join(",")));
        let service = ctx
            .opts
            .alert_service_labels
            .iter()
            .find_map(|l| labels.get(l).cloned())
            .or(incident.service.summary)
            .ok_or_else(|| {
                DecodeError::invalid(F, "event.data.service.summary", "the incident names no service")
            })?;
        // P1..P5 when the account uses priorities, else the urgency (high / low).
        let severity = match incident.priority.and_then(|p| p.summary) {
            Some(p) => Severity::parse(&p),
            None => Severity::parse(incident.urgency.as_deref().unwrap_or("")),
        };
        let resolved = status == AlertStatus::Resolved;
        out.push(Event::Alert(Alert {
            fingerprint: incident.incident_key.filter(|k| !k.is_empty()).unwrap_or(incident.id),
            service,
            severity,
            status,
            // A resolve keeps when the incident began; a trigger or acknowledge is when
            // that happened.
            starts_at_ns: if resolved { created.unwrap_or(occurred) } else { occurred },
            ends_at_ns: resolved.then_some(occurred),
            labels,
            summary: incident.title.unwrap_or_default(),
            source: AlertSource::Pagerduty,
        }));
        Ok(())
    }
}
