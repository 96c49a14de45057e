//! The decode stage: raw records to normalized events, or to dead letters with the
//! reason. The one place the runtime calls the codecs.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use devloom_schemas::codec::{DecodeOptions, Message, decode};
use devloom_schemas::dead_letter::DEAD_LETTER_SCHEMA_VERSION;
use devloom_schemas::{DeadLetter, Event};

use crate::input::{Origin, RawRecord};

/// Decodes one record, or explains why not.
pub fn decode_record(record: &RawRecord, opts: &DecodeOptions) -> Result<Vec<Event>, Box<DeadLetter>> {
    let content_type = record.content_type.map(|ct| ("content-type", ct.as_bytes()));
    let headers: Vec<(&str, &[u8])> = content_type.into_iter().collect();
    let msg = Message { payload: &record.payload, headers: &headers, fallback_time_ns: None };
    let mut events = Vec::new();
    match decode(&msg, record.expect, opts, &mut events) {
        Ok(_) => Ok(events),
        Err(e) => Err(Box::new(dead_letter(record, e.to_string()))),
    }
}

fn dead_letter(record: &RawRecord, reason: String) -> DeadLetter {
    let (source, line) = match &record.origin {
        Origin::File { path, line } => (path.to_string(), *line),
        Origin::Stdin { line } => ("<stdin>".to_string(), Some(*line)),
        Origin::Simulator => ("<simulator>".to_string(), None),
    };
    // A file has no headers; its content type was only inferred.
    let headers: BTreeMap<String, String> = match record.origin {
        Origin::File { .. } | Origin::Stdin { .. } => BTreeMap::new(),
        Origin::Simulator => {
            record.content_type.map(|ct| ("content-type".to_string(), ct.to_string())).into_iter().collect()
        }
    };
    DeadLetter {
        schema_version: DEAD_LETTER_SCHEMA_VERSION,
        reason,
        source,
        partition: None,
        offset: None,
        line,
        headers,
        payload_base64: BASE64_STANDARD.encode(&record.payload),
    }
}
