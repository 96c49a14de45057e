//! The decode stage: raw records to normalized events, or to a [`Rejected`] record with
//! the reason. The one place the runtime calls the codecs, and the one place dead
//! letters are built.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use devloom_schemas::codec::{DecodeError, DecodeOptions, Message, decode, redact};
use devloom_schemas::dead_letter::DEAD_LETTER_SCHEMA_VERSION;
use devloom_schemas::{DeadLetter, Event};

use super::record::{Origin, RawRecord};

/// A record that could not be decoded (or not all of it), kept whole, with the reason.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejected {
    /// The record as it arrived.
    pub record: RawRecord,
    /// Why it failed, naming the format tried and the field or path.
    pub reason: String,
    /// Why it failed, as one of a few words (a metric label).
    pub kind: RejectKind,
    /// Events from the valid parts of the record (the good alerts of a webhook whose
    /// other alerts are invalid); processed as usual after the dead letter.
    pub salvaged: Vec<Event>,
}

/// The few kinds of dead letter, for counting them by reason without the reason's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectKind {
    /// Over `[decode] max_record_bytes`.
    TooLarge,
    /// In no format Devloom reads.
    Unrecognized,
    /// In a format Devloom reads, but invalid.
    Invalid,
    /// Some items of a many-item payload invalid, the rest decoded.
    Partial,
    /// An event the event-time guard refused (too far ahead or behind).
    EventTime,
}

impl RejectKind {
    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::Unrecognized => "unrecognized",
            Self::Invalid => "invalid",
            Self::Partial => "partial",
            Self::EventTime => "event_time",
        }
    }
}

impl Rejected {
    /// The dead-letter document (the embedded dead-letter file, `devloom.deadletter` in
    /// JSON form).
    pub fn dead_letter(&self) -> DeadLetter {
        let r = &self.record;
        let (source, partition, offset, line) = match &r.origin {
            Origin::File { path, line } => (path.to_string(), None, None, *line),
            Origin::Stdin { line } => ("<stdin>".to_string(), None, None, Some(*line)),
            Origin::Simulator => ("<simulator>".to_string(), None, None, None),
            Origin::Http { route } => (format!("POST {route}"), None, None, None),
            Origin::Guard => ("<event-time guard>".to_string(), None, None, None),
            Origin::Kafka { topic, partition, offset, .. } => {
                (topic.to_string(), Some(*partition), Some(*offset), None)
            }
        };
        let headers: BTreeMap<String, String> =
            r.headers.iter().map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned())).collect();
        DeadLetter {
            schema_version: DEAD_LETTER_SCHEMA_VERSION,
            reason: self.reason.clone(),
            source,
            partition,
            offset,
            line,
            headers,
            payload_base64: BASE64_STANDARD.encode(&r.payload),
        }
    }
}

/// Decodes one record, or explains why not.
pub fn decode_record(record: RawRecord, opts: &DecodeOptions) -> Result<Vec<Event>, Box<Rejected>> {
    if let Some(size) = record.cut_from {
        let reason = format!(
            "a record of {size} bytes is over the {}-byte limit (decode.max_record_bytes): not decoded (its first {} bytes are kept here)",
            opts.max_record_bytes,
            record.payload.len()
        );
        return Err(Box::new(Rejected { record, reason, kind: RejectKind::TooLarge, salvaged: Vec::new() }));
    }
    let mut events = Vec::new();
    let result = {
        let mut headers: Vec<(&str, &[u8])> =
            record.headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
        if let Some(ct) = record.content_type_hint
            && !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            headers.push(("content-type", ct.as_bytes()));
        }
        let msg = Message {
            payload: &record.payload,
            headers: &headers,
            fallback_time_ns: record.fallback_time_ns,
            key: record.key.as_deref(),
        };
        decode(&msg, record.expect, opts, &mut events)
    };
    let (reason, kind, salvaged) = match result {
        Ok(_) => return Ok(events),
        Err(e @ DecodeError::Partial { .. }) => (e.to_string(), RejectKind::Partial, events),
        Err(e @ (DecodeError::Unrecognized { .. } | DecodeError::WrongInput { .. })) => {
            (e.to_string(), RejectKind::Unrecognized, Vec::new())
        }
        Err(e) => (e.to_string(), RejectKind::Invalid, Vec::new()),
    };
    // A dead letter keeps the record as it arrived, except a Secret's values.
    let mut record = record;
    if let Some(scrubbed) = redact::scrub_payload(&record.payload) {
        record.payload = scrubbed;
    }
    Err(Box::new(Rejected { record, reason, kind, salvaged }))
}
