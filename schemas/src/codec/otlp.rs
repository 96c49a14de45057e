//! OTLP traces through the generated `opentelemetry-proto` types: the reference decoder
//! (the selective decoder in [`super::otlp_fast`] is tested against it) and the OTLP JSON
//! decoder.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message as _;
use serde_json::Value;

pub use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use super::otlp_attributes::{AttrValue, ResourceAttributes, ResourceParts, SpanAttributes};
use super::{DecodeError, Format, from_json};
use crate::event::Event;
use crate::ids::{SpanId, TraceId};
use crate::span::{Span, SpanKind, SpanLink};
use crate::time::check_span_times;

/// Decodes protobuf bytes into the generated types, then normalizes. The naive path,
/// kept as the reference for the selective decoder.
pub fn decode_reference(bytes: &[u8], out: &mut Vec<Event>) -> Result<(), DecodeError> {
    let request = ExportTraceServiceRequest::decode(bytes)
        .map_err(|e| DecodeError::invalid(Format::OtlpProtobuf, "ExportTraceServiceRequest", e))?;
    normalize(&request, Format::OtlpProtobuf, out)
}

/// Decodes an OTLP JSON document (hex ids in either case, integer enums, 64-bit integers
/// as numbers or strings) into the generated types, then normalizes: the reference the
/// selective JSON decoder is tested against. A repeated field is an error
/// (`duplicate field`), as in every other JSON Devloom reads.
pub fn decode_json_reference(bytes: &[u8], out: &mut Vec<Event>) -> Result<(), DecodeError> {
    const F: Format = Format::OtlpJson;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let request: ExportTraceServiceRequest = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| DecodeError::invalid(F, e.path().to_string(), e.into_inner()))?;
    de.end().map_err(|e| DecodeError::invalid(F, ".", e))?;
    normalize(&request, F, out)
}

pub(crate) fn decode_json(value: Value, out: &mut Vec<Event>) -> Result<(), DecodeError> {
    let request: ExportTraceServiceRequest = from_json(Format::OtlpJson, value)?;
    normalize(&request, Format::OtlpJson, out)
}

/// Normalizes a request already held in the generated types.
pub fn normalize(
    request: &ExportTraceServiceRequest,
    format: Format,
    out: &mut Vec<Event>,
) -> Result<(), DecodeError> {
    for (r, rs) in request.resource_spans.iter().enumerate() {
        let mut resource = ResourceAttributes::default();
        for kv in rs.resource.iter().flat_map(|res| &res.attributes) {
            resource.apply(&kv.key, attr_value(kv));
        }
        let resource = resource.into_parts();
        for (s, ss) in rs.scope_spans.iter().enumerate() {
            for (i, span) in ss.spans.iter().enumerate() {
                let at = |field: &str| format!("resourceSpans[{r}].scopeSpans[{s}].spans[{i}].{field}");
                let mut attrs = SpanAttributes::default();
                for kv in &span.attributes {
                    attrs.apply(&kv.key, attr_value(kv));
                }
                let links = span
                    .links
                    .iter()
                    .enumerate()
                    .map(|(l, link)| {
                        link_ids(&link.trace_id, &link.span_id)
                            .ok_or_else(|| DecodeError::invalid(format, at(&format!("links[{l}]")), BAD_LINK))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let parts = SpanParts {
                    trace_id: &span.trace_id,
                    span_id: &span.span_id,
                    parent: &span.parent_span_id,
                    links,
                    kind: span.kind,
                    name: &span.name,
                    start: span.start_time_unix_nano,
                    end: span.end_time_unix_nano,
                    status: span.status.as_ref().map_or(0, |st| st.code),
                    attrs,
                };
                let span = parts
                    .into_span(&resource)
                    .map_err(|(field, reason)| DecodeError::invalid(format, at(field), reason))?;
                out.push(Event::Span(span));
            }
        }
    }
    Ok(())
}

/// One span's fields as a decoder read them, before they are checked: what the three
/// OTLP decoders (generated types, selective protobuf, selective JSON) have in common.
pub(crate) struct SpanParts<'a> {
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub parent: &'a [u8],
    pub links: Vec<SpanLink>,
    pub kind: i32,
    pub name: &'a str,
    pub start: u64,
    pub end: u64,
    pub status: i32,
    pub attrs: SpanAttributes,
}

impl SpanParts<'_> {
    /// The normalized span, or the field that is wrong and why.
    pub(crate) fn into_span(self, resource: &ResourceParts) -> Result<Span, (&'static str, &'static str)> {
        check_span_times(self.start, self.end)?;
        Ok(Span {
            trace_id: TraceId::from_bytes(self.trace_id).ok_or(("traceId", BAD_TRACE_ID))?,
            span_id: SpanId::from_bytes(self.span_id).ok_or(("spanId", BAD_SPAN_ID))?,
            parent_span_id: parent_id(self.parent).ok_or(("parentSpanId", BAD_PARENT_ID))?,
            links: self.links,
            service: resource.service.clone(),
            region: resource.region.clone(),
            version: resource.version.clone(),
            environment: resource.environment.clone(),
            // The kind field, or else a `span.kind` tag (OpenTracing's convention).
            kind: match SpanKind::from_otlp(self.kind) {
                SpanKind::Unspecified => SpanKind::from_otlp(self.attrs.kind_tag),
                kind => kind,
            },
            name: self.name.to_string(),
            start_ns: self.start,
            end_ns: self.end,
            failed: self.attrs.failed(self.status),
            peer: self.attrs.peer,
        })
    }
}

pub(crate) const BAD_TRACE_ID: &str = "trace id must be 16 bytes";
pub(crate) const BAD_SPAN_ID: &str = "span id must be 8 bytes";
pub(crate) const BAD_PARENT_ID: &str = "parent span id must be empty or 8 bytes";
pub(crate) const BAD_LINK: &str = "link needs a 16-byte trace id and an 8-byte span id";

/// Empty or all-zero means "no parent"; 8 bytes is a parent; anything else is invalid.
pub(crate) fn parent_id(bytes: &[u8]) -> Option<Option<SpanId>> {
    if bytes.is_empty() {
        return Some(None);
    }
    SpanId::from_bytes(bytes).map(|id| (id.0 != 0).then_some(id))
}

pub(crate) fn link_ids(trace: &[u8], span: &[u8]) -> Option<SpanLink> {
    Some(SpanLink { trace_id: TraceId::from_bytes(trace)?, span_id: SpanId::from_bytes(span)? })
}

fn attr_value(kv: &KeyValue) -> AttrValue<'_> {
    match kv.value.as_ref().and_then(|v: &AnyValue| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => AttrValue::Str(s),
        Some(any_value::Value::IntValue(i)) => AttrValue::Int(*i),
        Some(any_value::Value::BoolValue(b)) => AttrValue::Bool(*b),
        _ => AttrValue::Other,
    }
}
