//! Selective OTLP JSON decoder: reads an `ExportTraceServiceRequest` document into
//! borrowed views of only the fields Devloom uses (ids, name, kind, times, status, links,
//! the attributes [`SpanAttributes`] and [`ResourceAttributes`] read), skipping events
//! and everything else without building it. The structs list the generated types'
//! fields in their order (unused ones as `IgnoredAny`) so that even a message written as
//! a JSON array reads the same. Differentially tested against the generated
//! `opentelemetry-proto` types: on every document those accept, the spans are identical;
//! paths in errors are the same (`resourceSpans[0].scopeSpans[0].spans[3].traceId`).
//!
//! `simd-json` parses first; `serde_json` decides whatever it refuses, so acceptance and
//! error messages are `serde_json`'s.
//!
//! OTLP JSON as the specification writes it: lower-camel-case keys, hex ids (either
//! case), 64-bit integers as strings or numbers, enums as integers; unknown keys ignored,
//! a repeated key refused.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::otlp::{BAD_LINK, SpanParts, link_ids};
use super::otlp_attributes::{AttrValue, ResourceAttributes, SpanAttributes, is_resource_key, is_span_key};
use super::{DecodeError, Format};
use crate::event::Event;

const F: Format = Format::OtlpJson;

/// Decodes one OTLP JSON document into normalized spans, appending to `out`.
pub fn decode(bytes: &[u8], out: &mut Vec<Event>) -> Result<(), DecodeError> {
    // SIMD parsing first (on a copy: it unescapes in place); `serde_json` decides any
    // document it refuses, and paths are tracked only to explain a failure (tracking
    // them costs a third of the time on every document).
    let mut scratch = bytes.to_vec();
    let request: Request<'_> = match simd_json::serde::from_slice(&mut scratch) {
        Ok(request) => request,
        Err(_) => match serde_json::from_slice(bytes) {
            Ok(request) => request,
            Err(_) => return Err(explain(bytes)),
        },
    };
    for (r, rs) in request.resource_spans.into_iter().enumerate() {
        let resource = rs.resource.map(|r| r.attributes.0).unwrap_or_default();
        let resource = resource.into_parts();
        for (s, ss) in rs.scope_spans.into_iter().enumerate() {
            for (i, span) in ss.spans.into_iter().enumerate() {
                let at = |field: &str| format!("resourceSpans[{r}].scopeSpans[{s}].spans[{i}].{field}");
                let links = span
                    .links
                    .iter()
                    .enumerate()
                    .map(|(l, link)| {
                        link_ids(link.trace_id.bytes(), link.span_id.bytes())
                            .ok_or_else(|| DecodeError::invalid(F, at(&format!("links[{l}]")), BAD_LINK))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let parts = SpanParts {
                    trace_id: span.trace_id.bytes(),
                    span_id: span.span_id.bytes(),
                    parent: span.parent_span_id.bytes(),
                    links,
                    kind: span.kind,
                    name: &span.name,
                    start: span.start_time_unix_nano,
                    end: span.end_time_unix_nano,
                    status: span.status.map_or(0, |st| st.code),
                    attrs: span.attributes.0,
                };
                let span = parts
                    .into_span(&resource)
                    .map_err(|(field, reason)| DecodeError::invalid(F, at(field), reason))?;
                out.push(Event::Span(span));
            }
        }
    }
    Ok(())
}

/// The error of a document that does not parse, with the path where it fails.
fn explain(bytes: &[u8]) -> DecodeError {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, Request<'_>>(&mut de) {
        Err(e) => DecodeError::invalid(F, e.path().to_string(), e.into_inner()),
        Ok(_) => match de.end() {
            Err(e) => DecodeError::invalid(F, ".", e),
            Ok(()) => DecodeError::invalid(F, ".", "the document does not parse"),
        },
    }
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Request<'a> {
    #[serde(borrow)]
    resource_spans: Vec<ResourceSpans<'a>>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ResourceSpans<'a> {
    resource: Option<Resource>,
    #[serde(borrow)]
    scope_spans: Vec<ScopeSpans<'a>>,
    schema_url: IgnoredAny,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Resource {
    attributes: Applied<ResourceAttributes>,
    dropped_attributes_count: IgnoredAny,
    entity_refs: IgnoredAny,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ScopeSpans<'a> {
    scope: IgnoredAny,
    #[serde(borrow)]
    spans: Vec<JsonSpan<'a>>,
    schema_url: IgnoredAny,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct JsonSpan<'a> {
    trace_id: HexId,
    span_id: HexId,
    trace_state: IgnoredAny,
    parent_span_id: HexId,
    flags: IgnoredAny,
    #[serde(borrow)]
    name: Cow<'a, str>,
    kind: i32,
    #[serde(deserialize_with = "u64_string_or_number")]
    start_time_unix_nano: u64,
    #[serde(deserialize_with = "u64_string_or_number")]
    end_time_unix_nano: u64,
    attributes: Applied<SpanAttributes>,
    dropped_attributes_count: IgnoredAny,
    events: IgnoredAny,
    dropped_events_count: IgnoredAny,
    links: Vec<Link>,
    dropped_links_count: IgnoredAny,
    status: Option<Status>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Link {
    trace_id: HexId,
    span_id: HexId,
}

#[derive(Clone, Copy, Default, Deserialize)]
#[serde(default)]
struct Status {
    message: IgnoredAny,
    code: i32,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Attribute<'a> {
    #[serde(borrow)]
    key: Cow<'a, str>,
    #[serde(borrow)]
    value: Option<Value<'a>>,
}

impl Attribute<'_> {
    fn value(&self) -> AttrValue<'_> {
        self.value.as_ref().map_or(AttrValue::Other, Value::as_attr)
    }
}

/// Attributes a decoder keeps, read from the key-value list as it is parsed: one
/// attribute at a time, applied when its key is wanted, no list built.
#[derive(Default)]
struct Applied<T>(T);

/// What [`Applied`] applies attributes to.
trait Apply: Default {
    fn wants(key: &str) -> bool;
    fn apply(&mut self, key: &str, value: AttrValue<'_>);
}

impl Apply for SpanAttributes {
    fn wants(key: &str) -> bool {
        is_span_key(key)
    }

    fn apply(&mut self, key: &str, value: AttrValue<'_>) {
        SpanAttributes::apply(self, key, value);
    }
}

impl Apply for ResourceAttributes {
    fn wants(key: &str) -> bool {
        is_resource_key(key)
    }

    fn apply(&mut self, key: &str, value: AttrValue<'_>) {
        ResourceAttributes::apply(self, key, value);
    }
}

impl<'de, T: Apply> Deserialize<'de> for Applied<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Apply> Visitor<'de> for V<T> {
            type Value = Applied<T>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of key-value attributes")
            }

            fn visit_seq<S: de::SeqAccess<'de>>(self, mut seq: S) -> Result<Applied<T>, S::Error> {
                let mut applied = T::default();
                while let Some(kv) = seq.next_element::<Attribute<'de>>()? {
                    if T::wants(&kv.key) {
                        applied.apply(&kv.key, kv.value());
                    }
                }
                Ok(Applied(applied))
            }
        }
        deserializer.deserialize_seq(V(std::marker::PhantomData))
    }
}

/// An `AnyValue`: the kinds Devloom reads, and the rest as `Other`.
#[derive(Default)]
enum Value<'a> {
    #[default]
    Empty,
    Str(Cow<'a, str>),
    Int(i64),
    Bool(bool),
    Other,
}

impl Value<'_> {
    fn as_attr(&self) -> AttrValue<'_> {
        match self {
            Self::Str(s) => AttrValue::Str(s),
            Self::Int(i) => AttrValue::Int(*i),
            Self::Bool(b) => AttrValue::Bool(*b),
            Self::Empty | Self::Other => AttrValue::Other,
        }
    }
}

/// A string borrowed from the input unless it has escapes.
struct Str<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v.to_string())))
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// An integer as the OTLP JSON mapping writes 64-bit ones: a number or a string.
fn int_or_string<'de, M: MapAccess<'de>>(map: &mut M) -> Result<Option<i64>, M::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<i64>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a 64-bit integer, as a number or a string")
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<i64>, E> {
            Ok(Some(v))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<i64>, E> {
            i64::try_from(v).map(Some).map_err(E::custom)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<i64>, E> {
            v.parse().map(Some).map_err(E::custom)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Option<i64>, E> {
            Ok(None)
        }
    }
    struct Seed;
    impl<'de> de::DeserializeSeed<'de> for Seed {
        type Value = Option<i64>;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<i64>, D::Error> {
            d.deserialize_any(V)
        }
    }
    map.next_value_seed(Seed)
}

impl<'de: 'a, 'a> Deserialize<'de> for Value<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Value<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object for AnyValue")
            }

            // As the generated types read it: the last kind present wins, a null is
            // skipped, unknown keys are ignored.
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Value<'de>, M::Error> {
                let mut value = Value::Empty;
                while let Some(Str(key)) = map.next_key::<Str<'de>>()? {
                    match &*key {
                        "stringValue" => {
                            if let Some(Str(s)) = map.next_value::<Option<Str<'de>>>()? {
                                value = Value::Str(s);
                            }
                        }
                        "boolValue" => {
                            if let Some(b) = map.next_value::<Option<bool>>()? {
                                value = Value::Bool(b);
                            }
                        }
                        "intValue" => {
                            if let Some(i) = int_or_string(&mut map)? {
                                value = Value::Int(i);
                            }
                        }
                        "doubleValue" | "arrayValue" | "kvlistValue" | "bytesValue" => {
                            if map.next_value::<Option<IgnoredAny>>()?.is_some() {
                                value = Value::Other;
                            }
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(value)
            }
        }
        deserializer.deserialize_map(V)
    }
}

/// Hex-encoded id bytes, decoded without allocating when they fit a trace id.
#[derive(Default)]
struct HexId {
    short: [u8; 16],
    len: usize,
    long: Vec<u8>,
}

impl HexId {
    fn bytes(&self) -> &[u8] {
        if self.long.is_empty() { &self.short[..self.len] } else { &self.long }
    }
}

impl<'de> Deserialize<'de> for HexId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let Str(hex) = Str::deserialize(deserializer)?;
        let mut id = HexId::default();
        if hex.len() <= 32 && hex.len() % 2 == 0 {
            id.len = hex.len() / 2;
            const_hex::decode_to_slice(hex.as_bytes(), &mut id.short[..id.len]).map_err(de::Error::custom)?;
        } else {
            id.long = const_hex::decode(hex.as_bytes()).map_err(de::Error::custom)?;
        }
        Ok(id)
    }
}

/// A 64-bit unsigned integer written as a number or a string.
fn u64_string_or_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = u64;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an unsigned 64-bit integer, as a number or a string")
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::custom(format!("i64 value {v} is out of range for u64")))
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
            v.parse().map_err(E::custom)
        }
    }
    deserializer.deserialize_any(V)
}
