//! The union of normalized inputs the operators consume.

use serde::{Deserialize, Serialize};

use crate::alert::Alert;
use crate::candidates::ConfirmedCause;
use crate::catalog::CatalogSnapshot;
use crate::deploy::Deploy;
use crate::span::Span;
use crate::time::TimestampNs;

/// One normalized input event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A finished span.
    Span(Span),
    /// An alert state change.
    Alert(Alert),
    /// A deploy or other change.
    Deploy(Deploy),
    /// A person confirmed an incident's cause.
    Cause(ConfirmedCause),
    /// A full service catalog from one source.
    Catalog(CatalogSnapshot),
}

impl Event {
    /// The event time the runtime orders and watermarks by. Spans count at their end,
    /// when they are complete.
    pub fn event_time_ns(&self) -> TimestampNs {
        match self {
            Self::Span(s) => s.end_ns,
            Self::Alert(a) => a.event_time_ns(),
            Self::Deploy(d) => d.time_ns,
            Self::Cause(c) => c.time_ns,
            Self::Catalog(c) => c.time_ns,
        }
    }
}
