//! Wire codecs: what existing producers write, turned into [`Event`]s.
//!
//! Detection order: CloudEvents binary headers (`ce_specversion`), then the
//! `content-type` header, then sniffing the payload (a JSON object is recognized by its
//! keys; anything else on a traces input is read as OTLP protobuf).

mod alertmanager;
mod argocd;
pub mod catalog;
mod cloudevents;
mod devloom_json;
pub use devloom_json::{encode_alert, encode_cause, encode_deploy};
mod github;
mod json;
pub mod otlp;
mod otlp_attributes;
pub mod otlp_fast;
pub mod otlp_json;
mod pagerduty;
pub mod redact;

use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::catalog::CatalogFormat;
use crate::event::Event;
pub(crate) use crate::ids::stable_digest;
use crate::time::TimestampNs;

/// Every wire format Devloom reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    /// OTLP protobuf `ExportTraceServiceRequest` (the Collector's Kafka exporter).
    OtlpProtobuf,
    /// OTLP JSON `ExportTraceServiceRequest`.
    OtlpJson,
    /// Alertmanager webhook payload, version 4.
    AlertmanagerV4,
    /// PagerDuty Events API v2.
    PagerDutyV2,
    /// PagerDuty webhooks v3 (webhook subscriptions).
    PagerDutyWebhookV3,
    /// Devloom alert JSON.
    DevloomAlert,
    /// Devloom deploy JSON.
    DevloomDeploy,
    /// Argo CD `Application` with status history.
    ArgoCdApplication,
    /// GitHub `deployment_status` webhook.
    GithubDeploymentStatus,
    /// Devloom cause JSON (a confirmed root cause).
    DevloomCause,
    /// CloudEvents 1.0 structured mode (`application/cloudevents+json`).
    CloudEventsStructured,
    /// Backstage entity YAML (`catalog-info.yaml`).
    BackstageEntities,
    /// PagerDuty services + dependencies export (REST API JSON).
    PagerDutyServices,
    /// Devloom catalog file.
    DevloomCatalog,
}

impl Format {
    /// Short human name used in errors and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::OtlpProtobuf => "OTLP protobuf",
            Self::OtlpJson => "OTLP JSON",
            Self::AlertmanagerV4 => "Alertmanager webhook v4",
            Self::PagerDutyV2 => "PagerDuty Events v2",
            Self::PagerDutyWebhookV3 => "PagerDuty webhook v3",
            Self::DevloomAlert => "Devloom alert JSON",
            Self::DevloomDeploy => "Devloom deploy JSON",
            Self::ArgoCdApplication => "Argo CD Application",
            Self::GithubDeploymentStatus => "GitHub deployment_status",
            Self::DevloomCause => "Devloom cause JSON",
            Self::CloudEventsStructured => "CloudEvents structured JSON",
            Self::BackstageEntities => "Backstage entity YAML",
            Self::PagerDutyServices => "PagerDuty services export",
            Self::DevloomCatalog => "Devloom catalog",
        }
    }

    fn accepted_by(self, expect: Expect) -> bool {
        match expect {
            Expect::Any => true,
            Expect::Traces => matches!(self, Self::OtlpProtobuf | Self::OtlpJson),
            Expect::Alerts => {
                matches!(
                    self,
                    Self::AlertmanagerV4 | Self::PagerDutyV2 | Self::PagerDutyWebhookV3 | Self::DevloomAlert
                )
            }
            Expect::Deploys => {
                matches!(self, Self::DevloomDeploy | Self::ArgoCdApplication | Self::GithubDeploymentStatus)
            }
            Expect::Causes => self == Self::DevloomCause,
            Expect::Catalog => {
                matches!(self, Self::BackstageEntities | Self::PagerDutyServices | Self::DevloomCatalog)
            }
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which family of inputs a source carries; a topic of alerts rejects spans.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Expect {
    /// Trace formats only.
    Traces,
    /// Alert formats only.
    Alerts,
    /// Deploy / change formats only.
    Deploys,
    /// Confirmed causes only.
    Causes,
    /// Service catalog snapshots only.
    Catalog,
    /// Anything (files, stdin).
    #[default]
    Any,
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Traces => "traces",
            Self::Alerts => "alerts",
            Self::Deploys => "deploys",
            Self::Causes => "causes",
            Self::Catalog => "catalog",
            Self::Any => "any",
        })
    }
}

/// Why a payload could not be decoded. The text names the format tried and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The payload was recognized as `format` but is invalid at `path`.
    #[error("{format}: invalid at {path}: {reason}")]
    Invalid {
        /// Format the payload was read as.
        format: Format,
        /// JSON path (`alerts[2].labels`) or protobuf field path.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// The payload matched no accepted format.
    #[error("unrecognized payload for {expect} input: {detail} (accepted: {accepted})")]
    Unrecognized {
        /// The input family.
        expect: Expect,
        /// What the payload looked like.
        detail: String,
        /// The formats that were tried.
        accepted: String,
    },
    /// Some items of a payload that holds many (an Alertmanager webhook's alerts) are
    /// invalid; the others were decoded into `out` as usual.
    #[error("{format}: {} of {total} items invalid: {}", rejected.len(), rejected.join("; "))]
    Partial {
        /// Format the payload was read as.
        format: Format,
        /// Items in the payload.
        total: usize,
        /// Each invalid item: its path and what was wrong.
        rejected: Vec<String>,
    },
    /// The payload is a known format that this input does not accept.
    #[error("{format} is not accepted on a {expect} input")]
    WrongInput {
        /// Format detected.
        format: Format,
        /// The input family.
        expect: Expect,
    },
}

impl DecodeError {
    pub(crate) fn invalid(format: Format, path: impl Into<String>, reason: impl fmt::Display) -> Self {
        Self::Invalid { format, path: path.into(), reason: reason.to_string() }
    }
}

/// Settings that change how payloads are read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Alert labels that name the service, in order of preference.
    pub alert_service_labels: Vec<String>,
    /// The largest record read: a longer line or message is not held whole but
    /// dead-lettered with its size and first bytes.
    pub max_record_bytes: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            alert_service_labels: ["service", "service_name", "app", "job"].map(String::from).to_vec(),
            max_record_bytes: 64 << 20,
        }
    }
}

/// One message as a transport delivers it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Message<'a> {
    /// The payload bytes.
    pub payload: &'a [u8],
    /// Transport headers (Kafka headers), in order. Keys compare case-insensitively.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// Time to use when the payload itself carries none (Kafka message timestamp).
    pub fallback_time_ns: Option<TimestampNs>,
    /// The transport's key (Kafka message key): names a catalog snapshot's source.
    pub key: Option<&'a [u8]>,
}

impl<'a> Message<'a> {
    /// A message with only a payload.
    pub fn bytes(payload: &'a [u8]) -> Self {
        Self { payload, ..Self::default() }
    }

    /// The first header named `key` (case-insensitive), as text.
    pub fn header(&self, key: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
}

/// Decodes one message into `out`, returning the format it was read as. A message may
/// legitimately yield no events (a GitHub `pending` status, an OTLP request with no spans).
pub fn decode(
    msg: &Message<'_>,
    expect: Expect,
    opts: &DecodeOptions,
    out: &mut Vec<Event>,
) -> Result<Format, DecodeError> {
    let start = out.len();
    let result = if msg.header("ce_specversion").is_some() {
        cloudevents::binary_time(msg).and_then(|time| {
            let content_type = msg.header("content-type").or(msg.header("ce_datacontenttype"));
            decode_payload(msg.payload, content_type, time.or(msg.fallback_time_ns), expect, opts, out)
        })
    } else {
        decode_payload(msg.payload, msg.header("content-type"), msg.fallback_time_ns, expect, opts, out)
    };
    // Every change, from any format and salvaged ones too, loses its Secret values here;
    // a catalog snapshot takes its source from the key.
    let key = msg.key.and_then(|k| std::str::from_utf8(k).ok()).map(str::trim).filter(|k| !k.is_empty());
    for event in &mut out[start..] {
        match event {
            Event::Deploy(deploy) => redact::redact_deploy(deploy),
            Event::Catalog(snapshot) => {
                if let Some(key) = key {
                    snapshot.source = key.to_string();
                }
            }
            _ => {}
        }
    }
    result
}

/// Decodes a bare payload whose content type (if any) is known.
fn decode_payload(
    payload: &[u8],
    content_type: Option<&str>,
    fallback_time_ns: Option<TimestampNs>,
    expect: Expect,
    opts: &DecodeOptions,
    out: &mut Vec<Event>,
) -> Result<Format, DecodeError> {
    let media = content_type
        .map(|ct| ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .unwrap_or_default();
    let protobuf = matches!(media.as_str(), "application/x-protobuf" | "application/protobuf");
    if protobuf {
        if !Format::OtlpProtobuf.accepted_by(expect) {
            return Err(DecodeError::WrongInput { format: Format::OtlpProtobuf, expect });
        }
        otlp_fast::decode(payload, out)?;
        return Ok(Format::OtlpProtobuf);
    }
    if media.is_empty() && !looks_like_json(payload) && expect_allows_protobuf(expect) {
        return decode_sniffed_protobuf(payload, content_type, expect, out);
    }
    if !looks_like_json(payload) && expect == Expect::Catalog {
        return catalog::decode_yaml(payload, fallback_time_ns, out);
    }
    if !looks_like_json(payload) {
        return Err(DecodeError::Unrecognized {
            expect,
            detail: describe(payload, content_type),
            accepted: accepted_list(expect),
        });
    }
    if Format::OtlpJson.accepted_by(expect) && starts_otlp_json(payload) {
        otlp_json::decode(payload, out)?;
        return Ok(Format::OtlpJson);
    }
    let value: Value = match json::parse(payload) {
        Ok(value) => value,
        // An OTLP request starts with 0x0a (a newline to a sniffer) and its first
        // ResourceSpans' length, which may be 0x7b (`{`): sniffed JSON that does not
        // parse is read as protobuf when it is that.
        Err(_) if media.is_empty() && expect_allows_protobuf(expect) && payload.first() == Some(&0x0a) => {
            return decode_sniffed_protobuf(payload, content_type, expect, out);
        }
        // Several JSON documents in one YAML stream (a PagerDuty export page by page).
        Err(_) if expect == Expect::Catalog => return catalog::decode_yaml(payload, fallback_time_ns, out),
        Err(e) if e.is_data() => {
            return Err(DecodeError::Unrecognized {
                expect,
                detail: e.to_string(),
                accepted: accepted_list(expect),
            });
        }
        Err(e) => {
            return Err(DecodeError::Unrecognized {
                expect,
                detail: format!("malformed JSON at line {} column {}: {e}", e.line(), e.column()),
                accepted: accepted_list(expect),
            });
        }
    };
    let ctx = JsonContext { fallback_time_ns, opts };
    decode_json(value, expect, &ctx, out)
}

/// A payload without a content type that is not JSON, read as OTLP protobuf.
fn decode_sniffed_protobuf(
    payload: &[u8],
    content_type: Option<&str>,
    expect: Expect,
    out: &mut Vec<Event>,
) -> Result<Format, DecodeError> {
    match otlp_fast::decode(payload, out) {
        Ok(()) => Ok(Format::OtlpProtobuf),
        // Sniffed, not declared: printable text was never meant as protobuf.
        Err(_) if is_text(payload) => Err(DecodeError::Unrecognized {
            expect,
            detail: format!(
                "text that is neither JSON nor OTLP protobuf: {}",
                describe(payload, content_type)
            ),
            accepted: accepted_list(expect),
        }),
        Err(e) => Err(e),
    }
}

/// What JSON decoders need besides the document.
pub(crate) struct JsonContext<'a> {
    pub fallback_time_ns: Option<TimestampNs>,
    pub opts: &'a DecodeOptions,
}

fn decode_json(
    value: Value,
    expect: Expect,
    ctx: &JsonContext<'_>,
    out: &mut Vec<Event>,
) -> Result<Format, DecodeError> {
    let Some(format) = sniff_json(&value) else {
        return Err(DecodeError::Unrecognized {
            expect,
            detail: describe_json(&value),
            accepted: accepted_list(expect),
        });
    };
    if format == Format::CloudEventsStructured {
        let inner = cloudevents::unwrap_structured(value)?;
        let fallback = inner.time_ns.or(ctx.fallback_time_ns);
        return decode_payload(&inner.data, inner.content_type.as_deref(), fallback, expect, ctx.opts, out);
    }
    if !format.accepted_by(expect) {
        return Err(DecodeError::WrongInput { format, expect });
    }
    match format {
        Format::OtlpJson => otlp::decode_json(value, out)?,
        Format::AlertmanagerV4 => alertmanager::decode(value, ctx, out)?,
        Format::PagerDutyV2 => pagerduty::decode(value, ctx, out)?,
        Format::PagerDutyWebhookV3 => pagerduty::webhook::decode(value, ctx, out)?,
        Format::DevloomAlert => devloom_json::decode_alert(value, out)?,
        Format::DevloomDeploy => devloom_json::decode_deploy(value, out)?,
        Format::ArgoCdApplication => argocd::decode(value, out)?,
        Format::GithubDeploymentStatus => github::decode(value, out)?,
        Format::DevloomCause => devloom_json::decode_cause(value, ctx.fallback_time_ns, out)?,
        Format::BackstageEntities => {
            catalog::decode_documents(CatalogFormat::Backstage, vec![value], ctx.fallback_time_ns, out)
                .map(drop)?
        }
        Format::PagerDutyServices => {
            catalog::decode_documents(CatalogFormat::Pagerduty, vec![value], ctx.fallback_time_ns, out)
                .map(drop)?
        }
        Format::DevloomCatalog => {
            catalog::decode_documents(CatalogFormat::Devloom, vec![value], ctx.fallback_time_ns, out)
                .map(drop)?
        }
        // Never sniffed from JSON / unwrapped above; kept total without a panic.
        Format::OtlpProtobuf | Format::CloudEventsStructured => {
            return Err(DecodeError::WrongInput { format, expect });
        }
    }
    Ok(format)
}

/// Recognizes a JSON document by the keys its format requires.
fn sniff_json(value: &Value) -> Option<Format> {
    let obj = value.as_object()?;
    let has = |k: &str| obj.contains_key(k);
    Some(if has("resourceSpans") || has("resource_spans") {
        Format::OtlpJson
    } else if has("specversion") {
        Format::CloudEventsStructured
    } else if has("alerts") && has("version") {
        Format::AlertmanagerV4
    } else if has("event_action") {
        Format::PagerDutyV2
    } else if obj.get("event").is_some_and(|e| e.get("event_type").is_some()) {
        Format::PagerDutyWebhookV3
    } else if has("incident_id") && (has("candidate") || has("service")) {
        Format::DevloomCause
    } else if has("deployment_status") && has("deployment") {
        Format::GithubDeploymentStatus
    } else if obj.get("kind").and_then(Value::as_str) == Some("Application") {
        Format::ArgoCdApplication
    } else if has("revision") && has("service") {
        Format::DevloomDeploy
    } else if has("service") && has("status") {
        Format::DevloomAlert
    } else {
        return catalog::sniff(value).map(catalog::format_of);
    })
}

/// A JSON object whose first key is `resourceSpans` (or `resource_spans`): OTLP JSON as
/// every exporter writes it, read without sniffing through a `Value` first.
fn starts_otlp_json(payload: &[u8]) -> bool {
    let rest = payload.trim_ascii_start();
    let Some(rest) = rest.strip_prefix(b"{") else { return false };
    let rest = rest.trim_ascii_start();
    rest.starts_with(b"\"resourceSpans\"") || rest.starts_with(b"\"resource_spans\"")
}

fn looks_like_json(payload: &[u8]) -> bool {
    matches!(payload.iter().find(|b| !b.is_ascii_whitespace()), Some(b'{'))
}

fn is_text(payload: &[u8]) -> bool {
    std::str::from_utf8(payload).is_ok_and(|t| t.chars().all(|c| !c.is_control() || c.is_whitespace()))
}

fn expect_allows_protobuf(expect: Expect) -> bool {
    matches!(expect, Expect::Traces | Expect::Any)
}

pub(crate) fn accepted_list(expect: Expect) -> String {
    const ALL: [Format; 14] = [
        Format::OtlpProtobuf,
        Format::OtlpJson,
        Format::AlertmanagerV4,
        Format::PagerDutyV2,
        Format::PagerDutyWebhookV3,
        Format::DevloomAlert,
        Format::DevloomDeploy,
        Format::ArgoCdApplication,
        Format::GithubDeploymentStatus,
        Format::DevloomCause,
        Format::CloudEventsStructured,
        Format::BackstageEntities,
        Format::PagerDutyServices,
        Format::DevloomCatalog,
    ];
    ALL.iter()
        .filter(|f| **f == Format::CloudEventsStructured || f.accepted_by(expect))
        .map(|f| f.name())
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe(payload: &[u8], content_type: Option<&str>) -> String {
    let shown: String = String::from_utf8_lossy(&payload[..payload.len().min(40)])
        .chars()
        .map(|c| if c.is_control() { '.' } else { c })
        .collect();
    match content_type {
        Some(ct) => format!("{} bytes of content-type {ct:?} starting {shown:?}", payload.len()),
        None => format!("{} bytes starting {shown:?}", payload.len()),
    }
}

fn describe_json(value: &Value) -> String {
    match value.as_object() {
        Some(obj) => {
            let keys: Vec<&str> = obj.keys().map(String::as_str).take(8).collect();
            format!("JSON object with keys [{}] matches no known format", keys.join(", "))
        }
        None => "JSON document is not an object".to_string(),
    }
}

/// Deserializes `value` as `T`, reporting the JSON path of the first error.
pub(crate) fn from_json<T: DeserializeOwned>(format: Format, value: Value) -> Result<T, DecodeError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        DecodeError::invalid(format, path, e.into_inner())
    })
}

/// Parses an RFC 3339 time found at `path`.
pub(crate) fn json_time(format: Format, path: &str, text: &str) -> Result<TimestampNs, DecodeError> {
    crate::time::parse_rfc3339(text).map_err(|e| DecodeError::invalid(format, path, e))
}

#[cfg(test)]
mod tests;
