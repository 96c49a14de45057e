//! Input files: NDJSON, JSON documents, or one OTLP protobuf request per file. Bounded
//! inputs are decoded whole and merged in event time before the operators see them.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Arc;

use devloom_schemas::Event;
use devloom_schemas::codec::{DecodeOptions, Expect};
use serde::de::IgnoredAny;

use crate::core::{Input, Origin, RawRecord, ReadStamp, Rejected, Source, decode_record};

/// Reading an input file failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot read input {path}: {source}")]
pub struct InputError {
    path: String,
    source: std::io::Error,
}

/// Reads a file into records. JSON files may hold one document per line (NDJSON) or
/// several pretty-printed documents; a line that does not parse becomes its own record
/// (and later a dead letter) without hiding the rest. Anything else is one OTLP
/// protobuf request.
pub fn read_file(path: &Path) -> Result<Vec<RawRecord>, InputError> {
    let bytes =
        std::fs::read(path).map_err(|source| InputError { path: path.display().to_string(), source })?;
    let name: Arc<str> = Arc::from(path.display().to_string());
    let first = bytes.iter().position(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|i| !matches!(bytes[i], b'{' | b'[')) {
        let origin = Origin::File { path: name, line: None };
        return Ok(vec![RawRecord::new(bytes, Expect::Any, origin)]);
    }
    Ok(split_json(&bytes)
        .into_iter()
        .map(|(line, payload)| RawRecord {
            content_type_hint: Some("application/json"),
            ..RawRecord::new(payload, Expect::Any, Origin::File { path: name.clone(), line: Some(line) })
        })
        .collect())
}

/// Splits concatenated JSON documents, returning each with its 1-based start line.
fn split_json(bytes: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut line = 1u64;
    while pos < bytes.len() {
        let skip = bytes[pos..].iter().take_while(|b| b.is_ascii_whitespace()).count();
        line += bytes[pos..pos + skip].iter().filter(|&&b| b == b'\n').count() as u64;
        pos += skip;
        if pos >= bytes.len() {
            break;
        }
        let mut docs = serde_json::Deserializer::from_slice(&bytes[pos..]).into_iter::<IgnoredAny>();
        let end = match docs.next() {
            Some(Ok(_)) => pos + docs.byte_offset(),
            _ => bytes[pos..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |i| pos + i),
        };
        out.push((line, bytes[pos..end].to_vec()));
        line += bytes[pos..end].iter().filter(|&&b| b == b'\n').count() as u64;
        pos = end;
    }
    out
}

/// Decodes bounded inputs and merges them in event time; undecodable records go to
/// `dead`. Each file is a stream in its own order (an alert's `startsAt` may precede the
/// spans written before it), so a record's merge key is the newest event time its file
/// has reached; the sort is stable.
pub fn merge_in_event_time(
    records: Vec<RawRecord>,
    opts: &DecodeOptions,
    dead: &mut Vec<Box<Rejected>>,
) -> Vec<Event> {
    let mut reached: BTreeMap<String, u64> = BTreeMap::new();
    let mut events: Vec<(u64, Event)> = Vec::new();
    for record in records {
        let file = match &record.origin {
            Origin::File { path, .. } => path.to_string(),
            other => other.to_string(),
        };
        match decode_record(record, opts) {
            Ok(decoded) => {
                let newest = reached.entry(file).or_insert(0);
                for event in decoded {
                    *newest = (*newest).max(event.event_time_ns());
                    events.push((*newest, event));
                }
            }
            Err(d) => dead.push(d),
        }
    }
    events.sort_by_key(|(key, _)| *key);
    events.into_iter().map(|(_, e)| e).collect()
}

/// Files as a source: read, decoded and merged in event time up front; dead letters
/// first, then the events, each stamped as read when the loop takes it.
pub struct Files {
    records: u64,
    dead: std::vec::IntoIter<Box<Rejected>>,
    events: std::vec::IntoIter<Event>,
}

impl Files {
    /// Reads and merges `paths`.
    pub fn open(paths: &[impl AsRef<Path>], opts: &DecodeOptions) -> Result<Self, InputError> {
        let mut records = Vec::new();
        for path in paths {
            records.extend(read_file(path.as_ref())?);
        }
        let count = records.len() as u64;
        let mut dead = Vec::new();
        let events = merge_in_event_time(records, opts, &mut dead);
        let good = count - dead.len() as u64;
        Ok(Self { records: good, dead: dead.into_iter(), events: events.into_iter() })
    }
}

impl Source for Files {
    fn next_input(&mut self) -> Option<io::Result<Input>> {
        if self.records > 0 {
            return Some(Ok(Input::Read(std::mem::take(&mut self.records))));
        }
        if let Some(d) = self.dead.next() {
            return Some(Ok(Input::Rejected(d)));
        }
        self.events.next().map(|e| Ok(Input::Event(e, ReadStamp::now())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_ndjson_pretty_json_and_keeps_bad_lines() {
        let text = b"{\"a\":1}\n{\"b\":\n  2}\n\nnot json\n{\"c\":3}\n";
        let docs = split_json(text);
        let got: Vec<(u64, String)> =
            docs.into_iter().map(|(l, d)| (l, String::from_utf8(d).unwrap())).collect();
        assert_eq!(
            got,
            vec![
                (1, "{\"a\":1}".into()),
                (2, "{\"b\":\n  2}".into()),
                (5, "not json".into()),
                (6, "{\"c\":3}".into())
            ]
        );
    }

    #[test]
    fn missing_file_names_the_file() {
        let err = read_file(Path::new("/nonexistent/x.ndjson")).unwrap_err();
        assert!(err.to_string().starts_with("cannot read input /nonexistent/x.ndjson: "), "{err}");
    }
}
