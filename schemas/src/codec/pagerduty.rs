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
