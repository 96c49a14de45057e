//! OTLP/HTTP: `POST /v1/traces` on its own listener (`[receivers] otlp_http_listen`,
//! 4318 as the OTLP specification's default), so an OpenTelemetry SDK or Collector
//! exports straight to Devloom with `OTEL_EXPORTER_OTLP_ENDPOINT=http://host:4318`.
//!
//! As the specification asks: the body is an `ExportTraceServiceRequest` in binary
//! protobuf (`application/x-protobuf`) or JSON (`application/json`), gzip allowed; the
//! answer is an `ExportTraceServiceResponse` in the request's encoding (200), with
//! `partial_success` when some spans were rejected. A request that cannot be decoded is
//! answered 400 with a `google.rpc.Status` (`code` 3, `INVALID_ARGUMENT`) naming what was
//! wrong, and dead-lettered; while Devloom is behind, 503 with `Retry-After` and a
//! `Status` of `code` 14 (`UNAVAILABLE`), which exporters retry.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message as _;
use serde_json::json;

use super::Receiver;
use super::intake::Taken;
use super::webhooks::Receivers;
use crate::http::api::error;

/// `google.rpc.Status`, the body of an OTLP error response.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
pub struct RpcStatus {
    /// A `google.rpc.Code`.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// What was wrong.
    #[prost(string, tag = "2")]
    pub message: String,
    /// Typed details (a `RetryInfo` while Devloom is behind).
    #[prost(message, repeated, tag = "3")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<Any>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
pub struct Any {
    /// `type.googleapis.com/<full name>`.
    #[prost(string, tag = "1")]
    pub type_url: String,
    /// The message, encoded.
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `google.rpc.RetryInfo`: when the client should retry.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RetryInfo {
    /// `google.protobuf.Duration`.
    #[prost(message, optional, tag = "1")]
    pub retry_delay: Option<ProtoDuration>,
}

impl RetryInfo {
    /// Retry after `seconds`.
    pub fn after(seconds: u64) -> Self {
        Self { retry_delay: Some(ProtoDuration { seconds: seconds as i64, nanos: 0 }) }
    }
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoDuration {
    /// Whole seconds.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds past them.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// `google.rpc.Code` `INVALID_ARGUMENT`.
const INVALID_ARGUMENT: i32 = 3;
/// `google.rpc.Code` `UNAVAILABLE`.
const UNAVAILABLE: i32 = 14;

/// The OTLP/HTTP router.
pub fn router(receivers: Arc<Receivers>) -> Router {
    let limit = DefaultBodyLimit::max(receivers.config.max_body_bytes);
    Router::new().route("/v1/traces", post(export).layer(limit)).with_state(receivers)
}

#[derive(Clone, Copy, PartialEq)]
enum Encoding {
    Protobuf,
    Json,
}

/// `POST /v1/traces`.
async fn export(State(receivers): State<Arc<Receivers>>, headers: HeaderMap, body: Bytes) -> Response {
    let response = answer(&receivers, &headers, &body).await;
    receivers.count(Receiver::Otlp, response.status().as_u16());
    response
}

async fn answer(receivers: &Receivers, headers: &HeaderMap, body: &[u8]) -> Response {
    let media = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let encoding = match media.split(';').next().unwrap_or_default().trim() {
        "application/x-protobuf" | "application/protobuf" => Encoding::Protobuf,
        "application/json" => Encoding::Json,
        other => {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("OTLP/HTTP takes application/x-protobuf or application/json, not {other:?}"),
            );
        }
    };
    let record = match receivers.record(Receiver::Otlp, headers, body) {
        Ok(record) => record,
        Err(refusal) => return refusal.into_response(),
    };
    match receivers.intake.take(record).await {
        Taken::Accepted { partial, .. } => {
            // The decoder rejects a request whole or keeps every span: a partial answer
            // only warns (`rejected_spans` 0 and a message), as the specification allows.
            let json = match &partial {
                Some(message) => json!({ "partialSuccess": { "rejectedSpans": 0, "errorMessage": message } }),
                None => json!({}),
            };
            let response = ExportTraceServiceResponse {
                partial_success: partial
                    .map(|message| ExportTracePartialSuccess { rejected_spans: 0, error_message: message }),
            };
            encoded(encoding, StatusCode::OK, response.encode_to_vec(), || serde_json::to_vec(&json))
        }
        Taken::Rejected(message) => {
            let status = RpcStatus { code: INVALID_ARGUMENT, message, details: Vec::new() };
            encoded(encoding, StatusCode::BAD_REQUEST, status.encode_to_vec(), || serde_json::to_vec(&status))
        }
        Taken::Busy(message) | Taken::Failed(message) => {
            let status = RpcStatus { code: UNAVAILABLE, message, details: Vec::new() };
            let mut response =
                encoded(encoding, StatusCode::SERVICE_UNAVAILABLE, status.encode_to_vec(), || {
                    serde_json::to_vec(&status)
                });
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(receivers.config.retry_after_s));
            response
        }
    }
}

fn encoded(
    encoding: Encoding,
    status: StatusCode,
    protobuf: Vec<u8>,
    json: impl FnOnce() -> serde_json::Result<Vec<u8>>,
) -> Response {
    match encoding {
        Encoding::Protobuf => {
            (status, [(header::CONTENT_TYPE, "application/x-protobuf")], protobuf).into_response()
        }
        Encoding::Json => match json() {
            Ok(body) => (status, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("encoding the answer: {e}")),
        },
    }
}
