//! Dead-letter records: what could not be decoded, kept whole with the reason.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Version of the [`DeadLetter`] JSON contract.
pub const DEAD_LETTER_SCHEMA_VERSION: u32 = 1;

/// One undecodable input, as written to the embedded dead-letter file. On Kafka the
/// original bytes and headers are republished as they were, with these fields as
/// `devloom.*` headers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DeadLetter {
    /// [`DEAD_LETTER_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Why it failed, naming the format tried and the field or path.
    pub reason: String,
    /// Where it came from: a topic or a file path.
    pub source: String,
    /// Kafka partition, when from Kafka.
    #[serde(default)]
    pub partition: Option<i32>,
    /// Kafka offset, when from Kafka.
    #[serde(default)]
    pub offset: Option<i64>,
    /// 1-based line, when from an NDJSON file.
    #[serde(default)]
    pub line: Option<u64>,
    /// Original headers (values as lossy UTF-8).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Original payload, standard base64.
    pub payload_base64: String,
}
