//! Input records: files (NDJSON, JSON documents, or one OTLP protobuf request per
//! file), stdin (NDJSON), and the simulator. A record is one payload as a producer wrote
//! it, with where it came from.

use std::fmt;
use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

use devloom_schemas::codec::Expect;
use serde::de::IgnoredAny;

use crate::simulator::SimRecord;

/// Where a record came from, for dead letters and error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A file, and the 1-based line the record starts on (none for binary files).
    File {
        /// Path as given.
        path: Arc<str>,
        /// Line the record starts on.
        line: Option<u64>,
    },
    /// Standard input, 1-based line.
    Stdin {
        /// Line number.
        line: u64,
    },
    /// The built-in simulator.
    Simulator,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File { path, line: Some(l) } => write!(f, "{path}:{l}"),
            Self::File { path, line: None } => f.write_str(path),
            Self::Stdin { line } => write!(f, "<stdin>:{line}"),
            Self::Simulator => f.write_str("<simulator>"),
        }
    }
}

/// One payload to decode.
#[derive(Clone, Debug, PartialEq)]
pub struct RawRecord {
    /// The bytes.
    pub payload: Vec<u8>,
    /// Which formats are accepted.
    pub expect: Expect,
    /// `content-type`, when the source knows it.
    pub content_type: Option<&'static str>,
    /// Where it came from.
    pub origin: Origin,
}

impl From<SimRecord> for RawRecord {
    fn from(r: SimRecord) -> Self {
        Self {
            payload: r.payload,
            expect: r.expect,
            content_type: Some(r.content_type),
            origin: Origin::Simulator,
        }
    }
}

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
        return Ok(vec![RawRecord { payload: bytes, expect: Expect::Any, content_type: None, origin }]);
    }
    Ok(split_json(&bytes)
        .into_iter()
        .map(|(line, payload)| RawRecord {
            payload,
            expect: Expect::Any,
            content_type: Some("application/json"),
            origin: Origin::File { path: name.clone(), line: Some(line) },
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

/// Standard input as NDJSON records, one per non-empty line.
pub fn stdin_records() -> impl Iterator<Item = std::io::Result<RawRecord>> {
    std::io::BufReader::new(std::io::stdin()).lines().enumerate().filter_map(|(i, line)| match line {
        Ok(text) if text.trim().is_empty() => None,
        Ok(text) => Some(Ok(RawRecord {
            payload: text.into_bytes(),
            expect: Expect::Any,
            content_type: Some("application/json"),
            origin: Origin::Stdin { line: i as u64 + 1 },
        })),
        Err(e) => Some(Err(e)),
    })
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
