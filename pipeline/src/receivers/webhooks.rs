//! `POST /v1/receivers/{name}` on the API server: the webhooks Alertmanager, PagerDuty,
//! GitHub and Argo CD send as they are, and CloudEvents over HTTP.
//!
//! Each request is checked ([`super::auth`]), un-gzipped, and made a record with its
//! producer's headers and CloudEvents attributes (`ce_specversion`, `ce_id`,
//! `ce_source` `/devloom/receivers/{name}`, `ce_type` `dev.devloom.received.{name}`,
//! `ce_time` when it arrived, which is also the event time of a payload that carries
//! none). A CloudEvent keeps its own attributes: binary mode's `ce-*` HTTP headers become
//! the Kafka binding's `ce_*` headers, a structured one stays as it is.
//!
//! Answers: 200 `{"accepted": N}` (PagerDuty Events v2 bodies get the Events API's own
//! 202 `{"status":"success","message":"Event processed","dedup_key":…}`); 400 with the
//! decoder's message (and a dead letter); 401 when the token or signature is wrong;
//! 413 over `max_body_bytes`; 503 with `Retry-After` while Devloom is behind.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentelemetry::KeyValue;
use opentelemetry::metrics::Counter;
use serde::Serialize;

use super::intake::Taken;
use super::{Intake, Receiver, ReceiversConfig, auth};
use crate::core::{Origin, RawRecord, wall_clock_ns};
use crate::http::api::error;

/// What the receiver routes need.
pub struct Receivers {
    /// `[receivers]`.
    pub config: ReceiversConfig,
    /// Where payloads go.
    pub intake: Arc<Intake>,
    /// Numbers the `ce_id`s this process gives.
    sequence: AtomicU64,
    /// `devloom.receiver.requests`, made at the first request (after telemetry started).
    requests: OnceLock<Counter<u64>>,
}

impl Receivers {
    /// Receivers over `intake`.
    pub fn new(config: ReceiversConfig, intake: Arc<Intake>) -> Arc<Self> {
        Arc::new(Self { config, intake, sequence: AtomicU64::new(0), requests: OnceLock::new() })
    }

    /// Counts one answered request: `devloom_receiver_requests_total{receiver, code}`,
    /// `code` being the HTTP status (gRPC answers counted by their HTTP equivalent).
    pub(crate) fn count(&self, receiver: Receiver, code: u16) {
        let counter = self.requests.get_or_init(|| {
            opentelemetry::global::meter(crate::telemetry::SCOPE)
                .u64_counter("devloom.receiver.requests")
                .with_description("Requests to the receivers, by receiver and HTTP status answered")
                .build()
        });
        counter.add(1, &[KeyValue::new("receiver", receiver.name()), KeyValue::new("code", i64::from(code))]);
    }

    /// Checks, un-gzips and records one request to `receiver`, or answers why not.
    pub(crate) fn record(
        &self,
        receiver: Receiver,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<RawRecord, Refusal> {
        auth::check(receiver, self.config.auth(receiver), headers, body).map_err(|denied| Refusal {
            status: StatusCode::UNAUTHORIZED,
            message: denied.0,
            bearer: self.config.auth(receiver).token.is_some(),
        })?;
        let payload = inflate(headers, body, self.config.max_body_bytes)?;
        let now = wall_clock_ns();
        let mut record = RawRecord::new(payload, receiver.expect(), Origin::Http { route: receiver.route() });
        record.fallback_time_ns = Some(now);
        for (name, value) in headers {
            let name = name.as_str();
            if let Some(attribute) = name.strip_prefix("ce-") {
                record.headers.push((format!("ce_{attribute}"), value.as_bytes().to_vec()));
            } else if KEPT.contains(&name) {
                record.headers.push((name.to_string(), value.as_bytes().to_vec()));
            }
        }
        let is_cloud_event = record.headers.iter().any(|(k, _)| k == "ce_specversion");
        if receiver == Receiver::Cloudevents {
            let media = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
            if !is_cloud_event && !media.starts_with("application/cloudevents+json") {
                let reason = if media.starts_with("application/cloudevents-batch+json") {
                    "batched CloudEvents are not read: send each event on its own (binary or structured mode)"
                } else {
                    "not a CloudEvent: no ce-specversion header (binary mode) and the content-type is not \
                     application/cloudevents+json (structured mode)"
                };
                return Err(Refusal::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, reason));
            }
        } else if !is_cloud_event {
            let id = headers
                .get("x-github-delivery")
                .and_then(|v| v.to_str().ok())
                .map(String::from)
                .unwrap_or_else(|| format!("{now:x}-{}", self.sequence.fetch_add(1, Ordering::Relaxed)));
            let time = devloom_schemas::time::format_rfc3339(now);
            for (key, value) in [
                ("ce_specversion", "1.0".to_string()),
                ("ce_id", id),
                ("ce_source", format!("/devloom/receivers/{}", receiver.name())),
                ("ce_type", format!("dev.devloom.received.{}", receiver.name())),
                ("ce_time", time),
            ] {
                record.headers.push((key.to_string(), value.into_bytes()));
            }
        }
        Ok(record)
    }
}

/// Producer headers kept with the payload (on the topic, in dead letters).
const KEPT: [&str; 6] = [
    "content-type",
    "user-agent",
    "x-github-event",
    "x-github-delivery",
    "x-pagerduty-signature",
    "x-hub-signature-256",
];

/// Why a request was not taken, before decoding: its HTTP status and message.
#[derive(Debug)]
pub struct Refusal {
    /// 401, 413, 415 or 400.
    pub status: StatusCode,
    /// What was wrong.
    pub message: String,
    /// A bearer token was asked for (`WWW-Authenticate: Bearer`).
    bearer: bool,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), bearer: false }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = error(self.status, self.message);
        if self.bearer {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The body, un-gzipped when `Content-Encoding: gzip` says so, never over `max` bytes.
fn inflate(headers: &HeaderMap, body: &[u8], max: usize) -> Result<Vec<u8>, Refusal> {
    use std::io::Read as _;
    let too_large = || {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over receivers.max_body_bytes ({max} bytes)"),
        )
    };
    match headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).map(str::trim) {
        None | Some("identity" | "") => (body.len() <= max).then(|| body.to_vec()).ok_or_else(too_large),
        Some(gzip) if gzip.eq_ignore_ascii_case("gzip") => {
            let mut out = Vec::new();
            let mut reader = flate2::read::GzDecoder::new(body).take(max as u64 + 1);
            reader.read_to_end(&mut out).map_err(|e| {
                Refusal::new(
                    StatusCode::BAD_REQUEST,
                    format!("Content-Encoding is gzip but the body is not: {e}"),
                )
            })?;
            (out.len() <= max).then_some(out).ok_or_else(too_large)
        }
        Some(other) => Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Encoding {other:?} is not read; send gzip or nothing"),
        )),
    }
}

/// A 503 telling the sender when to come back.
fn busy(config: &ReceiversConfig, reason: String) -> Response {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, reason);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(config.retry_after_s));
    response
}

#[derive(Serialize)]
struct Receipt {
    accepted: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    partial: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'static str>,
}

/// `POST /v1/receivers/{name}`.
pub async fn receive(
    State(receivers): State<Option<Arc<Receivers>>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let response = answer(receivers.as_ref(), &name, query.get("source"), &headers, &body).await;
    if let Some((receivers, receiver)) =
        receivers.zip(Receiver::ALL.into_iter().find(|r| r.name() == name && *r != Receiver::Otlp))
    {
        receivers.count(receiver, response.status().as_u16());
    }
    response
}

async fn answer(
    receivers: Option<&Arc<Receivers>>,
    name: &str,
    source: Option<&String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let Some(receivers) = receivers else {
        return error(
            StatusCode::NOT_FOUND,
            "the receivers are off: run `devloom run --receive` (or set [receivers] enabled = true)",
        );
    };
    let receiver = match Receiver::ALL.into_iter().find(|r| r.name() == name && *r != Receiver::Otlp) {
        Some(r) => r,
        None if name == "otlp" => {
            return error(
                StatusCode::NOT_FOUND,
                "OTLP/HTTP is POST /v1/traces on receivers.otlp_http_listen (4318)",
            );
        }
        None => {
            return error(
                StatusCode::NOT_FOUND,
                format!(
                    "no receiver {name:?}; there are alertmanager, pagerduty, github, argocd, cloudevents and catalog"
                ),
            );
        }
    };
    let mut record = match receivers.record(receiver, headers, body) {
        Ok(record) => record,
        Err(refusal) => return refusal.into_response(),
    };
    // A catalog snapshot replaces the one of its source: the message key on the topic.
    if receiver == Receiver::Catalog {
        match source.map(|s| s.trim()) {
            Some(s) if !s.is_empty() => record.key = Some(s.as_bytes().to_vec()),
            Some(_) => return error(StatusCode::BAD_REQUEST, "source must name the catalog's source"),
            None => {}
        }
    }
    if receiver == Receiver::Github
        && let Some(event) = headers.get("x-github-event").and_then(|v| v.to_str().ok())
        && event != "deployment_status"
    {
        let note = match event {
            "ping" => "pong: the webhook reaches Devloom",
            "deployment" => "a deployment takes effect with its deployment_status success; nothing to do yet",
            _ => "ignored: Devloom reads deployment_status events",
        };
        return Json(Receipt { accepted: 0, partial: None, note: Some(note) }).into_response();
    }
    let events_v2 = receiver == Receiver::Pagerduty
        && serde_json::from_slice::<serde_json::Value>(&record.payload)
            .is_ok_and(|v| v.get("event_action").is_some());
    match receivers.intake.take(record).await {
        // The Events API's own answer, with the dedup key a later resolve must carry.
        Taken::Accepted { alert_key, .. } if events_v2 => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "status": "success", "message": "Event processed", "dedup_key": alert_key })),
        )
            .into_response(),
        Taken::Accepted { events, partial, .. } => {
            Json(Receipt { accepted: events, partial, note: None }).into_response()
        }
        Taken::Rejected(reason) => error(StatusCode::BAD_REQUEST, reason),
        Taken::Busy(reason) | Taken::Failed(reason) => busy(&receivers.config, reason),
    }
}
