//! Standard input: JSON documents (NDJSON or pretty-printed), read as bytes, so one
//! line that is not UTF-8 or not JSON is dead-lettered with its line number and the
//! rest still runs.

use std::io::{self, BufReader};

use devloom_schemas::codec::Expect;

use super::documents::Documents;
use crate::core::{Origin, RawRecord};

/// Standard input as records, one per JSON document, none over `max_record_bytes`.
pub fn records(max_record_bytes: usize) -> impl Iterator<Item = io::Result<RawRecord>> + Send + 'static {
    let mut docs = Documents::new(BufReader::new(io::stdin()), max_record_bytes);
    std::iter::from_fn(move || {
        docs.next_document().transpose().map(|doc| {
            doc.map(|doc| RawRecord {
                content_type_hint: Some("application/json"),
                cut_from: doc.cut_from,
                ..RawRecord::new(doc.bytes, Expect::Any, Origin::Stdin { line: doc.line })
            })
        })
    })
}
