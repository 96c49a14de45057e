//! CloudEvents 1.0 in both Kafka binding modes. Binary mode: `ce_*` headers carry the
//! attributes and the payload is the data. Structured mode: the payload is a JSON
//! envelope (`application/cloudevents+json`) with `data` or `data_base64`.

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use serde::Deserialize;
use serde_json::Value;

use super::{DecodeError, Format, Message, from_json, json_time};
use crate::time::TimestampNs;

const F: Format = Format::CloudEventsStructured;

/// The data of a structured CloudEvent and what is needed to decode it.
pub(crate) struct Unwrapped {
    pub data: Vec<u8>,
    pub content_type: Option<String>,
    pub time_ns: Option<TimestampNs>,
}

#[derive(Deserialize)]
struct Envelope {
    specversion: String,
    #[serde(rename = "type")]
    _type: String,
    #[serde(rename = "source")]
    _source: String,
    #[serde(rename = "id")]
    _id: String,
    #[serde(default)]
    time: Option<String>,
    #[serde(default)]
    datacontenttype: Option<String>,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    data_base64: Option<String>,
}

/// The `ce_time` header of a binary-mode event, if present.
pub(crate) fn binary_time(msg: &Message<'_>) -> Result<Option<TimestampNs>, DecodeError> {
    let version = msg.header("ce_specversion").unwrap_or_default();
    if version != "1.0" {
        let reason = format!("unsupported specversion {version:?} (want \"1.0\")");
        return Err(DecodeError::invalid(F, "header ce_specversion", reason));
    }
    msg.header("ce_time").map(|t| json_time(F, "header ce_time", t)).transpose()
}

pub(crate) fn unwrap_structured(value: Value) -> Result<Unwrapped, DecodeError> {
    let env: Envelope = from_json(F, value)?;
    if env.specversion != "1.0" {
        let reason = format!("unsupported specversion {:?} (want \"1.0\")", env.specversion);
        return Err(DecodeError::invalid(F, "specversion", reason));
    }
    let time_ns = env.time.as_deref().map(|t| json_time(F, "time", t)).transpose()?;
    let data = match (env.data, env.data_base64) {
        (Some(Value::String(s)), None) => s.into_bytes(),
        (Some(v), None) => serde_json::to_vec(&v).unwrap_or_default(),
        (None, Some(b64)) => {
            BASE64_STANDARD.decode(b64.trim()).map_err(|e| DecodeError::invalid(F, "data_base64", e))?
        }
        (None, None) => return Err(DecodeError::invalid(F, "data", "the event carries no data")),
        (Some(_), Some(_)) => {
            return Err(DecodeError::invalid(F, "data", "both data and data_base64 are set"));
        }
    };
    Ok(Unwrapped { data, content_type: env.datacontenttype, time_ns })
}
