//! Standard input: NDJSON, one record per non-empty line.

use std::io::BufRead;

use devloom_schemas::codec::Expect;

use crate::core::{Origin, RawRecord};

/// Standard input as NDJSON records, one per non-empty line.
pub fn records() -> impl Iterator<Item = std::io::Result<RawRecord>> {
    std::io::BufReader::new(std::io::stdin()).lines().enumerate().filter_map(|(i, line)| match line {
        Ok(text) if text.trim().is_empty() => None,
        Ok(text) => Some(Ok(RawRecord {
            content_type_hint: Some("application/json"),
            ..RawRecord::new(text.into_bytes(), Expect::Any, Origin::Stdin { line: i as u64 + 1 })
        })),
        Err(e) => Some(Err(e)),
    })
}
