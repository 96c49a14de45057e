//! Selective OTLP protobuf decoder: reads an `ExportTraceServiceRequest` straight from
//! the wire and materializes only the fields Devloom uses (no attribute maps, no events,
//! no trace state). Differentially tested against [`super::otlp::decode_reference`]: for
//! every request the generated types accept, the two produce identical spans.

use super::otlp::{BAD_LINK, SpanParts, link_ids};
use super::otlp_attributes::{
    AttrValue, ResourceAttributes, ResourceParts, SpanAttributes, is_resource_key, is_span_key,
};
use super::{DecodeError, Format};
use crate::event::Event;
use crate::span::{Span, SpanLink};

/// Decodes OTLP protobuf bytes into normalized spans, appending to `out`.
pub fn decode(bytes: &[u8], out: &mut Vec<Event>) -> Result<(), DecodeError> {
    let fail = |path: String, reason: &str| DecodeError::invalid(Format::OtlpProtobuf, path, reason);
    let mut request = Reader::new(bytes);
    let mut r = 0;
    while let Some((field, wire)) = request.tag().map_err(|e| fail("ExportTraceServiceRequest".into(), e))? {
        if field == 1 {
            let rs = request.len_delimited(wire).map_err(|e| fail(format!("resourceSpans[{r}]"), e))?;
            resource_spans(rs, out).map_err(|(path, e)| fail(format!("resourceSpans[{r}].{path}"), e))?;
            r += 1;
        } else {
            request.skip(field, wire).map_err(|e| fail("ExportTraceServiceRequest".into(), e))?;
        }
    }
    Ok(())
}

type PathError = (String, &'static str);

fn at(path: &str) -> impl Fn(&'static str) -> PathError + '_ {
    move |e| (path.to_string(), e)
}

fn resource_spans(bytes: &[u8], out: &mut Vec<Event>) -> Result<(), PathError> {
    // Pass 1: the resource (it may follow the spans on the wire; repeats merge).
    let mut resource = ResourceAttributes::default();
    let mut reader = Reader::new(bytes);
    while let Some((field, wire)) = reader.tag().map_err(at("resource"))? {
        if field == 1 {
            let res = reader.len_delimited(wire).map_err(at("resource"))?;
            let mut rr = Reader::new(res);
            while let Some((f, w)) = rr.tag().map_err(at("resource"))? {
                if f == 1 {
                    let kv = rr.len_delimited(w).map_err(at("resource.attributes"))?;
                    let (key, value) = key_value(kv).map_err(at("resource.attributes"))?;
                    if is_resource_key(key) {
                        resource.apply(key, value.resolve().map_err(at("resource.attributes"))?);
                    }
                } else {
                    rr.skip(f, w).map_err(at("resource"))?;
                }
            }
        } else {
            reader.skip(field, wire).map_err(at("resource"))?;
        }
    }
    let resource = resource.into_parts();
    // Pass 2: the spans.
    let mut reader = Reader::new(bytes);
    let mut s = 0;
    while let Some((field, wire)) = reader.tag().map_err(at("scopeSpans"))? {
        if field == 2 {
            let ss = reader.len_delimited(wire).map_err(at("scopeSpans"))?;
            let mut sr = Reader::new(ss);
            let mut i = 0;
            while let Some((f, w)) = sr.tag().map_err(|e| (format!("scopeSpans[{s}]"), e))? {
                if f == 2 {
                    let sp = sr.len_delimited(w).map_err(|e| (format!("scopeSpans[{s}].spans[{i}]"), e))?;
                    let span = span(sp, &resource)
                        .map_err(|(p, e)| (format!("scopeSpans[{s}].spans[{i}].{p}"), e))?;
                    out.push(Event::Span(span));
                    i += 1;
                } else {
                    sr.skip(f, w).map_err(|e| (format!("scopeSpans[{s}]"), e))?;
                }
            }
            s += 1;
        } else {
            reader.skip(field, wire).map_err(at("scopeSpans"))?;
        }
    }
    Ok(())
}

fn span(bytes: &[u8], resource: &ResourceParts) -> Result<Span, PathError> {
    let mut trace_id: &[u8] = &[];
    let mut span_id: &[u8] = &[];
    let mut parent: &[u8] = &[];
    let mut name: &[u8] = &[];
    let mut kind = 0i32;
    let (mut start, mut end) = (0u64, 0u64);
    let mut status = 0i32;
    let mut links: Vec<SpanLink> = Vec::new();
    let mut attrs = SpanAttributes::default();
    let mut reader = Reader::new(bytes);
    let mut l = 0;
    while let Some((field, wire)) = reader.tag().map_err(at("span"))? {
        match field {
            1 => trace_id = reader.len_delimited(wire).map_err(at("traceId"))?,
            2 => span_id = reader.len_delimited(wire).map_err(at("spanId"))?,
            4 => parent = reader.len_delimited(wire).map_err(at("parentSpanId"))?,
            5 => name = reader.len_delimited(wire).map_err(at("name"))?,
            6 => kind = reader.varint_field(wire).map_err(at("kind"))? as i32,
            7 => start = reader.fixed64(wire).map_err(at("startTimeUnixNano"))?,
            8 => end = reader.fixed64(wire).map_err(at("endTimeUnixNano"))?,
            9 => {
                let kv = reader.len_delimited(wire).map_err(at("attributes"))?;
                let (key, value) = key_value(kv).map_err(at("attributes"))?;
                if is_span_key(key) {
                    attrs.apply(key, value.resolve().map_err(at("attributes"))?);
                }
            }
            13 => {
                let link = reader.len_delimited(wire).map_err(|e| (format!("links[{l}]"), e))?;
                links.push(span_link(link).map_err(|e| (format!("links[{l}]"), e))?);
                l += 1;
            }
            15 => {
                let st = reader.len_delimited(wire).map_err(at("status"))?;
                let mut sr = Reader::new(st);
                while let Some((f, w)) = sr.tag().map_err(at("status"))? {
                    if f == 3 {
                        status = sr.varint_field(w).map_err(at("status.code"))? as i32;
                    } else {
                        sr.skip(f, w).map_err(at("status"))?;
                    }
                }
            }
            _ => reader.skip(field, wire).map_err(at("span"))?,
        }
    }
    let name = std::str::from_utf8(name).map_err(|_| ("name".to_string(), INVALID_UTF8))?;
    SpanParts { trace_id, span_id, parent, links, kind, name, start, end, status, attrs }
        .into_span(resource)
        .map_err(|(field, reason)| (field.to_string(), reason))
}

fn span_link(bytes: &[u8]) -> Result<SpanLink, &'static str> {
    let (mut trace, mut span): (&[u8], &[u8]) = (&[], &[]);
    let mut reader = Reader::new(bytes);
    while let Some((field, wire)) = reader.tag()? {
        match field {
            1 => trace = reader.len_delimited(wire)?,
            2 => span = reader.len_delimited(wire)?,
            _ => reader.skip(field, wire)?,
        }
    }
    link_ids(trace, span).ok_or(BAD_LINK)
}

/// An `AnyValue` not yet checked for UTF-8: only values of wanted keys are.
#[derive(Clone, Copy)]
enum RawValue<'a> {
    Str(&'a [u8]),
    Int(i64),
    Bool(bool),
    Other,
}

impl<'a> RawValue<'a> {
    fn resolve(self) -> Result<AttrValue<'a>, &'static str> {
        Ok(match self {
            Self::Str(b) => AttrValue::Str(std::str::from_utf8(b).map_err(|_| INVALID_UTF8)?),
            Self::Int(i) => AttrValue::Int(i),
            Self::Bool(b) => AttrValue::Bool(b),
            Self::Other => AttrValue::Other,
        })
    }
}

/// Reads a `KeyValue`; repeated `value` fields merge as protobuf does (last oneof wins).
fn key_value(bytes: &[u8]) -> Result<(&str, RawValue<'_>), &'static str> {
    let mut key: &[u8] = &[];
    let mut value = RawValue::Other;
    let mut reader = Reader::new(bytes);
    while let Some((field, wire)) = reader.tag()? {
        match field {
            1 => key = reader.len_delimited(wire)?,
            2 => {
                let mut vr = Reader::new(reader.len_delimited(wire)?);
                while let Some((f, w)) = vr.tag()? {
                    match f {
                        1 => value = RawValue::Str(vr.len_delimited(w)?),
                        2 => value = RawValue::Bool(vr.varint_field(w)? != 0),
                        3 => value = RawValue::Int(vr.varint_field(w)? as i64),
                        4..=7 => {
                            vr.skip(f, w)?;
                            value = RawValue::Other;
                        }
                        _ => vr.skip(f, w)?,
                    }
                }
            }
            _ => reader.skip(field, wire)?,
        }
    }
    Ok((std::str::from_utf8(key).map_err(|_| INVALID_UTF8)?, value))
}

const INVALID_UTF8: &str = "string is not valid UTF-8";
const TRUNCATED: &str = "truncated message";
const BAD_WIRE_TYPE: &str = "unexpected wire type";

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

/// A cursor over protobuf wire bytes.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, &'static str> {
        let mut value = 0u64;
        for i in 0..10 {
            let b = *self.buf.get(self.pos).ok_or(TRUNCATED)?;
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err("varint overflows 64 bits");
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err("varint overflows 64 bits")
    }

    /// The next field number and wire type, or `None` at the end.
    fn tag(&mut self) -> Result<Option<(u32, u8)>, &'static str> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        if key > u64::from(u32::MAX) {
            return Err("invalid key");
        }
        let wire = (key & 7) as u8;
        let field = (key >> 3) as u32;
        if field == 0 {
            return Err("invalid field number 0");
        }
        if wire > FIXED32 {
            return Err(BAD_WIRE_TYPE);
        }
        Ok(Some((field, wire)))
    }

    fn len_delimited(&mut self, wire: u8) -> Result<&'a [u8], &'static str> {
        if wire != LEN {
            return Err(BAD_WIRE_TYPE);
        }
        let len = usize::try_from(self.varint()?).map_err(|_| TRUNCATED)?;
        let end = self.pos.checked_add(len).filter(|&e| e <= self.buf.len()).ok_or(TRUNCATED)?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn varint_field(&mut self, wire: u8) -> Result<u64, &'static str> {
        if wire != VARINT {
            return Err(BAD_WIRE_TYPE);
        }
        self.varint()
    }

    fn fixed64(&mut self, wire: u8) -> Result<u64, &'static str> {
        if wire != FIXED64 {
            return Err(BAD_WIRE_TYPE);
        }
        let bytes = self.take(8)?;
        Ok(u64::from_le_bytes(bytes.try_into().map_err(|_| TRUNCATED)?))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or(TRUNCATED)?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    /// Skips a field we do not read, including (deprecated) groups, as prost does.
    fn skip(&mut self, field: u32, wire: u8) -> Result<(), &'static str> {
        self.skip_nested(field, wire, 0)
    }

    fn skip_nested(&mut self, field: u32, wire: u8, depth: u32) -> Result<(), &'static str> {
        match wire {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            LEN => self.len_delimited(wire).map(drop),
            FIXED32 => self.take(4).map(drop),
            START_GROUP => {
                if depth >= 100 {
                    return Err("recursion limit reached");
                }
                loop {
                    let (f, w) = self.tag()?.ok_or(TRUNCATED)?;
                    if w == END_GROUP {
                        return if f == field { Ok(()) } else { Err("unexpected end group tag") };
                    }
                    self.skip_nested(f, w, depth + 1)?;
                }
            }
            _ => Err("unexpected end group tag"),
        }
    }
}
